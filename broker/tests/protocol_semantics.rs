//! Protocol semantics checked at the byte level with a raw client:
//! idempotent retries, fetches that start inside a batch, long polls woken by
//! appends, acks=0, and looking inside Java-framed snappy batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{RawClient, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

struct BatchSpec {
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    count: usize,
    compression: Compression,
    base_ts: i64,
}

fn batch(spec: &BatchSpec, tag: &str) -> Bytes {
    let records: Vec<Record> = (0..spec.count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: spec.producer_id,
            producer_epoch: spec.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The codec groups records into one batch while offset minus
            // sequence stays constant; without a producer id the base
            // sequence must be -1, so count up from -1.
            sequence: if spec.producer_id >= 0 {
                spec.first_seq + i as i32
            } else {
                i as i32 - 1
            },
            timestamp: spec.base_ts + 1000 * i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: spec.compression,
        },
    )
    .unwrap();
    buf.freeze()
}

fn plain(count: usize, tag: &str) -> Bytes {
    batch(
        &BatchSpec {
            producer_id: -1,
            epoch: -1,
            first_seq: -1,
            count,
            compression: Compression::None,
            base_ts: 1_700_000_000_000,
        },
        tag,
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(c: &mut RawClient, topic: &str) {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    match c
        .call(RequestKind::CreateTopics(req), ApiKey::CreateTopics, 5)
        .await
    {
        ResponseKind::CreateTopics(r) => assert_eq!(r.topics[0].error_code, 0),
        other => panic!("{other:?}"),
    }
}

fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

async fn produce(c: &mut RawClient, topic: &str, records: Bytes) -> (i16, i64) {
    match c
        .call(
            RequestKind::Produce(produce_request(topic, records, -1)),
            ApiKey::Produce,
            8,
        )
        .await
    {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("{other:?}"),
    }
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(10 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(10 << 20)])])
}

async fn fetch(c: &mut RawClient, topic: &str, offset: i64) -> (i16, i64, Bytes) {
    match c
        .call(
            RequestKind::Fetch(fetch_request(topic, offset, 0, 0)),
            ApiKey::Fetch,
            11,
        )
        .await
    {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            (
                p.error_code,
                p.high_watermark,
                p.records.clone().unwrap_or_default(),
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn idempotent_retry_gets_its_original_offsets_and_is_stored_once() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "idem").await;
    let spec = |first_seq, count| BatchSpec {
        producer_id: 4242,
        epoch: 0,
        first_seq,
        count,
        compression: Compression::None,
        base_ts: 1_700_000_000_000,
    };
    let first = batch(&spec(0, 5), "a");
    let second = batch(&spec(5, 3), "b");
    assert_eq!(produce(&mut c, "idem", first.clone()).await, (0, 0));
    assert_eq!(produce(&mut c, "idem", second.clone()).await, (0, 5));
    // Retries of both (as after a lost response) succeed with the original offsets.
    assert_eq!(produce(&mut c, "idem", first).await, (0, 0));
    assert_eq!(produce(&mut c, "idem", second).await, (0, 5));
    let (_, hw, _) = fetch(&mut c, "idem", 0).await;
    assert_eq!(hw, 8, "retries were not stored again");
    // A gap in sequence numbers is refused, and nothing is stored.
    let gap = batch(&spec(10, 2), "gap");
    assert_eq!(
        produce(&mut c, "idem", gap).await.0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    // An older epoch is fenced once a newer one wrote.
    let newer = batch(
        &BatchSpec {
            epoch: 1,
            ..spec(0, 1)
        },
        "e1",
    );
    assert_eq!(produce(&mut c, "idem", newer).await, (0, 8));
    assert_eq!(
        produce(&mut c, "idem", batch(&spec(8, 1), "old")).await.0,
        ResponseError::InvalidProducerEpoch.code()
    );
    let (_, hw, _) = fetch(&mut c, "idem", 0).await;
    assert_eq!(hw, 9);
    broker.stop().await;
}

#[tokio::test]
async fn idempotent_duplicates_are_recognised_after_a_restart() {
    let mut broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "idem-restart").await;
    let b = batch(
        &BatchSpec {
            producer_id: 77,
            epoch: 3,
            first_seq: 0,
            count: 4,
            compression: Compression::Zstd,
            base_ts: 1_700_000_000_000,
        },
        "r",
    );
    assert_eq!(produce(&mut c, "idem-restart", b.clone()).await, (0, 0));
    broker.restart().await;
    let mut c = RawClient::connect(broker.addr()).await;
    assert_eq!(produce(&mut c, "idem-restart", b).await, (0, 0));
    let (_, hw, _) = fetch(&mut c, "idem-restart", 0).await;
    assert_eq!(hw, 4);
    broker.stop().await;
}

#[tokio::test]
async fn a_fetch_inside_a_batch_returns_the_whole_batch() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "inside").await;
    let b = plain(10, "x");
    assert_eq!(produce(&mut c, "inside", b.clone()).await, (0, 0));
    let (code, hw, records) = fetch(&mut c, "inside", 7).await;
    assert_eq!((code, hw), (0, 10));
    assert_eq!(
        records, b,
        "the stored batch, byte for byte, from its base offset"
    );
    // Offsets beyond the end are out of range; at the end, empty.
    assert_eq!(
        fetch(&mut c, "inside", 11).await.0,
        ResponseError::OffsetOutOfRange.code()
    );
    let (code, _, records) = fetch(&mut c, "inside", 10).await;
    assert_eq!((code, records.len()), (0, 0));
    broker.stop().await;
}

