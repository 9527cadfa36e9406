//! The processing-node runner seam with a simple in-test chain: two nodes
//! share a group's partitions, every record is processed, offsets are
//! committed only after the chain reported its outputs written, a failing
//! chain commits nothing of its batch, and shutdown leaves the group.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bounded, TestBroker};
use futures::future::BoxFuture;
use futures::FutureExt;
use starlog_clients::admin::NewTopic;
use starlog_clients::node::{ChainError, NodeError, NodeRunner, RecordChain};
use starlog_clients::{Admin, ConsumerRecord, Producer, ProducerRecord, TopicPartition};

/// Writes each record's value to a shared "output" and counts calls.
struct Collect {
    out: Arc<Mutex<Vec<(i32, i64, String)>>>,
    /// Fail when a value equals this.
    poison: Option<String>,
}

impl RecordChain for Collect {
    fn process<'a>(
        &'a mut self,
        records: &'a [ConsumerRecord],
    ) -> BoxFuture<'a, Result<(), ChainError>> {
        async move {
            let mut out = self.out.lock().unwrap();
            for r in records {
                let v =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                if self.poison.as_deref() == Some(v.as_str()) {
                    return Err(ChainError {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        offset: r.offset,
                        reason: "poison record".into(),
                    });
                }
                out.push((r.partition, r.offset, v));
            }
            Ok(())
        }
        .boxed()
    }
}

async fn produce(broker: &TestBroker, topic: &str, partitions: i32, n: usize) {
    Admin::new(broker.client())
        .unwrap()
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .unwrap();
    let p = Producer::new(broker.producer()).unwrap();
    for i in 0..n {
        p.send(
            ProducerRecord::new(topic)
                .key(format!("k{i}"))
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_process_everything_commit_after_the_chain_and_leave_on_shutdown() {
    let broker = TestBroker::start().await;
    produce(&broker, "nodes-in", 4, 300).await;
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..2 {
        let runner = NodeRunner::new(broker.consumer(Some("node-group")), &["nodes-in"]).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let mut chain = Collect {
            out: Arc::clone(&out),
            poison: None,
        };
        handles.push(tokio::spawn(async move {
            runner
                .run(&mut chain, async {
                    let _ = rx.await;
                })
                .await
        }));
    }
    bounded(60, async {
        loop {
            let distinct: HashSet<(i32, i64)> = out
                .lock()
                .unwrap()
                .iter()
                .map(|(p, o, _)| (*p, *o))
                .collect();
            if distinct.len() >= 300 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for s in stops {
        let _ = s.send(());
    }
    let mut total = 0;
    for h in handles {
        let stats = bounded(30, h).await.unwrap().unwrap();
        total += stats.records;
    }
    assert!(total >= 300, "every record given to a chain ({total})");
    let values: HashSet<String> = out
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, v)| v.clone())
        .collect();
    assert_eq!(values.len(), 300);
    let admin = Admin::new(broker.client()).unwrap();
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("nodes-in", p)).collect();
    let committed = admin.group_offsets("node-group", &tps).await.unwrap();
    let ends = admin
        .list_offsets(
            &tps.iter()
                .map(|tp| (tp.clone(), starlog_clients::consumer::offsets::LATEST))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(committed, ends, "everything processed is committed");
    let desc = admin.describe_groups(&["node-group"]).await.unwrap();
    assert!(
        desc[0].members.is_empty(),
        "both nodes left the group: {desc:?}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_chain_commits_nothing_of_its_batch() {
    let broker = TestBroker::start().await;
    produce(&broker, "poisoned", 1, 50).await;
    let out = Arc::new(Mutex::new(Vec::new()));
    let runner = NodeRunner::new(broker.consumer(Some("poison-group")), &["poisoned"]).unwrap();
    let mut chain = Collect {
        out: Arc::clone(&out),
        poison: Some("0".into()),
    };
    let e = bounded(30, runner.run(&mut chain, std::future::pending()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, NodeError::Chain(ChainError { offset: 0, .. })),
        "{e}"
    );
    let admin = Admin::new(broker.client()).unwrap();
    let tp = TopicPartition::new("poisoned", 0);
    let committed = admin
        .group_offsets("poison-group", std::slice::from_ref(&tp))
        .await
        .unwrap();
    assert_eq!(committed[&tp], -1, "nothing committed");
    // A healthy node of the same group then starts from the beginning.
    let runner = NodeRunner::new(broker.consumer(Some("poison-group")), &["poisoned"]).unwrap();
    let out2 = Arc::new(Mutex::new(Vec::new()));
    let mut chain = Collect {
        out: Arc::clone(&out2),
        poison: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runner
            .run(&mut chain, async {
                let _ = rx.await;
            })
            .await
    });
    bounded(30, async {
        while out2.lock().unwrap().len() < 50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let _ = tx.send(());
    bounded(30, task).await.unwrap().unwrap();
    assert_eq!(out2.lock().unwrap()[0].1, 0, "re-delivered from offset 0");
    assert_eq!(
        admin
            .group_offsets("poison-group", std::slice::from_ref(&tp))
            .await
            .unwrap()[&tp],
        50
    );
    broker.stop().await;
}
