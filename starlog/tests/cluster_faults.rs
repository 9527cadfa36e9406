//! Three `starlog` processes on loopback forming a Raft cluster, driven by
//! librdkafka (acks=all, idempotence) with real ZTF alerts as values:
//! `kill -9` of partition leaders during load, a leader cut off from its
//! peers (the inter-broker fault switch) and healed, and a `kill -9` of all
//! three. Afterwards every acknowledged message is present exactly once at
//! its acknowledged offset, each partition keeps the producer's order, and
//! all replicas hold byte-identical logs up to the high watermark.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
// The broker's test helpers (in-process brokers, a raw protocol client, the
// alert files).
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_survive_repeated_leader_kills_during_load() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "kills", 3).await;
    let values = alerts();
    let p = producer(&bs);
    let total = 1_500;
    let load = {
        let values = values.clone();
        let p = p.clone();
        tokio::spawn(async move { produce(&p, "kills", 0..total, &values).await })
    };
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        c.wait_for(Duration::from_secs(30), "partition 0 has a leader", |c| {
            c.leader("kills", 0).is_some()
        });
        let leader = c.leader("kills", 0).expect("partition 0 has a leader");
        eprintln!("round {round}: kill -9 node {leader}");
        c.kill9(leader);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        c.spawn(leader);
    }
    let (acked, failed) = load.await.expect("producer task");
    p.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        failed, 0,
        "idempotent retries deliver everything within the timeout"
    );
    assert_eq!(acked.len(), total);
    c.wait_caught_up("kills", 3);
    let stored = read_topic(&bs, "kills", 3);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), total);
    let hws = high_watermarks(&c, "kills", 3);
    check_identical_replicas(&mut c, "kills", &hws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_peers_is_replaced_and_catches_up_after_healing() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "cut", 1).await;
    let values = alerts();
    let p = producer(&bs);
    let (mut acked, failed) = produce(&p, "cut", 0..300, &values).await;
    assert_eq!(failed, 0);
    c.wait_for(Duration::from_secs(30), "a leader", |c| {
        c.leader("cut", 0).is_some()
    });
    let old = c.leader("cut", 0).expect("leader");
    c.set_isolated(old, true);
    c.wait_for(Duration::from_secs(20), "another node leads", |c| {
        c.nodes().iter().filter(|n| n.id != old).any(|n| {
            c.status(n.id).is_some_and(|s| {
                ProcCluster::group(&s, "cut", 0).is_some_and(|g| g.role == "leader")
            })
        })
    });
    let (more, failed) = produce(&p, "cut", 300..600, &values).await;
    assert_eq!(failed, 0, "the producer fails over to the new leader");
    acked.extend(more);
    // The cut-off node cannot have committed anything on its own.
    let s = c.status(old).expect("status of the isolated node");
    let g = ProcCluster::group(&s, "cut", 0).unwrap();
    assert_ne!(
        g.role, "leader",
        "an isolated leader steps down (check quorum)"
    );
    // Knowing no controller, it answers no Metadata: the connection closes,
    // so a client asks another broker instead of trusting a stale view.
    c.wait_for(
        Duration::from_secs(20),
        "the cut-off node knows no controller",
        |c| c.status(old).is_some_and(|s| s.controller.is_none()),
    );
    assert!(metadata_is_refused(c.node(old).kafka).await);
    c.set_isolated(old, false);
    c.wait_caught_up("cut", 1);
    c.wait_for(
        Duration::from_secs(20),
        "the healed node knows the controller",
        |c| c.status(old).is_some_and(|s| s.controller.is_some()),
    );
    assert!(
        !metadata_is_refused(c.node(old).kafka).await,
        "healed: Metadata is answered again"
    );
    let stored = read_topic(&bs, "cut", 1);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), 600);
    let hws = high_watermarks(&c, "cut", 1);
    check_identical_replicas(&mut c, "cut", &hws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_all_three_keeps_every_acknowledged_message() {
    kill_all_three(ProcCluster::start()).await;
}

/// With `sync_data: false` acknowledged records are in the OS's page cache
/// on a quorum, which a process crash does not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relying_on_replication_without_fdatasync_survives_kill_9_of_all_three() {
    kill_all_three(ProcCluster::start_with("  sync_data: false\n")).await;
}

