//! Property tests of the pure batch rewrite: for arbitrary records (keys,
//! framed/unframed/null values, headers, timestamps) in every codec, a
//! rewrite read back by an independent batch decoder (`kafka-protocol`'s,
//! which checks the CRC) gives the same records with the new ids; identity
//! maps keep the input; and bad batches are refused, never mangled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use starlog_wire::{
    framing, rewrite_batch, schema_ids, verify_crc, BatchRewrite, Compression, Framing,
    RewriteError, RewriteOptions,
};

const IDS: [u32; 4] = [1, 7, 100_000, u32::MAX];

/// One record to encode: key, value, headers, timestamp.
#[derive(Debug, Clone)]
struct Rec {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Option<Bytes>)>,
    timestamp: i64,
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        6 => (0..IDS.len(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(i, body)| {
            let mut v = vec![0u8];
            v.extend_from_slice(&IDS[i].to_be_bytes());
            v.extend(body);
            Some(v)
        }),
        1 => Just(None),
    ]
}

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        value(),
        proptest::collection::btree_map(
            "[a-z]{1,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            0..3,
        ),
        0i64..1_000_000,
    )
        .prop_map(|(key, value, headers, ts)| Rec {
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, v.map(Bytes::from)))
                .collect(),
            timestamp: 1_700_000_000_000 + ts,
        })
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn kp(c: Compression) -> KpCompression {
    match c {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

/// A v2 batch of `records` (offsets from 0) as a producer sends it.
fn encode(records: &[Rec], codec: Compression, producer_id: i64) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 3 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id < 0 {
                i as i32 - 1
            } else {
                40 + i as i32
            },
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: kp(codec),
        },
    )
    .unwrap();
    buf.freeze()
}

/// The records of one batch, read by `kafka-protocol` (which checks the CRC).
fn read_back(bytes: &Bytes) -> Vec<Record> {
    let mut b = bytes.clone();
    let set = RecordBatchDecoder::decode(&mut b).unwrap();
    assert!(b.is_empty(), "one batch");
    set.records
}

