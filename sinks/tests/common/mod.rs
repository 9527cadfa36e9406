//! Shared helpers of the notifier tests: real alerts from `testdata/`,
//! pipelines built from YAML with the `starlog` binary's registry, and the
//! receivers the tests start (Comet, aiosmtpd) as child processes on
//! loopback.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use starlog_processors::config::{BuildContext, ConfigError, PipelineSpec};
use starlog_processors::sink::{MemoryTopicSink, SentRecord};
use starlog_processors::{
    AlertDecoder, Candidate, InputFormat, InputRecord, Pipeline, RecordOutcome,
};

pub use starlog_testkit::free_port;

/// ZTF alert files (real, from testdata/), sorted.
pub fn ztf_files(n: usize) -> Vec<PathBuf> {
    let mut f = starlog_testkit::alert_files("ztf/alerts/kowalski/20200202");
    f.sort();
    assert!(f.len() >= n, "testdata has {} kowalski alerts", f.len());
    f.truncate(n);
    f
}

/// Rubin alert files (real, v9.0), sorted.
pub fn rubin_files(n: usize) -> Vec<PathBuf> {
    let mut f = starlog_testkit::alert_files("lsst/alerts/fink-broker-rubin/v9_0");
    f.sort();
    assert!(f.len() >= n);
    f.truncate(n);
    f
}

/// The single alert of a file, decoded.
pub fn candidate(file: &Path) -> Candidate {
    let bytes = std::fs::read(file).unwrap();
    let mut c = AlertDecoder::new(InputFormat::ObjectContainer)
        .decode(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    c.remove(0)
}

/// Loads a pipeline (a component mapping) with the registry of the `starlog` binary.
pub fn load(yaml: &str) -> Result<PipelineSpec, ConfigError> {
    PipelineSpec::from_yaml_str(yaml, "test", Path::new("."), &starlog_sinks::registry())
}

/// Builds `yaml` with an in-memory Kafka sink.
pub fn build(yaml: &str) -> (Pipeline, Arc<MemoryTopicSink>) {
    let spec = load(yaml).unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::new(MemoryTopicSink::new());
    let pipeline = spec
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    (pipeline, sink)
}

/// Runs every file through the pipeline (each must pass) and flushes.
pub fn feed(pipeline: &mut Pipeline, files: &[PathBuf]) {
    handle_all(pipeline, files);
    pipeline.flush().unwrap_or_else(|e| panic!("flush: {e}"));
}

/// Runs every file through the pipeline (each must pass), without flushing.
pub fn handle_all(pipeline: &mut Pipeline, files: &[PathBuf]) {
    for (i, f) in files.iter().enumerate() {
        let value = std::fs::read(f).unwrap();
        let record = InputRecord {
            topic: "alerts",
            partition: 0,
            offset: i as i64,
            key: None,
            value: &value,
            headers: &[],
        };
        match pipeline.handle(&record) {
            RecordOutcome::Processed { passed: 1, .. } => {}
            other => panic!("{}: {other:?}", f.display()),
        }
    }
}

/// The dead letters' reasons.
pub fn reasons(records: &[SentRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.header("starlog.error").unwrap()).into_owned())
        .collect()
}

/// Panics with a clear message when `program` is not on the PATH.
pub fn require_program(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is not installed: install {package} (scripts/deps/notify.sh)"
    );
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
            panic!("{what} exited ({status}) before listening:\n{text}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `check` until it holds (receivers log asynchronously).
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (by its own id) when dropped.
pub struct Process {
    pub child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Comet VOEvent broker (PyPI `comet`) receiving from authors on a
/// loopback port, saving every event it accepts into `events/`.
pub struct Comet {
    pub port: u16,
    pub log: PathBuf,
    pub events: PathBuf,
    pub dir: tempfile::TempDir,
    _process: Process,
}

impl Comet {
    pub fn start() -> Self {
        require_program("twistd", "comet from PyPI (pip install comet)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("comet.log");
        let events = dir.path().join("events");
        let db = dir.path().join("eventdb");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::create_dir_all(&db).unwrap();
        let mut child = Command::new("twistd")
            .current_dir(dir.path())
            .args(["-n", "--pidfile=", "--logfile"])
            .arg(&log)
            .args(["comet", "--verbose", "--receive", "--receive-port"])
            .arg(port.to_string())
            .args(["--author-whitelist", "127.0.0.0/8"])
            .args(["--local-ivo", "ivo://starlog.test/comet", "--eventdb"])
            .arg(&db)
            .args(["--save-event", "--save-event-directory"])
            .arg(&events)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting twistd comet");
        wait_listening(port, &mut child, "comet", &log);
        Comet {
            port,
            log,
            events,
            dir,
            _process: Process { child },
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The event files Comet saved (one per accepted event).
    pub fn saved(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.events)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }
}
