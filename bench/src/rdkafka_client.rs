//! The `LoadClient` on librdkafka (the `rdkafka` crate).
//!
//! librdkafka is what most alert consumers use (confluent-kafka-python,
//! kcat, Fink's and ANTARES's tooling), so it is the fair default client for
//! comparing brokers. Producers are `ThreadedProducer`s whose delivery
//! callback timestamps each acknowledgement on librdkafka's own thread and
//! hands it to the runner over a channel; consumers are `BaseConsumer`s
//! polled from one thread per group.
//!
//! Defaults beyond librdkafka's own: `linger.ms=5` (a realistic alert
//! producer batches a little), `auto.offset.reset=earliest` (a fresh group
//! must see the run's first message), `enable.partition.eof=false`. Anything
//! else goes through `ProducerSettings::extra` / `ConsumerSettings::extra`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::chain::SOURCE_HEADER;
use crate::client::{
    Acks, ConsumerSettings, Delivery, LoadClient, LoadConsumer, LoadProducer, OutRecord,
    ProducerSettings, Received, SendOutcome,
};
use crate::error::BenchError;
use crate::stamp::{SENT_HEADER, SEQ_HEADER};

/// librdkafka clients for one bootstrap address.
#[derive(Clone)]
pub struct RdKafkaClient {
    bootstrap: String,
    replication_factor: i32,
    /// Set on every client (admin, producers, consumers) before the
    /// role's own settings: the listener's security properties.
    common: Vec<(String, String)>,
}

impl RdKafkaClient {
    /// Clients that connect to `bootstrap` (`host:port`).
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            replication_factor: 1,
            common: Vec::new(),
        }
    }

    /// Every client (admin, producers, consumers) also gets these
    /// properties, e.g. `security.protocol`, `sasl.*`, `ssl.ca.location`.
    #[must_use]
    pub fn with_common_config(mut self, config: Vec<(String, String)>) -> Self {
        self.common = config;
        self
    }

    /// Topics created with `factor` replicas (default 1; a Starlog cluster
    /// replicates on every broker, so it takes the cluster's size).
    #[must_use]
    pub fn with_replication_factor(mut self, factor: i32) -> Self {
        self.replication_factor = factor;
        self
    }

    fn base_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "starlog-bench");
        for (k, v) in &self.common {
            c.set(k, v);
        }
        c
    }

    fn client_error(&self, role: impl Into<String>, e: &KafkaError) -> BenchError {
        BenchError::Client {
            role: role.into(),
            bootstrap: self.bootstrap.clone(),
            reason: e.to_string(),
        }
    }
}

impl fmt::Debug for RdKafkaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdKafkaClient")
            .field("bootstrap", &self.bootstrap)
            .field("replication_factor", &self.replication_factor)
            // Keys only: the values may hold a password.
            .field(
                "common",
                &self.common.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl LoadClient for RdKafkaClient {
    fn name(&self) -> String {
        format!("librdkafka {}", rdkafka::util::get_rdkafka_version().1)
    }

    fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<(), BenchError> {
        let fail = |reason: String| BenchError::CreateTopic {
            topic: topic.to_string(),
            partitions,
            reason,
        };
        let admin: AdminClient<DefaultClientContext> = self
            .base_config()
            .create()
            .map_err(|e| self.client_error("admin client", &e))?;
        let new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        let opts = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        // The admin client's own thread drives this future; the request
        // timeout bounds the wait.
        let results = futures::executor::block_on(admin.create_topics([&new], &opts))
            .map_err(|e| fail(e.to_string()))?;
        for r in results {
            if let Err((name, code)) = r {
                return Err(fail(format!("{name}: {code}")));
            }
        }
        Ok(())
    }

    fn producer(&self, settings: &ProducerSettings) -> Result<Box<dyn LoadProducer>, BenchError> {
        let mut c = self.base_config();
        c.set(
            "acks",
            match settings.acks {
                Acks::None => "0",
                Acks::Leader => "1",
                Acks::All => "all",
            },
        )
        .set("compression.type", &settings.compression)
        .set("enable.idempotence", settings.idempotent.to_string())
        .set("linger.ms", "5");
        for (k, v) in &settings.extra {
            c.set(k, v);
        }
        let (tx, rx) = mpsc::channel();
        let producer: ThreadedProducer<AckContext> = c
            .create_with_context(AckContext { tx })
            .map_err(|e| self.client_error("producer", &e))?;
        Ok(Box::new(RdProducer { producer, acks: rx }))
    }

    fn consumer(
        &self,
        group: &str,
        topic: &str,
        settings: &ConsumerSettings,
    ) -> Result<Box<dyn LoadConsumer>, BenchError> {
        let mut c = self.base_config();
        c.set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &settings.extra {
            c.set(k, v);
        }
        let role = format!("consumer group {group}");
        let consumer: BaseConsumer = c
            .create()
            .map_err(|e| self.client_error(role.clone(), &e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| self.client_error(role, &e))?;
        Ok(Box::new(RdConsumer {
            consumer,
            group: group.to_string(),
            topic: topic.to_string(),
            early: VecDeque::new(),
        }))
    }
}

/// Timestamps acknowledgements on librdkafka's delivery thread.
struct AckContext {
    tx: Sender<Delivery>,
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let at = Instant::now();
        let result = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, m)) => Err(format!("partition {}: {e}", m.partition())),
        };
        // The receiver lives as long as the producer; a send error only
        // happens while the producer is being dropped, when nobody listens.
        let _ = self.tx.send(Delivery {
            seq: seq as u64,
            at,
            result,
        });
    }
}

