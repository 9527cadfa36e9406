//! A cluster of three `starlog` processes whose brokers talk over mutual
//! TLS under a cluster CA (`cluster.tls`), with HTTPS on their HTTP
//! listeners: the cluster forms and replicates (librdkafka producer,
//! acks=all), the harness and `starlog cluster` reach `/cluster` with the
//! CA, and a broker whose certificate comes from another CA is refused by
//! every member (and logged), as is a plaintext peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster::*;
use starlog_testkit::pki::TestCa;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_replicate_over_mutual_tls_and_refuse_a_foreign_certificate() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    let ca = TestCa::new("starlog cluster ca").unwrap();
    let ca_file = ca.write_cert(&dir.join("ca.pem")).unwrap();
    for n in 1..=3 {
        ca.write_leaf(dir, &format!("node{n}"), &format!("broker-{n}"))
            .unwrap();
    }
    // The fourth broker (started later) has a certificate of another CA.
    let foreign = TestCa::new("some other ca").unwrap();
    foreign.write_leaf(dir, "node4", "broker-4").unwrap();

    let d = dir.display();
    let mut c = ProcCluster::start_spec(|s| {
        s.cluster_yaml = format!(
            "  tls: {{ cert: {d}/node{{node}}.pem, key: {d}/node{{node}}.key, ca: {d}/ca.pem, \
             principal: cn, broker_principals: [User:broker-1, User:broker-2, User:broker-3, User:broker-4] }}\n"
        );
        s.extra_yaml.push_str(&format!(
            "http: {{ tls: {{ cert: {d}/node{{node}}.pem, key: {d}/node{{node}}.key }} }}\n"
        ));
        s.http_ca = Some(ca_file.clone());
    });
    // Every node knows a controller (the harness asked each over HTTPS):
    // the metadata group formed over mutual TLS.
    for n in c.nodes() {
        assert!(c.status(n.id).is_some_and(|s| s.controller.is_some()));
    }

    // Replication over TLS: every acknowledged message on every replica.
    let bs = c.bootstrap();
    create_topic(&bs, "tls-alerts", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let total = 300;
    let (acked, failed) = produce(&p, "tls-alerts", 0..total, &values).await;
    assert_eq!((acked.len(), failed), (total, 0));
    c.wait_caught_up("tls-alerts", 2);
    let stored = read_topic(&bs, "tls-alerts", 2);
    check_exactly_once(&acked, &stored);

    // `starlog cluster status` with the CA; without it, it cannot talk to
    // an HTTPS listener.
    let http = c.http1();
    let ca_arg = ca_file.display().to_string();
    let table = run_cli(&["cluster", "status", "--http", &http, "--ca", &ca_arg]);
    assert!(table.contains("tls-alerts"), "{table}");
    let plain = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["cluster", "status", "--http", &http])
        .output()
        .unwrap();
    assert!(!plain.status.success());

    // A broker with another CA's certificate dials the members: each
    // refuses it and says so; the cluster carries on without it.
    let four = c.spawn_joiner();
    assert_eq!(four, 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refused: Vec<i32> = (1..=3)
            .filter(|&id| {
                std::fs::read_to_string(&c.node(id).log)
                    .unwrap_or_default()
                    .contains("inter-broker connection refused: TLS handshake failed")
            })
            .collect();
        if refused.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only nodes {refused:?} logged refusing node 4"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let members = c.status(1).unwrap();
    assert!(
        members
            .groups
            .iter()
            .all(|g| g.replicas.iter().all(|r| r.node != 4)),
        "node 4 replicates nothing"
    );
    // A plaintext peer on a TLS inter-broker port: its frame is not read,
    // the connection is closed (after a TLS alert, not an answer).
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", c.node(1).raft)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let frame = [0u8, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    std::io::Write::write_all(&mut plain, &frame).unwrap();
    let mut answer = Vec::new();
    let closed = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(
        match &closed {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        },
        "the node closes the connection, got {closed:?}"
    );
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "a TLS alert or nothing, got {answer:?}"
    );
    let (more, failed) = produce(&p, "tls-alerts", total..total + 50, &values).await;
    assert_eq!((more.len(), failed), (50, 0));
    c.wait_caught_up_on("tls-alerts", 0, &[1, 2, 3]);
    c.wait_caught_up_on("tls-alerts", 1, &[1, 2, 3]);
    // The refused broker backs off (up to 5 s between attempts): a few
    // refusals logged, not a flood.
    let refusals = std::fs::read_to_string(&c.node(1).log)
        .unwrap()
        .matches("inter-broker connection refused")
        .count();
    assert!(
        (1..=40).contains(&refusals),
        "{refusals} refusals logged by node 1"
    );
    let hws = high_watermarks(&c, "tls-alerts", 2);
    check_identical_on(&mut c, "tls-alerts", &hws, &[1, 2, 3]);
}
