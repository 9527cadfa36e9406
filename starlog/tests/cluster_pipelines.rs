//! In-broker pipelines on a replicated cluster: three `starlog` processes
//! whose YAML all hold the same pipeline (SolarSystemFilter + a JSON
//! KafkaTopicWriter). Each broker runs it as a member of the pipeline's
//! consumer group through its own listener; the group spreads the source
//! partitions over the brokers, outputs go through the cluster and positions
//! are the group's offsets. ZTF alerts are produced with librdkafka
//! (acks=all): every solar-system alert (counted independently from the
//! data's manifest) comes out exactly once; after a `kill -9` of a broker
//! mid-stream and its restart, every expected alert is still there
//! (at-least-once: an alert handled after the dead member's last commit may
//! come out twice, never zero times); `/metrics` on each broker shows the
//! pipeline's counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
// The broker's test helpers (the alert files, the test data folder).
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use cluster::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer;

const SOURCE: &str = "alerts-in";
const OUTPUT: &str = "ss-out";
const PARTS: i32 = 3;
const GROUP: &str = "starlog-pipeline-ss";

/// The pipeline, in every broker's YAML.
const PIPELINES: &str = r#"pipelines:
  - type: in-broker
    name: ss
    source: { topic: alerts-in }
    processors:
      - class: SolarSystemFilter
        params: { action: include }
      - class: KafkaTopicWriter
        params: { topic: ss-out, format: json, key: alert_id }
"#;

/// The simulator night's alerts: (alert id = file stem, bytes).
fn alert_values() -> Vec<(String, Vec<u8>)> {
    common::alert_files("ztf/alerts/fink-alert-simulator")
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read(p).unwrap())
        })
        .collect()
}

/// How many times each solar-system alert was acknowledged into the source.
fn expected(acked: &[Acked], ids: &[String], ss: &HashSet<String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for &(i, _, _) in acked {
        let id = &ids[i % ids.len()];
        if ss.contains(id) {
            *out.entry(id.clone()).or_default() += 1;
        }
    }
    out
}

/// How many times each alert id is in the output topic.
fn output_counts(bootstrap: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, _, key) in read_topic(bootstrap, OUTPUT, PARTS) {
        *out.entry(key.to_string()).or_default() += 1;
    }
    out
}

fn output_size(bootstrap: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    (0..PARTS)
        .map(|p| {
            c.fetch_watermarks(OUTPUT, p, Duration::from_secs(10))
                .map_or(0, |(_, high)| high)
        })
        .sum()
}

/// Waits until the output holds at least `n` records.
fn wait_output(bootstrap: &str, n: usize, c: &ProcCluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let have = output_size(bootstrap);
        if have >= n as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the output holds {have} records of {n} expected\n{}",
            c.cluster.describe_all()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The group's state and member count, as the cluster reports it.
fn group_state(bootstrap: &str) -> Option<(String, usize)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let list = c
        .fetch_group_list(Some(GROUP), Duration::from_secs(5))
        .ok()?;
    let g = list.groups().iter().find(|g| g.name() == GROUP)?;
    Some((g.state().to_string(), g.members().len()))
}

