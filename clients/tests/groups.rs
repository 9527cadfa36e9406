//! Consumer groups against Starlog: range and cooperative-sticky members
//! share partitions without overlap, commits (sync and async) survive a new
//! member, and a broker restart loses nothing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bounded, TestBroker};
use starlog_clients::admin::NewTopic;
use starlog_clients::consumer::AssignorKind;
use starlog_clients::{Admin, Consumer, ConsumerRecord, Producer, ProducerRecord, TopicPartition};

async fn setup(broker: &TestBroker, topic: &str, partitions: i32, records: usize) {
    Admin::new(broker.client())
        .unwrap()
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .unwrap();
    let p = Producer::new(broker.producer()).unwrap();
    for i in 0..records {
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

fn member(broker: &TestBroker, group: &str, assignor: AssignorKind) -> Consumer {
    let mut cfg = broker.consumer(Some(group));
    cfg.assignors = vec![assignor];
    cfg.enable_auto_commit = false;
    Consumer::new(cfg).unwrap()
}

/// A member polling on its own task (as a real member does: a rebalance
/// waits for every member to rejoin from its own poll loop).
/// Assignment, records consumed, smallest assignment size seen.
type MemberState = Arc<Mutex<(Vec<TopicPartition>, Vec<ConsumerRecord>, usize)>>;

struct Running {
    stop: Arc<AtomicBool>,
    state: MemberState,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Running {
    fn start(mut c: Consumer) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new((Vec::new(), Vec::new(), usize::MAX)));
        let (s2, st2) = (Arc::clone(&stop), Arc::clone(&state));
        let task = tokio::spawn(async move {
            while !s2.load(Ordering::Acquire) {
                let recs = c.poll(Duration::from_millis(100)).await.unwrap();
                let mut st = st2.lock().unwrap();
                st.0 = c.assignment();
                st.2 = st.2.min(st.0.len());
                st.1.extend(recs);
            }
            c
        });
        Self { stop, state, task }
    }

    fn assignment(&self) -> BTreeSet<TopicPartition> {
        self.state.lock().unwrap().0.iter().cloned().collect()
    }

    fn records(&self) -> Vec<ConsumerRecord> {
        self.state.lock().unwrap().1.clone()
    }

    /// Smallest assignment size seen since `reset_min`.
    fn min_assigned(&self) -> usize {
        self.state.lock().unwrap().2
    }

    fn reset_min(&self) {
        let mut st = self.state.lock().unwrap();
        st.2 = st.0.len();
    }

    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::Release);
        bounded(30, self.task).await.unwrap()
    }
}

/// Waits until the members' assignments are disjoint, non-empty and cover
/// `partitions`, for several checks in a row.
async fn settle(members: &[&Running], partitions: usize) {
    bounded(60, async {
        let mut stable_rounds = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sets: Vec<BTreeSet<TopicPartition>> =
                members.iter().map(|m| m.assignment()).collect();
            let total: usize = sets.iter().map(BTreeSet::len).sum();
            let union: BTreeSet<&TopicPartition> = sets.iter().flatten().collect();
            let ok = total == partitions
                && union.len() == partitions
                && sets.iter().all(|s| !s.is_empty());
            stable_rounds = if ok { stable_rounds + 1 } else { 0 };
            if stable_rounds >= 10 {
                break;
            }
        }
    })
    .await;
}

