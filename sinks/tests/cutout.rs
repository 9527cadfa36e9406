//! CutoutWriter on the shipped ZTF and Rubin alerts, checked with astropy,
//! numpy and Pillow (`sinks/tests/python/check_cutouts.py`), plus its
//! failure paths: an undecodable stamp (dead-lettered), a read-only and a
//! full tmpfs (failed, then retried).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod astro_common;

use std::path::{Path, PathBuf};

use apache_avro::types::Value;
use astro_common::{alert_files, feed, handle, names, pipeline, python, Tmpfs};
use starlog_processors::config::PipelineSpec;
use starlog_processors::dead_letter::REASON_HEADER;
use starlog_processors::RecordOutcome;

fn yaml(dir: &Path, params: &str) -> String {
    format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: cutouts }}\n  processors:\n    - class: CutoutWriter\n      params: {{ directory: {dir}, {params} }}\n",
        dir = dir.display()
    )
}

fn write_list(dir: &Path, files: &[PathBuf]) -> PathBuf {
    let list = dir.join("alerts.txt");
    let text: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, text.join("\n")).unwrap();
    list
}

fn check(out: &Path, files: &[PathBuf], stretch: &str, limits: &str, formats: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let list = write_list(tmp.path(), files);
    python(
        "check_cutouts.py",
        &[
            out,
            &list,
            Path::new(stretch),
            Path::new(limits),
            Path::new(formats),
        ],
    );
}

#[test]
fn stamps_as_fits_png_and_jpeg_with_zscale_and_asinh() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cutouts");
    let files = alert_files();
    let (mut p, _) = pipeline(&yaml(
        &out,
        "formats: [fits, png, jpeg], stretch: asinh, limits: zscale",
    ));
    feed(&mut p, &files);
    p.flush().unwrap();
    check(&out, &files, "asinh", "zscale", "fits,png,jpeg");
}

#[test]
fn png_with_minmax_and_linear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cutouts");
    let files = alert_files();
    let (mut p, _) = pipeline(&yaml(
        &out,
        "formats: [png], stretch: linear, limits: minmax",
    ));
    feed(&mut p, &files);
    p.flush().unwrap();
    check(&out, &files, "linear", "minmax", "png");
}

#[test]
fn nothing_is_visible_before_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cutouts");
    let (mut p, _) = pipeline(&yaml(&out, "formats: [fits]"));
    feed(&mut p, &alert_files()[..3]);
    assert!(
        names(&out).iter().all(|n| n.ends_with(".part")),
        "{:?}",
        names(&out)
    );
    p.flush().unwrap();
    assert_eq!(names(&out).len(), 9, "{:?}", names(&out));
    assert!(names(&out).iter().all(|n| n.ends_with(".fits")));
}

/// `file`'s alert with the stamp in `field` replaced by `bytes`, as a container file.
fn with_stamp(file: &Path, field: &str, bytes: &[u8]) -> Vec<u8> {
    let data = std::fs::read(file).unwrap();
    let reader = apache_avro::Reader::new(&data[..]).unwrap();
    let schema = reader.writer_schema().clone();
    let mut value = reader.into_iter().next().unwrap().unwrap();
    fn replace(v: &mut Value, field: &str, bytes: &[u8]) -> bool {
        match v {
            Value::Union(_, inner) => replace(inner, field, bytes),
            Value::Record(fields) => {
                for (name, fv) in fields.iter_mut() {
                    if name == field {
                        return set_bytes(fv, bytes);
                    }
                }
                false
            }
            _ => false,
        }
    }
    fn set_bytes(v: &mut Value, bytes: &[u8]) -> bool {
        match v {
            Value::Union(_, inner) => set_bytes(inner, bytes),
            Value::Bytes(b) => {
                *b = bytes.to_vec();
                true
            }
            // ZTF: { fileName, stampData }
            Value::Record(_) => replace(v, "stampData", bytes),
            _ => false,
        }
    }
    assert!(
        replace(&mut value, field, bytes),
        "{}: no {field}",
        file.display()
    );
    let mut w = apache_avro::Writer::new(&schema, Vec::new()).unwrap();
    w.append_value(value).unwrap();
    w.into_inner().unwrap()
}

