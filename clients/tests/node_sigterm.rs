//! SIGTERM makes a processing node commit and leave its group. In its own
//! test binary: the signal goes to this whole process, whose SIGTERM
//! handler (installed by `shutdown_signal`) turns it into a clean stop.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, TestBroker};
use futures::future::BoxFuture;
use futures::FutureExt;
use starlog_clients::node::{shutdown_signal, ChainError, NodeRunner, RecordChain};
use starlog_clients::{Admin, ConsumerRecord, Producer, ProducerRecord, TopicPartition};

struct Count(Arc<AtomicUsize>);

impl RecordChain for Count {
    fn process<'a>(
        &'a mut self,
        records: &'a [ConsumerRecord],
    ) -> BoxFuture<'a, Result<(), ChainError>> {
        self.0.fetch_add(records.len(), Ordering::SeqCst);
        async { Ok(()) }.boxed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_group_cleanly() {
    let broker = TestBroker::start().await;
    let p = Producer::new(broker.producer()).unwrap();
    for i in 0..40 {
        p.send(
            ProducerRecord::new("term")
                .partition(0)
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let runner = NodeRunner::new(broker.consumer(Some("term-group")), &["term"]).unwrap();
    let mut chain = Count(Arc::clone(&seen));
    let task = tokio::spawn(async move { runner.run(&mut chain, shutdown_signal()).await });
    bounded(30, async {
        while seen.load(Ordering::SeqCst) < 40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The handler is installed (the runner is past its first poll).
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let stats = bounded(30, task).await.unwrap().unwrap();
    assert_eq!(stats.records, 40);
    let admin = Admin::new(broker.client()).unwrap();
    let tp = TopicPartition::new("term", 0);
    assert_eq!(
        admin
            .group_offsets("term-group", std::slice::from_ref(&tp))
            .await
            .unwrap()[&tp],
        40
    );
    let desc = admin.describe_groups(&["term-group"]).await.unwrap();
    assert!(desc[0].members.is_empty(), "left the group: {desc:?}");
    broker.stop().await;
}
