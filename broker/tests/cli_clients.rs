//! Other real clients against Starlog: kcat (the librdkafka build Debian
//! ships) and kafka-python. Both are installed by `scripts/test`; a missing
//! client fails the test with the install hint instead of skipping it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::TestBroker;

fn require(cmd: &str, probe: &[&str]) {
    let ok = Command::new(cmd)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{cmd} is not installed: run scripts/test, which installs it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produces_and_consumes() {
    require("kcat", &["-V"]);
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let lines: Vec<String> = (0..200).map(|i| format!("key{i}:line {i}")).collect();
    let bs2 = bs.clone();
    let input = lines.join("\n") + "\n";
    let produced = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("kcat")
            .args(["-b", &bs2, "-t", "kcat-topic", "-P", "-K:", "-z", "snappy"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kcat");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        child.wait_with_output().expect("kcat producer")
    })
    .await
    .expect("join");
    assert!(
        produced.status.success(),
        "kcat -P failed: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let bs3 = bs.clone();
    let consumed = tokio::task::spawn_blocking(move || {
        Command::new("kcat")
            .args([
                "-b",
                &bs3,
                "-t",
                "kcat-topic",
                "-C",
                "-e",
                "-o",
                "beginning",
                "-f",
                "%k=%s@%o\n",
            ])
            .output()
            .expect("kcat consumer")
    })
    .await
    .expect("join");
    assert!(
        consumed.status.success(),
        "kcat -C failed: {}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let out = String::from_utf8(consumed.stdout).expect("utf8");
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), 200, "{out}");
    for (i, line) in got.iter().enumerate() {
        assert_eq!(*line, format!("key{i}=line {i}@{i}"));
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_round_trip() {
    require("python3", &["-c", "import kafka"]);
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/kafka_python_roundtrip.py"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &bs, "py-topic", "500"])
            .output()
            .expect("python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafka-python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("kafka-python ok: 500 messages"), "{stdout}");
    broker.stop().await;
}
