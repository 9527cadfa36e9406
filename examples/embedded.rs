//! An embedded Starlog broker: started in this process with the builder of
//! `starlog_broker::Embedded`, on 127.0.0.1 with any free ports and a
//! temporary data directory; one record is produced and fetched back with
//! the `starlog-clients` producer and consumer, then the broker shuts down.
//!
//! Run it with `cargo run -p starlog-broker --example embedded`. The
//! broker's test `tests/embedded_example.rs` runs the same [`run`], and the
//! test kit (`starlog-testkit`'s `TestBroker`) starts its brokers with the
//! same builder.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use starlog_broker::Embedded;
use starlog_clients::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

/// What one run saw.
#[derive(Debug)]
pub struct Outcome {
    /// The Kafka listener's bound address.
    pub kafka_addr: SocketAddr,
    /// The HTTP listener's bound address (`/metrics`, the registry).
    pub http_addr: Option<SocketAddr>,
    /// The offset the record was written at.
    pub offset: i64,
    /// The value fetched back.
    pub fetched: Option<bytes::Bytes>,
}

/// The value the example produces.
pub const VALUE: &str = "hello from an embedded broker";

/// Starts a broker, produces one record, fetches it back, shuts down.
pub async fn run() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("temporary data directory")?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let broker = Embedded::builder()
        .data_dir(dir.path().join("data"))
        .listen(loopback)
        .http_listen(loopback)
        .start()
        .await?;
    println!("kafka listener: {}", broker.kafka_addr());
    if let Some(http) = broker.http_addr() {
        println!("http listener:  http://{http}/metrics");
    }

    let producer = Producer::new(ProducerConfig::new(&broker.bootstrap()))?;
    let delivered = producer
        .send(ProducerRecord::new("greetings").partition(0).value(VALUE))
        .await?
        .await?;
    producer.close().await?;
    println!("produced at offset {}", delivered.offset);

    let mut consumer = Consumer::new(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::new(&broker.bootstrap(), None)
    })?;
    consumer.assign(&[TopicPartition::new("greetings", 0)])?;
    let fetched = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(r) = consumer
                .poll(Duration::from_millis(200))
                .await?
                .into_iter()
                .next()
            {
                return anyhow::Ok(r);
            }
        }
    })
    .await
    .context("no record fetched within 30 s")??;
    println!(
        "fetched offset {}: {:?}",
        fetched.offset,
        fetched.value.as_deref().map(String::from_utf8_lossy)
    );
    consumer.close().await?;

    let outcome = Outcome {
        kafka_addr: broker.kafka_addr(),
        http_addr: broker.http_addr(),
        offset: delivered.offset,
        fetched: fetched.value,
    };
    broker.shutdown().await;
    println!("shut down");
    Ok(outcome)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run().await.map(|_| ())
}
