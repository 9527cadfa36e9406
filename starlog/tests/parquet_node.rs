//! `ParquetWriter` is reachable by name through the `starlog` binary: a
//! `starlog process` node writes a topic's alerts to Parquet files (read
//! back with pyarrow), and a mistyped parameter stops it at load with the
//! YAML path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PIPELINE: &str = r"
component:
  type: processing-node
  name: pq-node
  source: { topic: alerts-in, group: pq-nodes }
  processors:
    - class: ParquetWriter
      params: { directory: out, prefix: night, compression: zstd }
";

/// The `candid` column of every finished file under `dir`, and the names
/// of unfinished ones, read with pyarrow.
fn read_candids(dir: &Path) -> (Vec<i64>, Vec<PathBuf>) {
    let entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return (Vec::new(), Vec::new()),
    };
    let (done, parts): (Vec<PathBuf>, Vec<PathBuf>) = entries
        .into_iter()
        .partition(|p| p.extension().is_some_and(|e| e == "parquet"));
    if done.is_empty() {
        return (Vec::new(), parts);
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys, json, pyarrow.parquet as pq\nprint(json.dumps([c for f in sys.argv[1:] for c in pq.read_table(f).column('candid').to_pylist()]))")
        .args(&done)
        .output()
        .expect("python3 with pyarrow is needed (scripts/deps/parquet.sh installs it)");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    ids.sort_unstable();
    (ids, parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_node_writes_a_topic_to_parquet_files() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new("alerts-in", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let files = common::alert_files("ztf/alerts/kowalski/20200202");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let mut want = Vec::new();
    for f in &files {
        let key = f.file_stem().unwrap().to_string_lossy().into_owned();
        want.push(key.parse::<i64>().unwrap());
        p.send(
            FutureRecord::to("alerts-in")
                .key(&key)
                .payload(&std::fs::read(f).unwrap()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    want.sort_unstable();
    let pipeline = broker.dir.path().join("pq-node.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let out_dir = broker.dir.path().join("out");
    let mut node = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["process", "--bootstrap", &bs])
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn starlog process");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let dir = out_dir.clone();
        let (ids, _) = tokio::task::spawn_blocking(move || read_candids(&dir))
            .await
            .unwrap();
        if ids.len() >= want.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node wrote {} of {} alerts",
            ids.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(Command::new("kill")
        .arg("-15")
        .arg(node.id().to_string())
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || node.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (ids, parts) = read_candids(&out_dir);
    assert!(parts.is_empty(), "no unfinished files left: {parts:?}");
    assert_eq!(ids, want, "every alert of the topic, once");
    drop((p, admin));
    broker.stop().await;
}

#[test]
fn a_mistyped_parameter_stops_the_node_at_load_with_its_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("bad.yaml");
    std::fs::write(
        &pipeline,
        PIPELINE.replace("compression: zstd", "compression: brotli"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["process", "--bootstrap", "127.0.0.1:1"])
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "component.processors[0].params.compression: expected one of zstd, snappy, none"
        ),
        "{stderr}"
    );
}