async fn kill_all_three(mut c: ProcCluster) {
    let bs = c.bootstrap();
    create_topic(&bs, "all-down", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let (mut acked, failed) = produce(&p, "all-down", 0..400, &values).await;
    assert_eq!(failed, 0);
    c.kill9_and_restart_all();
    let (more, failed) = produce(&p, "all-down", 400..500, &values).await;
    assert_eq!(failed, 0, "the restarted cluster takes new messages");
    acked.extend(more);
    c.wait_caught_up("all-down", 2);
    let stored = read_topic(&bs, "all-down", 2);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), 500);
    let hws = high_watermarks(&c, "all-down", 2);
    check_identical_replicas(&mut c, "all-down", &hws);
}

/// Sends a Metadata request and reports whether the broker closed the
/// connection instead of answering.
async fn metadata_is_refused(port: u16) -> bool {
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut client = common::RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let version = 1;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fenced-check")))
        .encode(&mut body, ApiKey::Metadata.request_header_version(version))
        .expect("header encodes");
    MetadataRequest::default()
        .encode(&mut body, version)
        .expect("request encodes");
    client.send_frame(&body).await;
    client.read_frame().await.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_status_and_metrics_agree_on_one_leader_per_partition() {
    let mut c = ProcCluster::start();
    // Created through node 3 alone: it is forwarded to the metadata leader.
    let third = format!("127.0.0.1:{}", c.node(3).kafka);
    create_topic(&third, "observed", 3).await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&c.bootstrap()), "observed", 0..30, &values).await;
    assert_eq!((acked.len(), failed), (30, 0));
    c.wait_caught_up("observed", 3);
    c.wait_for(Duration::from_secs(30), "leaders", |c| {
        (0..3).all(|p| c.leader("observed", p).is_some())
    });
    let leaders: Vec<i32> = (0..3)
        .map(|p| c.leader("observed", p).expect("leader"))
        .collect();
    // Every broker's Metadata names the same leaders and all three replicas.
    for n in c.nodes() {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{}", n.kafka))
            .create()
            .expect("client");
        let md = consumer
            .fetch_metadata(Some("observed"), Duration::from_secs(10))
            .expect("metadata");
        assert_eq!(md.brokers().len(), 3);
        let t = &md.topics()[0];
        for p in t.partitions() {
            let i = usize::try_from(p.id()).unwrap();
            assert_eq!(p.leader(), leaders[i], "node {} on partition {i}", n.id);
            let mut replicas = p.replicas().to_vec();
            replicas.sort_unstable();
            assert_eq!(replicas, vec![1, 2, 3]);
            assert!(p.isr().contains(&leaders[i]));
        }
    }
    // /metrics: exactly one broker reports itself leader of each partition,
    // and the term is the same everywhere.
    for p in 0..3 {
        let row = format!("starlog_raft_leader{{topic=\"observed\",partition=\"{p}\"}} 1");
        let claiming: Vec<i32> = c
            .nodes()
            .iter()
            .filter(|n| http_get(n.http, "/metrics").contains(&row))
            .map(|n| n.id)
            .collect();
        assert_eq!(claiming, vec![leaders[usize::try_from(p).unwrap()]]);
    }
    let page = http_get(c.node(leaders[0]).http, "/metrics");
    assert!(
        page.contains(
            "starlog_raft_replica_lag_records{topic=\"observed\",partition=\"0\",replica=\"1\"} 0"
        ),
        "{page}"
    );
    // `starlog cluster status` prints the same view.
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["cluster", "status", "--http"])
        .arg(format!("127.0.0.1:{}", c.node(leaders[0]).http))
        .output()
        .expect("run starlog cluster status");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("observed") && l.split_whitespace().nth(1) == Some("0"))
        .unwrap_or_else(|| panic!("no row for observed-0 in\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "leader", "{row}");
    assert_eq!(cols[3], leaders[0].to_string(), "{row}");
    c.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_replicas_and_a_later_broker_starts_from_a_snapshot() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic_with(
        &bs,
        "trimmed",
        1,
        &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
    )
    .await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&bs), "trimmed", 0..150, &values).await;
    assert_eq!((acked.len(), failed), (150, 0));
    c.wait_caught_up("trimmed", 1);
    // Every replica trims its own log through its Raft group.
    c.wait_for(Duration::from_secs(30), "every replica trims", |c| {
        c.nodes().iter().all(|n| {
            c.status(n.id).is_some_and(|s| {
                ProcCluster::group(&s, "trimmed", 0).is_some_and(|g| g.log_start_offset > 0)
            })
        })
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .expect("client");
    let (low, high) = consumer
        .fetch_watermarks("trimmed", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert!(low > 0 && high == 150, "low {low} high {high}");
    // What remains reads back from the start, still in order (retention
    // may have moved the start on since `low` was read).
    let stored = read_topic(&bs, "trimmed", 1);
    let first = stored[0].1;
    assert!(first >= low, "read from {first}, before the start {low}");
    assert_eq!(stored.len(), usize::try_from(high - first).unwrap());
    check_exactly_once(
        &acked
            .iter()
            .copied()
            .filter(|a| a.2 >= first)
            .collect::<Vec<_>>(),
        &stored,
    );
    // A broker added now cannot replay the trimmed entries: it gets a
    // snapshot (the window start) and replicates from there.
    let four = c.add_broker();
    // Move the partition from brokers 1, 2, 3 onto 2, 3, 4.
    c.reassign("trimmed", 0, "2,3,4");
    c.wait_caught_up_on("trimmed", 0, &[2, 3, 4]);
    let s4 = c.status(four).expect("status of the new broker");
    let g4 = ProcCluster::group(&s4, "trimmed", 0).unwrap().clone();
    let start = g4.log_start_offset;
    assert!(start > 0, "{g4:?}");
    assert_eq!(g4.high_watermark, 150);
    c.wait_for(Duration::from_secs(30), "broker 1 deletes its copy", |c| {
        !c.node(1).data.join("trimmed-0").exists()
    });
    c.stop_all();
    assert_eq!(
        c.log_bytes_from(four, "trimmed", 0, start, 150),
        c.log_bytes_from(2, "trimmed", 0, start, 150),
        "the new replica matches the others from its start on"
    );
}

/// Consumes with group `group` until `n` messages arrived (or fails after
/// 60 s); returns their offsets. Commits synchronously at the end.
fn consume_in_group(bootstrap: &str, topic: &str, group: &str, n: usize) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while offsets.len() < n {
        assert!(
            Instant::now() < deadline,
            "group {group} got only {} of {n}",
            offsets.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            offsets.push(m.offset());
        }
    }
    c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    c.unsubscribe();
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_the_coordinator() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "grp", 1).await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&bs), "grp", 0..100, &values).await;
    assert_eq!((acked.len(), failed), (100, 0));
    let first = {
        let bs = bs.clone();
        tokio::task::spawn_blocking(move || consume_in_group(&bs, "grp", "survivors", 60))
            .await
            .unwrap()
    };
    assert_eq!(first, (0..60).collect::<Vec<i64>>());
    // The coordinator is the controller: kill it.
    let controller = c.status(1).unwrap().controller.unwrap();
    c.kill9(controller);
    let live: Vec<i32> = (1..=3).filter(|&id| id != controller).collect();
    c.wait_for(Duration::from_secs(30), "a new controller", |c| {
        c.status(live[0])
            .is_some_and(|s| s.controller.is_some_and(|id| id != controller))
    });
    let live_bs = live
        .iter()
        .map(|&id| format!("127.0.0.1:{}", c.node(id).kafka))
        .collect::<Vec<_>>()
        .join(",");
    let rest =
        tokio::task::spawn_blocking(move || consume_in_group(&live_bs, "grp", "survivors", 40))
            .await
            .unwrap();
    assert_eq!(
        rest,
        (60..100).collect::<Vec<i64>>(),
        "resumed at the committed offset"
    );
}

