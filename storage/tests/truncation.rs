//! `truncate_to` (Raft conflicts) and `advance_start` (DeleteRecords).

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{batch, batch_sized, concat, decode, files_with_ext};
use starlog_storage::{FlushPolicy, LogConfig, PartitionLog, StorageError};

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        segment_bytes: 1500,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// 30 batches of 2 records (offsets 2i, 2i+1; timestamps 10i, 10i+1), several segments.
fn filled(dir: &std::path::Path) -> PartitionLog {
    let log = PartitionLog::open(dir, "t", 0, cfg()).unwrap();
    for i in 0..30u8 {
        log.append(&batch_sized(i64::from(i) * 10, 2, 140, i), 3)
            .unwrap();
    }
    assert!(files_with_ext(dir, "log").len() >= 4);
    log
}

fn offsets(log: &PartitionLog) -> Vec<i64> {
    let r = log
        .read(log.log_start_offset(), usize::MAX, i64::MAX)
        .unwrap();
    decode(&concat(&r)).iter().map(|r| r.offset).collect()
}

#[test]
fn truncate_in_active_segment_at_boundary_and_mid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.truncate_to(58).unwrap();
    assert_eq!(log.log_end_offset(), 58);
    // Mid-batch: the whole batch holding 55 goes, the log ends at its base 54.
    log.truncate_to(55).unwrap();
    assert_eq!(log.log_end_offset(), 54);
    assert_eq!(offsets(&log), (0..54).collect::<Vec<_>>());
    let info = log.append(&batch(1000, &[b"new"]), 4).unwrap();
    assert_eq!(info.base_offset, 54);
    assert_eq!(log.offset_for_timestamp(1000).unwrap(), Some((54, 1000)));
    assert_eq!(log.offset_for_timestamp(265).unwrap(), Some((54, 1000)));
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(offsets(&log), (0..55).collect::<Vec<_>>());
}

#[test]
fn truncate_into_a_sealed_segment_keeps_outstanding_reads_valid() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    // Hold zero-copy bytes from the (mapped) first segments while they are cut and deleted.
    let held = log.read(0, usize::MAX, i64::MAX).unwrap();
    let held_copy = concat(&held);
    let segments_before = files_with_ext(dir.path(), "log").len();
    log.truncate_to(9).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(offsets(&log), (0..8).collect::<Vec<_>>());
    assert!(files_with_ext(dir.path(), "log").len() < segments_before);
    // The held chunks still read the old bytes (no SIGBUS, no change).
    assert_eq!(concat(&held), held_copy);
    // The max timestamp of the cut segment is recomputed exactly.
    assert_eq!(log.offset_for_timestamp(31).unwrap(), Some((6, 31)));
    assert_eq!(log.offset_for_timestamp(32).unwrap(), None);
    for i in 0..5 {
        assert_eq!(
            log.append(&batch(500 + i, &[b"n"]), 5).unwrap().base_offset,
            8 + i
        );
    }
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(offsets(&log), (0..13).collect::<Vec<_>>());
}

#[test]
fn truncate_at_a_segment_boundary_starts_a_fresh_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let second_base: i64 = files_with_ext(dir.path(), "log")[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    log.truncate_to(second_base).unwrap();
    assert_eq!(log.log_end_offset(), second_base);
    assert_eq!(
        log.append(&batch(7, &[b"a"]), 0).unwrap().base_offset,
        second_base
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!(offsets(&log), (0..=second_base).collect::<Vec<_>>());
}

#[test]
fn truncate_to_below_start_empties_the_log_at_that_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.advance_start(20).unwrap();
    log.truncate_to(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert!(log.read(10, 100, i64::MAX).unwrap().is_empty());
    assert_eq!(log.append(&batch(1, &[b"a"]), 0).unwrap().base_offset, 10);
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 11));
}

#[test]
fn truncate_at_or_past_end_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.truncate_to(60).unwrap();
    log.truncate_to(1000).unwrap();
    assert_eq!(offsets(&log), (0..60).collect::<Vec<_>>());
}

#[test]
fn truncate_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.truncate_to(0).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, 0, 0)
    );
    assert_eq!(files_with_ext(dir.path(), "log").len(), 1);
    assert_eq!(log.append(&batch(1, &[b"a"]), 0).unwrap().base_offset, 0);
}

#[test]
fn advance_start_hides_records_deletes_segments_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    let segments_before = files_with_ext(dir.path(), "log").len();
    let size_before = log.size_bytes();
    log.advance_start(25).unwrap();
    assert_eq!(log.log_start_offset(), 25);
    assert!(files_with_ext(dir.path(), "log").len() < segments_before);
    assert!(log.size_bytes() < size_before);
    match log.read(24, 100, i64::MAX) {
        Err(StorageError::OffsetOutOfRange {
            log_start_offset, ..
        }) => {
            assert_eq!(log_start_offset, 25)
        }
        other => panic!("expected out of range, got {other:?}"),
    }
    // The first batch returned is the one holding 25 (base 24), as in Kafka.
    let r = log.read(25, 1, i64::MAX).unwrap();
    assert_eq!(decode(&concat(&r))[0].offset, 24);
    // Timestamp lookups do not answer with deleted offsets.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((25, 121)));
    // Going backwards or to the same offset is a no-op; past the end is an error.
    log.advance_start(3).unwrap();
    assert_eq!(log.log_start_offset(), 25);
    assert!(matches!(
        log.advance_start(61),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!(log.log_start_offset(), 25);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn advance_start_to_the_end_rolls_and_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.advance_start(60).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 60));
    assert_eq!(files_with_ext(dir.path(), "log").len(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(60, 100, i64::MAX).unwrap().is_empty());
    assert_eq!(log.append(&batch(1, &[b"a"]), 0).unwrap().base_offset, 60);
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 61));
}

#[test]
fn delete_removes_the_partition_directory() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("t-0");
    let log = PartitionLog::open(&part, "t", 0, cfg()).unwrap();
    log.append(&batch(1, &[b"a"]), 0).unwrap();
    log.delete().unwrap();
    assert!(!part.exists());
}

#[test]
fn truncate_mid_batch_below_the_start_moves_the_start_to_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    log.advance_start(23).unwrap();
    // 23 is inside batch 22..=23 and is the start: truncating there leaves the end at 22.
    log.truncate_to(23).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (22, 22));
    assert_eq!(log.append(&batch(1, &[b"a"]), 0).unwrap().base_offset, 22);
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (22, 23));
    assert_eq!(offsets(&log), vec![22]);
}

#[test]
fn reset_to_restarts_an_empty_log_at_a_later_offset_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path());
    assert!(matches!(
        log.reset_to(10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(offsets(&log).len(), 60, "a refused reset changes nothing");
    log.reset_to(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 1);
    assert!(offsets(&log).is_empty());
    let info = log.append(&batch(7000, &[b"after", b"reset"]), 9).unwrap();
    assert_eq!(info.base_offset, 500);
    drop(log);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 502));
    assert_eq!(offsets(&log), vec![500, 501]);
    // Resetting at the end itself also works (an empty active segment there).
    log.reset_to(502).unwrap();
    assert_eq!(
        log.append(&batch(8000, &[b"x"]), 9).unwrap().base_offset,
        502
    );
}
