//! Producer and consumer throughput of this client next to librdkafka's,
//! against the same in-process Starlog broker in the same run, for 1 KiB
//! and 42 KiB messages (42 KiB is a typical Rubin alert).
//!
//! Both producers: acks=all, idempotent, linger 5 ms, 1 MiB batches, no
//! compression. Both consumers (created once) rewind one partition to
//! offset 0 and read the first N messages of 2N (so no read waits at the
//! log's end). `starlog-clients/raw` is the raw-batch API (what the
//! mirror uses: no record decoding).
//!
//! `cargo bench -p starlog-clients --bench throughput`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig as RdConfig;
use starlog_clients::{Consumer, Producer, ProducerRecord, TopicPartition};

const SIZES: [(usize, usize, &str); 2] = [(1024, 20_000, "1KiB"), (42 * 1024, 1_000, "42KiB")];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ours_producer(broker: &common::TestBroker) -> Producer {
    let mut cfg = broker.producer();
    cfg.linger = Duration::from_millis(5);
    cfg.batch_size = 1024 * 1024;
    cfg.max_request_size = 8 * 1024 * 1024;
    cfg.buffer_memory = 256 * 1024 * 1024;
    Producer::new(cfg).unwrap()
}

fn rd_producer(bootstrap: &str) -> FutureProducer {
    RdConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.kbytes", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let broker = rt.block_on(common::TestBroker::start());
    let bs = broker.bootstrap();
    let ours = rt.block_on(async { ours_producer(&broker) });
    let theirs = {
        let _g = rt.enter();
        rd_producer(&bs)
    };

    let mut g = c.benchmark_group("produce");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (size, n, label) in SIZES {
        let value = Bytes::from(vec![0x5a; size]);
        g.throughput(Throughput::Bytes((size * n) as u64));
        g.bench_with_input(BenchmarkId::new("starlog-clients", label), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut futs = Vec::with_capacity(n);
                        for _ in 0..n {
                            futs.push(
                                ours.send(
                                    ProducerRecord::new(format!("p-ours-{label}"))
                                        .partition(0)
                                        .value(value.clone()),
                                )
                                .await
                                .unwrap(),
                            );
                        }
                        for f in futs {
                            f.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            });
        });
        g.bench_with_input(BenchmarkId::new("librdkafka", label), &n, |b, &n| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let topic = format!("p-rd-{label}");
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut futs = Vec::with_capacity(n);
                        for _ in 0..n {
                            let rec: FutureRecord<'_, (), [u8]> =
                                FutureRecord::to(&topic).partition(0).payload(&value[..]);
                            futs.push(theirs.send_result(rec).map_err(|(e, _)| e).unwrap());
                        }
                        for f in futs {
                            f.await.unwrap().unwrap();
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    g.finish();

    // Consumer: pre-fill one topic per size, then read it whole per iteration.
    let mut g = c.benchmark_group("consume");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (size, n, label) in SIZES {
        let topic = format!("c-{label}");
        let value = Bytes::from(vec![0xa5; size]);
        // Twice what is read: a reader never waits at the log's end (a
        // long poll), so the figures measure reading, not fetch.wait.max.
        rt.block_on(async {
            for _ in 0..2 * n {
                ours.send(
                    ProducerRecord::new(&topic)
                        .partition(0)
                        .value(value.clone()),
                )
                .await
                .unwrap();
            }
            ours.flush().await.unwrap();
        });
        let tp = TopicPartition::new(&topic, 0);
        g.throughput(Throughput::Bytes((size * n) as u64));
        // One consumer per client for the whole group of samples: each
        // iteration rewinds to offset 0 and reads everything again, so the
        // figures are steady-state reading, not client start-up.
        for raw in [false, true] {
            let id = if raw {
                "starlog-clients/raw"
            } else {
                "starlog-clients"
            };
            let mut c = rt.block_on(async {
                let mut cfg = broker.consumer(None);
                cfg.max_partition_fetch_bytes = 8 * 1024 * 1024;
                cfg.fetch_max_wait = Duration::from_millis(100);
                let mut c = Consumer::new(cfg).unwrap();
                c.assign(std::slice::from_ref(&tp)).unwrap();
                c
            });
            g.bench_with_input(BenchmarkId::new(id, label), &n, |b, &n| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            c.seek(&tp, 0).unwrap();
                            let mut got = 0usize;
                            while got < n {
                                if raw {
                                    got += c
                                        .poll_batches(Duration::from_secs(1))
                                        .await
                                        .unwrap()
                                        .iter()
                                        .map(|b| b.record_count as usize)
                                        .sum::<usize>();
                                } else {
                                    got += c.poll(Duration::from_secs(1)).await.unwrap().len();
                                }
                            }
                        }
                        start.elapsed()
                    })
                });
            });
        }
        let rd: BaseConsumer = RdConfig::new()
            .set("bootstrap.servers", &bs)
            .set("group.id", "bench")
            .set("enable.auto.commit", "false")
            .set("max.partition.fetch.bytes", "8388608")
            .set("fetch.wait.max.ms", "100")
            .create()
            .unwrap();
        g.bench_with_input(BenchmarkId::new("librdkafka", label), &n, |b, &n| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
                        .unwrap();
                    rd.assign(&tpl).unwrap();
                    let mut got = 0usize;
                    while got < n {
                        if let Some(m) = rd.poll(Duration::from_secs(1)) {
                            m.unwrap();
                            got += 1;
                        }
                    }
                }
                start.elapsed()
            });
        });
    }
    g.finish();
    rt.block_on(broker.stop());
}

/// Under `cargo test` (no `--bench` argument) the harness's flags, such as
/// `--test-threads`, are not criterion's: instead of measuring, check once,
/// quickly, that both clients move messages through the same broker.
fn smoke() {
    let rt = rt();
    let broker = rt.block_on(common::TestBroker::start());
    let bs = broker.bootstrap();
    let tp = TopicPartition::new("smoke", 0);
    rt.block_on(async {
        let p = ours_producer(&broker);
        for i in 0..200u32 {
            p.send(
                ProducerRecord::new("smoke")
                    .partition(0)
                    .value(i.to_be_bytes().repeat(256)),
            )
            .await
            .unwrap();
        }
        p.flush().await.unwrap();
        let mut c = Consumer::new(broker.consumer(None)).unwrap();
        c.assign(std::slice::from_ref(&tp)).unwrap();
        let mut got = 0;
        while got < 200 {
            got += c.poll(Duration::from_secs(1)).await.unwrap().len();
        }
        assert_eq!(got, 200);
    });
    let rd: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "smoke")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("smoke", 0, Offset::Beginning)
        .unwrap();
    rd.assign(&tpl).unwrap();
    let mut got = 0;
    let start = Instant::now();
    while got < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "librdkafka read {got} of 200"
        );
        if let Some(m) = rd.poll(Duration::from_millis(200)) {
            assert_eq!(m.unwrap().payload().map(<[u8]>::len), Some(1024));
            got += 1;
        }
    }
    drop(rd);
    rt.block_on(broker.stop());
}

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    } else {
        smoke();
    }
}
