//! Bad input at the wire: every case gets a Kafka error code or a closed
//! connection, the broker keeps serving, and nothing stored is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{RawClient, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

fn batch(values: &[&[u8]], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

async fn create(client: &mut RawClient, name: &str) -> i16 {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    match client
        .call(RequestKind::CreateTopics(req), ApiKey::CreateTopics, 5)
        .await
    {
        ResponseKind::CreateTopics(r) => r.topics[0].error_code,
        other => panic!("unexpected {other:?}"),
    }
}

async fn produce(client: &mut RawClient, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    match client
        .call(RequestKind::Produce(req), ApiKey::Produce, 8)
        .await
    {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn fetch_all(client: &mut RawClient, topic: &str) -> (i64, Bytes) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(50 << 20)])]);
    match client
        .call(RequestKind::Fetch(req), ApiKey::Fetch, 11)
        .await
    {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0);
            (p.high_watermark, p.records.clone().unwrap_or_default())
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The broker still answers ApiVersions on a fresh connection.
async fn still_serving(broker: &TestBroker) {
    let mut c = RawClient::connect(broker.addr()).await;
    match c
        .call(
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ApiKey::ApiVersions,
            3,
        )
        .await
    {
        ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 0),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn garbage_truncated_and_oversize_frames_close_the_connection() {
    let broker = TestBroker::start_with(|c| c.limits.max_request_bytes = 16 << 20).await;
    // Pure garbage body.
    let mut c = RawClient::connect(broker.addr()).await;
    c.send_frame(&[
        0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ])
    .await;
    assert!(c.is_closed_by_broker().await, "garbage closes");
    // A frame shorter than a header.
    let mut c = RawClient::connect(broker.addr()).await;
    c.send_frame(&[0, 3]).await;
    assert!(c.is_closed_by_broker().await, "short frame closes");
    // A size prefix beyond the limit, and a negative one.
    for size in [i32::MAX, -7, (16 << 20) + 1] {
        let mut c = RawClient::connect(broker.addr()).await;
        use tokio::io::AsyncWriteExt;
        c.stream
            .write_all(&size.to_be_bytes())
            .await
            .expect("write");
        assert!(c.is_closed_by_broker().await, "size {size} closes");
    }
    // A Metadata request whose body is cut short.
    let mut c = RawClient::connect(broker.addr()).await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(1);
    body.put_i32(9);
    body.put_i16(-1); // null client id
    body.put_i32(5); // claims 5 topics, sends none
    c.send_frame(&body).await;
    assert!(c.is_closed_by_broker().await, "truncated body closes");
    // An array length that claims two billion elements.
    let mut c = RawClient::connect(broker.addr()).await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(1);
    body.put_i32(10);
    body.put_i16(-1);
    body.put_i32(i32::MAX);
    c.send_frame(&body).await;
    assert!(c.is_closed_by_broker().await, "absurd array length closes");
    still_serving(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn unknown_api_keys_and_versions() {
    let broker = TestBroker::start().await;
    // Unknown API key: connection closed.
    let mut c = RawClient::connect(broker.addr()).await;
    let mut body = BytesMut::new();
    body.put_i16(999);
    body.put_i16(0);
    body.put_i32(1);
    body.put_i16(-1);
    c.send_frame(&body).await;
    assert!(c.is_closed_by_broker().await);
    // ApiVersions at a version from the future: answered at v0 with UNSUPPORTED_VERSION.
    let mut c = RawClient::connect(broker.addr()).await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(77);
    body.put_i32(42);
    body.put_i16(-1);
    c.send_frame(&body).await;
    let mut frame = c.read_frame().await.expect("answered");
    use bytes::Buf;
    assert_eq!(frame.get_i32(), 42, "correlation id");
    assert_eq!(frame.get_i16(), ResponseError::UnsupportedVersion.code());
    // Produce v1 (message format v0/v1) is not served: closed.
    let mut c = RawClient::connect(broker.addr()).await;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Produce as i16);
    body.put_i16(1);
    body.put_i32(1);
    body.put_i16(-1);
    c.send_frame(&body).await;
    assert!(c.is_closed_by_broker().await);
    still_serving(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn invalid_topic_names_get_error_codes() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    for name in [
        "",
        "..",
        "has space",
        "slash/name",
        &"x".repeat(250),
        "__meta",
    ] {
        assert_eq!(
            create(&mut c, name).await,
            ResponseError::InvalidTopicException.code(),
            "name {name:?}"
        );
    }
    // Metadata auto-creation refuses them too.
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("bad name"))))]));
    match c
        .call(RequestKind::Metadata(req), ApiKey::Metadata, 9)
        .await
    {
        ResponseKind::Metadata(r) => assert_eq!(
            r.topics[0].error_code,
            ResponseError::InvalidTopicException.code()
        ),
        other => panic!("unexpected {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn oversize_and_corrupt_batches_are_refused_and_nothing_stored_is_lost() {
    let broker = TestBroker::start_with(|c| c.log.max_message_bytes = 64 * 1024).await;
    let mut c = RawClient::connect(broker.addr()).await;
    assert_eq!(create(&mut c, "guarded").await, 0);
    let good = batch(&[b"first", b"second"], Compression::None);
    assert_eq!(produce(&mut c, "guarded", good.clone()).await, (0, 0));

    // Over max.message.bytes.
    let big = vec![7u8; 100 * 1024];
    let (code, _) = produce(&mut c, "guarded", batch(&[&big], Compression::None)).await;
    assert_eq!(code, ResponseError::MessageTooLarge.code());
    // A flipped byte in the records: CRC mismatch.
    let mut corrupt = BytesMut::from(&batch(&[b"third"], Compression::None)[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (code, _) = produce(&mut c, "guarded", corrupt.freeze()).await;
    assert_eq!(code, ResponseError::CorruptMessage.code());
    // A batch cut in half.
    let half = batch(&[b"fourth", b"fifth"], Compression::None);
    let (code, _) = produce(&mut c, "guarded", half.slice(..half.len() / 2)).await;
    assert_eq!(code, ResponseError::CorruptMessage.code());
    // Magic 1 (old message format).
    let mut old = BytesMut::from(&batch(&[b"sixth"], Compression::None)[..]);
    old[16] = 1;
    let (code, _) = produce(&mut c, "guarded", old.freeze()).await;
    assert_eq!(code, ResponseError::CorruptMessage.code());
    // Unknown topic and partition.
    let (code, _) = produce(&mut c, "no-such-topic", good.clone()).await;
    assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());

    // Only the first batch is stored, byte for byte (base offset 0 already).
    let (hw, records) = fetch_all(&mut c, "guarded").await;
    assert_eq!(hw, 2);
    assert_eq!(records, good);
    // And the broker accepts the next good batch at the next offset.
    assert_eq!(
        produce(&mut c, "guarded", batch(&[b"seventh"], Compression::Gzip)).await,
        (0, 2)
    );
    broker.stop().await;
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let broker = TestBroker::start_with(|c| c.limits.idle_timeout_ms = 300).await;
    // Idle: connects and says nothing.
    let mut idle = RawClient::connect(broker.addr()).await;
    assert!(idle.is_closed_by_broker().await, "idle connection closed");
    // Slow: sends a size prefix and half the body, then stalls.
    let mut slow = RawClient::connect(broker.addr()).await;
    use tokio::io::AsyncWriteExt;
    slow.stream
        .write_all(&100i32.to_be_bytes())
        .await
        .expect("write");
    slow.stream.write_all(&[0u8; 10]).await.expect("write");
    assert!(slow.is_closed_by_broker().await, "stalled request closed");
    still_serving(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn dropped_connection_mid_request_loses_nothing() {
    let broker = TestBroker::start().await;
    let mut c = RawClient::connect(broker.addr()).await;
    assert_eq!(create(&mut c, "dropped").await, 0);
    let good = batch(&[b"kept"], Compression::Lz4);
    assert_eq!(produce(&mut c, "dropped", good.clone()).await, (0, 0));
    // Half a produce frame, then the client goes away.
    let mut gone = RawClient::connect(broker.addr()).await;
    use tokio::io::AsyncWriteExt;
    gone.stream
        .write_all(&500i32.to_be_bytes())
        .await
        .expect("write");
    gone.stream.write_all(&[1u8; 100]).await.expect("write");
    drop(gone);
    let (hw, records) = fetch_all(&mut c, "dropped").await;
    assert_eq!((hw, records), (1, good));
    broker.stop().await;
}
