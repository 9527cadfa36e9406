//! Helpers shared by the mirror's integration tests: brokers on loopback
//! (each with its own schema registry), the real ZTF alerts of
//! the repository's `testdata/` framed in the Confluent wire format with the UPSTREAM
//! registry's ids, and readers of what landed locally.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use bytes::Bytes;
use starlog_clients::admin::NewTopic;
use starlog_clients::consumer::offsets::{list_offsets, LATEST};
use starlog_clients::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use starlog_mirror::registry::RegistryClient;

#[allow(unused_imports)] // each test binary uses a part
pub use starlog_testkit::{testdata_dir, TestBroker};

/// One real alert: its writer schema (JSON) and its Avro body.
#[derive(Clone)]
pub struct Alert {
    pub file: PathBuf,
    pub schema_json: String,
    pub schema: Schema,
    pub value: Value,
    pub body: Vec<u8>,
    pub candid: i64,
}

/// The `.avro` files of a folder under the test data, sorted.
pub fn alerts(sub: &str) -> Vec<Alert> {
    let dir = testdata_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "avro"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no alerts under {}", dir.display());
    files.into_iter().map(|f| read_alert(&f)).collect()
}

/// Reads a single-record OCF: writer schema and the record re-encoded as a
/// bare Avro body.
pub fn read_alert(file: &Path) -> Alert {
    let reader = apache_avro::Reader::new(std::fs::File::open(file).unwrap()).unwrap();
    let schema = reader.writer_schema().clone();
    let schema_json = serde_json::to_string(&schema).unwrap();
    let mut values: Vec<Value> = reader.map(|v| v.unwrap()).collect();
    assert_eq!(values.len(), 1, "{} holds one record", file.display());
    let value = values.remove(0);
    let mut body = Vec::new();
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_ref(&mut body, &value)
        .unwrap();
    let candid = match &value {
        Value::Record(fields) => fields
            .iter()
            .find(|(k, _)| k == "candid")
            .map(|(_, v)| match v {
                Value::Long(l) => *l,
                Value::Union(_, b) => match b.as_ref() {
                    Value::Long(l) => *l,
                    _ => -1,
                },
                _ => -1,
            })
            .unwrap_or(-1),
        _ => -1,
    };
    Alert {
        file: file.to_owned(),
        schema_json,
        schema,
        value,
        body,
        candid,
    }
}

/// Decodes one datum of `schema`, requiring every byte to be used.
pub fn decode(schema: &Schema, body: &[u8]) -> Value {
    let mut slice = body;
    let v = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .unwrap()
        .read_value(&mut slice)
        .unwrap();
    assert!(
        slice.is_empty(),
        "{} bytes left after the datum",
        slice.len()
    );
    v
}

pub fn registry(url: &str) -> RegistryClient {
    RegistryClient::new("test", url, None, None, Duration::from_secs(10)).unwrap()
}

/// Registers unrelated schemas so the registry's next ids are not the ones
/// a fresh registry would hand out.
pub async fn register_unrelated(url: &str, n: usize) {
    let r = registry(url);
    for i in 0..n {
        let s = format!(
            r#"{{"type":"record","name":"unrelated{i}","fields":[{{"name":"f{i}","type":"int"}}]}}"#
        );
        r.register(&format!("unrelated-{i}"), &s).await.unwrap();
    }
}

/// Frames a body: magic 0, big-endian id, body.
pub fn frame(id: u32, body: &[u8]) -> Bytes {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    Bytes::from(v)
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    Admin::new(ClientConfig::new(bootstrap))
        .unwrap()
        .create_topics(&[NewTopic::new(name, partitions)])
        .await
        .unwrap();
}

/// Produces values (null keys) to partition 0 of `topic`, in order.
pub async fn produce(bootstrap: &str, topic: &str, values: &[Option<Bytes>]) {
    produce_with(bootstrap, topic, values, starlog_clients::Compression::None).await;
}