/// The value of `family`'s row for the pipeline on a `/metrics` page.
fn pipeline_metric(page: &str, family: &str) -> Option<i64> {
    let prefix = format!("{family}{{pipeline=\"ss\",source=\"{SOURCE}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_in_every_broker_runs_once_per_partition_and_survives_a_kill() {
    let mut c = ProcCluster::start_spec(|spec| {
        spec.extra_yaml.push_str(PIPELINES);
        spec.node_log = "warn,starlog_broker=info,starlog=info,starlog_clients=info".into();
    });
    let bs = c.bootstrap();
    create_topic(&bs, SOURCE, PARTS).await;
    create_topic(&bs, OUTPUT, PARTS).await;
    // The three brokers' members share the group (the source partitions
    // spread over them) before anything is produced.
    c.wait_for(
        Duration::from_secs(60),
        "the pipeline's group is stable with one member per broker",
        |_| group_state(&bs) == Some(("Stable".into(), 3)),
    );

    let alerts = alert_values();
    let ids: Vec<String> = alerts.iter().map(|(id, _)| id.clone()).collect();
    let values: Vec<Vec<u8>> = alerts.into_iter().map(|(_, v)| v).collect();
    let ss = common::solar_system_ids();
    assert!(!ss.is_empty() && ss.len() < ids.len());
    let p = producer(&bs);

    // Every solar-system alert exactly once, nothing else.
    let (acked, failed) = produce(&p, SOURCE, 0..ids.len(), &values).await;
    assert_eq!((acked.len(), failed), (ids.len(), 0));
    let want = expected(&acked, &ids, &ss);
    assert_eq!(want.keys().cloned().collect::<HashSet<_>>(), ss);
    wait_output(&bs, ss.len(), &c);
    // A little longer: anything written twice would show.
    std::thread::sleep(Duration::from_secs(2));
    let got = output_counts(&bs);
    assert_eq!(got, want, "every solar-system alert exactly once");

    // Each broker's /metrics shows its member's counters; together they
    // count every record once, and every broker handled a share.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pages: Vec<String> = c
            .nodes()
            .iter()
            .map(|n| http_get(n.http, "/metrics"))
            .collect();
        let per_broker: Vec<(i64, i64, i64)> = pages
            .iter()
            .map(|page| {
                let get = |f| pipeline_metric(page, f).unwrap_or(-1);
                (
                    get("starlog_pipeline_records_in_total"),
                    get("starlog_pipeline_passed_total"),
                    get("starlog_pipeline_lag"),
                )
            })
            .collect();
        let records: i64 = per_broker.iter().map(|m| m.0).sum();
        let passed: i64 = per_broker.iter().map(|m| m.1).sum();
        let done = records == ids.len() as i64
            && passed == ss.len() as i64
            && per_broker.iter().all(|m| m.0 > 0 && m.2 == 0);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pipeline counters per broker (records in, passed, lag): {per_broker:?}; \
             want {} records and {} passed in all",
            ids.len(),
            ss.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // kill -9 of a broker mid-stream, restarted a few seconds later.
    let rounds = 6;
    let load = {
        let (p, values, n) = (p.clone(), values.clone(), ids.len());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for r in 1..=rounds {
                let (a, failed) = produce(&p, SOURCE, r * n..(r + 1) * n, &values).await;
                assert_eq!(failed, 0, "idempotent retries deliver everything");
                acked.extend(a);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    eprintln!("kill -9 node 2");
    c.kill9(2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.spawn(2);
    let acked2 = load.await.expect("producer task");
    p.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(acked2.len(), rounds * ids.len());
    let mut all = acked.clone();
    all.extend(acked2);
    let want = expected(&all, &ids, &ss);
    let total: usize = want.values().sum();
    wait_output(&bs, total, &c);
    // Every expected alert at least as often as it was produced; nothing
    // that is not a solar-system alert.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = output_counts(&bs);
        let missing: Vec<(&String, usize, usize)> = want
            .iter()
            .map(|(id, n)| (id, *n, got.get(id).copied().unwrap_or(0)))
            .filter(|(_, n, g)| g < n)
            .collect();
        let unexpected: Vec<&String> = got.keys().filter(|id| !ss.contains(*id)).collect();
        assert!(
            unexpected.is_empty(),
            "not solar-system alerts: {unexpected:?}"
        );
        if missing.is_empty() {
            let extra: usize = got.values().sum::<usize>() - total;
            eprintln!("after the kill: {total} expected outputs, {extra} written twice");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts missing from the output (id, produced, found): {missing:?}\n{}",
            c.cluster.describe_all()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The restarted broker's member is back in the group.
    c.wait_for(
        Duration::from_secs(60),
        "the restarted broker's member rejoined the group",
        |_| group_state(&bs) == Some(("Stable".into(), 3)),
    );
    drop(p);
    c.stop_all();
}

/// A one-broker cluster's YAML whose pipeline writes `format`.
fn one_broker_cluster(dir: &std::path::Path, format: &str) -> String {
    use starlog_testkit::free_port;
    let (kafka, raft, http) = (free_port(), free_port(), free_port());
    format!(
        "node_id: 1\nlisten: 127.0.0.1:{kafka}\ndata_dir: {data}\n\
         schema_registry: {{ listen: 127.0.0.1:{http} }}\n\
         {pipelines}\
         cluster:\n  peers:\n    - {{ id: 1, host: 127.0.0.1, port: {kafka}, raft: 127.0.0.1:{raft} }}\n",
        data = dir.join("data").display(),
        pipelines = PIPELINES.replace("format: json", &format!("format: {format}")),
    )
}

#[test]
fn a_cluster_member_refuses_avro_output_naming_the_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.yaml");
    std::fs::write(&file, one_broker_cluster(dir.path(), "avro")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_starlog"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn starlog serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("starlog serve did not refuse the configuration");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "refused: {stderr}");
    for part in [
        "pipelines[0]",
        "processors[1].params.format",
        "without a schema registry",
        "use JSON",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_member_without_a_pipeline_launcher_refuses_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        starlog_broker::BrokerConfig::from_yaml(&one_broker_cluster(dir.path(), "json")).unwrap();
    let extensions = starlog_broker::Extensions {
        processors: Some(starlog::processors()),
        ..starlog_broker::Extensions::default()
    };
    let err = starlog_broker::Server::start_with(config, extensions)
        .await
        .expect_err("a cluster member with pipelines and no launcher is refused");
    let message = err.to_string();
    assert!(
        message.contains("lists pipelines")
            && message.contains("cluster member")
            && message.contains("this program runs none"),
        "{message}"
    );
}
