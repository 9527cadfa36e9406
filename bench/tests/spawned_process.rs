//! Starting, sampling and stopping a broker process from a command template,
//! and the errors when it dies early or never listens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use starlog_bench::proc_stats;
use starlog_bench::spawned::CommandTarget;
use starlog_bench::target::BrokerTarget;
use starlog_bench::BenchError;

#[test]
fn a_listening_process_is_sampled_and_stopped() {
    let root = tempfile::tempdir().unwrap();
    // Stands in for a broker: listens on {port}, writes into {data_dir}.
    let cmd = "python3 -c 'import os,socket,sys,time; os.makedirs(sys.argv[2], exist_ok=True); \
               open(os.path.join(sys.argv[2], \"marker\"), \"w\").close(); \
               s=socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); time.sleep(60)' \
               {port} {data_dir}";
    let mut t = CommandTarget::new("fake", cmd, "127.0.0.1", None, root.path());
    t.ready_timeout = Duration::from_secs(20);
    t.stop_timeout = Duration::from_secs(5);
    let broker = t.start().unwrap();
    let pid = broker.pid().unwrap();
    assert!(broker.bootstrap().starts_with("127.0.0.1:"));
    assert!(broker.describe().starts_with("python3 -c"));
    // `exec` made the pid the process itself, not a shell.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert!(comm.trim().starts_with("python"), "{comm}");
    let s = proc_stats::sample(pid, proc_stats::clock_ticks()).unwrap();
    assert!(s.peak_rss_bytes > 0);
    // Its data directory is a fresh one under the root.
    let dirs: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(dirs.len(), 1);
    let run_dir = dirs[0].as_ref().unwrap().path();
    assert!(run_dir.join("data/marker").exists());
    let started = Instant::now();
    broker.stop().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM ended it"
    );
    // Reaped by `stop`: no zombie left behind.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The run's directory (data and log) is removed with the broker.
    assert!(!run_dir.exists());
}

#[test]
fn a_process_that_exits_early_is_reported_with_its_output() {
    let root = tempfile::tempdir().unwrap();
    let mut t = CommandTarget::new(
        "dies",
        "sh -c 'echo cannot open {data_dir} >&2; exit 3'",
        "127.0.0.1",
        None,
        root.path(),
    );
    t.ready_timeout = Duration::from_secs(20);
    let err = match t.start() {
        Err(e) => e,
        Ok(_) => panic!("a dead broker must not start"),
    };
    match &err {
        BenchError::Process { command, reason } => {
            assert!(command.contains("exit 3"), "{command}");
            assert!(reason.contains("exit status: 3"), "{reason}");
            assert!(reason.contains("cannot open"), "{reason}");
        }
        other => panic!("expected Process, got {other:?}"),
    }
}

#[test]
fn a_process_that_never_listens_times_out_with_its_address() {
    let root = tempfile::tempdir().unwrap();
    let mut t = CommandTarget::new("mute", "sleep 30", "127.0.0.1", None, root.path());
    t.ready_timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = match t.start() {
        Err(e) => e,
        Ok(_) => panic!("nothing listens"),
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    match err {
        BenchError::NotListening { command, addr, .. } => {
            assert_eq!(command, "sleep 30");
            assert!(addr.starts_with("127.0.0.1:"));
        }
        other => panic!("expected NotListening, got {other:?}"),
    }
}

#[test]
fn a_config_template_is_filled_per_run_with_a_second_free_port() {
    let root = tempfile::tempdir().unwrap();
    let cmd = "python3 -c 'import socket,sys,time; open(sys.argv[2]).read(); \
               s=socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); time.sleep(60)' \
               {port} {config}";
    let mut t = CommandTarget::new("fake", cmd, "127.0.0.1", None, root.path())
        .with_config("listen: \"{host}:{http_port}\"\ndata: {data_dir}\n");
    t.ready_timeout = Duration::from_secs(20);
    t.stop_timeout = Duration::from_secs(5);
    let broker = t.start().unwrap();
    let http = broker.http_addr().expect("an HTTP address");
    let (host, port) = http.rsplit_once(':').unwrap();
    assert_eq!(host, "127.0.0.1");
    let port: u16 = port.parse().unwrap();
    assert_ne!(
        Some(port),
        broker
            .bootstrap()
            .rsplit_once(':')
            .map(|(_, p)| p.parse().unwrap())
    );
    // The command names the written file, which holds the filled-in template.
    let config_path = broker
        .describe()
        .split_whitespace()
        .find(|w| w.ends_with("broker.yaml"))
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        text.starts_with(&format!("listen: \"127.0.0.1:{port}\"\n")),
        "{text}"
    );
    assert!(text.contains("/data\n") && !text.contains('{'), "{text}");
    broker.stop().unwrap();
}

#[test]
fn without_a_config_or_http_port_there_is_no_http_address() {
    let root = tempfile::tempdir().unwrap();
    let cmd = "python3 -c 'import socket,sys,time; s=socket.socket(); \
               s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); time.sleep(60)' {port}";
    let mut t = CommandTarget::new("fake", cmd, "127.0.0.1", None, root.path());
    t.ready_timeout = Duration::from_secs(20);
    t.stop_timeout = Duration::from_secs(5);
    let broker = t.start().unwrap();
    assert_eq!(broker.http_addr(), None);
    broker.stop().unwrap();
}