/// [`produce`] with a codec.
pub async fn produce_with(
    bootstrap: &str,
    topic: &str,
    values: &[Option<Bytes>],
    compression: starlog_clients::Compression,
) {
    let mut cfg = ProducerConfig::new(bootstrap);
    cfg.compression = compression;
    cfg.linger = Duration::from_millis(2);
    cfg.batch_size = 256 * 1024;
    let p = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    for v in values {
        let r = ProducerRecord {
            topic: topic.to_owned(),
            partition: Some(0),
            value: v.clone(),
            ..ProducerRecord::default()
        };
        futs.push(p.send(r).await.unwrap());
    }
    for f in futs {
        f.await.unwrap();
    }
    p.close().await.unwrap();
}

/// Sum of the end offsets of `topic`'s partitions.
pub async fn end_total(bootstrap: &str, topic: &str, partitions: i32) -> i64 {
    let cluster = starlog_clients::cluster::Cluster::new(ClientConfig::new(bootstrap)).unwrap();
    let req: Vec<(TopicPartition, i64)> = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), LATEST))
        .collect();
    match list_offsets(&cluster, &req).await {
        Ok(m) => m.values().sum(),
        Err(_) => 0,
    }
}

/// Waits (bounded) until `topic` holds at least `n` records.
pub async fn wait_for(bootstrap: &str, topic: &str, partitions: i32, n: i64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let have = end_total(bootstrap, topic, partitions).await;
        if have >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} has {have} of {n} records after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `topic`, per partition in offset order.
pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Vec<ConsumerRecord>> {
    let total = end_total(bootstrap, topic, partitions).await;
    let mut cfg = ConsumerConfig::new(bootstrap, None);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.enable_auto_commit = false;
    cfg.max_partition_fetch_bytes = 8 << 20;
    let mut c = Consumer::new(cfg).unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    c.assign(&tps).unwrap();
    let mut out: BTreeMap<i32, Vec<ConsumerRecord>> =
        (0..partitions).map(|p| (p, Vec::new())).collect();
    let mut got = 0i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {got} of {total} records of {topic}"
        );
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            got += 1;
            out.entry(r.partition).or_default().push(r);
        }
    }
    out
}

pub fn header<'a>(r: &'a ConsumerRecord, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .rev()
        .find(|h| h.key == key)
        .and_then(|h| h.value.as_ref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The upstream `(topic, offset)` a mirrored record names.
pub fn source(r: &ConsumerRecord) -> (String, i32, i64) {
    (
        header(r, "starlog.source.topic")
            .expect("source topic header")
            .to_owned(),
        header(r, "starlog.source.partition")
            .unwrap()
            .parse()
            .unwrap(),
        header(r, "starlog.source.offset").unwrap().parse().unwrap(),
    )
}

/// A test binary that starts a broker here decodes outside bytes as the
/// binaries do, so it declares the same guarded global allocator.
#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

/// Starts the mirror binary `bin` (the test's `CARGO_BIN_EXE_starlog-mirror`)
/// on `config` (stdout piped, the log in `log`).
pub fn spawn_mirror(bin: &str, config: &Path, log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    std::process::Command::new(bin)
        .arg(config)
        .arg("--no-progress")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the starlog-mirror binary starts")
}

/// Runs the mirror binary `bin` on `config` until `topic` (of `partitions`) at `bootstrap`
/// holds at least `threshold` records, then kills it with SIGKILL; returns
/// how many records the target held then. Panics (with the mirror's log) if
/// the mirror exits by itself or makes no progress for 120 s.
pub async fn run_then_kill_9(
    bin: &str,
    config: &Path,
    log: &Path,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    threshold: i64,
) -> i64 {
    let mut child = spawn_mirror(bin, config, log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let have = end_total(bootstrap, topic, partitions).await;
        if have >= threshold {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return have;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "mirror exited early ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the mirror binary `bin` on `config` until `topic` holds `total` records, waits a
/// second more (for a duplicate, if any, to show), stops it with SIGTERM and
/// returns its exit status and output (its summary is on stdout).
pub async fn run_to_end_then_term(
    bin: &str,
    config: &Path,
    log: &Path,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total: i64,
) -> (std::process::ExitStatus, std::process::Output) {
    let mut child = spawn_mirror(bin, config, log);
    wait_for(
        bootstrap,
        topic,
        partitions,
        total,
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mirror did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, child.wait_with_output().unwrap())
}
