#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProducerId, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;

use super::{encode, encode_frame, marker, marker_prefix, Frame, SPLICE_MIN};

fn records(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn partition(index: i32, records: Option<Bytes>, aborted: bool) -> PartitionData {
    let mut p = PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(1000 + i64::from(index))
        .with_last_stable_offset(990)
        .with_log_start_offset(7)
        .with_records(records);
    if aborted {
        p = p.with_aborted_transactions(Some(vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(42))
            .with_first_offset(3)]));
    }
    p
}

fn response(topics: Vec<(String, Vec<PartitionData>)>) -> FetchResponse {
    FetchResponse::default()
        .with_throttle_time_ms(5)
        .with_session_id(0)
        .with_responses(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchableTopicResponse::default()
                        .with_topic(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// The frame's bytes equal the protocol crate's own encoding.
fn assert_same(fetch: &FetchResponse, version: i16) -> Frame {
    let expected = encode(
        ResponseKind::Fetch(fetch.clone()),
        ApiKey::Fetch,
        version,
        77,
    )
    .unwrap();
    let frame = encode_frame(
        ResponseKind::Fetch(fetch.clone()),
        ApiKey::Fetch,
        version,
        77,
    )
    .unwrap();
    assert_eq!(frame.to_bytes(), expected, "version {version}");
    frame
}

#[test]
fn large_records_are_spliced_not_copied_at_every_version() {
    let big = records(64 * 1024, 1);
    let other = records(SPLICE_MIN, 2);
    let fetch = response(vec![
        (
            "alerts".into(),
            vec![
                partition(0, Some(big.clone()), false),
                partition(1, Some(records(100, 3)), true),
                partition(2, None, false),
            ],
        ),
        (
            "more".into(),
            vec![partition(5, Some(other.clone()), false)],
        ),
    ]);
    for version in 4..=12 {
        let frame = assert_same(&fetch, version);
        // The batches are the storage's own buffers, not copies.
        let shared: Vec<&Bytes> = frame
            .parts()
            .iter()
            .filter(|p| p.as_ptr() == big.as_ptr() || p.as_ptr() == other.as_ptr())
            .collect();
        assert_eq!(shared.len(), 2, "version {version}");
    }
}

#[test]
fn small_responses_stay_one_buffer() {
    let fetch = response(vec![(
        "t".into(),
        vec![partition(0, Some(records(SPLICE_MIN - 1, 9)), false)],
    )]);
    for version in 4..=12 {
        assert_eq!(assert_same(&fetch, version).parts().len(), 1);
    }
}

#[test]
fn a_small_batch_holding_the_marker_falls_back_to_copying() {
    // A client cannot know the marker, but if a batch encoded in place held
    // it, the response must still be exact: it is encoded by copy.
    let mut planted = marker_prefix().to_vec();
    planted.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(Bytes::from(planted.clone()), marker(0));
    let fetch = response(vec![(
        "t".into(),
        vec![
            partition(0, Some(Bytes::from(planted)), false),
            partition(1, Some(records(SPLICE_MIN * 2, 4)), false),
        ],
    )]);
    for version in 4..=12 {
        assert_eq!(assert_same(&fetch, version).parts().len(), 1);
    }
}

#[tokio::test]
async fn a_frame_is_written_whole_through_short_writes() {
    let big = records(300_000, 5);
    let fetch = response(vec![(
        "t".into(),
        vec![
            partition(0, Some(big.clone()), false),
            partition(1, Some(records(5000, 6)), false),
        ],
    )]);
    let frame = assert_same(&fetch, 12);
    // A duplex pipe with a small buffer forces many partial writes.
    let (mut a, mut b) = tokio::io::duplex(1000);
    let expected = frame.to_bytes();
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        out
    });
    frame.write_to(&mut a).await.unwrap();
    drop(a);
    assert_eq!(reader.await.unwrap(), expected.to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_fetch_response_encodes_as_the_protocol_crate_does(
        version in 4i16..=12,
        topics in prop::collection::vec(
            (
                "[a-z]{1,12}",
                prop::collection::vec(
                    (prop::option::of(0usize..20_000), any::<bool>(), any::<u8>()),
                    0..5,
                ),
            ),
            0..4,
        ),
    ) {
        let fetch = response(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    let parts = parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, (len, aborted, seed))| {
                            partition(i32::try_from(i).unwrap(), len.map(|l| records(l, seed)), aborted)
                        })
                        .collect();
                    (name, parts)
                })
                .collect(),
        );
        assert_same(&fetch, version);
    }
}
