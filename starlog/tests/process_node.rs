//! `starlog process`: two standalone processing nodes share a consumer
//! group, split the source partitions, write exactly the solar-system alerts
//! (counted from the data's manifest) and leave the group on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The broker's test helpers (in-process brokers, a raw protocol client, the
// alert files).
#[path = "../../broker/tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{RawClient, TestBroker};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, GroupId, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const PIPELINE: &str = r#"
component:
  type: processing-node
  name: ss-node
  source: { topic: alerts-in, group: ss-nodes }
  processors:
    - class: SolarSystemFilter
      params: { action: include }
    - class: KafkaTopicWriter
      params: { topic: ss-out, format: json, key: alert_id }
"#;

fn spawn_node(pipeline: &std::path::Path, bootstrap: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["process", "--bootstrap", bootstrap])
        .arg(pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn starlog process")
}

async fn group_state(addr: std::net::SocketAddr) -> (String, usize) {
    let mut c = RawClient::connect(addr).await;
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_static_str("ss-nodes"))]);
    match c
        .call(RequestKind::DescribeGroups(req), ApiKey::DescribeGroups, 5)
        .await
    {
        ResponseKind::DescribeGroups(r) => {
            let g = &r.groups[0];
            (g.group_state.to_string(), g.members.len())
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_split_the_partitions_and_write_exactly_the_solar_system_alerts() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let opts = AdminOptions::new();
    for r in admin
        .create_topics(
            &[
                NewTopic::new("alerts-in", 4, TopicReplication::Fixed(1)),
                NewTopic::new("ss-out", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let files = common::alert_files("ztf/alerts/fink-alert-simulator");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    for f in &files {
        let key = f.file_stem().unwrap().to_string_lossy().into_owned();
        let value = std::fs::read(f).unwrap();
        p.send(
            FutureRecord::to("alerts-in").key(&key).payload(&value),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    let pipeline = broker.dir.path().join("ss-node.yaml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let mut a = spawn_node(&pipeline, &bs);
    let mut b = spawn_node(&pipeline, &bs);

    let want = common::solar_system_ids();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "check")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut two_members = false;
    loop {
        let (_, high) = c
            .fetch_watermarks("ss-out", 0, Duration::from_secs(5))
            .unwrap();
        let (state, members) = group_state(broker.addr()).await;
        two_members |= state == "Stable" && members == 2;
        if high as usize >= want.len() && two_members {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes stalled at {high} outputs, group {state} with {members} members"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SIGTERM: both leave the group cleanly and exit 0.
    for child in [&a, &b] {
        assert!(Command::new("kill")
            .arg("-15")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success());
    }
    let (sa, sb) = tokio::task::spawn_blocking(move || (a.wait().unwrap(), b.wait().unwrap()))
        .await
        .unwrap();
    assert_eq!((sa.code(), sb.code()), (Some(0), Some(0)));
    let (state, members) = group_state(broker.addr()).await;
    assert_eq!(
        (state.as_str(), members),
        ("Empty", 0),
        "both nodes left the group"
    );

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ss-out", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
            let json: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert!(json.is_object(), "JSON output");
        }
    }
    let unique: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "no alert written twice");
    assert_eq!(unique, want, "exactly the solar-system alerts");
    // Close the clients while the broker is up (librdkafka waits for it on close).
    drop((c, p, admin));
    broker.stop().await;
}