async fn group_shares_partitions(assignor: AssignorKind, topic: &str) {
    let broker = TestBroker::start().await;
    setup(&broker, topic, 4, 200).await;
    let group = format!("g-{topic}");
    let mut a = member(&broker, &group, assignor);
    a.subscribe(&[topic]).unwrap();
    let a = Running::start(a);
    bounded(30, async {
        while a.assignment().len() < 4 || a.records().len() < 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let mut b = member(&broker, &group, assignor);
    b.subscribe(&[topic]).unwrap();
    let b = Running::start(b);
    settle(&[&a, &b], 4).await;
    // New records are consumed by whichever member owns their partition, once.
    let p = Producer::new(broker.producer()).unwrap();
    for i in 200..400 {
        p.send(
            ProducerRecord::new(topic)
                .key(format!("k{i}"))
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    bounded(30, async {
        loop {
            let all: HashSet<(i32, i64)> = a
                .records()
                .iter()
                .chain(b.records().iter())
                .map(|r| (r.partition, r.offset))
                .collect();
            if all.len() >= 400 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (ra, rb) = (a.records(), b.records());
    let late_a: HashSet<(i32, i64)> = ra
        .iter()
        .filter(|r| r.offset >= 50)
        .map(|r| (r.partition, r.offset))
        .collect();
    let (sa, sb) = (a.assignment(), b.assignment());
    for r in rb.iter().filter(|r| {
        String::from_utf8_lossy(r.value.as_ref().unwrap())
            .parse::<i32>()
            .unwrap()
            >= 200
    }) {
        assert!(
            sb.contains(&TopicPartition::new(topic, r.partition)),
            "b read only its own partitions"
        );
        assert!(
            !late_a.contains(&(r.partition, r.offset))
                || !sa.contains(&TopicPartition::new(topic, r.partition))
        );
    }
    let admin = Admin::new(broker.client()).unwrap();
    let desc = admin.describe_groups(&[&group]).await.unwrap();
    assert_eq!(desc[0].members.len(), 2);
    assert_eq!(desc[0].protocol, assignor.name());
    let assigned: BTreeSet<TopicPartition> = desc[0]
        .members
        .iter()
        .flat_map(|m| m.assignment.clone())
        .collect();
    assert_eq!(assigned.len(), 4, "describe shows the decoded assignment");
    let a = a.stop().await;
    let b = b.stop().await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    let desc = admin.describe_groups(&[&group]).await.unwrap();
    assert!(desc[0].members.is_empty(), "both left: {desc:?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_members_split_partitions() {
    group_shares_partitions(AssignorKind::Range, "ranged").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_split_partitions() {
    group_shares_partitions(AssignorKind::CooperativeSticky, "coop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_member_keeps_its_partitions_while_another_joins() {
    let broker = TestBroker::start().await;
    setup(&broker, "keep", 4, 0).await;
    let mut a = member(&broker, "keepers", AssignorKind::CooperativeSticky);
    a.subscribe(&["keep"]).unwrap();
    let a = Running::start(a);
    bounded(30, async {
        while a.assignment().len() < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let before = a.assignment();
    a.reset_min();
    let mut b = member(&broker, "keepers", AssignorKind::CooperativeSticky);
    b.subscribe(&["keep"]).unwrap();
    let b = Running::start(b);
    settle(&[&a, &b], 4).await;
    let after = a.assignment();
    assert_eq!(after.len(), 2);
    assert!(after.is_subset(&before), "a kept part of what it owned");
    assert_eq!(
        a.min_assigned(),
        2,
        "a never dropped below its share (no stop-the-world revoke)"
    );
    assert!(after.is_disjoint(&b.assignment()));
    a.stop().await;
    b.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_sync_and_async_are_where_a_new_member_resumes() {
    let broker = TestBroker::start().await;
    setup(&broker, "resume", 1, 30).await;
    let tp = TopicPartition::new("resume", 0);
    let mut a = member(&broker, "resumers", AssignorKind::Range);
    a.subscribe(&["resume"]).unwrap();
    let mut got = Vec::new();
    bounded(30, async {
        while got.len() < 30 {
            got.extend(a.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    a.seek(&tp, 10).unwrap();
    a.commit_sync().await.unwrap();
    assert_eq!(
        a.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        10
    );
    a.seek(&tp, 20).unwrap();
    a.commit_async().unwrap().wait().await.unwrap();
    assert_eq!(
        a.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        20
    );
    a.close().await.unwrap();

    let mut b = member(&broker, "resumers", AssignorKind::Range);
    b.subscribe(&["resume"]).unwrap();
    let mut again = Vec::new();
    bounded(30, async {
        while again.len() < 10 {
            again.extend(b.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    assert_eq!(
        again.first().map(|r| r.offset),
        Some(20),
        "resumes at the committed offset"
    );
    assert_eq!(again.len(), 10);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing() {
    let mut broker = TestBroker::start().await;
    setup(&broker, "restart", 2, 100).await;
    let mut c = member(&broker, "restarters", AssignorKind::Range);
    c.subscribe(&["restart"]).unwrap();
    let mut got: Vec<ConsumerRecord> = Vec::new();
    bounded(30, async {
        while got.len() < 100 {
            got.extend(c.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    c.commit_sync().await.unwrap();
    broker.restart().await;
    // Produce more after the restart with a fresh producer; the consumer
    // reconnects through metadata refresh and reads on.
    let p = Producer::new(broker.producer()).unwrap();
    for i in 100..200 {
        p.send(
            ProducerRecord::new("restart")
                .key(format!("k{i}"))
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    bounded(60, async {
        loop {
            let values: HashSet<String> = got
                .iter()
                .map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned())
                .collect();
            if values.len() >= 200 {
                break;
            }
            match c.poll(Duration::from_millis(200)).await {
                Ok(v) => got.extend(v),
                Err(e) => assert!(
                    e.is_retriable(),
                    "only retriable errors while the broker restarts: {e}"
                ),
            }
        }
    })
    .await;
    let values: HashSet<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned())
        .collect();
    assert_eq!(
        values,
        (0..200).map(|i| i.to_string()).collect::<HashSet<_>>()
    );
    broker.stop().await;
}
