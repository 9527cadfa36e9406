//! `starlog-bench cluster`'s machinery against real `starlog` processes: a
//! 1-node cluster takes a checked run through the Raft code path, and one
//! failover round on a 3-node cluster kills the leader, sees another node
//! take over and an acknowledgement after the kill, restarts the node and
//! leaves no process behind. No timing is asserted: the figures are the
//! benchmark's business, not the test's.
//!
//! The `starlog` binary is the one cargo built beside this test (a
//! workspace build or `cargo build -p starlog` makes it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use starlog_bench::client::{Acks, LoadClient, ProducerSettings};
use starlog_bench::cluster::{ClusterSpec, SpawnedCluster};
use starlog_bench::failover::{self, FailoverSettings};
use starlog_bench::pacer::Rate;
use starlog_bench::payload::{PayloadSource, Payloads};
use starlog_bench::rdkafka_client::RdKafkaClient;
use starlog_bench::run::{fresh_topic, run, RunContext};
use starlog_bench::workload::Workload;

/// `target/<profile>/starlog`, beside this test's `deps/` folder.
fn starlog_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("starlog");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p starlog` (a workspace test run does)",
        bin.display()
    );
    bin
}

/// `nodes` brokers of that binary, under `root`.
fn spec(name: &str, nodes: usize, root: &std::path::Path) -> ClusterSpec {
    let mut s = ClusterSpec::new(name, nodes, starlog_bin());
    s.data_root = Some(root.to_path_buf());
    s
}

fn synthetic() -> Payloads {
    Payloads::load(
        &PayloadSource::Synthetic {
            bytes: 4096,
            distinct: 4,
        },
        std::path::Path::new("."),
    )
    .unwrap()
}

#[test]
fn a_one_node_cluster_takes_a_complete_acks_all_idempotent_run() {
    let root = tempfile::tempdir().unwrap();
    let cluster = SpawnedCluster::start(spec("rf1", 1, root.path())).expect("1-node cluster");
    let client = RdKafkaClient::new(cluster.bootstrap()).with_replication_factor(1);
    let mut w = Workload::alerts(Rate::Max, 300);
    w.payload = PayloadSource::Synthetic {
        bytes: 4096,
        distinct: 4,
    };
    w.partitions = 2;
    w.groups = 1;
    w.producer = ProducerSettings {
        acks: Acks::All,
        compression: "none".into(),
        idempotent: true,
        extra: Vec::new(),
    };
    w.send_for = Some(Duration::from_secs(60));
    let pids = cluster.pids();
    let http = cluster.http_addr(1);
    let ctx = RunContext {
        client: &client as &dyn LoadClient,
        broker_pid: pids.first().map(|&(_, p)| p),
        label: "rf1",
        broker: "1-node cluster",
        progress: false,
        http_addr: http.as_deref(),
    };
    let topic = fresh_topic("rf1");
    let r = run(ctx, &w, Arc::new(synthetic()), &topic).expect("run");
    assert!(r.complete, "{r:?}");
    assert_eq!(r.produce.acknowledged, 300);
    // The topic is a Raft group led by the only node.
    assert_eq!(cluster.leader_of(&topic, 0).map(|(n, _)| n), Some(1));
    assert!(cluster.caught_up(&topic, 1));
    cluster.stop().expect("clean stop");
    for (_, pid) in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}

#[test]
fn a_failover_round_kills_the_leader_and_another_node_takes_over() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = SpawnedCluster::start(spec("rf3", 3, root.path())).expect("3-node cluster");
    let first_pids = cluster.pids();
    assert_eq!(first_pids.len(), 3);
    let client = RdKafkaClient::new(cluster.bootstrap()).with_replication_factor(3);
    let settings = FailoverSettings {
        rounds: 1,
        rate: 100.0,
        warmup: Duration::from_secs(1),
        max_wait: Duration::from_secs(30),
        settle_timeout: Duration::from_secs(60),
        producer: ProducerSettings {
            acks: Acks::All,
            compression: "none".into(),
            idempotent: true,
            extra: vec![
                ("message.timeout.ms".into(), "120000".into()),
                ("request.timeout.ms".into(), "5000".into()),
                ("retry.backoff.ms".into(), "100".into()),
            ],
        },
    };
    let topic = fresh_topic("failover");
    let result = failover::measure(
        &mut cluster,
        &client,
        &synthetic(),
        &settings,
        &topic,
        false,
    )
    .expect("failover round");
    assert_eq!(result.rounds.len(), 1);
    let round = &result.rounds[0];
    let (new_leader, new_term) = round.new_leader.expect("a new leader");
    assert_ne!(new_leader, round.killed, "{round:?}");
    assert!(new_term > round.killed_term, "{round:?}");
    assert!(round.first_ack_ms.is_some(), "{round:?}");
    assert!(result.acknowledged > 0);
    // The killed node was restarted (a new process) and caught up.
    let killed_pid = first_pids
        .iter()
        .find(|(id, _)| *id == round.killed)
        .map(|&(_, p)| p)
        .unwrap();
    let now = cluster.pids();
    assert_eq!(now.len(), 3);
    assert!(now.iter().all(|&(_, p)| p != killed_pid));
    assert!(cluster.caught_up(&topic, 0));
    cluster.stop().expect("clean stop");
    for (_, pid) in now {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
