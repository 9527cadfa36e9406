//! `partitioning: preserve`: upstream batches that need no schema-id change
//! are copied into the target as bytes, the others are re-produced record
//! by record into the same partition number; and exactly once holds across
//! `kill -9` of the mirror on both paths.
//!
//! Two brokers on loopback with their registries; three daily topics of two
//! partitions each, filled with real ZTF alerts. Days 1 and 3 are framed
//! with a schema whose upstream id equals its local id (so their batches
//! pass through), day 2 with a schema whose ids differ (so it is
//! rewritten). Every upstream record has a unique key, the identity used to
//! check the target, since pass-through records carry no provenance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The binary under test.
const MIRROR: &str = env!("CARGO_BIN_EXE_starlog-mirror");

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use starlog_clients::records::decode::BatchHeader;
use starlog_clients::{
    ClientConfig, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    RawBatch, TopicPartition,
};
use starlog_mirror::{run, MirrorConfig};
use starlog_wire::{framing, Framing};

const TARGET: &str = "ztf-buffer";
const PARTS: i32 = 2;
const DAYS: [&str; 3] = [
    "ztf_20191121_programid1",
    "ztf_20191122_programid1",
    "ztf_20191123_programid1",
];
/// Day 2 is the one whose schema id differs between the registries.
const REWRITTEN_DAY: &str = "ztf_20191122_programid1";

/// Produces keyed values to one partition, in order, in several batches.
/// The producer is a plain one (no producer id, like librdkafka's default):
/// its batches are copied unchanged. (An idempotent upstream producer's
/// batches are copied with the producer id fields cleared; see the
/// `passthrough` module.)
async fn produce_keyed(bootstrap: &str, topic: &str, partition: i32, records: &[(String, Bytes)]) {
    let mut cfg = ProducerConfig::new(bootstrap);
    cfg.idempotence = false;
    cfg.linger = Duration::from_millis(2);
    cfg.batch_size = 200 * 1024;
    let p = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    for (k, v) in records {
        let r = ProducerRecord {
            topic: topic.to_owned(),
            partition: Some(partition),
            key: Some(Bytes::from(k.clone())),
            value: Some(v.clone()),
            ..ProducerRecord::default()
        };
        futs.push(p.send(r).await.unwrap());
    }
    for f in futs {
        f.await.unwrap();
    }
    p.close().await.unwrap();
}

/// Fills the days; returns per (day, partition) the keys in offset order.
async fn fill_upstream(
    up: &TestBroker,
    local: &TestBroker,
    per_partition: usize,
) -> BTreeMap<(String, i32), Vec<String>> {
    let pass = alerts("ztf/alerts/fink-alert-simulator");
    let other = alerts("ztf/alerts/kowalski/20200202");
    let up_reg = registry(&up.registry_url());
    let local_reg = registry(&local.registry_url());
    // Same first schema on both registries: the same id on both sides.
    let same = up_reg
        .register("pass-value", &pass[0].schema_json)
        .await
        .unwrap();
    let same_local = local_reg
        .register("pass-value", &pass[0].schema_json)
        .await
        .unwrap();
    assert_eq!(
        same, same_local,
        "fresh registries hand out the same first id"
    );
    register_unrelated(&up.registry_url(), 3).await;
    let differs = up_reg
        .register("other-value", &other[0].schema_json)
        .await
        .unwrap();
    let mut keys = BTreeMap::new();
    for day in DAYS {
        create_topic(&up.bootstrap(), day, PARTS).await;
        for partition in 0..PARTS {
            let records: Vec<(String, Bytes)> = (0..per_partition)
                .map(|i| {
                    let (id, a) = if day == REWRITTEN_DAY {
                        (differs, &other[i % other.len()])
                    } else {
                        (same, &pass[i % pass.len()])
                    };
                    (format!("{day}/{partition}/{i}"), frame(id, &a.body))
                })
                .collect();
            produce_keyed(&up.bootstrap(), day, partition, &records).await;
            keys.insert(
                (day.to_owned(), partition),
                records.into_iter().map(|(k, _)| k).collect(),
            );
        }
    }
    keys
}

