//! LightCurveWriter on the shipped ZTF and Rubin alerts, read back with
//! astropy (`sinks/tests/python/check_lightcurves.py`), plus its failure
//! paths on a read-only and a full tmpfs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod astro_common;

use std::path::Path;

use astro_common::{alert_files, feed, handle, names, pipeline, python, Tmpfs};
use starlog_processors::config::PipelineSpec;
use starlog_processors::RecordOutcome;

fn yaml(dir: &Path, formats: &str) -> String {
    format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: lc }}\n  processors:\n    - class: LightCurveWriter\n      params: {{ directory: {dir}, formats: [{formats}] }}\n",
        dir = dir.display()
    )
}

fn write_list(dir: &Path, files: &[std::path::PathBuf]) -> std::path::PathBuf {
    let list = dir.join("alerts.txt");
    let text: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, text.join("\n")).unwrap();
    list
}

#[test]
fn light_curves_of_the_shipped_alerts_read_back_by_astropy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curves");
    let files = alert_files();
    let (first, second) = files.split_at(files.len() / 2);
    // Two runs: the second merges into the curves the first wrote.
    let (mut p, _) = pipeline(&yaml(&out, "fits, votable"));
    feed(&mut p, first);
    p.flush().unwrap();
    p.close().unwrap();
    drop(p);
    let (mut p, _) = pipeline(&yaml(&out, "fits, votable"));
    feed(&mut p, second);
    p.flush().unwrap();
    let list = write_list(tmp.path(), &files);
    python(
        "check_lightcurves.py",
        &[&out, &list, Path::new("fits,votable")],
    );
}

#[test]
fn votable_only_curves_merge_from_the_votable() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curves");
    let files: Vec<_> = alert_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("kowalski"))
        .collect();
    for chunk in files.chunks(7) {
        let (mut p, _) = pipeline(&yaml(&out, "votable"));
        feed(&mut p, chunk);
        p.flush().unwrap();
    }
    let list = write_list(tmp.path(), &files);
    python("check_lightcurves.py", &[&out, &list, Path::new("votable")]);
}

#[test]
fn a_replay_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curves");
    let files = alert_files();
    let (mut p, _) = pipeline(&yaml(&out, "fits, votable"));
    feed(&mut p, &files);
    p.flush().unwrap();
    let before: Vec<(String, Vec<u8>)> = names(&out)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
        .collect();
    assert!(before.len() > 100, "{} files", before.len());
    // The same alerts again, through a fresh writer (as after a crash).
    let (mut p, _) = pipeline(&yaml(&out, "fits, votable"));
    feed(&mut p, &files);
    p.flush().unwrap();
    let after: Vec<(String, Vec<u8>)> = names(&out)
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(out.join(&n)).unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn nothing_is_visible_before_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("curves");
    let (mut p, _) = pipeline(&yaml(&out, "fits"));
    feed(&mut p, &alert_files()[..5]);
    assert_eq!(names(&out), Vec::<String>::new());
    p.flush().unwrap();
    assert_eq!(names(&out).len(), 5, "{:?}", names(&out));
}

/// Feeds until the writer fails (it writes without waiting for a flush
/// once `max_pending_objects` curves changed) or flushes; returns the error.
fn run_until_failure(p: &mut starlog_processors::Pipeline) -> String {
    for (i, f) in alert_files().iter().enumerate() {
        match handle(p, i64::try_from(i).unwrap(), &std::fs::read(f).unwrap()) {
            RecordOutcome::Processed { .. } => {}
            RecordOutcome::Failed(e) => return e.to_string(),
            other => panic!("{other:?}"),
        }
    }
    p.flush().expect_err("the writer must fail").to_string()
}

#[test]
fn read_only_folder_fails_until_writable_then_writes_everything() {
    let fs = Tmpfs::mount("8m", true);
    let (mut p, _) = pipeline(&yaml(&fs.dir, "fits, votable"));
    let err = run_until_failure(&mut p);
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(names(&fs.dir), Vec::<String>::new(), "nothing written");
    fs.remount("rw");
    p.flush().unwrap();
    assert!(names(&fs.dir).iter().all(|n| !n.ends_with(".part")));
    assert!(!names(&fs.dir).is_empty());
}

#[test]
fn full_disk_fails_until_space_then_writes_everything() {
    let fs = Tmpfs::mount("16k", false);
    let yaml = format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: lc }}\n  processors:\n    - class: LightCurveWriter\n      params: {{ directory: {}, formats: [fits], max_pending_objects: 20 }}\n",
        fs.dir.display()
    );
    let (mut p, _) = pipeline(&yaml);
    let err = run_until_failure(&mut p);
    assert!(err.contains("No space left on device"), "{err}");
    let visible: Vec<String> = names(&fs.dir)
        .into_iter()
        .filter(|n| !n.ends_with(".part"))
        .collect();
    assert_eq!(
        visible,
        Vec::<String>::new(),
        "no curve announced before it is durable"
    );
    fs.remount("size=16m");
    // The runner retries from its last commit: everything again.
    let (mut p, _) = pipeline(&yaml);
    let files = alert_files();
    feed(&mut p, &files);
    p.flush().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let list = write_list(tmp.path(), &files);
    python("check_lightcurves.py", &[&fs.dir, &list, Path::new("fits")]);
}

#[test]
fn parameters_are_checked_with_yaml_paths() {
    let load = |params: &str| {
        PipelineSpec::from_yaml_str(
            &format!("component:\n  type: processing-node\n  source: {{ topic: a, group: g }}\n  processors:\n    - class: LightCurveWriter\n      params: {params}\n"),
            "test.yaml",
            Path::new("."),
            &starlog_sinks::registry(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let e = load("{ formats: [fits] }");
    assert!(
        e.starts_with("component.processors[0].params.directory: missing"),
        "{e}"
    );
    let e = load("{ directory: d, formats: [fits, csv] }");
    assert!(
        e.starts_with("component.processors[0].params.formats[1]: expected one of fits, votable"),
        "{e}"
    );
    let e = load("{ directory: d, formats: [] }");
    assert!(
        e.starts_with("component.processors[0].params.formats: expected a non-empty list"),
        "{e}"
    );
    let e = load("{ directory: d, max_pending_objects: 0 }");
    assert!(
        e.starts_with("component.processors[0].params.max_pending_objects"),
        "{e}"
    );
    let e = load("{ directory: d, format: fits }");
    assert!(
        e.starts_with("component.processors[0].params.format: unknown parameter"),
        "{e}"
    );
}

#[test]
fn the_example_pipeline_loads_builds_and_writes() {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pipelines/lightcurves.yaml");
    // Loaded from a copy, so that its relative `directory` lands in a temporary folder.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("lightcurves.yaml");
    std::fs::copy(&example, &copy).unwrap();
    let spec = PipelineSpec::from_file(&copy, &starlog_sinks::registry()).unwrap();
    assert_eq!(
        spec.chain.classes(),
        ["SolarSystemFilter", "LightCurveWriter"]
    );
    let sink = std::sync::Arc::new(starlog_processors::sink::MemoryTopicSink::new());
    let mut p = spec
        .build(&starlog_processors::config::BuildContext::default().with_sink(sink))
        .unwrap();
    let kowalski: Vec<_> = alert_files()
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("kowalski/20200202"))
        .collect();
    feed(&mut p, &kowalski);
    p.flush().unwrap();
    let written = names(&tmp.path().join("lightcurves"));
    assert_eq!(
        written.len(),
        22,
        "11 objects, FITS and VOTable: {written:?}"
    );
}
