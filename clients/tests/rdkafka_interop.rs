//! Cross-checks with librdkafka (the `rdkafka` crate) against Starlog:
//! what this client produces librdkafka reads back identically, and the
//! other way round — keys, headers, timestamps, null values, every codec —
//! and both clients put the same keys on the same partitions.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, TestBroker};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig as RdConfig;
use starlog_clients::admin::NewTopic;
use starlog_clients::partitioner::partition_for_key;
use starlog_clients::{
    Admin, Compression, Consumer, Header, Producer, ProducerRecord, TopicPartition,
};

/// One record as both sides see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn sample(i: usize) -> Rec {
    Rec {
        key: (!i.is_multiple_of(4)).then(|| format!("key-{i}").into_bytes()),
        value: (!i.is_multiple_of(6)).then(|| format!("value-{i}|").repeat(1 + i % 9).into_bytes()),
        headers: if i.is_multiple_of(3) {
            vec![]
        } else {
            vec![
                ("seq".into(), Some(i.to_string().into_bytes())),
                ("nil".into(), None),
            ]
        },
        timestamp: 1_700_000_000_000 + (i as i64) * 7,
    }
}

fn codec_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Reads `n` records of partition 0 with librdkafka.
fn rd_read(bootstrap: &str, topic: &str, n: usize) -> Vec<Rec> {
    let c: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rd-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "librdkafka read {} of {n}",
            out.len()
        );
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("rdkafka message");
        out.push(Rec {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: m.timestamp().to_millis().expect("create time"),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_reads_what_we_produce_with_every_codec() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    for codec in Compression::ALL {
        let topic = format!("ours-{}", codec_name(codec));
        let mut cfg = broker.producer();
        cfg.compression = codec;
        let p = Producer::new(cfg).unwrap();
        let want: Vec<Rec> = (0..80).map(sample).collect();
        for r in &want {
            let mut pr = ProducerRecord::new(&topic)
                .partition(0)
                .timestamp(r.timestamp);
            pr.key = r.key.clone().map(Bytes::from);
            pr.value = r.value.clone().map(Bytes::from);
            pr.headers = r
                .headers
                .iter()
                .map(|(k, v)| Header {
                    key: k.clone(),
                    value: v.clone().map(Bytes::from),
                })
                .collect();
            p.send(pr).await.unwrap();
        }
        p.flush().await.unwrap();
        let (bs2, t2) = (bs.clone(), topic.clone());
        let got = tokio::task::spawn_blocking(move || rd_read(&bs2, &t2, 80))
            .await
            .unwrap();
        assert_eq!(got, want, "{codec:?}");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_read_what_librdkafka_produces_with_every_codec() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    for codec in Compression::ALL {
        let topic = format!("theirs-{}", codec_name(codec));
        let p: FutureProducer = RdConfig::new()
            .set("bootstrap.servers", &bs)
            .set("compression.codec", codec_name(codec))
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("rdkafka producer");
        let want: Vec<Rec> = (0..80).map(sample).collect();
        for r in &want {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(RdHeader {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut fr: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                .partition(0)
                .timestamp(r.timestamp)
                .headers(headers);
            if let Some(k) = &r.key {
                fr = fr.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                fr = fr.payload(v.as_slice());
            }
            bounded(30, p.send(fr, Duration::from_secs(20)))
                .await
                .expect("rdkafka delivery");
        }
        let mut c = Consumer::new(broker.consumer(None)).unwrap();
        c.assign(&[TopicPartition::new(&topic, 0)]).unwrap();
        let mut got = Vec::new();
        bounded(30, async {
            while got.len() < want.len() {
                got.extend(c.poll(Duration::from_millis(100)).await.unwrap());
            }
        })
        .await;
        let got: Vec<Rec> = got
            .into_iter()
            .map(|r| Rec {
                key: r.key.map(|b| b.to_vec()),
                value: r.value.map(|b| b.to_vec()),
                headers: r
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value.map(|v| v.to_vec())))
                    .collect(),
                timestamp: r.timestamp,
            })
            .collect();
        assert_eq!(got, want, "{codec:?}");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_murmur2_and_ours_choose_the_same_partitions() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    Admin::new(broker.client())
        .unwrap()
        .create_topics(&[NewTopic::new("hashed", 13)])
        .await
        .unwrap();
    let p: FutureProducer = RdConfig::new()
        .set("bootstrap.servers", &bs)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("rdkafka producer");
    let ours = Producer::new(broker.producer()).unwrap();
    for i in 0..300 {
        let key = format!("ZTF{:08}-{}", i * 7919, i % 13);
        let delivery = bounded(
            30,
            p.send(
                FutureRecord::to("hashed").key(&key).payload("x"),
                Duration::from_secs(20),
            ),
        )
        .await
        .expect("rdkafka delivery");
        let partition = delivery.partition;
        assert_eq!(
            partition,
            partition_for_key(key.as_bytes(), 13),
            "librdkafka vs partition_for_key for {key}"
        );
        let md = bounded(
            10,
            ours.send(ProducerRecord::new("hashed").key(key.clone()).value("y"))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(
            md.partition, partition,
            "our producer vs librdkafka for {key}"
        );
    }
    broker.stop().await;
}
