//! `AvroFileWriter`: appends each alert that reaches it (annotated, see
//! [`crate::output::annotated`]) to rolling Avro Object Container Files,
//! the input Spark, DuckDB and fastavro read directly, and passes it on.
//!
//! Files are `<prefix>-<sequence>.avro` in `directory`, numbered on from
//! what the directory already holds. A file rolls when it reaches
//! `max_records` or `max_bytes`, or when the alert schema changes (a
//! container file has one schema). A file being written is
//! `<name>.avro.part`; it gets its final name once finished. `flush` makes
//! everything appended durable, and the runner commits its input position
//! only after it. After a crash, a `.part` file left behind is cut back to
//! its last complete block and finished when the writer starts, so every
//! committed alert ends up in a finished file (alerts after the last
//! commit are processed again: at-least-once).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::candidate::Candidate;
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::decode::ocf::complete_prefix_len;
use crate::output::annotated::{AnnotatedSchema, AnnotatedSchemas};
use crate::output::ocf_file::{OcfCodec, OcfFile, PART_SUFFIX};
use crate::processor::{CandidateProcessor, ProcessError, Response};

/// Limits and naming of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollPolicy {
    /// File name prefix.
    pub prefix: String,
    /// Records per file.
    pub max_records: u64,
    /// Bytes per file (checked before each append).
    pub max_bytes: u64,
    /// Block compression.
    pub codec: OcfCodec,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy {
            prefix: "alerts".to_owned(),
            max_records: 100_000,
            max_bytes: 256 << 20,
            codec: OcfCodec::Null,
        }
    }
}

/// The writer.
#[derive(Debug)]
pub struct AvroFileWriter {
    directory: PathBuf,
    policy: RollPolicy,
    schemas: AnnotatedSchemas,
    current: Option<(Arc<AnnotatedSchema>, OcfFile)>,
    next_sequence: u64,
    finished: Vec<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProcessError + '_ {
    move |source| ProcessError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The sequence number of `<prefix>-<n>.avro[.part]`.
fn sequence_of(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let digits = rest
        .strip_suffix(PART_SUFFIX)
        .unwrap_or(rest)
        .strip_suffix(".avro")?;
    digits.parse().ok()
}

impl AvroFileWriter {
    /// Opens `directory` (creating it), finishes `.part` files left by a
    /// crash, and continues the numbering.
    ///
    /// # Errors
    /// I/O errors, naming the path.
    pub fn open(directory: impl Into<PathBuf>, policy: RollPolicy) -> Result<Self, ProcessError> {
        let directory = directory.into();
        std::fs::create_dir_all(&directory).map_err(io_err(&directory))?;
        let mut max_seq = None;
        for entry in std::fs::read_dir(&directory).map_err(io_err(&directory))? {
            let entry = entry.map_err(io_err(&directory))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(seq) = sequence_of(&name, &policy.prefix) else {
                continue;
            };
            max_seq = max_seq.max(Some(seq));
            if name.ends_with(PART_SUFFIX) {
                recover_part(&entry.path())?;
            }
        }
        Ok(AvroFileWriter {
            directory,
            policy,
            schemas: AnnotatedSchemas::default(),
            current: None,
            next_sequence: max_seq.map_or(0, |s| s + 1),
            finished: Vec::new(),
        })
    }

    /// Files finished by this writer so far.
    #[must_use]
    pub fn finished_files(&self) -> &[PathBuf] {
        &self.finished
    }

    fn finish_current(&mut self) -> Result<(), ProcessError> {
        if let Some((_, file)) = self.current.take() {
            let path = file.final_path().to_owned();
            let done = file.finish().map_err(io_err(&path))?;
            tracing::debug!(file = %done.display(), "Avro file finished");
            self.finished.push(done);
        }
        Ok(())
    }

