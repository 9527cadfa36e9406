//! The admin client against Starlog: topics, configs, groups, offsets.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestBroker;
use kafka_protocol::ResponseError;
use starlog_clients::admin::{AlterOp, ConfigResource, NewTopic};
use starlog_clients::consumer::offsets::{EARLIEST, LATEST};
use starlog_clients::{Admin, ClientError, Consumer, Producer, ProducerRecord, TopicPartition};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_configs_groups_and_offsets() {
    let broker = TestBroker::start().await;
    let admin = Admin::new(broker.client()).unwrap();

    admin
        .create_topics(&[
            NewTopic::new("adm-a", 3).config("retention.ms", "3600000"),
            NewTopic::new("adm-b", 1),
        ])
        .await
        .unwrap();
    let e = admin
        .create_topics(&[NewTopic::new("adm-a", 3)])
        .await
        .unwrap_err();
    assert_eq!(
        e.response_error(),
        Some(ResponseError::TopicAlreadyExists),
        "{e}"
    );
    let topics = admin.list_topics().await.unwrap();
    assert!(
        topics.contains(&"adm-a".to_owned()) && topics.contains(&"adm-b".to_owned()),
        "{topics:?}"
    );
    let d = admin.describe_topics(&["adm-a"]).await.unwrap();
    assert_eq!(d[0].partitions.len(), 3);
    assert!(d[0].partitions.iter().all(|p| p.leader >= 0));

    let topic = ConfigResource::Topic("adm-a".into());
    let cfg = admin
        .describe_configs(&topic, &["retention.ms"])
        .await
        .unwrap();
    assert_eq!(
        cfg.iter()
            .find(|c| c.name == "retention.ms")
            .and_then(|c| c.value.clone())
            .as_deref(),
        Some("3600000")
    );
    admin
        .alter_configs(
            &topic,
            &[AlterOp::Set("retention.ms".into(), "7200000".into())],
        )
        .await
        .unwrap();
    let cfg = admin
        .describe_configs(&topic, &["retention.ms"])
        .await
        .unwrap();
    assert_eq!(cfg[0].value.as_deref(), Some("7200000"));
    let e = admin
        .alter_configs(
            &topic,
            &[AlterOp::Set("cleanup.policy".into(), "compact".into())],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Broker { .. }),
        "refused configs are typed errors: {e}"
    );

    // Offsets.
    let p = Producer::new(broker.producer()).unwrap();
    for i in 0..10 {
        p.send(
            ProducerRecord::new("adm-b")
                .partition(0)
                .value(format!("{i}"))
                .timestamp(1_000 + i),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    let tp = TopicPartition::new("adm-b", 0);
    let o = admin.list_offsets(&[(tp.clone(), EARLIEST)]).await.unwrap();
    assert_eq!(o[&tp], 0);
    assert_eq!(
        admin.list_offsets(&[(tp.clone(), LATEST)]).await.unwrap()[&tp],
        10
    );
    assert_eq!(
        admin.list_offsets(&[(tp.clone(), 1_004)]).await.unwrap()[&tp],
        4,
        "by timestamp"
    );

    // Groups.
    let mut c = Consumer::new(broker.consumer(Some("adm-group"))).unwrap();
    c.subscribe(&["adm-b"]).unwrap();
    let mut n = 0;
    for _ in 0..100 {
        n += c.poll(Duration::from_millis(100)).await.unwrap().len();
        if n >= 10 {
            break;
        }
    }
    assert_eq!(n, 10);
    c.commit_sync().await.unwrap();
    let groups = admin.list_groups().await.unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g.group_id == "adm-group" && g.protocol_type == "consumer"),
        "{groups:?}"
    );
    let d = admin.describe_groups(&["adm-group"]).await.unwrap();
    assert_eq!(d[0].members.len(), 1);
    assert_eq!(d[0].members[0].assignment, vec![tp.clone()]);
    assert_eq!(d[0].members[0].client_id, "clients-test");
    assert_eq!(
        admin
            .group_offsets("adm-group", std::slice::from_ref(&tp))
            .await
            .unwrap()[&tp],
        10
    );
    let e = admin.delete_groups(&["adm-group"]).await.unwrap_err();
    assert_eq!(
        e.response_error(),
        Some(ResponseError::NonEmptyGroup),
        "{e}"
    );
    c.close().await.unwrap();
    admin.delete_groups(&["adm-group"]).await.unwrap();

    admin.delete_topics(&["adm-a"]).await.unwrap();
    let e = admin.describe_topics(&["adm-a"]).await.unwrap_err();
    assert!(matches!(e, ClientError::UnknownTopic { .. }), "{e}");
    let e = admin.delete_topics(&["never-existed"]).await.unwrap_err();
    assert_eq!(
        e.response_error(),
        Some(ResponseError::UnknownTopicOrPartition),
        "{e}"
    );
    broker.stop().await;
}