/// Where node `id`'s copy of the cluster metadata log starts.
fn metadata_log_start(c: &ProcCluster, id: i32) -> i64 {
    c.status(id)
        .and_then(|s| ProcCluster::group(&s, "__cluster_metadata", 0).map(|g| g.log_start_offset))
        .unwrap_or(0)
}

/// Topic names a broker lists in Metadata, sorted.
fn topics_on(c: &ProcCluster, id: i32) -> Vec<String> {
    let meta = c.metadata(id, None);
    let mut names: Vec<String> = meta.topics().iter().map(|t| t.name().to_string()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_log_is_checkpointed_and_trimmed_and_restarts_and_new_brokers_load_it() {
    let mut c = ProcCluster::start_with("  metadata_checkpoint_records: 20\n");
    let bs = c.bootstrap();
    let names: Vec<String> = (0..8).map(|i| format!("meta-{i}")).collect();
    for name in &names {
        create_topic(&bs, name, 1).await;
    }
    let values = alerts();
    let (acked, failed) = produce(&producer(&bs), "meta-0", 0..30, &values).await;
    assert_eq!((acked.len(), failed), (30, 0));
    let read = {
        let bs = bs.clone();
        tokio::task::spawn_blocking(move || consume_in_group(&bs, "meta-0", "keeper", 30))
            .await
            .unwrap()
    };
    assert_eq!(read, (0..30).collect::<Vec<i64>>());
    // Eight topics with their leaders' announcements and a commit are more
    // than 20 records: the controller checkpoints, every broker trims.
    c.wait_for(
        Duration::from_secs(60),
        "every broker trims its metadata log",
        |c| (1..=3).all(|id| metadata_log_start(c, id) > 0),
    );
    // kill -9 of all three: each loads the checkpoint its log starts at,
    // then the records after it.
    c.kill9_and_restart_all();
    c.wait_for(
        Duration::from_secs(30),
        "a controller after the restart",
        |c| c.status(1).is_some_and(|s| s.controller.is_some()),
    );
    for id in 1..=3 {
        c.wait_for(Duration::from_secs(30), "every topic is back", |c| {
            topics_on(c, id) == names
        });
    }
    let (more, failed) = produce(&producer(&bs), "meta-0", 30..40, &values).await;
    assert_eq!((more.len(), failed), (10, 0));
    let rest = {
        let bs = bs.clone();
        tokio::task::spawn_blocking(move || consume_in_group(&bs, "meta-0", "keeper", 10))
            .await
            .unwrap()
    };
    assert_eq!(
        rest,
        (30..40).collect::<Vec<i64>>(),
        "the group resumes at its offset"
    );
    // A broker added now cannot replay the trimmed records: it is sent the
    // log from the checkpoint on and loads it.
    let four = c.add_broker();
    c.wait_for(Duration::from_secs(60), "broker 4 knows every topic", |c| {
        metadata_log_start(c, four) > 0 && topics_on(c, four) == names
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_peers_and_bad_admin_requests_are_refused_and_change_nothing() {
    let mut c = ProcCluster::start();
    // Garbage on node 1's inter-broker port: an absurd frame length, then a
    // frame of the right length whose content is not a frame.
    let raft = c.node(1).raft;
    let mut s = TcpStream::connect(("127.0.0.1", raft)).expect("connect raft port");
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .expect("write");
    let mut buf = [0u8; 1];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "the broker closes the connection"
    );
    let mut s = TcpStream::connect(("127.0.0.1", raft)).expect("connect raft port");
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef])
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "the broker closes the connection"
    );
    // Bad admin requests get a 4xx naming what is wrong.
    let http = c.node(1).http;
    let answer = http_post(http, "/cluster/fault", r#"{"isolate": 1}"#);
    assert!(
        answer.contains(" 400 ") && answer.contains("isolated"),
        "{answer}"
    );
    let answer = http_post(http, "/cluster/brokers", "not json");
    assert!(
        answer.contains(" 400 ") && answer.contains("raft"),
        "{answer}"
    );
    let answer = http_post(http, "/cluster/brokers/remove", r#"{"id": 9}"#);
    assert!(
        answer.contains(" 409 ") && answer.contains("not a member"),
        "{answer}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["cluster", "add-broker", "--http"])
        .arg(format!("127.0.0.1:{http}"))
        .args(["--peer", "4=nowhere"])
        .output()
        .expect("run starlog");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peer \"4=nowhere\""));
    // The cluster is unchanged and still works.
    let s1 = c.status(1).expect("status");
    assert_eq!(s1.peers.len(), 3);
    assert!(!s1.isolated);
    let bs = c.bootstrap();
    create_topic(&bs, "after-garbage", 1).await;
    let (acked, failed) = produce(&producer(&bs), "after-garbage", 0..20, &alerts()).await;
    assert_eq!((acked.len(), failed), (20, 0));
    c.stop_all();
}