#[tokio::test]
async fn a_long_poll_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let mut setup = RawClient::connect(broker.addr()).await;
    create(&mut setup, "poll").await;
    let addr = broker.addr();
    let waiter = tokio::spawn(async move {
        let mut c = RawClient::connect(addr).await;
        let started = Instant::now();
        let r = c
            .call(
                RequestKind::Fetch(fetch_request("poll", 0, 60_000, 1)),
                ApiKey::Fetch,
                11,
            )
            .await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(produce(&mut setup, "poll", plain(1, "wake")).await, (0, 0));
    let (r, waited) = waiter.await.unwrap();
    match r {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.high_watermark, 1);
            assert!(!p.records.as_ref().unwrap().is_empty(), "woken with data");
        }
        other => panic!("{other:?}"),
    }
    // A liveness bound, not a speed claim: the 60 s wait ended with the append.
    assert!(
        waited < Duration::from_secs(30),
        "fetch waited {waited:?}: not woken by the append"
    );
    broker.stop().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_stored() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "fire").await;
    // acks=0: no response frame; the next call's response must be its own.
    let req = RequestKind::Produce(produce_request("fire", plain(3, "f"), 0));
    let mut body = BytesMut::new();
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::Encodable;
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(8)
        .with_correlation_id(999)
        .encode(&mut body, ApiKey::Produce.request_header_version(8))
        .unwrap();
    req.encode(&mut body, 8).unwrap();
    c.send_frame(&body).await;
    // `call` asserts the correlation id of the frame it reads is its own.
    match c
        .call(
            RequestKind::Metadata(MetadataRequest::default()),
            ApiKey::Metadata,
            9,
        )
        .await
    {
        ResponseKind::Metadata(_) => {}
        other => panic!("{other:?}"),
    }
    let (_, hw, _) = fetch(&mut c, "fire", 0).await;
    assert_eq!(hw, 3);
    broker.stop().await;
}

#[tokio::test]
async fn java_framed_snappy_is_stored_as_sent_and_searched_by_timestamp() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "snappy-java").await;
    let base_ts = 1_700_000_000_000;
    // The codec crate writes snappy in the Java (xerial) framing.
    let b = batch(
        &BatchSpec {
            producer_id: -1,
            epoch: -1,
            first_seq: -1,
            count: 20,
            compression: Compression::Snappy,
            base_ts,
        },
        "s",
    );
    assert_eq!(&b[61..68], b"\x82SNAPPY", "xerial framing");
    assert_eq!(produce(&mut c, "snappy-java", b.clone()).await, (0, 0));
    let (_, _, stored) = fetch(&mut c, "snappy-java", 0).await;
    assert_eq!(stored, b, "compressed batch kept as sent");
    let mut decoded = stored.clone();
    let set = RecordBatchDecoder::decode(&mut decoded).unwrap();
    assert_eq!(set.records.len(), 20);
    // The exact record inside the compressed batch, not the batch start.
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name("snappy-java"))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(base_ts + 12_500)])]);
    match c
        .call(RequestKind::ListOffsets(req), ApiKey::ListOffsets, 5)
        .await
    {
        ResponseKind::ListOffsets(r) => {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0);
            assert_eq!((p.offset, p.timestamp), (13, base_ts + 13_000));
        }
        other => panic!("{other:?}"),
    }
    broker.stop().await;
}

