//! Basic behaviour of `PartitionLog`: append, read, offsets, timestamps, reopen.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{batch, batch_sized, concat, decode};
use starlog_storage::{FlushPolicy, LogConfig, PartitionLog, StorageError};

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    }
}

#[test]
fn append_assigns_dense_offsets_and_read_returns_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(&dir.path().join("t-0"), "t", 0, cfg()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.log_start_offset(), 0);

    let a = log.append(&batch(1000, &[b"a", b"b", b"c"]), 5).unwrap();
    assert_eq!(
        (a.base_offset, a.last_offset, a.record_count, a.batches),
        (0, 2, 3, 1)
    );
    assert_eq!(a.max_timestamp, 1002);

    // Two batches in one request.
    let mut two = batch(2000, &[b"d"]);
    two.extend(batch(3000, &[b"e", b"f"]));
    let b = log.append(&two, 6).unwrap();
    assert_eq!(
        (b.base_offset, b.last_offset, b.record_count, b.batches),
        (3, 5, 3, 2)
    );
    assert_eq!(log.log_end_offset(), 6);

    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(r.log_end_offset, 6);
    let recs = decode(&concat(&r));
    let values: Vec<&[u8]> = recs.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(
        values,
        [b"a", b"b", b"c", b"d", b"e", b"f"].map(|v| v.as_slice())
    );
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );

    // Stored bytes = produced bytes except base offset and leader epoch.
    let stored = concat(&r);
    let mut expected = batch(1000, &[b"a", b"b", b"c"]);
    expected[12..16].copy_from_slice(&5i32.to_be_bytes());
    let mut rest = two.clone();
    rest[..8].copy_from_slice(&3i64.to_be_bytes());
    rest[12..16].copy_from_slice(&6i32.to_be_bytes());
    let second = 12 + i32::from_be_bytes(two[8..12].try_into().unwrap()) as usize;
    rest[second..second + 8].copy_from_slice(&4i64.to_be_bytes());
    rest[second + 12..second + 16].copy_from_slice(&6i32.to_be_bytes());
    expected.extend(rest);
    assert_eq!(stored, expected);
    // And every stored batch still validates (CRC unchanged by the patches).
    let h = starlog_storage::validate_batch(&stored).unwrap();
    assert_eq!(h.partition_leader_epoch, 5);
}

#[test]
fn read_respects_offsets_byte_limit_and_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), "t", 1, cfg()).unwrap();
    for i in 0..10 {
        log.append(&batch_sized(i * 10, 2, 100, i as u8), 0)
            .unwrap();
    }
    let one = batch_sized(0, 2, 100, 0).len();

    // Offset in the middle of a batch returns that whole batch first.
    let r = log.read(5, 1 << 20, i64::MAX).unwrap();
    let recs = decode(&concat(&r));
    assert_eq!(recs.first().unwrap().offset, 4);
    assert_eq!(recs.last().unwrap().offset, 19);
    assert_eq!(r.next_offset, 20);

    // Byte limit: whole batches only, at least one.
    let r = log.read(0, one * 3 + 10, i64::MAX).unwrap();
    assert_eq!(r.len(), one * 3);
    assert_eq!(r.next_offset, 6);
    let r = log.read(0, 1, i64::MAX).unwrap();
    assert_eq!(r.len(), one);

    // max_offset excludes batches starting at or after it.
    let r = log.read(0, 1 << 20, 6).unwrap();
    assert_eq!(decode(&concat(&r)).last().unwrap().offset, 5);
    let r = log.read(6, 1 << 20, 6).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.next_offset, 6);

    // At the log end: empty; past it: out of range.
    assert!(log.read(20, 1 << 20, i64::MAX).unwrap().is_empty());
    match log.read(21, 100, i64::MAX) {
        Err(StorageError::OffsetOutOfRange {
            offset,
            log_end_offset,
            partition,
            ..
        }) => {
            assert_eq!((offset, log_end_offset, partition), (21, 20, 1));
        }
        other => panic!("expected out of range, got {other:?}"),
    }
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reads_span_rolled_segments_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 300,
        ..cfg()
    };
    let all;
    {
        let log = PartitionLog::open(dir.path(), "t", 0, config.clone()).unwrap();
        for i in 0..40u8 {
            let b = batch_sized(i64::from(i) * 100, 3, 150, i);
            log.append(&b, 1).unwrap();
        }
        all = decode(&concat(&log.read(0, usize::MAX, i64::MAX).unwrap()));
        assert_eq!(all.len(), 120);
    }
    let segs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segs > 5, "expected several segments, got {segs}");

    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(
        decode(&concat(&log.read(0, usize::MAX, i64::MAX).unwrap())),
        all
    );
    for off in [0, 1, 2, 3, 50, 77, 119] {
        let r = log.read(off, 1, i64::MAX).unwrap();
        let recs = decode(&concat(&r));
        assert!(
            recs.iter().any(|r| r.offset == off),
            "offset {off} not in first batch"
        );
    }
    // Appending after reopen continues the offsets.
    let a = log.append(&batch(99_999, &[b"z"]), 2).unwrap();
    assert_eq!(a.base_offset, 120);
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 200,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    for i in 0..30i64 {
        log.append(
            &batch(1000 + i * 10, &[b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", b"y"]),
            0,
        )
        .unwrap();
    }
    // Batch i holds offsets 2i, 2i+1 and timestamps 1000+10i, 1001+10i (max).
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1001)));
    assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((0, 1001)));
    assert_eq!(log.offset_for_timestamp(1002).unwrap(), Some((2, 1011)));
    assert_eq!(log.offset_for_timestamp(1155).unwrap(), Some((32, 1161)));
    assert_eq!(log.offset_for_timestamp(1291).unwrap(), Some((58, 1291)));
    assert_eq!(log.offset_for_timestamp(1292).unwrap(), None);
}