struct RdProducer {
    producer: ThreadedProducer<AckContext>,
    acks: Receiver<Delivery>,
}

impl fmt::Debug for RdProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdProducer").finish_non_exhaustive()
    }
}

impl LoadProducer for RdProducer {
    fn send(&mut self, record: OutRecord<'_>) -> Result<SendOutcome, BenchError> {
        let fail = |reason: String| BenchError::Produce {
            topic: record.topic.to_string(),
            seq: record.stamp.seq,
            reason,
        };
        let opaque = usize::try_from(record.stamp.seq)
            .map_err(|_| fail("sequence number does not fit a usize".into()))?;
        let (seq, sent) = record.stamp.encode();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: SEQ_HEADER,
                value: Some(&seq[..]),
            })
            .insert(Header {
                key: SENT_HEADER,
                value: Some(&sent[..]),
            });
        let r = BaseRecord::<(), [u8], usize>::with_opaque_to(record.topic, opaque)
            .payload(record.value)
            .headers(headers);
        match self.producer.send(r) {
            Ok(()) => Ok(SendOutcome::Queued),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Ok(SendOutcome::QueueFull)
            }
            Err((e, _)) => Err(fail(e.to_string())),
        }
    }

    fn drain(&mut self, out: &mut Vec<Delivery>, wait: Duration) {
        if wait > Duration::ZERO {
            match self.acks.recv_timeout(wait) {
                Ok(d) => out.push(d),
                Err(_) => return,
            }
        }
        out.extend(self.acks.try_iter());
    }

    fn flush(&mut self, timeout: Duration) -> Result<(), BenchError> {
        self.producer
            .flush(timeout)
            .map_err(|e| BenchError::Produce {
                topic: String::from("(flush)"),
                seq: u64::MAX,
                reason: e.to_string(),
            })
    }
}

struct RdConsumer {
    consumer: BaseConsumer,
    group: String,
    topic: String,
    /// Records that arrived while waiting for the assignment.
    early: VecDeque<OwnedMessage>,
}

impl fmt::Debug for RdConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdConsumer")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl RdConsumer {
    fn error(&self, e: &KafkaError) -> BenchError {
        BenchError::Consume {
            group: self.group.clone(),
            topic: self.topic.clone(),
            reason: e.to_string(),
        }
    }
}

/// The bench headers of a record, by key.
fn bench_headers<H: Headers>(h: Option<&H>) -> [Option<&[u8]>; 3] {
    let mut seq = None;
    let mut sent = None;
    let mut source = None;
    if let Some(h) = h {
        for header in h.iter() {
            match header.key {
                SEQ_HEADER => seq = header.value,
                SENT_HEADER => sent = header.value,
                SOURCE_HEADER => source = header.value,
                _ => {}
            }
        }
    }
    [seq, sent, source]
}

fn received<'a, M: Message>(m: &'a M, topic: &'a str) -> Received<'a>
where
    M::Headers: 'a,
{
    let [seq_header, sent_header, source_header] = bench_headers(m.headers());
    Received {
        topic,
        partition: m.partition(),
        offset: m.offset(),
        value: m.payload().unwrap_or(&[]),
        seq_header,
        sent_header,
        source_header,
    }
}

/// Most records handed over by one `poll` call.
const POLL_BATCH: usize = 512;

impl LoadConsumer for RdConsumer {
    fn group(&self) -> &str {
        &self.group
    }

    fn wait_assigned(&mut self, timeout: Duration) -> Result<(), BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Polling drives the group protocol (join, sync, assign).
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => self.early.push_back(m.detach()),
                Some(Err(e)) => return Err(self.error(&e)),
                None => {}
            }
            let assigned = self
                .consumer
                .assignment()
                .map_err(|e| self.error(&e))?
                .count();
            if assigned > 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::NotAssigned {
                    group: self.group.clone(),
                    topic: self.topic.clone(),
                    waited: timeout,
                });
            }
        }
    }

    fn poll(
        &mut self,
        timeout: Duration,
        sink: &mut dyn FnMut(Received<'_>) -> Result<(), BenchError>,
    ) -> Result<usize, BenchError> {
        let mut handed = 0;
        while let Some(m) = self.early.pop_front() {
            let topic = m.topic().to_string();
            sink(received(&m, &topic))?;
            handed += 1;
        }
        let mut wait = timeout;
        while handed < POLL_BATCH {
            match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    sink(received(&m, &self.topic))?;
                    handed += 1;
                }
                Some(Err(e)) => return Err(self.error(&e)),
                None => break,
            }
            wait = Duration::ZERO;
        }
        Ok(handed)
    }
}
