//! The server-side schema-id rule: a plain producer sends alerts framed with
//! an upstream registry's ids to a topic whose config names that registry;
//! what is stored carries the local registry's ids and decodes with them.
//! Unknown ids and unframed values are refused and nothing is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use common::{http, TestBroker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::json;
use starlog_broker::extensions::{BoxFuture, ExtensionError, UpstreamRegistry};
use starlog_broker::Extensions;
use starlog_clients::registry::RegistryPool;

/// Upstream schemas through the clients' registry client, as the `starlog`
/// binary plugs them in.
#[derive(Debug)]
struct Upstream(RegistryPool);

impl UpstreamRegistry for Upstream {
    fn schema_text<'a>(
        &'a self,
        url: &'a str,
        id: u32,
    ) -> BoxFuture<'a, Result<String, ExtensionError>> {
        Box::pin(async move { Ok(self.0.client(url)?.schema_text(id).await?) })
    }
}

fn with_upstream() -> Extensions {
    Extensions {
        upstream_registry: Some(Arc::new(Upstream(RegistryPool::new(
            "upstream",
            Duration::from_secs(10),
        )))),
        ..Extensions::default()
    }
}

/// (writer schema JSON, body) of each alert in `sub`.
fn alerts(sub: &str) -> Vec<(String, Value, Vec<u8>)> {
    common::alert_files(sub)
        .into_iter()
        .take(6)
        .map(|f| {
            let reader = apache_avro::Reader::new(std::fs::File::open(&f).unwrap()).unwrap();
            let schema = reader.writer_schema().clone();
            let value = reader.into_iter().next().unwrap().unwrap();
            let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
                .build()
                .unwrap()
                .write_value_to_vec(value.clone())
                .unwrap();
            (schema.canonical_form(), value, body)
        })
        .collect()
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_producers_get_their_schema_ids_rewritten_to_the_local_registry() {
    let upstream = TestBroker::start().await;
    let local = TestBroker::start_extended(with_upstream(), |_| {}).await;
    let up_url = upstream.registry_url();
    // Unrelated schemas first, so upstream ids differ from what the local registry assigns.
    for i in 0..3 {
        let s = json!({"type": "record", "name": format!("filler{i}"), "fields": [{"name": "x", "type": "int"}]});
        let subject = format!("/subjects/filler{i}/versions");
        http(
            &up_url,
            "POST",
            &subject,
            Some(json!({"schema": s.to_string()})),
        )
        .await;
    }
    let sample = alerts("ztf/alerts/kowalski/20231012");
    let (schema, _, _) = &sample[0];
    let (status, r) = http(
        &up_url,
        "POST",
        "/subjects/ztf-value/versions",
        Some(json!({"schema": schema})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let up_id = u32::try_from(r["id"].as_u64().unwrap()).unwrap();

    let bs = local.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("rewritten", 1, TopicReplication::Fixed(1))
                .set("starlog.schema.upstream.registry", &up_url)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    created[0].as_ref().unwrap();

    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let mut sends = Vec::new();
    for (_, _, body) in &sample {
        let v = framed(up_id, body);
        sends.push(
            p.send_result(FutureRecord::<(), _>::to("rewritten").payload(&v))
                .unwrap(),
        );
    }
    for s in sends {
        s.await.unwrap().expect("acked");
    }
    // Bad input: an id the upstream registry does not know, and an unframed value.
    for bad in [
        framed(999_999, &sample[0].2),
        b"not confluent framed".to_vec(),
    ] {
        let r = p
            .send(
                FutureRecord::<(), _>::to("rewritten").payload(&bad),
                Duration::from_secs(10),
            )
            .await;
        match r {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
            other => panic!("expected INVALID_RECORD, got {other:?}"),
        }
    }

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "check")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks("rewritten", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        high as usize,
        sample.len(),
        "refused batches stored nothing"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("rewritten", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let local_url = local.registry_url();
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got < sample.len() && std::time::Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let v = m.payload().unwrap();
        assert_eq!(v[0], 0);
        let id = u32::from_be_bytes(v[1..5].try_into().unwrap());
        assert_ne!(id, up_id, "the id was rewritten");
        let (status, r) = http(&local_url, "GET", &format!("/schemas/ids/{id}"), None).await;
        assert_eq!(status, 200, "the local id resolves locally");
        let schema = apache_avro::Schema::parse_str(r["schema"].as_str().unwrap()).unwrap();
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap();
        let decoded = reader.read_value(&mut &v[5..]).unwrap();
        assert_eq!(
            decoded,
            sample[usize::try_from(m.offset()).unwrap()].1,
            "the alert is intact"
        );
        got += 1;
    }
    assert_eq!(got, sample.len());
    // Close the clients while the brokers are up (librdkafka waits for them on close).
    drop((c, p, admin));
    upstream.stop().await;
    local.stop().await;
}