#[test]
fn empty_records_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), "t", 3, cfg()).unwrap();
    match log.append(&[], 0) {
        Err(StorageError::EmptyRecords { topic, partition }) => {
            assert_eq!((topic.as_str(), partition), ("t", 3));
        }
        other => panic!("expected EmptyRecords, got {other:?}"),
    }
}

#[test]
fn flush_policies_all_store_the_data() {
    for flush in [
        FlushPolicy::Always,
        FlushPolicy::Interval(std::time::Duration::from_millis(2)),
        FlushPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush,
            ..LogConfig::default()
        };
        {
            let log = PartitionLog::open(dir.path(), "t", 0, config.clone()).unwrap();
            for i in 0..5 {
                log.append(&batch(i, &[b"v"]), 0).unwrap();
            }
            log.flush().unwrap();
        }
        let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
        assert_eq!(log.log_end_offset(), 5, "{flush:?}");
    }
}

#[test]
fn segments_roll_by_age_of_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    // 0 and 900 share a segment; 1500 is more than 1000 ms after the first (0): roll.
    for ts in [0, 900, 1500, 2400, 2600] {
        log.append(&batch(ts, &[b"v"]), 0).unwrap();
    }
    let bases: Vec<String> = common::files_with_ext(dir.path(), "log")
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bases,
        vec![
            format!("{:020}", 0),
            format!("{:020}", 2),
            format!("{:020}", 4)
        ]
    );
    assert_eq!(
        decode(&concat(&log.read(0, usize::MAX, i64::MAX).unwrap())).len(),
        5
    );
}

#[test]
fn segments_roll_by_size_and_never_exceed_it() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch_sized(0, 1, 200, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: one * 3,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    for i in 0..10 {
        log.append(&batch_sized(i, 1, 200, 0), 0).unwrap();
    }
    let logs = common::files_with_ext(dir.path(), "log");
    assert_eq!(logs.len(), 4);
    for p in &logs[..3] {
        assert_eq!(p.metadata().unwrap().len(), one * 3);
    }
    assert_eq!(log.size_bytes(), one * 10);
}

#[test]
fn split_append_syncs_only_when_waited_for_and_one_sync_covers_earlier_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    let syncs = log.sync_count();
    let (first, t1) = log.append_unsynced(&batch(1, &[b"a", b"b"]), 0).unwrap();
    let (second, t2) = log.append_unsynced(&batch(2, &[b"c"]), 0).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 1));
    assert_eq!((second.base_offset, second.last_offset), (2, 2));
    assert_eq!(log.sync_count(), syncs, "writing alone does not sync");
    log.wait_durable(t2).unwrap();
    let after_second = log.sync_count();
    assert!(after_second > syncs, "waiting syncs");
    log.wait_durable(t1).unwrap();
    assert_eq!(
        log.sync_count(),
        after_second,
        "the later sync covered the earlier write"
    );
}
