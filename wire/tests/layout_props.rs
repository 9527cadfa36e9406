//! Property tests of the batch layout: header parse and patch, CRC recompute and verify, and
//! the walk over back-to-back batches, on generated batches and on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use starlog_wire::{
    batches, checksum, parse_batch_header, patch_base_offset_and_epoch, patch_producer,
    recompute_crc, validate_batch, verify_crc, BatchError, BatchHeader, WalkError,
    BATCH_HEADER_LEN,
};

/// Header fields a generated batch gets (the rest follows from the body).
#[derive(Debug, Clone)]
struct Fields {
    base_offset: i64,
    leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (any::<i64>(), any::<i32>(), 0i16..64, 0i32..10_000),
        (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i16>(),
            any::<i32>(),
        ),
    )
        .prop_map(
            |(
                (base_offset, leader_epoch, attributes, last_offset_delta),
                (bt, mt, pid, pe, bs),
            )| Fields {
                base_offset,
                leader_epoch,
                attributes,
                last_offset_delta,
                base_timestamp: bt,
                max_timestamp: mt,
                producer_id: pid,
                producer_epoch: pe,
                base_sequence: bs,
            },
        )
}

/// A batch with these fields, `body` as its records section and a correct CRC.
fn build(f: &Fields, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    b.extend_from_slice(&f.base_offset.to_be_bytes());
    b.extend_from_slice(
        &i32::try_from(BATCH_HEADER_LEN - 12 + body.len())
            .unwrap()
            .to_be_bytes(),
    );
    b.extend_from_slice(&f.leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&f.attributes.to_be_bytes());
    b.extend_from_slice(&f.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&f.base_timestamp.to_be_bytes());
    b.extend_from_slice(&f.max_timestamp.to_be_bytes());
    b.extend_from_slice(&f.producer_id.to_be_bytes());
    b.extend_from_slice(&f.producer_epoch.to_be_bytes());
    b.extend_from_slice(&f.base_sequence.to_be_bytes());
    b.extend_from_slice(&(f.last_offset_delta + 1).to_be_bytes());
    b.extend_from_slice(body);
    recompute_crc(&mut b).unwrap();
    b
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_reads_back_every_field(f in fields(), body in body()) {
        let b = build(&f, &body);
        let h = validate_batch(&b).unwrap();
        prop_assert_eq!(h, parse_batch_header(&b).unwrap());
        prop_assert_eq!(h, BatchHeader::read(&b).unwrap());
        prop_assert_eq!(h.total_len(), b.len());
        prop_assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.attributes, h.last_offset_delta),
            (f.base_offset, f.leader_epoch, f.attributes, f.last_offset_delta)
        );
        prop_assert_eq!(
            (h.base_timestamp, h.max_timestamp, h.producer_id, h.producer_epoch, h.base_sequence),
            (f.base_timestamp, f.max_timestamp, f.producer_id, f.producer_epoch, f.base_sequence)
        );
        prop_assert_eq!(h.record_count, f.last_offset_delta + 1);
        prop_assert_eq!(h.crc, checksum(&b).unwrap());
        prop_assert_eq!(h.compression(), (f.attributes & 7) as u8);
    }

    #[test]
    fn patching_offset_and_epoch_keeps_the_crc_and_every_other_byte(
        f in fields(), body in body(), offset in any::<i64>(), epoch in any::<i32>(),
    ) {
        let b = build(&f, &body);
        let mut p = b.clone();
        patch_base_offset_and_epoch(&mut p, offset, epoch).unwrap();
        let h = validate_batch(&p).unwrap();
        prop_assert_eq!((h.base_offset, h.partition_leader_epoch), (offset, epoch));
        prop_assert_eq!(&p[8..12], &b[8..12]);
        prop_assert_eq!(&p[16..], &b[16..]);
    }

    #[test]
    fn patching_producer_fields_needs_and_gets_a_new_crc(
        f in fields(), body in body(), pid in any::<i64>(), pe in any::<i16>(), seq in any::<i32>(),
    ) {
        let b = build(&f, &body);
        let mut p = b.clone();
        patch_producer(&mut p, pid, pe, seq).unwrap();
        let changed = (pid, pe, seq) != (f.producer_id, f.producer_epoch, f.base_sequence);
        prop_assert_eq!(verify_crc(&p).is_err(), changed);
        recompute_crc(&mut p).unwrap();
        let h = validate_batch(&p).unwrap();
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (pid, pe, seq));
        prop_assert_eq!(&p[21..43], &b[21..43]);
        prop_assert_eq!(&p[57..], &b[57..]);
    }

    #[test]
    fn a_flipped_covered_bit_fails_the_crc(f in fields(), body in body(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut b = build(&f, &body);
        let i = 21 + at.index(b.len() - 21);
        b[i] ^= 1 << bit;
        let is_crc_mismatch = matches!(verify_crc(&b), Err(BatchError::CrcMismatch { .. }));
        prop_assert!(is_crc_mismatch);
        prop_assert!(validate_batch(&b).is_err());
    }

    #[test]
    fn the_walk_finds_every_whole_batch_and_stops_at_a_partial_one(
        batches_in in proptest::collection::vec((fields(), body()), 0..6),
        cut in 1usize..60,
    ) {
        let mut run = Vec::new();
        let mut starts = Vec::new();
        for (f, body) in &batches_in {
            starts.push(run.len());
            run.extend(build(f, body));
        }
        let found: Vec<_> = batches(&run).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(found.len(), batches_in.len());
        for (b, at) in found.iter().zip(&starts) {
            prop_assert_eq!(b.at, *at);
            prop_assert!(validate_batch(b.bytes).is_ok());
            prop_assert_eq!(b.header.total_len(), b.bytes.len());
        }
        // A partial batch at the end: every whole one, then Truncated at its position.
        if let Some((f, body)) = batches_in.first() {
            let whole = build(f, body);
            let end = run.len();
            run.extend_from_slice(&whole[..whole.len() - cut.min(whole.len() - 1)]);
            let steps: Vec<_> = batches(&run).collect();
            prop_assert_eq!(steps.len(), batches_in.len() + 1);
            let last_is_truncated_at_end = matches!(steps.last(), Some(Err(WalkError::Truncated { at, .. })) if *at == end);
            prop_assert!(last_is_truncated_at_end);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = BatchHeader::read(&bytes);
        let _ = verify_crc(&bytes);
        let _ = checksum(&bytes);
        if let Ok(h) = parse_batch_header(&bytes) {
            prop_assert_eq!(h.magic, 2);
            prop_assert!(h.total_len() >= BATCH_HEADER_LEN);
        }
        if let Ok(h) = validate_batch(&bytes) {
            prop_assert!(h.total_len() <= bytes.len());
            prop_assert_eq!(i64::from(h.record_count), i64::from(h.last_offset_delta) + 1);
        }
        let mut end = 0;
        for step in batches(&bytes) {
            match step {
                Ok(b) => {
                    prop_assert_eq!(b.at, end);
                    end += b.bytes.len();
                }
                Err(_) => break,
            }
        }
        prop_assert!(end <= bytes.len());
        let mut copy = bytes.clone();
        let _ = recompute_crc(&mut copy);
        let _ = patch_base_offset_and_epoch(&mut copy, 1, 2);
        let _ = patch_producer(&mut copy, 1, 2, 3);
    }
}
