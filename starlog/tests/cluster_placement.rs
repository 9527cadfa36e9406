//! Where partitions live in a cluster of `starlog` processes on loopback:
//! topics with fewer replicas than brokers, served from any broker, and
//! replicas moved between brokers (Kafka's AlterPartitionReassignments, the
//! `starlog cluster reassign` command, and a broker's removal) under
//! acks=all load from librdkafka. Every test ends with the cluster checks:
//! every acknowledged message exactly once at its offset, producer order,
//! byte-identical replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
// The broker's test helpers (in-process brokers, a raw protocol client, the
// alert files).
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster::*;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::types::RDKafkaErrorCode;

/// The nodes whose status lists `topic`-`partition` (those hosting it).
fn hosts(c: &ProcCluster, topic: &str, partition: i64) -> Vec<i32> {
    c.nodes()
        .iter()
        .filter(|n| {
            c.status(n.id)
                .is_some_and(|s| ProcCluster::group(&s, topic, partition).is_some())
        })
        .map(|n| n.id)
        .collect()
}

/// Metadata for `topic` from one broker alone: per partition, (leader,
/// sorted replicas, in-sync replicas).
fn metadata_from(c: &ProcCluster, id: i32, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let meta = c.metadata(id, Some(topic));
    meta.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let mut replicas = p.replicas().to_vec();
            replicas.sort_unstable();
            (p.leader(), replicas, p.isr().to_vec())
        })
        .collect()
}

async fn list_offsets_error(port: u16, topic: &str, partition: i32) -> i16 {
    let mut raw = common::RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_timestamp(-1)])]);
    match raw
        .call(RequestKind::ListOffsets(req), ApiKey::ListOffsets, 1)
        .await
    {
        ResponseKind::ListOffsets(r) => r.topics[0].partitions[0].error_code,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_fewer_replicas_than_brokers_is_spread_and_served_from_any_broker() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    assert_eq!(
        try_create_topic(&bs, "too-wide", 1, 4, &[]).await,
        Err(RDKafkaErrorCode::InvalidReplicationFactor),
        "more replicas than brokers is refused"
    );
    try_create_topic(&bs, "spread", 3, 2, &[])
        .await
        .expect("created with 2 replicas");
    // Each partition lives on two brokers, and each broker holds two of the
    // three partitions.
    let mut placed: BTreeMap<i64, Vec<i32>> = BTreeMap::new();
    c.wait_for(Duration::from_secs(30), "every partition is placed", |c| {
        placed = (0..3).map(|p| (p, hosts(c, "spread", p))).collect();
        placed.values().all(|h| h.len() == 2)
    });
    for id in 1..=3 {
        let held = placed.values().filter(|h| h.contains(&id)).count();
        assert_eq!(held, 2, "broker {id} holds two partitions: {placed:?}");
    }
    // Every broker, hosting a partition or not, names the same leader, the
    // two replicas and the in-sync replicas.
    c.wait_for(
        Duration::from_secs(30),
        "all brokers agree on the leaders",
        |c| {
            let views: Vec<_> = (1..=3).map(|id| metadata_from(c, id, "spread")).collect();
            views.iter().all(|v| *v == views[0])
                && views[0]
                    .iter()
                    .enumerate()
                    .all(|(p, (leader, replicas, isr))| {
                        *replicas == placed[&i64::try_from(p).unwrap()]
                            && replicas.contains(leader)
                            && isr.len() == 2
                    })
        },
    );
    // A broker that does not host a partition sends clients elsewhere.
    for (p, h) in &placed {
        let outsider = (1..=3).find(|id| !h.contains(id)).unwrap();
        let p = i32::try_from(*p).unwrap();
        assert_eq!(
            list_offsets_error(c.node(outsider).kafka, "spread", p).await,
            6,
            "broker {outsider} answers NOT_LEADER_OR_FOLLOWER for spread-{p}"
        );
    }
    // Reassignments that cannot be carried out are refused with Kafka's
    // codes and a reason, and change nothing.
    let port = c.node(2).kafka;
    assert_eq!(
        alter_reassignment(port, "spread", 0, &[1, 99]).await,
        39,
        "INVALID_REPLICA_ASSIGNMENT"
    );
    assert_eq!(
        alter_reassignment(port, "spread", 0, &[1, 1]).await,
        39,
        "a broker twice"
    );
    assert_eq!(
        alter_reassignment(port, "spread", 7, &[1, 2]).await,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(alter_reassignment(port, "nope", 0, &[1, 2]).await, 3);
    let bad = http_post(
        c.node(1).http,
        "/cluster/reassign",
        "{\"topic\": \"spread\"}",
    );
    assert!(
        bad.lines().next().is_some_and(|l| l.contains(" 400")),
        "{bad}"
    );
    assert!(list_reassignments(port).await.is_empty());
    assert_eq!(
        placed,
        (0..3).map(|p| (p, hosts(&c, "spread", p))).collect()
    );
    // librdkafka, given one broker, finds every partition's leader.
    let one = format!("127.0.0.1:{}", c.node(1).kafka);
    let values = alerts();
    let (acked, failed) = produce(&producer(&one), "spread", 0..300, &values).await;
    assert_eq!((acked.len(), failed), (300, 0));
    for p in 0..3 {
        assert!(
            acked.iter().any(|a| i64::from(a.1) == p),
            "partition {p} got messages"
        );
        c.wait_caught_up_on("spread", p, &placed[&p]);
    }
    let stored = read_topic(&one, "spread", 3);
    assert_eq!(stored.len(), 300);
    check_exactly_once(&acked, &stored);
    // kill -9 of all three: each broker reopens only its own partitions,
    // and the topic takes more alerts.
    c.kill9_and_restart_all();
    c.wait_for(
        Duration::from_secs(60),
        "the same placement after restart",
        |c| (0..3).all(|p| hosts(c, "spread", p) == placed[&p]),
    );
    let (more, failed) = produce(&producer(&one), "spread", 300..400, &values).await;
    assert_eq!((more.len(), failed), (100, 0));
    let mut acked = acked;
    acked.extend(more);
    for p in 0..3 {
        c.wait_caught_up_on("spread", p, &placed[&p]);
    }
    let stored = read_topic(&one, "spread", 3);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), 400);
    let hws: Vec<i64> = (0..3)
        .map(|p| {
            let s = c.status(placed[&p][0]).unwrap();
            ProcCluster::group(&s, "spread", p).unwrap().high_watermark
        })
        .collect();
    c.stop_all();
    for (p, h) in &placed {
        let pi = i32::try_from(*p).unwrap();
        let hw = hws[usize::try_from(*p).unwrap()];
        assert!(hw > 0);
        assert_eq!(
            c.log_bytes(h[0], "spread", pi, hw),
            c.log_bytes(h[1], "spread", pi, hw),
            "spread-{p}: replicas {h:?} are identical"
        );
        let outsider = (1..=3).find(|id| !h.contains(id)).unwrap();
        assert!(
            !c.node(outsider).data.join(format!("spread-{p}")).exists(),
            "broker {outsider} keeps no copy of spread-{p}"
        );
    }
}

