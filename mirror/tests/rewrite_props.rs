//! Property tests of the pure batch rewrite: for arbitrary records (keys,
//! framed/unframed/null values, headers, timestamps) in every codec, a
//! rewrite read back by the client's batch decoder (which checks the CRC)
//! gives the same records with the new ids; identity maps keep the input;
//! and bad batches are refused, never mangled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use starlog_clients::records::decode::{decode_batch, split_batches};
use starlog_clients::records::encode::{encode_batch, BatchMeta, PendingRecord};
use starlog_clients::{Compression, Header};
use starlog_mirror::rewrite::wire::{framing, Framing};
use starlog_mirror::rewrite::{
    rewrite_batch, schema_ids, BatchRewrite, RewriteError, RewriteOptions,
};

const IDS: [u32; 4] = [1, 7, 100_000, u32::MAX];

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

fn record() -> impl Strategy<Value = PendingRecord> {
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
        .prop_map(|(key, value, headers, ts)| PendingRecord {
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: headers
                .into_iter()
                .map(|(k, v)| Header {
                    key: k,
                    value: v.map(Bytes::from),
                })
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

fn mapped(id: u32) -> u32 {
    id.wrapping_mul(2_654_435_761).wrapping_add(17)
}

fn read_back(bytes: &Bytes) -> Vec<starlog_clients::ConsumerRecord> {
    let batches = split_batches(bytes).unwrap();
    assert_eq!(batches.len(), 1);
    let (h, b) = &batches[0];
    decode_batch("t", 0, h, b, 0, 1 << 24).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rewrite_then_read_back_gives_the_same_records_with_new_ids(
        records in proptest::collection::vec(record(), 1..12),
        codec in codec(),
        pid in prop_oneof![Just(-1i64), 0i64..1000],
    ) {
        let meta = if pid < 0 { BatchMeta::plain() } else { BatchMeta { producer_id: pid, producer_epoch: 3, base_sequence: 40 } };
        let batch = encode_batch(&records, codec, meta).unwrap();
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
        let before = read_back(&batch);
        let after = read_back(&bytes); // checks the CRC
        prop_assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            prop_assert_eq!(&b.key, &a.key);
            prop_assert_eq!(&b.headers, &a.headers);
            prop_assert_eq!(b.timestamp, a.timestamp);
            prop_assert_eq!(b.offset, a.offset);
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
    }

    #[test]
    fn flipped_bytes_are_refused(records in proptest::collection::vec(record(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let batch = encode_batch(&records, Compression::None, BatchMeta::plain()).unwrap();
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
}

fn framed(id: u32, body: &[u8]) -> Option<Bytes> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    Some(Bytes::from(v))
}

fn one(value: Option<Bytes>) -> Bytes {
    let r = PendingRecord {
        key: None,
        value,
        headers: vec![],
        timestamp: 0,
    };
    encode_batch(&[r], Compression::None, BatchMeta::plain()).unwrap()
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
    let crc = crc32c::crc32c(&z[21..]);
    z[17..21].copy_from_slice(&crc.to_be_bytes());
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
