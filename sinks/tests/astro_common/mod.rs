//! Shared helpers of the light-curve and cutout tests: the shipped alerts,
//! pipelines built from YAML with the sinks registry, the Python readers,
//! and small tmpfs mounts that really fail (read-only, full).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::sink::MemoryTopicSink;
use starlog_processors::{InputRecord, Pipeline, RecordOutcome};

/// The repository's `testdata/` folder.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every alert file of `manifest.csv` (ZTF, real Rubin, Rubin samples), in manifest order.
pub fn alert_files() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(testdata_dir().join("manifest.csv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "file").unwrap();
    let files: Vec<PathBuf> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| testdata_dir().join(l.split(',').nth(col).unwrap()))
        .collect();
    assert_eq!(files.len(), 138, "manifest.csv lists 138 alert files");
    files
}

/// A pipeline built from YAML with `starlog_sinks::registry()`, and its dead-letter sink.
pub fn pipeline(yaml: &str) -> (Pipeline, Arc<MemoryTopicSink>) {
    let spec = PipelineSpec::from_yaml_str(
        yaml,
        "test.yaml",
        Path::new("."),
        &starlog_sinks::registry(),
    )
    .unwrap_or_else(|e| panic!("pipeline YAML: {e}"));
    let sink = Arc::new(MemoryTopicSink::new());
    let pipeline = spec
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap_or_else(|e| panic!("building the pipeline: {e}"));
    (pipeline, sink)
}

/// Feeds one message; returns the outcome.
pub fn handle(p: &mut Pipeline, offset: i64, value: &[u8]) -> RecordOutcome {
    p.handle(&InputRecord {
        topic: "alerts",
        partition: 0,
        offset,
        key: None,
        value,
        headers: &[],
    })
}

/// Feeds alert files, expecting each to pass the chain.
pub fn feed(p: &mut Pipeline, files: &[PathBuf]) {
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        match handle(p, i64::try_from(i).unwrap(), &bytes) {
            RecordOutcome::Processed {
                passed: 1,
                dead_lettered: 0,
                ..
            } => {}
            other => panic!("{}: {other:?}", f.display()),
        }
    }
}

/// Files of `dir` (names), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs `sinks/tests/python/<script>` with `args`; panics with its output
/// unless it succeeds. A missing Python module is a failure that says how
/// to install it.
pub fn python(script: &str, args: &[&Path]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for this test (scripts/deps/astro.sh): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}); astropy, numpy, pillow and fastavro are installed by scripts/deps/astro.sh\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("{stdout}");
    stdout
}

/// A tmpfs mounted on a fresh directory for the test's life (needs root,
/// as `scripts/test` and CI run). Unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    pub dir: PathBuf,
    _parent: tempfile::TempDir,
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16k`), read-only when `read_only`.
    pub fn mount(size: &str, read_only: bool) -> Self {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the full-disk and read-only tests mount a small tmpfs and must run as root (as scripts/test and CI do)"
        );
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let mut opts = format!("size={size}");
        if read_only {
            opts.push_str(",ro");
        }
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &opts,
            "tmpfs",
            dir.to_str().unwrap(),
        ]);
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    /// Remounts with new options (e.g. `rw,size=8m`).
    pub fn remount(&self, opts: &str) {
        run(&[
            "mount",
            "-o",
            &format!("remount,{opts}"),
            self.dir.to_str().unwrap(),
        ]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