#[test]
fn undecodable_stamps_are_dead_lettered_and_the_pipeline_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cutouts");
    let files = alert_files();
    let ztf = files
        .iter()
        .find(|f| f.to_string_lossy().contains("kowalski/20231012"))
        .unwrap();
    let rubin = files
        .iter()
        .find(|f| f.to_string_lossy().contains("fink-broker-rubin/v9_0"))
        .unwrap();
    let ztf_id = ztf.file_stem().unwrap().to_string_lossy().into_owned();
    let rubin_id = rubin.file_stem().unwrap().to_string_lossy().into_owned();
    // Truncated gzip; and bytes that are no FITS.
    let bad_ztf = with_stamp(
        ztf,
        "cutoutScience",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1],
    );
    let bad_rubin = with_stamp(rubin, "cutoutDifference", b"SIMPLE  =  nonsense");
    let (mut p, sink) = pipeline(&yaml(&out, "formats: [fits, png]"));
    for (offset, bytes) in [(0, &bad_ztf), (1, &bad_rubin)] {
        match handle(&mut p, offset, bytes) {
            RecordOutcome::Processed {
                passed: 0,
                dead_lettered: 1,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
    // The next alerts go through.
    feed(&mut p, &files[..2]);
    p.flush().unwrap();
    let dead = sink.records_for("alerts-dead-letter");
    assert_eq!(dead.len(), 2);
    let reason =
        |i: usize| String::from_utf8_lossy(dead[i].header(REASON_HEADER).unwrap()).into_owned();
    assert!(
        reason(0).contains("CutoutWriter: science stamp: not valid gzip"),
        "{}",
        reason(0)
    );
    assert!(reason(0).contains(&ztf_id), "{}", reason(0));
    assert!(
        reason(1).contains("CutoutWriter: difference stamp: not a FITS image"),
        "{}",
        reason(1)
    );
    assert_eq!(dead[0].value, bad_ztf, "the record goes unchanged");
    let written = names(&out);
    assert!(
        written
            .iter()
            .all(|n| !n.starts_with(&ztf_id) && !n.starts_with(&rubin_id)),
        "no file of a dead-lettered alert: {written:?}"
    );
    assert_eq!(written.len(), 12, "{written:?}");
    assert_eq!(p.counters().dead_lettered, 2);
}

/// Feeds the alerts until the writer fails; returns the error.
fn first_failure(p: &mut starlog_processors::Pipeline, files: &[PathBuf]) -> String {
    for (i, f) in files.iter().enumerate() {
        match handle(p, i64::try_from(i).unwrap(), &std::fs::read(f).unwrap()) {
            RecordOutcome::Processed { .. } => {}
            RecordOutcome::Failed(e) => return e.to_string(),
            other => panic!("{other:?}"),
        }
    }
    p.flush().expect_err("the writer must fail").to_string()
}

fn visible(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| !n.ends_with(".part"))
        .collect()
}

#[test]
fn read_only_folder_fails_until_writable() {
    let fs = Tmpfs::mount("64m", true);
    let files = alert_files();
    let yaml = yaml(
        &fs.dir,
        "formats: [fits, png], stretch: linear, limits: zscale",
    );
    let (mut p, _) = pipeline(&yaml);
    let err = first_failure(&mut p, &files);
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(names(&fs.dir), Vec::<String>::new());
    fs.remount("rw");
    // The runner re-delivers from its last commit.
    let (mut p, _) = pipeline(&yaml);
    feed(&mut p, &files);
    p.flush().unwrap();
    check(&fs.dir, &files, "linear", "zscale", "fits,png");
}

#[test]
fn full_disk_fails_until_space() {
    let fs = Tmpfs::mount("64k", false);
    let files = alert_files();
    let yaml = yaml(&fs.dir, "formats: [fits, jpeg]");
    let (mut p, _) = pipeline(&yaml);
    let err = first_failure(&mut p, &files);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(
        visible(&fs.dir),
        Vec::<String>::new(),
        "nothing announced before durable"
    );
    fs.remount("size=64m");
    let (mut p, _) = pipeline(&yaml);
    feed(&mut p, &files);
    p.flush().unwrap();
    check(&fs.dir, &files, "asinh", "zscale", "fits,jpeg");
}

#[test]
fn parameters_are_checked_with_yaml_paths() {
    let load = |params: &str| {
        PipelineSpec::from_yaml_str(
            &format!("component:\n  type: processing-node\n  source: {{ topic: a, group: g }}\n  processors:\n    - class: CutoutWriter\n      params: {params}\n"),
            "test.yaml",
            Path::new("."),
            &starlog_sinks::registry(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let p = "component.processors[0].params";
    let e = load("{ formats: [png] }");
    assert!(e.starts_with(&format!("{p}.directory: missing")), "{e}");
    let e = load("{ directory: d, formats: [gif] }");
    assert!(
        e.starts_with(&format!("{p}.formats[0]: expected one of fits, png, jpeg")),
        "{e}"
    );
    let e = load("{ directory: d, stretch: log }");
    assert!(
        e.starts_with(&format!("{p}.stretch: expected one of linear, asinh")),
        "{e}"
    );
    let e = load("{ directory: d, limits: percentile }");
    assert!(
        e.starts_with(&format!("{p}.limits: expected one of zscale, minmax")),
        "{e}"
    );
    let e = load("{ directory: d, jpeg_quality: 101 }");
    assert!(
        e.starts_with(&format!(
            "{p}.jpeg_quality: expected a JPEG quality from 1 to 100"
        )),
        "{e}"
    );
    let e = load("{ directory: d, quality: 9 }");
    assert!(
        e.starts_with(&format!("{p}.quality: unknown parameter")),
        "{e}"
    );
}

#[test]
fn the_example_pipeline_loads_builds_and_writes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipelines/cutouts.yaml");
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("cutouts.yaml");
    std::fs::copy(&example, &copy).unwrap();
    let spec = PipelineSpec::from_file(&copy, &starlog_sinks::registry()).unwrap();
    assert_eq!(spec.chain.classes(), ["ExpressionFilter", "CutoutWriter"]);
    let sink = std::sync::Arc::new(starlog_processors::sink::MemoryTopicSink::new());
    let mut p = spec
        .build(&starlog_processors::config::BuildContext::default().with_sink(sink))
        .unwrap();
    let files = alert_files();
    let mut passed = 0;
    for (i, f) in files.iter().enumerate() {
        match handle(
            &mut p,
            i64::try_from(i).unwrap(),
            &std::fs::read(f).unwrap(),
        ) {
            RecordOutcome::Processed {
                passed: n,
                dead_lettered: 0,
                ..
            } => passed += n,
            other => panic!("{other:?}"),
        }
    }
    p.flush().unwrap();
    let written = names(&tmp.path().join("cutouts"));
    assert!(passed > 10, "{passed} alerts passed the filter");
    assert!(
        written.len() >= passed * 2,
        "{} files for {passed} alerts",
        written.len()
    );
    assert!(written
        .iter()
        .all(|n| n.ends_with(".fits") || n.ends_with(".png")));
}