/// kcat (librdkafka 2.0) asks ListOffsets v2, which has no leader epoch
/// field: the answer must still encode (it once closed the connection).
#[tokio::test]
async fn list_offsets_answers_every_version_it_advertises() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "lo-versions").await;
    let b = batch(
        &BatchSpec {
            producer_id: -1,
            epoch: -1,
            first_seq: -1,
            count: 4,
            compression: Compression::None,
            base_ts: 1_700_000_000_000,
        },
        "v",
    );
    assert_eq!(produce(&mut c, "lo-versions", b).await, (0, 0));
    let max = starlog_broker::api_versions::SUPPORTED
        .iter()
        .find(|s| s.key == ApiKey::ListOffsets)
        .map(|s| s.max)
        .unwrap();
    for version in 1..=max {
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("lo-versions"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
        match c
            .call(RequestKind::ListOffsets(req), ApiKey::ListOffsets, version)
            .await
        {
            ResponseKind::ListOffsets(r) => {
                let p = &r.topics[0].partitions[0];
                assert_eq!((p.error_code, p.offset), (0, 4), "v{version}");
            }
            other => panic!("v{version}: {other:?}"),
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn pipelined_produces_are_answered_in_order() {
    let broker = TestBroker::start_with(|c| {
        c.log.flush =
            starlog_broker::config::FlushSetting::Named(starlog_broker::config::FlushNamed::Always)
    })
    .await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "pipelined").await;
    // Five requests written back to back before reading any response, as
    // librdkafka does with max.in.flight=5.
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Decodable, Encodable};
    for i in 0..5 {
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(8)
            .with_correlation_id(100 + i)
            .encode(&mut body, ApiKey::Produce.request_header_version(8))
            .unwrap();
        RequestKind::Produce(produce_request("pipelined", plain(2, &format!("r{i}")), -1))
            .encode(&mut body, 8)
            .unwrap();
        c.send_frame(&body).await;
    }
    for i in 0..5 {
        let mut frame = c.read_frame().await.expect("response");
        let h = kafka_protocol::messages::ResponseHeader::decode(
            &mut frame,
            ApiKey::Produce.response_header_version(8),
        )
        .unwrap();
        assert_eq!(h.correlation_id, 100 + i, "responses in request order");
        let r = kafka_protocol::messages::ProduceResponse::decode(&mut frame, 8).unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i64::from(i) * 2));
    }
    let (_, hw, _) = fetch(&mut c, "pipelined", 0).await;
    assert_eq!(hw, 10);
    broker.stop().await;
}

#[tokio::test]
async fn a_single_broker_refuses_replica_moves_and_lists_none() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    };
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    create(&mut c, "solo").await;
    let alter = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("solo")))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(2)]))]),
    ]);
    match c
        .call(
            RequestKind::AlterPartitionReassignments(alter),
            ApiKey::AlterPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::AlterPartitionReassignments(r) => {
            assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
            let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
            assert!(message.contains("not part of a cluster"), "{message}");
        }
        other => panic!("unexpected answer {other:?}"),
    }
    match c
        .call(
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
            ApiKey::ListPartitionReassignments,
            0,
        )
        .await
    {
        ResponseKind::ListPartitionReassignments(r) => {
            assert_eq!(r.error_code, 0);
            assert!(r.topics.is_empty());
        }
        other => panic!("unexpected answer {other:?}"),
    }
    // The topic is untouched: still served here.
    let (code, _, _) = fetch(&mut c, "solo", 0).await;
    assert_eq!(code, 0);
    broker.stop().await;
}
