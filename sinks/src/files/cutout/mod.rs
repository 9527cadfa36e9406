//! `CutoutWriter`: an alert's science, template and difference stamps as
//! files: FITS passed through (every HDU and header card as the alert
//! carries it; ZTF's gzipped stamps gunzipped), and PNG / JPEG images with
//! astronomical display limits (zscale or min/max) and a linear or asinh
//! stretch.
//!
//! Files are `<alert id>_<science|template|difference>.<fits|png|jpg>` in
//! `directory`, written through [`StagedFiles`]: `.part` files in
//! `process`, fsynced and renamed at `flush`. A stamp that cannot be
//! decoded (not gzip, not FITS, no image) never will be: the writer answers
//! [`Response::DeadLetter`] with the reason, writes none of that alert's
//! files, and the pipeline goes on with the next alert.

mod render;

use std::io::Read;
use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use starlog_processors::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use starlog_processors::{Candidate, CandidateProcessor, CutoutKind, ProcessError, Response};

pub(crate) use render::{Limits, Stretch};

use super::fits;
use super::staged::{io_err, remove_stale_parts, StagedFiles};

/// The class name.
pub(crate) const CLASS: &str = "CutoutWriter";

/// Largest stamp accepted after gunzip (a guard against gzip bombs).
const MAX_STAMP_BYTES: u64 = 64 << 20;

/// Which files each stamp is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Formats {
    pub(crate) fits: bool,
    pub(crate) png: bool,
    pub(crate) jpeg: bool,
}

/// How the images are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rendering {
    pub(crate) stretch: Stretch,
    pub(crate) limits: Limits,
    pub(crate) jpeg_quality: u8,
}

fn kind_name(kind: CutoutKind) -> &'static str {
    match kind {
        CutoutKind::Science => "science",
        CutoutKind::Template => "template",
        CutoutKind::Difference => "difference",
    }
}

/// A stamp's FITS bytes (gunzipped when gzipped), checked to hold an image.
fn decode_stamp(raw: &[u8]) -> Result<(Vec<u8>, fits::Image), String> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw)
            .take(MAX_STAMP_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        if out.len() as u64 > MAX_STAMP_BYTES {
            return Err(format!(
                "larger than {MAX_STAMP_BYTES} bytes once gunzipped"
            ));
        }
        out
    } else {
        raw.to_vec()
    };
    let image = fits::first_image(&bytes).map_err(|e| format!("not a FITS image: {e}"))?;
    Ok((bytes, image))
}

/// The writer.
#[derive(Debug)]
pub(crate) struct CutoutWriter {
    formats: Formats,
    rendering: Rendering,
    staged: StagedFiles,
}

impl CutoutWriter {
    fn open(
        directory: PathBuf,
        formats: Formats,
        rendering: Rendering,
    ) -> Result<Self, ProcessError> {
        std::fs::create_dir_all(&directory).map_err(io_err(&directory))?;
        remove_stale_parts(&directory, &[".fits", ".png", ".jpg"])?;
        Ok(CutoutWriter {
            formats,
            rendering,
            staged: StagedFiles::new(directory),
        })
    }

