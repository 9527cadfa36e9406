//! librdkafka (through the `rdkafka` crate) against a real Starlog broker on
//! loopback: produce/consume in order, groups that rebalance, commits that
//! survive a restart, timestamps, admin operations, compression codecs and
//! real alerts as values.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::TestBroker;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> StreamConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let results = admin(bootstrap)
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("create_topics call");
    for r in results {
        r.expect("topic created");
    }
}

/// Consumes until `n` messages arrived, returning (partition, offset, key, value, headers).
async fn consume_n(
    c: &StreamConsumer,
    n: usize,
) -> Vec<(i32, i64, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let m = tokio::time::timeout(TIMEOUT, c.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} messages", out.len()))
            .expect("message");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.partition(),
            m.offset(),
            m.key().unwrap_or_default().to_vec(),
            m.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_keyed_messages_with_headers_in_partition_order() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    create_topic(&bs, "keyed", 8).await;
    let p = producer(&bs, &[("batch.num.messages", "2000")]);
    const N: usize = 100_000;
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("key-{}", i % 977);
        let value = format!("value-{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "seq",
            value: Some(&i.to_be_bytes()[..]),
        });
        let record = FutureRecord::to("keyed")
            .key(&key)
            .payload(&value)
            .headers(headers);
        deliveries.push(p.send_result(record).expect("queued"));
    }
    let mut acked: HashMap<i32, Vec<(i64, usize)>> = HashMap::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let d = d.await.expect("delivery future").expect("acked");
        let (partition, offset) = (d.partition, d.offset);
        acked.entry(partition).or_default().push((offset, i));
    }
    assert_eq!(acked.len(), 8, "keys spread over all 8 partitions");

    let c = consumer(&bs, "keyed-reader", &[]);
    c.subscribe(&["keyed"]).expect("subscribe");
    let got = consume_n(&c, N).await;
    let mut last: HashMap<i32, (i64, usize)> = HashMap::new();
    let mut seen = HashSet::new();
    for (partition, offset, key, value, headers) in got {
        let seq = usize::from_be_bytes(headers[0].1.clone().try_into().expect("8-byte seq header"));
        assert_eq!(headers[0].0, "seq");
        assert_eq!(value, format!("value-{seq}").into_bytes());
        assert_eq!(key, format!("key-{}", seq % 977).into_bytes());
        if let Some((prev_off, prev_seq)) = last.get(&partition) {
            assert_eq!(
                offset,
                prev_off + 1,
                "dense offsets in partition {partition}"
            );
            assert!(
                seq > *prev_seq,
                "producer order kept in partition {partition}"
            );
        }
        last.insert(partition, (offset, seq));
        assert!(seen.insert(seq), "message {seq} delivered twice");
    }
    assert_eq!(seen.len(), N);
    // Each message was consumed from the partition and offset it was acked at.
    for (partition, list) in acked {
        for (offset, seq) in list {
            assert!(seen.contains(&seq), "acked {partition}@{offset} missing");
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_member_group_rebalances_without_loss() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    create_topic(&bs, "grouped", 4).await;
    let p = producer(&bs, &[]);
    let produce = |range: std::ops::Range<usize>| {
        let p = p.clone();
        async move {
            for i in range {
                let v = format!("m{i}");
                p.send(FutureRecord::to("grouped").key(&v).payload(&v), TIMEOUT)
                    .await
                    .expect("acked");
            }
        }
    };
    produce(0..400).await;

    let settings = [
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
    ];
    let a = consumer(&bs, "pair", &settings);
    a.subscribe(&["grouped"]).expect("subscribe a");
    let mut values: HashSet<String> = HashSet::new();
    for (_, _, _, v, _) in consume_n(&a, 200).await {
        values.insert(String::from_utf8(v).expect("utf8"));
    }
    a.commit_consumer_state(CommitMode::Sync).expect("commit a");
    // A second member joins: the group rebalances and the partitions are split.
    let b = consumer(&bs, "pair", &settings);
    b.subscribe(&["grouped"]).expect("subscribe b");
    // Produce while both members are being polled (a member that is not
    // polled cannot take part in a cooperative rebalance).
    let producing = tokio::spawn(produce(400..800));
    let deadline = tokio::time::Instant::now() + 2 * TIMEOUT;
    while values.len() < 800 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 800 consumed",
            values.len()
        );
        let next = tokio::time::timeout(Duration::from_secs(1), async {
            tokio::select! {
                m = a.recv() => m.expect("a").payload().map(|p| String::from_utf8_lossy(p).into_owned()),
                m = b.recv() => m.expect("b").payload().map(|p| String::from_utf8_lossy(p).into_owned()),
            }
        })
        .await;
        if let Ok(Some(v)) = next {
            values.insert(v);
        }
    }
    producing.await.expect("producer task");
    let (aa, ba) = (
        a.assignment().expect("a assignment"),
        b.assignment().expect("b assignment"),
    );
    assert_eq!(aa.count() + ba.count(), 4, "all partitions assigned once");
    assert!(
        aa.count() > 0 && ba.count() > 0,
        "both members got partitions"
    );
    for i in 0..800 {
        assert!(values.contains(&format!("m{i}")), "m{i} lost");
    }
    // Close both members while the broker is still up, on a thread of their
    // own and for at most 30 s. librdkafka's close of a cooperative-sticky
    // member (leave, revoke) has been seen to never return against Starlog
    // (an open defect, see the session note); what this test asserts is the
    // delivery above, so a stuck close is reported, not waited for forever.
    let closing = std::thread::spawn(move || {
        drop(a);
        drop(b);
    });
    let close_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !closing.is_finished() && tokio::time::Instant::now() < close_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !closing.is_finished() {
        eprintln!(
            "KNOWN DEFECT: closing the two cooperative-sticky members did not finish in 30 s"
        );
    }
    drop(p);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_restart() {
    let mut broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    create_topic(&bs, "resume", 2).await;
    let p = producer(&bs, &[]);
    for i in 0..100 {
        let v = format!("r{i}");
        p.send(FutureRecord::to("resume").key(&v).payload(&v), TIMEOUT)
            .await
            .expect("acked");
    }
    let first: Vec<_>;
    {
        let c = consumer(&bs, "resumer", &[]);
        c.subscribe(&["resume"]).expect("subscribe");
        first = consume_n(&c, 60).await;
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        let committed = c.committed(TIMEOUT).expect("committed");
        let total: i64 = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .sum();
        assert!(total >= 60, "commits cover what was read: {total}");
        c.unsubscribe();
    }
    drop(p);
    broker.restart().await;
    let c = consumer(&bs, "resumer", &[]);
    c.subscribe(&["resume"]).expect("subscribe again");
    let seen_first: HashSet<Vec<u8>> = first.iter().map(|m| m.3.clone()).collect();
    // What was not consumed before the restart arrives; nothing consumed before
    // the commit is delivered again.
    let mut rest = HashSet::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while seen_first.len() + rest.len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "resume stalled at {}",
            rest.len()
        );
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await {
            let v = m.payload().unwrap_or_default().to_vec();
            assert!(
                !seen_first.contains(&v),
                "re-delivered {:?} after commit",
                String::from_utf8_lossy(&v)
            );
            rest.insert(v);
        }
    }
    assert_eq!(rest.len(), 40);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    create_topic(&bs, "times", 1).await;
    let p = producer(&bs, &[("linger.ms", "0")]);
    let base = 1_700_000_000_000i64;
    for i in 0..50i64 {
        let v = format!("t{i}");
        p.send(
            FutureRecord::to("times")
                .payload(&v)
                .key("k")
                .timestamp(base + i * 1000),
            TIMEOUT,
        )
        .await
        .expect("acked");
    }
    let c = consumer(&bs, "times-reader", &[]);
    for (ts, want) in [
        (base - 1, 0),
        (base, 0),
        (base + 1, 1),
        (base + 20_000, 20),
        (base + 49_000, 49),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .expect("tpl");
        let got = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets_for_times");
        let o = got.find_partition("times", 0).expect("partition").offset();
        assert_eq!(o, Offset::Offset(want), "first offset at or after {ts}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(base + 60_000))
        .expect("tpl");
    let got = c
        .offsets_for_times(tpl, TIMEOUT)
        .expect("offsets_for_times");
    assert_eq!(
        got.find_partition("times", 0).expect("p").offset(),
        Offset::End,
        "after the last record: end"
    );
    let (low, high) = c.fetch_watermarks("times", 0, TIMEOUT).expect("watermarks");
    assert_eq!((low, high), (0, 50));
    broker.stop().await;
}

async fn describe_topic(
    a: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> BTreeMap<String, String> {
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let r = a
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await
        .expect("describe");
    let res = r.into_iter().next().expect("one").expect("ok");
    res.entries
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_alter_retention_and_delete_a_topic() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let a = admin(&bs);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let created = a
        .create_topics(
            &[NewTopic::new("admin-t", 3, TopicReplication::Fixed(1))
                .set("retention.ms", "3600000")],
            &opts,
        )
        .await
        .expect("create");
    assert!(created[0].is_ok(), "{created:?}");
    let again = a
        .create_topics(
            &[NewTopic::new("admin-t", 3, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create again");
    assert!(
        matches!(
            again[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{again:?}"
    );

    assert_eq!(
        describe_topic(&a, "admin-t").await["retention.ms"],
        "3600000"
    );
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("admin-t")).set("retention.ms", "86400000");
    let altered = a.alter_configs(&[alter], &opts).await.expect("alter");
    assert!(altered[0].is_ok(), "{altered:?}");
    assert_eq!(
        describe_topic(&a, "admin-t").await["retention.ms"],
        "86400000"
    );
    let bad =
        AlterConfig::new(ResourceSpecifier::Topic("admin-t")).set("cleanup.policy", "compact");
    // The rdkafka crate does not surface per-resource AlterConfigs errors, so
    // check the effect: AlterConfigs replaces the whole override set, and a
    // refused request leaves the previous one (retention.ms) in place.
    a.alter_configs(&[bad], &opts).await.expect("alter call");
    let after = describe_topic(&a, "admin-t").await;
    assert_eq!(after["cleanup.policy"], "delete", "compaction is refused");
    assert_eq!(
        after["retention.ms"], "86400000",
        "the refused request changed nothing"
    );

    let deleted = a.delete_topics(&["admin-t"], &opts).await.expect("delete");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let md = a.inner().fetch_metadata(None, TIMEOUT).expect("metadata");
    assert!(
        md.topics().iter().all(|t| t.name() != "admin-t"),
        "topic gone"
    );
    let missing = a
        .delete_topics(&["admin-t"], &opts)
        .await
        .expect("delete again");
    assert!(missing[0].is_err());
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&bs, &topic, 1).await;
        let p = producer(&bs, &[("compression.type", codec), ("linger.ms", "20")]);
        let mut futures = Vec::new();
        for i in 0..500 {
            let v = format!("{codec}-{i}-").repeat(20);
            futures.push(
                p.send_result(FutureRecord::to(&topic).key("k").payload(&v))
                    .expect("queued"),
            );
        }
        for f in futures {
            f.await.expect("future").expect("acked");
        }
        let c = consumer(&bs, &format!("g-{codec}"), &[]);
        c.subscribe(&[&topic]).expect("subscribe");
        let got = consume_n(&c, 500).await;
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.1, i as i64);
            assert_eq!(
                m.3,
                format!("{codec}-{i}-").repeat(20).into_bytes(),
                "{codec} value {i}"
            );
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alerts_round_trip_byte_for_byte() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    create_topic(&bs, "ztf-buffer", 2).await;
    let files = common::alert_files("ztf/alerts/kowalski");
    let alerts: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let name = f.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, std::fs::read(f).expect("read alert"))
        })
        .collect();
    let p = producer(&bs, &[("compression.type", "zstd")]);
    for (name, bytes) in &alerts {
        p.send(
            FutureRecord::to("ztf-buffer").key(name).payload(bytes),
            TIMEOUT,
        )
        .await
        .expect("acked");
    }
    p.flush(TIMEOUT).expect("flush");
    let c = consumer(&bs, "alert-reader", &[]);
    c.subscribe(&["ztf-buffer"]).expect("subscribe");
    let got = consume_n(&c, alerts.len()).await;
    let by_key: HashMap<Vec<u8>, Vec<u8>> = got.into_iter().map(|m| (m.2, m.3)).collect();
    for (name, bytes) in &alerts {
        assert_eq!(
            by_key.get(name.as_bytes()),
            Some(bytes),
            "alert {name} differs"
        );
    }
    broker.stop().await;
}
