//! A cluster whose peers are named by DNS name and port (`localhost:PORT`)
//! instead of an IP, as a Kubernetes StatefulSet's brokers name each other
//! (`starlog-1.starlog:9093`): the brokers listen on every interface, dial
//! each other by name (resolved again at each connection), form the
//! cluster and replicate; a broker killed and restarted is dialed again by
//! name and catches up. Ends with the cluster checks: every acknowledged
//! message exactly once, byte-identical replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use cluster::*;
use starlog_testkit::cluster::NodeHook;

/// Rewrites a node's configuration so that every peer's Raft address is
/// `localhost:PORT`.
fn name_the_peers(node: &Node) -> Result<(), String> {
    let text = std::fs::read_to_string(&node.config).map_err(|e| e.to_string())?;
    let named = text.replace("raft: 127.0.0.1:", "raft: localhost:");
    if named.matches("raft: localhost:").count() != 3 {
        return Err(format!("expected three Raft addresses in:\n{text}"));
    }
    std::fs::write(&node.config, named).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_peers_are_named_localhost_forms_and_replicates() {
    let mut c = ProcCluster::start_spec(|spec| {
        spec.before_first_start = Some(NodeHook(Arc::new(name_the_peers)));
    });
    for n in c.nodes() {
        let status = c.status(n.id).expect("status");
        let raft: Vec<&str> = status.peers.iter().map(|p| p.raft.as_str()).collect();
        assert_eq!(raft.len(), 3, "node {}: {raft:?}", n.id);
        assert!(
            raft.iter().all(|r| r.starts_with("localhost:")),
            "node {} lists its peers by name: {raft:?}",
            n.id
        );
    }
    let bs = c.bootstrap();
    create_topic(&bs, "named", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let (mut acked, failed) = produce(&p, "named", 0..200, &values).await;
    assert_eq!(failed, 0, "every acks=all produce succeeds");
    c.wait_caught_up("named", 2);
    // A broker that comes back is dialed by name again and catches up.
    c.kill9(2);
    let (more, failed) = produce(&p, "named", 200..300, &values).await;
    assert_eq!(failed, 0, "two of three brokers are a quorum");
    acked.extend(more);
    c.spawn(2);
    c.wait_caught_up("named", 2);
    let stored = read_topic(&bs, "named", 2);
    assert_eq!(stored.len(), 300);
    check_exactly_once(&acked, &stored);
    let hws = high_watermarks(&c, "named", 2);
    check_identical_replicas(&mut c, "named", &hws);
}