fn yaml(up: &TestBroker, local: &TestBroker, name: &str, extra: &str) -> String {
    format!(
        r#"
name: {name}
upstream:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
local:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: {PARTS}
    partitioning: preserve
    subject: '{{upstream}}-value'
progress: false
bad_input: {{ policy: stop }}
{extra}
"#,
        up.bootstrap(),
        up.registry_url(),
        local.bootstrap(),
        local.registry_url()
    )
}

/// Every stored batch of a partition, whole.
async fn raw_batches(bootstrap: &str, topic: &str, partition: i32) -> Vec<RawBatch> {
    let tp = TopicPartition::new(topic, partition);
    let cluster = starlog_clients::cluster::Cluster::new(ClientConfig::new(bootstrap)).unwrap();
    let end = starlog_clients::consumer::offsets::list_offsets(
        &cluster,
        &[(tp.clone(), starlog_clients::consumer::offsets::LATEST)],
    )
    .await
    .unwrap()[&tp];
    let mut cfg = ConsumerConfig::new(bootstrap, None);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.enable_auto_commit = false;
    cfg.max_partition_fetch_bytes = 8 << 20;
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let mut out: Vec<RawBatch> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.last().map_or(0, |b| b.last_offset + 1) < end {
        assert!(tokio::time::Instant::now() < deadline, "reading {tp}");
        out.extend(c.poll_batches(Duration::from_millis(200)).await.unwrap());
    }
    out
}

/// Checks the target: per partition, each day's keys exactly once and in
/// upstream order; every value framed with an id the local registry knows
/// and decodable with it. Returns the number of target batches without
/// provenance headers (pass-through batches).
async fn check_target(local: &TestBroker, keys: &BTreeMap<(String, i32), Vec<String>>) -> usize {
    let parts = read_all(&local.bootstrap(), TARGET, PARTS).await;
    let local_reg = registry(&local.registry_url());
    let mut schemas: HashMap<u32, apache_avro::Schema> = HashMap::new();
    for (partition, records) in &parts {
        let mut per_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in records {
            let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let day = key.split('/').next().unwrap().to_owned();
            per_day.entry(day.clone()).or_default().push(key);
            // Rewritten records carry provenance, copied ones none.
            let has_source = header(r, "starlog.source.topic").is_some();
            assert_eq!(
                has_source,
                day == REWRITTEN_DAY,
                "{day} record at {partition}/{}",
                r.offset
            );
            let value = r.value.as_ref().unwrap();
            let Framing::Framed { id } = framing(Some(value)) else {
                panic!("unframed value at {partition}/{}", r.offset)
            };
            if let std::collections::hash_map::Entry::Vacant(e) = schemas.entry(id) {
                let text = local_reg.schema_text(id).await.unwrap();
                e.insert(apache_avro::Schema::parse_str(&text).unwrap());
            }
            decode(&schemas[&id], &value[5..]);
        }
        for day in DAYS {
            let want = &keys[&(day.to_owned(), *partition)];
            assert_eq!(
                per_day.get(day).unwrap_or(&Vec::new()),
                want,
                "{day} in target partition {partition}: each upstream record once, in order"
            );
        }
    }
    let mut copied = 0;
    for p in 0..PARTS {
        for b in raw_batches(&local.bootstrap(), TARGET, p).await {
            let has_source = windows_contain(&b.bytes, b"starlog.source.topic");
            if !has_source {
                copied += 1;
            }
        }
    }
    copied
}