fn mapped(id: u32) -> u32 {
    id.wrapping_mul(2_654_435_761).wrapping_add(17)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rewrite_then_read_back_gives_the_same_records_with_new_ids(
        records in proptest::collection::vec(record(), 1..12),
        codec in codec(),
        pid in prop_oneof![Just(-1i64), 0i64..1000],
    ) {
        let batch = encode(&records, codec, pid);
        let map: HashMap<u32, u32> = IDS.iter().map(|i| (*i, mapped(*i))).collect();
        let opts = RewriteOptions::default();

        let want_ids: std::collections::BTreeSet<u32> = records
            .iter()
            .filter_map(|r| match framing(r.value.as_deref()) { Framing::Framed { id } => Some(id), _ => None })
            .collect();
        prop_assert_eq!(schema_ids(&batch, &opts).unwrap(), want_ids.clone());

        let out = rewrite_batch(&batch, &map, &opts).unwrap();
        let bytes = match out {
            BatchRewrite::Rewritten { bytes, values } => {
                prop_assert_eq!(values, records.iter().filter(|r| r.value.is_some()).count());
                bytes
            }
            BatchRewrite::Unchanged => {
                prop_assert!(want_ids.is_empty());
                batch.clone()
            }
        };
        // A rewritten batch's CRC verifies.
        prop_assert!(verify_crc(&bytes).is_ok());
        let before = read_back(&batch);
        let after = read_back(&bytes); // checks the CRC too
        prop_assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            prop_assert_eq!(&b.key, &a.key);
            prop_assert_eq!(&b.headers, &a.headers);
            prop_assert_eq!(b.timestamp, a.timestamp);
            prop_assert_eq!(b.offset, a.offset);
            prop_assert_eq!((b.producer_id, b.sequence), (a.producer_id, a.sequence));
            prop_assert_eq!(b.producer_epoch, a.producer_epoch);
            match (&b.value, &a.value) {
                (None, None) => {}
                (Some(bv), Some(av)) => {
                    let Framing::Framed { id } = framing(Some(bv)) else { unreachable!() };
                    prop_assert_eq!(framing(Some(av)), Framing::Framed { id: mapped(id) });
                    prop_assert_eq!(&bv[5..], &av[5..]);
                }
                _ => prop_assert!(false, "value presence changed"),
            }
        }
        // Header fields other than length and CRC are untouched.
        prop_assert_eq!(&batch[..8], &bytes[..8]);
        prop_assert_eq!(&batch[12..17], &bytes[12..17]);
        prop_assert_eq!(&batch[21..61], &bytes[21..61]);

        // Identity: the input is kept as it is.
        let same: HashMap<u32, u32> = IDS.iter().map(|i| (*i, *i)).collect();
        prop_assert_eq!(rewrite_batch(&batch, &same, &opts).unwrap(), BatchRewrite::Unchanged);
        // Mapping back gives the original records again.
        let back: HashMap<u32, u32> = IDS.iter().map(|i| (mapped(*i), *i)).collect();
        if let BatchRewrite::Rewritten { bytes: again, .. } = rewrite_batch(&bytes, &back, &opts).unwrap() {
            if codec == Compression::None {
                prop_assert_eq!(&again, &batch, "uncompressed: byte for byte");
            }
            prop_assert_eq!(read_back(&again), before);
        }
    }

    #[test]
    fn flipped_bytes_are_refused(records in proptest::collection::vec(record(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let batch = encode(&records, Compression::None, -1);
        let mut bad = batch.to_vec();
        let i = at.index(bad.len());
        bad[i] ^= 1 << bit;
        let map: HashMap<u32, u32> = IDS.iter().map(|i| (*i, mapped(*i))).collect();
        // Every byte is covered by the length, magic or CRC checks, except
        // the base offset and leader epoch, which a rewrite keeps as is.
        match rewrite_batch(&Bytes::from(bad.clone()), &map, &RewriteOptions::default()) {
            Err(_) => prop_assert!(i >= 8, "byte {i}"),
            Ok(BatchRewrite::Unchanged) => prop_assert!(i < 8 || (12..16).contains(&i)),
            Ok(BatchRewrite::Rewritten { bytes, .. }) => {
                prop_assert!(i < 8 || (12..16).contains(&i), "byte {i} flipped yet accepted");
                prop_assert_eq!(&bytes[..8], &bad[..8]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let map: HashMap<u32, u32> = IDS.iter().map(|i| (*i, mapped(*i))).collect();
        let bytes = Bytes::from(bytes);
        let _ = schema_ids(&bytes, &RewriteOptions::default());
        if let Ok(BatchRewrite::Rewritten { bytes: out, .. }) = rewrite_batch(&bytes, &map, &RewriteOptions::default()) {
            prop_assert!(verify_crc(&out).is_ok());
        }
    }
}

fn framed(id: u32, body: &[u8]) -> Option<Bytes> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    Some(Bytes::from(v))
}

fn one(value: Option<Bytes>) -> Bytes {
    let r = Rec {
        key: None,
        value,
        headers: vec![],
        timestamp: 0,
    };
    encode(&[r], Compression::None, -1)
}

#[test]
fn unknown_ids_unframed_values_and_short_batches_are_errors() {
    let map: HashMap<u32, u32> = [(7, 8)].into_iter().collect();
    let strict = RewriteOptions::default();
    let lenient = RewriteOptions {
        require_framing: false,
        ..strict
    };
    assert_eq!(
        rewrite_batch(&one(framed(9, b"x")), &map, &strict),
        Err(RewriteError::UnknownId { offset: 0, id: 9 })
    );
    let json = one(Some(Bytes::from_static(b"{\"a\":1}")));
    assert!(matches!(
        rewrite_batch(&json, &map, &strict),
        Err(RewriteError::NotFramed { offset: 0, .. })
    ));
    assert_eq!(
        rewrite_batch(&json, &map, &lenient),
        Ok(BatchRewrite::Unchanged)
    );
    let short = one(Some(Bytes::from_static(&[0, 1])));
    assert!(matches!(
        rewrite_batch(&short, &map, &strict),
        Err(RewriteError::NotFramed {
            framing: Framing::TooShort { len: 2 },
            ..
        })
    ));
    assert!(matches!(
        rewrite_batch(&Bytes::from_static(&[0; 30]), &map, &strict),
        Err(RewriteError::Header { .. })
    ));
    let b = one(framed(7, b"x"));
    let mut crc = b.to_vec();
    crc[20] ^= 1;
    assert!(matches!(
        rewrite_batch(&Bytes::from(crc), &map, &strict),
        Err(RewriteError::Crc { .. })
    ));
    let mut truncated = b.to_vec();
    truncated.pop();
    assert!(matches!(
        rewrite_batch(&Bytes::from(truncated), &map, &strict),
        Err(RewriteError::Header { .. })
    ));
    // A zstd batch whose records section is garbage (with a valid CRC).
    let mut z = b.to_vec();
    z[22] |= 4; // codec bits: zstd
    starlog_wire::recompute_crc(&mut z).unwrap();
    assert!(matches!(
        rewrite_batch(&Bytes::from(z), &map, &strict),
        Err(RewriteError::Decompress { .. })
    ));
    assert_eq!(
        rewrite_batch(&b, &map, &strict)
            .map(|r| matches!(r, BatchRewrite::Rewritten { values: 1, .. })),
        Ok(true)
    );
}
