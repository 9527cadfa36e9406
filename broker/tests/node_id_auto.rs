//! `node_id: auto` read from the environment, through the broker's YAML:
//! the id picks the broker's entry among the peers, and a bad value is
//! refused naming the variable. (The host-name rule is unit-tested in
//! `cluster::node_identity`.) One test in its own binary, since it sets a
//! process-wide variable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use starlog_broker::cluster::node_identity::NODE_ID_ENV;
use starlog_broker::BrokerConfig;

const SITE: &str = concat!(
    "node_id: auto\n",
    "cluster:\n",
    "  peers:\n",
    "    - { id: 1, host: starlog-0.starlog, port: 9092, raft: starlog-0.starlog:9093 }\n",
    "    - { id: 2, host: starlog-1.starlog, port: 9092, raft: starlog-1.starlog:9093 }\n",
);

#[test]
fn the_node_id_comes_from_the_environment_and_picks_the_peer() {
    std::env::set_var(NODE_ID_ENV, "2");
    let c = BrokerConfig::from_yaml(SITE).unwrap();
    assert_eq!(c.node_id, 2);
    let me = c.cluster.as_ref().unwrap().me(c.node_id).unwrap();
    assert_eq!(me.raft.to_string(), "starlog-1.starlog:9093");
    assert_eq!(me.raft.bind_addr().to_string(), "0.0.0.0:9093");

    std::env::set_var(NODE_ID_ENV, "3");
    let e = BrokerConfig::from_yaml(SITE).unwrap_err().to_string();
    assert!(e.contains("node_id") && e.contains("3 is not among"), "{e}");

    std::env::set_var(NODE_ID_ENV, "zero");
    let e = BrokerConfig::from_yaml(SITE).unwrap_err().to_string();
    assert!(
        e.contains("node_id: auto") && e.contains("STARLOG_NODE_ID=\"zero\""),
        "{e}"
    );
    std::env::remove_var(NODE_ID_ENV);
}