/// AlterPartitionReassignments through a raw Kafka client: the partition's
/// error code.
async fn alter_reassignment(port: u16, topic: &str, partition: i32, replicas: &[i32]) -> i16 {
    let mut raw = common::RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(Some(
                    replicas.iter().map(|&r| BrokerId(r)).collect(),
                ))])]);
    match raw
        .call(
            RequestKind::AlterPartitionReassignments(req),
            ApiKey::AlterPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::AlterPartitionReassignments(r) => {
            assert_eq!(r.error_code, 0, "{r:?}");
            r.responses[0].partitions[0].error_code
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

/// ListPartitionReassignments: (topic, partition, adding, removing).
async fn list_reassignments(port: u16) -> Vec<(String, i32, Vec<i32>, Vec<i32>)> {
    let mut raw = common::RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000);
    match raw
        .call(
            RequestKind::ListPartitionReassignments(req),
            ApiKey::ListPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::ListPartitionReassignments(r) => r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.adding_replicas.iter().map(|b| b.0).collect(),
                        p.removing_replicas.iter().map(|b| b.0).collect(),
                    )
                })
            })
            .collect(),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_by_reassignment_and_broker_removal_under_load_without_downtime() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "elastic", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let stop = Arc::new(AtomicBool::new(false));
    // Steady load for the whole reconfiguration: chunks of 50 alerts.
    let load = {
        let (p, values, stop) = (p.clone(), values.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0;
            let mut next = 0;
            while !stop.load(Ordering::SeqCst) && next < 20_000 {
                let (a, f) = produce(&p, "elastic", next..next + 50, &values).await;
                acked.extend(a);
                failed += f;
                next += 50;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (acked, failed, next)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Broker 4 joins the cluster; no partition moves by itself.
    assert_eq!(c.add_broker(), 4);
    let http1 = c.http1();
    // The Kafka admin API, sent to broker 3, moves elastic-0 off broker 1
    // onto broker 4.
    let error = alter_reassignment(c.node(3).kafka, "elastic", 0, &[2, 3, 4]).await;
    assert_eq!(error, 0, "reassignment of elastic-0 accepted");
    for (topic, partition, adding, removing) in list_reassignments(c.node(2).kafka).await {
        assert_eq!((topic.as_str(), partition), ("elastic", 0));
        assert_eq!((adding, removing), (vec![4], vec![1]));
    }
    // The command line moves elastic-1 off broker 2, with 4 as preferred leader.
    c.reassign("elastic", 1, "4,1,3");
    c.wait_caught_up_on("elastic", 0, &[2, 3, 4]);
    c.wait_caught_up_on("elastic", 1, &[1, 3, 4]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !list_reassignments(c.node(1).kafka).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "reassignments still listed after the replicas caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !c.node(1).data.join("elastic-0").exists(),
        "broker 1 deleted its copy"
    );
    // Removing broker 2 puts broker 1 back in its place for elastic-0.
    run_cli(&["cluster", "remove-broker", "--http", &http1, "--id", "2"]);
    c.wait_caught_up_on("elastic", 0, &[1, 3, 4]);
    c.wait_for(
        Duration::from_secs(60),
        "broker 2 leaves every group",
        |c| [1, 3, 4].iter().all(|&id| voters_are(c, id, &[1, 3, 4])),
    );
    c.kill9(2);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    let (acked, failed, sent) = load.await.expect("load task");
    assert_eq!(failed, 0, "no produce failed while replicas moved");
    assert_eq!(acked.len(), sent);
    c.wait_caught_up("elastic", 2);
    let mut brokers: Vec<i32> = c
        .metadata(4, Some("elastic"))
        .brokers()
        .iter()
        .map(|b| b.id())
        .collect();
    brokers.sort_unstable();
    assert_eq!(brokers, vec![1, 3, 4]);
    let stored = read_topic(&bs, "elastic", 2);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), sent);
    let hws = high_watermarks(&c, "elastic", 2);
    check_identical_on(&mut c, "elastic", &hws, &[1, 3, 4]);
}