fn windows_contain(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_needing_no_rewrite_are_copied_as_bytes() {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    let per_partition = 40;
    let keys = fill_upstream(&up, &local, per_partition).await;
    let total = (DAYS.len() * PARTS as usize * per_partition) as i64;
    let cfg = MirrorConfig::from_yaml(
        &yaml(&up, &local, "pass", "checkpoint_interval_ms: 100"),
        Path::new("."),
    )
    .unwrap();
    let bootstrap = local.bootstrap();
    let summary = run(cfg, async move {
        wait_for(&bootstrap, TARGET, PARTS, total, Duration::from_secs(120)).await;
    })
    .await
    .unwrap();
    let copied_records = (2 * PARTS as usize * per_partition) as u64;
    assert_eq!(summary.mirrored(), total as u64, "{summary}");
    let passed: u64 = summary.topics.values().map(|t| t.passed_through).sum();
    let rewritten: u64 = summary.topics.values().map(|t| t.rewritten).sum();
    assert_eq!(passed, copied_records, "{summary}");
    assert_eq!(rewritten, total as u64 - copied_records, "{summary}");
    assert_eq!(summary.topics[REWRITTEN_DAY].passed_through, 0);

    assert!(check_target(&local, &keys).await > 0);

    // The copied batches are the upstream bytes: everything but the base
    // offset and the partition leader epoch, CRC included.
    for p in 0..PARTS {
        let target = raw_batches(&local.bootstrap(), TARGET, p).await;
        let mut copies: Vec<&RawBatch> = target
            .iter()
            .filter(|b| !windows_contain(&b.bytes, b"starlog.source.topic"))
            .collect();
        let mut upstream_batches = Vec::new();
        for day in DAYS.iter().filter(|d| **d != REWRITTEN_DAY) {
            upstream_batches.extend(raw_batches(&up.bootstrap(), day, p).await);
        }
        assert_eq!(copies.len(), upstream_batches.len(), "partition {p}");
        for u in &upstream_batches {
            let i = copies
                .iter()
                .position(|t| t.bytes[16..] == u.bytes[16..] && t.bytes[8..12] == u.bytes[8..12])
                .unwrap_or_else(|| {
                    panic!(
                        "upstream batch {}/{p}@{} not found as bytes in the target",
                        u.topic, u.base_offset
                    )
                });
            let t = copies.remove(i);
            let (th, uh) = (
                BatchHeader::read(&t.bytes).unwrap(),
                BatchHeader::read(&u.bytes).unwrap(),
            );
            assert_eq!(th.crc, uh.crc);
            assert_eq!(th.record_count, uh.record_count);
            assert_eq!(t.bytes.len(), u.bytes.len());
        }
    }
    local.stop().await;
    up.stop().await;
}

/// `kill -9` of the mirror three times while pass-through and rewritten
/// batches flow, without restarting the local broker; a last run to the
/// end leaves each upstream record once, in order, per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_pass_through_leaves_each_upstream_record_once() {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    let per_partition = 100;
    let keys = fill_upstream(&up, &local, per_partition).await;
    let total = (DAYS.len() * PARTS as usize * per_partition) as i64;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.yaml");
    std::fs::write(
        &config,
        yaml(
            &up,
            &local,
            "kill-pass",
            "checkpoint_interval_ms: 200\nmax_in_flight_records: 48\nlinger_ms: 2\nrecovery_settle_ms: 500",
        ),
    )
    .unwrap();
    let mut at_kill = Vec::new();
    for (run, threshold) in [(0, 50i64), (1, 200), (2, 400)] {
        let log = dir.path().join(format!("run{run}.log"));
        at_kill.push(
            run_then_kill_9(
                MIRROR,
                &config,
                &log,
                &local.bootstrap(),
                TARGET,
                PARTS,
                threshold,
            )
            .await,
        );
    }
    assert!(
        at_kill[0] < total,
        "the first kill landed mid-stream ({at_kill:?})"
    );

    let log = dir.path().join("final.log");
    let (status, out) = run_to_end_then_term(
        MIRROR,
        &config,
        &log,
        &local.bootstrap(),
        TARGET,
        PARTS,
        total,
    )
    .await;
    let logs: String = (0..3)
        .map(|r| {
            std::fs::read_to_string(dir.path().join(format!("run{r}.log"))).unwrap_or_default()
        })
        .chain([std::fs::read_to_string(&log).unwrap_or_default()])
        .collect();
    assert!(status.success(), "exit {status}: {logs}");
    assert_eq!(
        end_total(&local.bootstrap(), TARGET, PARTS).await,
        total,
        "no duplicates: {logs}"
    );
    let copied = check_target(&local, &keys).await;
    assert!(copied > 0, "some batches were copied as bytes");
    // Recovery recognised copied batches by their bytes at least once.
    assert!(
        logs.contains("pass_through_batches"),
        "recovery ran: {logs}"
    );
    let recoveries: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("local tails read back"))
        .collect();
    eprintln!(
        "killed at {at_kill:?} of {total}; {copied} copied batches; recoveries:\n{}\nfinal summary:\n{}",
        recoveries.join("\n"),
        String::from_utf8_lossy(&out.stdout)
    );
    local.stop().await;
    up.stop().await;
}