    fn image_bytes(&self, image: &fits::Image, jpeg: bool) -> Result<Vec<u8>, String> {
        let limits = render::limits(&image.pixels, self.rendering.limits);
        let grey = render::grey_levels(
            &image.pixels,
            image.width,
            image.height,
            limits,
            self.rendering.stretch,
        );
        let (w, h) = (
            u32::try_from(image.width).map_err(|e| e.to_string())?,
            u32::try_from(image.height).map_err(|e| e.to_string())?,
        );
        let mut out = Vec::new();
        let written = if jpeg {
            JpegEncoder::new_with_quality(&mut out, self.rendering.jpeg_quality).write_image(
                &grey,
                w,
                h,
                ExtendedColorType::L8,
            )
        } else {
            PngEncoder::new(&mut out).write_image(&grey, w, h, ExtendedColorType::L8)
        };
        written.map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Stages every file of the alert, or none when a stamp is undecodable
    /// (`Ok(Some(reason))`: dead-letter it).
    fn write(&mut self, c: &Candidate) -> Result<Option<String>, ProcessError> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut problems = Vec::new();
        for kind in CutoutKind::ALL {
            let Some(raw) = c.cutout(kind) else {
                continue;
            };
            let name = format!("{}_{}", c.alert_id(), kind_name(kind));
            let (bytes, image) = match decode_stamp(raw) {
                Ok(v) => v,
                Err(reason) => {
                    problems.push(format!("{} stamp: {reason}", kind_name(kind)));
                    continue;
                }
            };
            for (on, jpeg, ext) in [
                (self.formats.png, false, "png"),
                (self.formats.jpeg, true, "jpg"),
            ] {
                if !on {
                    continue;
                }
                match self.image_bytes(&image, jpeg) {
                    Ok(img) => files.push((format!("{name}.{ext}"), img)),
                    Err(reason) => {
                        problems.push(format!("{} stamp as {ext}: {reason}", kind_name(kind)));
                    }
                }
            }
            if self.formats.fits {
                files.push((format!("{name}.fits"), bytes));
            }
        }
        if !problems.is_empty() {
            return Ok(Some(format!("{CLASS}: {}", problems.join("; "))));
        }
        for (name, bytes) in &files {
            self.staged.stage(name, bytes)?;
        }
        Ok(None)
    }
}

impl CandidateProcessor for CutoutWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        match self.write(candidate) {
            Ok(None) => Response::Pass,
            Ok(Some(reason)) => {
                tracing::warn!(alert_id = candidate.alert_id(), %reason, "undecodable stamp: alert dead-lettered");
                Response::DeadLetter(reason)
            }
            Err(e) => Response::Fail(e),
        }
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.staged.commit()
    }
}

#[derive(Debug)]
struct CutoutWriterSpec {
    directory: PathBuf,
    formats: Formats,
    rendering: Rendering,
}

impl ProcessorSpec for CutoutWriterSpec {
    fn build(
        &self,
        _ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        CutoutWriter::open(self.directory.clone(), self.formats, self.rendering)
            .map(|w| Box::new(w) as Box<dyn CandidateProcessor>)
            .map_err(|e| ConfigError::Invalid {
                path: format!("{path}.params.directory"),
                message: e.to_string(),
            })
    }
}

/// Parameters: `directory` (required), `formats` (a non-empty list of
/// `fits`, `png`, `jpeg`; default all three), `stretch` (`linear` |
/// `asinh`, default `asinh`), `limits` (`zscale` | `minmax`, default
/// `zscale`), `jpeg_quality` (1..=100, default 90).
pub(crate) fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let directory = p.required_path("directory", "an output directory")?;
    let formats = super::format_list(p, &["fits", "png", "jpeg"])?;
    let formats = Formats {
        fits: formats.contains(&"fits"),
        png: formats.contains(&"png"),
        jpeg: formats.contains(&"jpeg"),
    };
    let stretch = match p
        .choice("stretch", &["linear", "asinh"], Some("asinh"))?
        .as_str()
    {
        "linear" => Stretch::Linear,
        _ => Stretch::Asinh,
    };
    let limits = match p
        .choice("limits", &["zscale", "minmax"], Some("zscale"))?
        .as_str()
    {
        "minmax" => Limits::MinMax,
        _ => Limits::ZScale,
    };
    let quality = p.optional_u64("jpeg_quality", "a JPEG quality from 1 to 100", 90)?;
    let jpeg_quality = u8::try_from(quality)
        .ok()
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(|| {
            p.error(
                "jpeg_quality",
                format!("expected a JPEG quality from 1 to 100, found {quality}"),
            )
        })?;
    Ok(Box::new(CutoutWriterSpec {
        directory,
        formats,
        rendering: Rendering {
            stretch,
            limits,
            jpeg_quality,
        },
    }))
}
