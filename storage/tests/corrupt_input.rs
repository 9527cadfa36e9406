//! One test per malformed-batch case: the append is rejected with a typed error naming the
//! fault and the partition, and nothing already stored changes.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{batch, concat, fix_crc};
use starlog_storage::{
    parse_batch_header, BatchError, FlushPolicy, LogConfig, PartitionLog, StorageError,
};

struct Fixture {
    _dir: tempfile::TempDir,
    log: PartitionLog,
    before: Vec<u8>,
}

/// A log on partition 7 of "alerts" holding two batches already.
fn fixture(config: LogConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), "alerts", 7, config).unwrap();
    log.append(&batch(10, &[b"one", b"two"]), 1).unwrap();
    log.append(&batch(20, &[b"three"]), 1).unwrap();
    let before = concat(&log.read(0, usize::MAX, i64::MAX).unwrap());
    Fixture {
        _dir: dir,
        log,
        before,
    }
}

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

/// Appends `records`, expects an InvalidBatch for batch `index` at `position`, returns the
/// fault, and checks the log is unchanged.
fn reject(f: &Fixture, records: &[u8], index: usize, position: usize) -> BatchError {
    let err = f.log.append(records, 2).unwrap_err();
    let fault = match err {
        StorageError::InvalidBatch {
            topic,
            partition,
            batch_index,
            position: p,
            fault,
        } => {
            assert_eq!(topic, "alerts");
            assert_eq!(partition, 7);
            assert_eq!(batch_index, index);
            assert_eq!(p, position);
            fault
        }
        other => panic!("expected InvalidBatch, got {other:?}"),
    };
    assert_unchanged(f);
    fault
}

fn assert_unchanged(f: &Fixture) {
    assert_eq!(f.log.log_end_offset(), 3);
    assert_eq!(
        concat(&f.log.read(0, usize::MAX, i64::MAX).unwrap()),
        f.before
    );
    // And the next good append still gets the next offset.
}

#[test]
fn truncated_header() {
    let f = fixture(cfg());
    let b = batch(30, &[b"x"]);
    let fault = reject(&f, &b[..40], 0, 0);
    assert_eq!(fault, BatchError::TruncatedHeader { available: 40 });
}

#[test]
fn batch_length_smaller_than_header() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"x"]);
    b[8..12].copy_from_slice(&10i32.to_be_bytes());
    let fault = reject(&f, &b, 0, 0);
    assert_eq!(
        fault,
        BatchError::LengthTooSmall {
            batch_length: 10,
            min: 49
        }
    );
}

#[test]
fn negative_batch_length() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"x"]);
    b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        reject(&f, &b, 0, 0),
        BatchError::LengthTooSmall {
            batch_length: -5,
            ..
        }
    ));
}

#[test]
fn batch_length_past_the_end() {
    let f = fixture(cfg());
    let b = batch(30, &[b"xyz"]);
    let cut = &b[..b.len() - 1];
    let fault = reject(&f, cut, 0, 0);
    assert_eq!(
        fault,
        BatchError::TruncatedBatch {
            batch_length: (b.len() - 12) as i32,
            declared: b.len(),
            available: b.len() - 1
        }
    );
}

#[test]
fn wrong_magic() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"x"]);
    b[16] = 1;
    assert_eq!(reject(&f, &b, 0, 0), BatchError::BadMagic { magic: 1 });
}

#[test]
fn crc_mismatch() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"payload"]);
    let last = b.len() - 2;
    b[last] ^= 0xff;
    assert!(matches!(
        reject(&f, &b, 0, 0),
        BatchError::CrcMismatch { .. }
    ));
}

#[test]
fn record_count_does_not_match_offset_delta() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"a", b"b"]);
    b[57..61].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut b);
    assert_eq!(
        reject(&f, &b, 0, 0),
        BatchError::RecordCountMismatch {
            record_count: 5,
            last_offset_delta: 1
        }
    );
}

#[test]
fn zero_record_count() {
    let f = fixture(cfg());
    let mut b = batch(30, &[b"a"]);
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut b);
    assert!(matches!(
        reject(&f, &b, 0, 0),
        BatchError::RecordCountMismatch {
            record_count: 0,
            ..
        }
    ));
}

#[test]
fn bad_second_batch_stores_nothing() {
    let f = fixture(cfg());
    let good = batch(30, &[b"good"]);
    let mut bad = batch(31, &[b"bad"]);
    bad[16] = 0;
    let mut records = good.clone();
    records.extend_from_slice(&bad);
    assert_eq!(
        reject(&f, &records, 1, good.len()),
        BatchError::BadMagic { magic: 0 }
    );
}

#[test]
fn trailing_bytes_after_a_valid_batch() {
    let f = fixture(cfg());
    let good = batch(30, &[b"good"]);
    let mut records = good.clone();
    records.extend_from_slice(&[0u8; 7]);
    assert_eq!(
        reject(&f, &records, 1, good.len()),
        BatchError::TruncatedHeader { available: 7 }
    );
}

#[test]
fn batch_larger_than_max_batch_bytes() {
    let f = fixture(LogConfig {
        max_batch_bytes: 200,
        ..cfg()
    });
    let b = batch(30, &[&[7u8; 300]]);
    match f.log.append(&b, 0).unwrap_err() {
        StorageError::BatchTooLarge {
            topic,
            partition,
            size,
            max,
        } => {
            assert_eq!(
                (topic.as_str(), partition, size, max),
                ("alerts", 7, b.len(), 200)
            );
        }
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    assert_unchanged(&f);
    // A batch exactly at the limit is accepted.
    let f = fixture(LogConfig {
        max_batch_bytes: b.len() as u32,
        ..cfg()
    });
    assert_eq!(f.log.append(&b, 0).unwrap().base_offset, 3);
}

#[test]
fn parse_header_reports_faults_without_a_log() {
    assert_eq!(
        parse_batch_header(&[]),
        Err(BatchError::TruncatedHeader { available: 0 })
    );
    let mut b = batch(1, &[b"x"]);
    let h = parse_batch_header(&b).unwrap();
    assert_eq!(
        (h.magic, h.record_count, h.max_timestamp, h.total_len()),
        (2, 1, 1, b.len())
    );
    assert_eq!(h.producer_id, -1);
    assert!(!h.is_transactional() && !h.is_control() && h.compression() == 0);
    b[16] = 3;
    assert_eq!(
        parse_batch_header(&b),
        Err(BatchError::BadMagic { magic: 3 })
    );
}
