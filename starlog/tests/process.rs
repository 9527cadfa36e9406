//! The `starlog` binary as a process: graceful SIGTERM, and acknowledged
//! messages that survive `kill -9`, a log without colour codes in a file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use starlog_testkit::free_port;

fn spawn(data: &Path, port: u16, flush: &str) -> Child {
    spawn_logging_to(data, port, flush, Stdio::inherit())
}

/// Starts `starlog serve` with its log (stderr) going to `log`.
fn spawn_logging_to(data: &Path, port: u16, flush: &str, log: Stdio) -> Child {
    let config = data.with_extension("yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\ndata_dir: {}\nlog: {{ flush: {flush} }}\nschema_registry: {{ enabled: false }}\n",
            data.display()
        ),
    )
    .expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        // Colour must depend on the terminal alone, not on this variable.
        .env_remove("NO_COLOR")
        .spawn()
        .expect("spawn starlog");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY-free: `kill` via the command line keeps the tests free of unsafe.
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn produce(bootstrap: &str, topic: &str, n: usize) -> Vec<(i32, i64)> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    let mut futures = Vec::new();
    for i in 0..n {
        let v = format!("{topic}-{i}");
        futures.push(
            p.send_result(FutureRecord::to(topic).key(&v).payload(&v))
                .expect("queued"),
        );
    }
    let mut acked = Vec::new();
    for f in futures {
        let d = f.await.expect("future").expect("acked");
        acked.push((d.partition, d.offset));
    }
    acked
}

fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "process-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_data_remains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = spawn(&data, port, "never");
    let bs = format!("127.0.0.1:{port}");
    let acked = produce(&bs, "graceful", 300).await;
    assert_eq!(acked.len(), 300);
    signal(&child, 15);
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    let mut child = spawn(&data, port, "never");
    let bs2 = bs.clone();
    let got = tokio::task::spawn_blocking(move || read_all(&bs2, "graceful", 300))
        .await
        .expect("join");
    assert_eq!(got.len(), 300, "flushed on shutdown");
    signal(&child, 9);
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = spawn(&data, port, "always");
    let bs = format!("127.0.0.1:{port}");
    let acked = produce(&bs, "durable", 500).await;
    signal(&child, 9);
    let _ = child.wait();
    let mut child = spawn(&data, port, "always");
    let bs2 = bs.clone();
    let got = tokio::task::spawn_blocking(move || read_all(&bs2, "durable", acked.len()))
        .await
        .expect("join");
    assert_eq!(got.len(), 500);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v, &format!("durable-{i}"));
    }
    signal(&child, 9);
    let _ = child.wait();
}

#[test]
fn a_log_written_to_a_file_carries_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("starlog.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let mut child = spawn_logging_to(&dir.path().join("data"), port, "always", log.into());
    signal(&child, 15);
    let status = child.wait().expect("wait");
    assert!(status.success(), "starlog exited with {status}");
    let text = std::fs::read(&log_path).expect("read log");
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("starlog broker listening") && text.contains("shutdown requested"),
        "the log lacks the start and stop lines:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape codes in a log written to a file:\n{text:?}"
    );
}

/// The `starlog` binary speaks TLS with rustls (on `ring`): it links no
/// OpenSSL library (the tests' librdkafka does, as a client).
#[test]
fn the_binary_links_no_openssl() {
    let bin = env!("CARGO_BIN_EXE_starlog");
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .expect("ldd runs (Debian's libc-bin)");
    assert!(out.status.success(), "ldd {bin} failed");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(libs.contains("libc.so"), "ldd listed the libraries: {libs}");
    for forbidden in ["libssl", "libcrypto"] {
        assert!(
            !libs.contains(forbidden),
            "starlog links {forbidden}:\n{libs}"
        );
    }
}
