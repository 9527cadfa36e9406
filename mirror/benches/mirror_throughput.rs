//! End-to-end mirror throughput: two Starlog brokers in this process on
//! loopback (upstream and local, each with its registry), real ZTF alerts
//! (bodies of 38-45 KB) framed with upstream ids, mirrored with schema-id
//! rewriting on into a merged, re-partitioned topic.
//!
//! `cargo bench -p starlog-mirror --bench mirror_throughput`
//! (`MIRROR_BENCH_RECORDS`, default 12,000; `MIRROR_BENCH_TARGET_PARTITIONS`, default 8;
//! `MIRROR_BENCH_VALIDATE=true|false` runs one of the two variants).
//! Runs the mirror twice: with body validation (every body decoded with
//! its writer schema) and without. Prints records/s and MB/s of values,
//! measured from the mirror's start to the last record's acknowledgement.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use starlog_broker::{BrokerConfig, Server};
use starlog_clients::admin::NewTopic;
use starlog_clients::consumer::offsets::{list_offsets, LATEST};
use starlog_clients::{
    Admin, ClientConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use starlog_mirror::registry::RegistryClient;
use starlog_mirror::{run, MirrorConfig};

const DAYS: [&str; 3] = [
    "ztf_20191121_programid1",
    "ztf_20191122_programid1",
    "ztf_20191123_programid1",
];
const UP_PARTS: i32 = 2;

async fn broker(dir: &Path) -> Server {
    let mut config = BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_owned(),
        ..BrokerConfig::default()
    };
    config.schema_registry.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    Server::start(config).await.unwrap()
}

fn url(s: &Server) -> String {
    format!("http://{}", s.registry_addr().unwrap())
}

fn bodies() -> (String, Vec<Vec<u8>>) {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ztf/alerts/fink-alert-simulator");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut schema = String::new();
    let mut out = Vec::new();
    for f in files {
        let reader = apache_avro::Reader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let s = reader.writer_schema().clone();
        schema = serde_json::to_string(&s).unwrap();
        for v in reader {
            let mut body = Vec::new();
            apache_avro::writer::datum::GenericDatumWriter::builder(&s)
                .build()
                .unwrap()
                .write_value_ref(&mut body, &v.unwrap())
                .unwrap();
            out.push(body);
        }
    }
    (schema, out)
}

async fn total(bootstrap: &str, topic: &str, parts: i32) -> i64 {
    let cluster = starlog_clients::cluster::Cluster::new(ClientConfig::new(bootstrap)).unwrap();
    let req: Vec<_> = (0..parts)
        .map(|p| (TopicPartition::new(topic, p), LATEST))
        .collect();
    list_offsets(&cluster, &req)
        .await
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let n: usize = std::env::var("MIRROR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000);
    let target_parts: i32 = std::env::var("MIRROR_BENCH_TARGET_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let up = broker(&dir.path().join("up")).await;
    let upb = up.local_addr().to_string();
    let (schema, bodies) = bodies();
    let avg = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let reg = RegistryClient::new("up", &url(&up), None, None, Duration::from_secs(10)).unwrap();
    for i in 0..5 {
        let s =
            format!(r#"{{"type":"record","name":"u{i}","fields":[{{"name":"f","type":"int"}}]}}"#);
        reg.register(&format!("u{i}"), &s).await.unwrap();
    }
    let id = reg.register("ztf-value", &schema).await.unwrap();
    let admin = Admin::new(ClientConfig::new(&upb)).unwrap();
    admin
        .create_topics(
            &DAYS
                .iter()
                .map(|d| NewTopic::new(*d, UP_PARTS))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let mut pc = ProducerConfig::new(&upb);
    pc.batch_size = 1 << 20;
    pc.linger = Duration::from_millis(5);
    let p = Producer::new(pc).unwrap();
    let framed: Vec<Bytes> = bodies
        .iter()
        .map(|b| {
            let mut v = vec![0u8];
            v.extend_from_slice(&id.to_be_bytes());
            v.extend_from_slice(b);
            Bytes::from(v)
        })
        .collect();
    let fill = Instant::now();
    let mut futs = Vec::with_capacity(n);
    for i in 0..n {
        let r = ProducerRecord {
            topic: DAYS[i % DAYS.len()].to_owned(),
            partition: Some(i32::try_from(i / DAYS.len()).unwrap() % UP_PARTS),
            value: Some(framed[i % framed.len()].clone()),
            ..ProducerRecord::default()
        };
        futs.push(p.send(r).await.unwrap());
    }
    for f in futs {
        f.await.unwrap();
    }
    println!(
        "upstream filled: {n} records of {avg} B average body in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let only: Option<bool> = std::env::var("MIRROR_BENCH_VALIDATE")
        .ok()
        .and_then(|v| v.parse().ok());
    for (label, validate) in [
        ("validate_bodies: true", true),
        ("validate_bodies: false", false),
    ] {
        if only.is_some_and(|o| o != validate) {
            continue;
        }
        let local = broker(&dir.path().join(format!("local-{validate}"))).await;
        let lb = local.local_addr().to_string();
        let yaml = format!(
            r#"
name: bench
upstream: {{ bootstrap: "{upb}", registry: {{ url: "{}" }} }}
local: {{ bootstrap: "{lb}", registry: {{ url: "{}" }} }}
topics: [ {{ match: 'ztf_(\d{{8}})_programid(\d)', target: ztf-buffer, partitions: {target_parts} }} ]
validate_bodies: {validate}
progress: false
"#,
            url(&up),
            url(&local)
        );
        let cfg = MirrorConfig::from_yaml(&yaml, Path::new(".")).unwrap();
        let want = i64::try_from(n).unwrap();
        let lb2 = lb.clone();
        let started = Instant::now();
        let done = async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while total(&lb2, "ztf-buffer", target_parts).await < want && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let summary = run(cfg, done).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let bytes: u64 = summary.topics.values().map(|t| t.bytes).sum();
        println!(
            "{label}: {} records in {secs:.2} s = {:.0} records/s, {:.0} MB/s of values ({} target partitions)",
            summary.mirrored(),
            summary.mirrored() as f64 / secs,
            bytes as f64 / 1e6 / secs,
            target_parts
        );
        assert_eq!(summary.mirrored(), n as u64);
        local.shutdown().await;
    }
    up.shutdown().await;
}