    fn append(&mut self, c: &Candidate) -> Result<(), ProcessError> {
        let annotated = self
            .schemas
            .get(c.schema())
            .map_err(|e| ProcessError::Encode {
                alert_id: c.alert_id(),
                schema: c
                    .schema()
                    .name()
                    .map_or_else(String::new, ToString::to_string),
                reason: e.to_string(),
            })?;
        let body = annotated.encode(c).map_err(|e| ProcessError::Encode {
            alert_id: c.alert_id(),
            schema: annotated
                .schema
                .name()
                .map_or_else(String::new, ToString::to_string),
            reason: e.to_string(),
        })?;
        let roll = self.current.as_ref().is_some_and(|(schema, file)| {
            !Arc::ptr_eq(schema, &annotated)
                || file.records() >= self.policy.max_records
                || file.size() + body.len() as u64 > self.policy.max_bytes
        });
        if roll {
            self.finish_current()?;
        }
        if self.current.is_none() {
            let path = self.directory.join(format!(
                "{}-{:010}.avro",
                self.policy.prefix, self.next_sequence
            ));
            self.next_sequence += 1;
            let file = OcfFile::create(&path, &annotated.text, self.policy.codec)
                .map_err(io_err(&path))?;
            self.current = Some((Arc::clone(&annotated), file));
        }
        if let Some((_, file)) = &mut self.current {
            let path = file.final_path().to_owned();
            file.append(&body).map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Cuts a crashed writer's `.part` file back to its complete blocks and
/// gives it its final name (or removes it when not even the header survived).
fn recover_part(part: &Path) -> Result<(), ProcessError> {
    let bytes = std::fs::read(part).map_err(io_err(part))?;
    let final_path = part.with_extension("");
    match complete_prefix_len(&bytes) {
        Some(len) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(part)
                .map_err(io_err(part))?;
            f.set_len(len as u64).map_err(io_err(part))?;
            f.sync_all().map_err(io_err(part))?;
            std::fs::rename(part, &final_path).map_err(io_err(part))?;
            tracing::warn!(file = %final_path.display(), kept_bytes = len, dropped_bytes = bytes.len() - len, "finished an Avro file left open by a crash");
        }
        None => {
            std::fs::remove_file(part).map_err(io_err(part))?;
            tracing::warn!(file = %part.display(), "removed an Avro file with an incomplete header left by a crash");
        }
    }
    Ok(())
}

impl CandidateProcessor for AvroFileWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        match self.append(candidate) {
            Ok(()) => Response::Pass,
            Err(e) => Response::Fail(e),
        }
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        if let Some((_, file)) = &mut self.current {
            let path = file.final_path().to_owned();
            file.sync().map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), ProcessError> {
        self.finish_current()
    }
}

impl Drop for AvroFileWriter {
    fn drop(&mut self) {
        if let Err(e) = self.finish_current() {
            tracing::error!(error = %e, "could not finish the Avro file on drop");
        }
    }
}

#[derive(Debug)]
struct AvroFileWriterSpec {
    directory: PathBuf,
    policy: RollPolicy,
}

impl ProcessorSpec for AvroFileWriterSpec {
    fn build(
        &self,
        _ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        AvroFileWriter::open(self.directory.clone(), self.policy.clone())
            .map(|w| Box::new(w) as Box<dyn CandidateProcessor>)
            .map_err(|e| ConfigError::Invalid {
                path: format!("{path}.params.directory"),
                message: e.to_string(),
            })
    }
}

/// Parameters: `directory` (required), `prefix` (default `alerts`),
/// `max_records` (default 100000), `max_bytes` (default 256 MiB),
/// `codec` (`null` | `deflate`, default `null`).
///
/// # Errors
/// Missing or mistyped parameters.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let defaults = RollPolicy::default();
    let directory = p.required_path("directory", "an output directory")?;
    let prefix = p
        .optional_str("prefix", "a file name prefix")?
        .unwrap_or(defaults.prefix);
    if prefix.contains(['/', '\\']) {
        return Err(p.error(
            "prefix",
            "expected a file name prefix without path separators",
        ));
    }
    let max_records = p.optional_u64(
        "max_records",
        "a positive number of records",
        defaults.max_records,
    )?;
    let max_bytes = p.optional_u64(
        "max_bytes",
        "a positive number of bytes",
        defaults.max_bytes,
    )?;
    if max_records == 0 {
        return Err(p.error(
            "max_records",
            "expected a positive number of records, found 0",
        ));
    }
    if max_bytes == 0 {
        return Err(p.error("max_bytes", "expected a positive number of bytes, found 0"));
    }
    let codec = match p
        .choice("codec", &["null", "deflate"], Some("null"))?
        .as_str()
    {
        "deflate" => OcfCodec::Deflate,
        _ => OcfCodec::Null,
    };
    Ok(Box::new(AvroFileWriterSpec {
        directory,
        policy: RollPolicy {
            prefix,
            max_records,
            max_bytes,
            codec,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::sequence_of;

    #[test]
    fn sequence_numbers_from_names() {
        assert_eq!(sequence_of("alerts-0000000012.avro", "alerts"), Some(12));
        assert_eq!(
            sequence_of("alerts-0000000012.avro.part", "alerts"),
            Some(12)
        );
        assert_eq!(sequence_of("alerts-x.avro", "alerts"), None);
        assert_eq!(sequence_of("other-1.avro", "alerts"), None);
        assert_eq!(sequence_of("alerts-1.json", "alerts"), None);
    }
}
