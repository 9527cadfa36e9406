//! The producer and consumer against a real Starlog broker: every codec,
//! keys/headers/timestamps/null values, the Java partitioner, acks levels,
//! idempotent batches, the raw-batch API, seek/pause/resume and
//! auto.offset.reset.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use common::{alerts, bounded, TestBroker};
use starlog_clients::admin::NewTopic;
use starlog_clients::partitioner::partition_for_key;
use starlog_clients::records::decode::BatchHeader;
use starlog_clients::{
    Acks, Admin, ClientError, Compression, Consumer, ConsumerRecord, OffsetReset, Producer,
    ProducerRecord, TopicPartition,
};

async fn create(broker: &TestBroker, topic: &str, partitions: i32) {
    Admin::new(broker.client())
        .unwrap()
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .unwrap();
}

/// Reads `tps` from the start until `n` records arrived.
async fn read_n(broker: &TestBroker, tps: &[TopicPartition], n: usize) -> Vec<ConsumerRecord> {
    let mut c = Consumer::new(broker.consumer(None)).unwrap();
    c.assign(tps).unwrap();
    let mut out = Vec::new();
    bounded(30, async {
        while out.len() < n {
            out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
        }
    })
    .await;
    out
}

fn record(topic: &str, i: usize) -> ProducerRecord {
    let mut r = ProducerRecord::new(topic)
        .partition(0)
        .timestamp(1_600_000_000_000 + i as i64);
    if !i.is_multiple_of(3) {
        r = r.key(format!("key-{i}"));
    }
    if !i.is_multiple_of(5) {
        r = r.value(format!("value-{i}-").repeat(i % 7 + 1));
    }
    if i.is_multiple_of(2) {
        r = r.header("seq", i.to_string()).header("empty", Bytes::new());
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_keys_headers_timestamps_and_nulls() {
    let broker = TestBroker::start().await;
    for codec in Compression::ALL {
        let topic = format!("codec-{codec:?}").to_lowercase();
        let mut cfg = broker.producer();
        cfg.compression = codec;
        let p = Producer::new(cfg).unwrap();
        let mut futs = Vec::new();
        for i in 0..60 {
            futs.push(p.send(record(&topic, i)).await.unwrap());
        }
        p.flush().await.unwrap();
        let mut offsets = Vec::new();
        for f in futs {
            let md = bounded(10, f).await.unwrap();
            assert_eq!(md.partition, 0);
            offsets.push(md.offset);
        }
        assert_eq!(
            offsets,
            (0..60).collect::<Vec<i64>>(),
            "{codec:?}: consecutive offsets in send order"
        );
        let got = read_n(&broker, &[TopicPartition::new(&topic, 0)], 60).await;
        assert_eq!(got.len(), 60);
        for (i, r) in got.iter().enumerate() {
            let want = record(&topic, i);
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key, want.key, "{codec:?} key {i}");
            assert_eq!(r.value, want.value, "{codec:?} value {i}");
            assert_eq!(r.headers, want.headers, "{codec:?} headers {i}");
            assert_eq!(r.timestamp, 1_600_000_000_000 + i as i64);
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_the_java_partitioner_puts_them() {
    let broker = TestBroker::start().await;
    create(&broker, "keyed", 7).await;
    let p = Producer::new(broker.producer()).unwrap();
    let mut futs = Vec::new();
    for i in 0..200 {
        let key = format!("alert-{i}");
        futs.push((
            key.clone(),
            p.send(ProducerRecord::new("keyed").key(key).value("v"))
                .await
                .unwrap(),
        ));
    }
    let mut used = HashSet::new();
    for (key, f) in futs {
        let md = bounded(10, f).await.unwrap();
        assert_eq!(md.partition, partition_for_key(key.as_bytes(), 7), "{key}");
        used.insert(md.partition);
    }
    assert_eq!(used.len(), 7);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_records_stick_to_a_partition_per_batch() {
    let broker = TestBroker::start().await;
    create(&broker, "sticky", 4).await;
    let mut cfg = broker.producer();
    cfg.batch_size = 1000;
    cfg.linger = Duration::from_secs(5);
    let p = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    for _ in 0..40 {
        futs.push(
            p.send(ProducerRecord::new("sticky").value(vec![7u8; 200]))
                .await
                .unwrap(),
        );
    }
    p.flush().await.unwrap();
    let mut parts = Vec::new();
    for f in futs {
        parts.push(bounded(10, f).await.unwrap().partition);
    }
    // Runs of equal partitions (one per batch of ~4 records), more than one partition used.
    let switches = parts.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(switches >= 3, "moves on after batches: {parts:?}");
    assert!(switches <= 15, "sticks within a batch: {parts:?}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_one_and_all_deliver() {
    let broker = TestBroker::start().await;
    for (acks, name) in [
        (Acks::None, "acks0"),
        (Acks::Leader, "acks1"),
        (Acks::All, "acksall"),
    ] {
        let mut cfg = broker.producer();
        cfg.acks = acks;
        cfg.idempotence = acks == Acks::All;
        let p = Producer::new(cfg).unwrap();
        let mut futs = Vec::new();
        for i in 0..30 {
            futs.push(
                p.send(ProducerRecord::new(name).partition(0).value(format!("{i}")))
                    .await
                    .unwrap(),
            );
        }
        p.flush().await.unwrap();
        for (i, f) in futs.into_iter().enumerate() {
            let md = bounded(10, f).await.unwrap();
            if acks == Acks::None {
                assert_eq!(md.offset, -1, "acks=0 has no offset");
            } else {
                assert_eq!(md.offset, i as i64);
            }
        }
        let got = read_n(&broker, &[TopicPartition::new(name, 0)], 30).await;
        let values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_ref().unwrap()).into_owned())
            .collect();
        assert_eq!(
            values,
            (0..30).map(|i| i.to_string()).collect::<Vec<_>>(),
            "{name}"
        );
    }
    let mut bad = broker.producer();
    bad.acks = Acks::Leader;
    assert!(
        matches!(Producer::new(bad), Err(ClientError::Config(_))),
        "idempotence needs acks=all"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_batches_carry_producer_id_and_consecutive_sequences() {
    let broker = TestBroker::start().await;
    let mut cfg = broker.producer();
    cfg.batch_size = 2_000;
    let p = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    for i in 0..100 {
        futs.push(
            p.send(
                ProducerRecord::new("idem")
                    .partition(0)
                    .value(vec![i as u8; 300]),
            )
            .await
            .unwrap(),
        );
    }
    p.flush().await.unwrap();
    for f in futs {
        bounded(10, f).await.unwrap();
    }
    let (pid, epoch) = p.producer_id().expect("InitProducerId done");
    assert!(pid >= 0);
    let mut c = Consumer::new(broker.consumer(None)).unwrap();
    c.assign(&[TopicPartition::new("idem", 0)]).unwrap();
    let mut batches = Vec::new();
    bounded(30, async {
        while batches
            .iter()
            .map(|b: &starlog_clients::RawBatch| b.record_count)
            .sum::<i32>()
            < 100
        {
            batches.extend(c.poll_batches(Duration::from_millis(200)).await.unwrap());
        }
    })
    .await;
    assert!(batches.len() > 1, "several batches");
    let mut next_seq = 0;
    let mut next_offset = 0;
    for b in &batches {
        let h = BatchHeader::parse(&b.bytes).unwrap();
        assert_eq!((h.producer_id, h.producer_epoch), (pid, epoch));
        assert_eq!(
            h.base_sequence, next_seq,
            "sequences continue across batches"
        );
        assert_eq!(b.base_offset, next_offset);
        assert_eq!(b.last_offset, next_offset + i64::from(b.record_count) - 1);
        next_seq += h.record_count;
        next_offset = b.last_offset + 1;
    }
    assert_eq!(c.position(&TopicPartition::new("idem", 0)), Some(100));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alerts_round_trip_byte_for_byte() {
    let broker = TestBroker::start().await;
    let values = alerts("lsst", 20);
    assert_eq!(values.len(), 20, "9 real Rubin alerts and 11 sample alerts");
    let mut cfg = broker.producer();
    cfg.compression = Compression::Zstd;
    cfg.batch_size = 256 * 1024;
    let p = Producer::new(cfg).unwrap();
    for v in &values {
        p.send(ProducerRecord::new("alerts").partition(0).value(v.clone()))
            .await
            .unwrap();
    }
    p.flush().await.unwrap();
    let got = read_n(&broker, &[TopicPartition::new("alerts", 0)], values.len()).await;
    let got: Vec<Bytes> = got.into_iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(got, values);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_pause_resume_and_offset_reset() {
    let broker = TestBroker::start().await;
    create(&broker, "nav", 2).await;
    let p = Producer::new(broker.producer()).unwrap();
    for i in 0..20 {
        p.send(
            ProducerRecord::new("nav")
                .partition(0)
                .value(format!("{i}")),
        )
        .await
        .unwrap();
        p.send(
            ProducerRecord::new("nav")
                .partition(1)
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    let t0 = TopicPartition::new("nav", 0);
    let t1 = TopicPartition::new("nav", 1);

    let mut c = Consumer::new(broker.consumer(None)).unwrap();
    c.assign(&[t0.clone(), t1.clone()]).unwrap();
    c.pause(std::slice::from_ref(&t1));
    let mut got = Vec::new();
    bounded(20, async {
        while got.len() < 20 {
            got.extend(c.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    assert!(
        got.iter().all(|r| r.partition == 0),
        "paused partition returns nothing"
    );
    assert_eq!(c.paused(), vec![t1.clone()]);
    // Nothing more while paused.
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume(std::slice::from_ref(&t1));
    c.seek(&t0, 15).unwrap();
    let mut got = Vec::new();
    bounded(20, async {
        while got.len() < 25 {
            got.extend(c.poll(Duration::from_millis(100)).await.unwrap());
        }
    })
    .await;
    let mut by_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &got {
        by_part.entry(r.partition).or_default().push(r.offset);
    }
    assert_eq!(
        by_part[&0],
        (15..20).collect::<Vec<_>>(),
        "seek moved partition 0"
    );
    assert_eq!(
        by_part[&1],
        (0..20).collect::<Vec<_>>(),
        "resumed from its position"
    );
    assert!(c.seek(&TopicPartition::new("other", 0), 1).is_err());

    // latest: only records produced after the position is resolved.
    let mut cfg = broker.consumer(None);
    cfg.auto_offset_reset = OffsetReset::Latest;
    let mut latest = Consumer::new(cfg).unwrap();
    latest.assign(std::slice::from_ref(&t0)).unwrap();
    assert!(latest
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(latest.position(&t0), Some(20));
    p.send(ProducerRecord::new("nav").partition(0).value("new"))
        .await
        .unwrap();
    p.flush().await.unwrap();
    let got = bounded(20, async {
        loop {
            let v = latest.poll(Duration::from_millis(100)).await.unwrap();
            if !v.is_empty() {
                break v;
            }
        }
    })
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, 20);

    // none: an error naming the partition.
    let mut cfg = broker.consumer(Some("no-offsets"));
    cfg.auto_offset_reset = OffsetReset::None;
    let mut none = Consumer::new(cfg).unwrap();
    none.assign(std::slice::from_ref(&t0)).unwrap();
    let e = none.poll(Duration::from_millis(300)).await.unwrap_err();
    assert!(
        matches!(e, ClientError::NoOffset { ref topic, partition: 0 } if topic == "nav"),
        "{e}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_too_large_and_unknown_partition_are_refused() {
    let broker = TestBroker::start().await;
    let mut cfg = broker.producer();
    cfg.max_request_size = 10_000;
    cfg.buffer_memory = 1 << 20;
    let p = Producer::new(cfg).unwrap();
    let e = p
        .send(ProducerRecord::new("big").value(vec![0u8; 20_000]))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::RecordTooLarge { .. }), "{e}");
    create(&broker, "two", 2).await;
    let e = p
        .send(ProducerRecord::new("two").partition(5).value("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::UnknownPartition { partition: 5, .. }),
        "{e}"
    );
    p.close().await.unwrap();
    let e = p
        .send(ProducerRecord::new("two").value("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Closed(_)), "{e}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_the_buffer_and_everything_is_delivered() {
    let broker = TestBroker::start().await;
    let mut cfg = broker.producer();
    cfg.buffer_memory = 64 * 1024;
    cfg.max_request_size = 32 * 1024;
    cfg.batch_size = 16 * 1024;
    let p = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    bounded(60, async {
        for i in 0..2000u32 {
            futs.push(
                p.send(
                    ProducerRecord::new("pressure")
                        .partition(0)
                        .value(i.to_be_bytes().repeat(100)),
                )
                .await
                .unwrap(),
            );
        }
    })
    .await;
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(bounded(30, f).await.unwrap().offset, i as i64);
    }
    broker.stop().await;
}
