//! Recovery on open: torn or corrupt tails are truncated and reported, indexes rebuilt.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::path::Path;

use common::{batch, batch_sized, concat, decode, files_with_ext, fix_crc};
use starlog_storage::{FlushPolicy, LogConfig, PartitionLog, StorageError};

fn cfg() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::Never,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Writes `n` batches of 2 records (~300 bytes each); returns the batch sizes.
fn fill(dir: &Path, config: &LogConfig, n: usize) -> Vec<usize> {
    let log = PartitionLog::open(dir, "t", 0, config.clone()).unwrap();
    (0..n)
        .map(|i| {
            let b = batch_sized(i as i64 * 10, 2, 140, i as u8);
            log.append(&b, 0).unwrap();
            b.len()
        })
        .collect()
}

/// A crash leaves no clean-shutdown marker; the fixtures closed the log cleanly, so remove it
/// to put the directory in the state a crash would have left.
fn simulate_crash(dir: &Path) {
    let marker = dir.join("clean-shutdown");
    assert!(marker.exists(), "a clean close writes the marker");
    std::fs::remove_file(marker).unwrap();
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    files_with_ext(dir, "log").pop().unwrap()
}

fn all_records(log: &PartitionLog) -> Vec<common::Rec> {
    decode(&concat(
        &log.read(log.log_start_offset(), usize::MAX, i64::MAX)
            .unwrap(),
    ))
}

/// Reopens and checks: one recovered tail with `expected_reason` text, the log holds exactly
/// `keep` batches, and a new append continues at offset 2*keep.
fn reopen_expect_cut(dir: &Path, keep: usize, dropped: u64, expected_reason: &str) {
    let log = PartitionLog::open(dir, "t", 0, cfg()).unwrap();
    let tails = log.recovered_tails();
    assert_eq!(tails.len(), 1, "{tails:?}");
    assert_eq!(tails[0].bytes_dropped, dropped);
    assert_eq!(tails[0].first_dropped_offset, 2 * keep as i64);
    assert!(
        tails[0].reason.contains(expected_reason),
        "reason {:?} lacks {expected_reason:?}",
        tails[0].reason
    );
    assert_eq!(log.log_end_offset(), 2 * keep as i64);
    assert_eq!(all_records(&log).len(), 2 * keep);
    let info = log.append(&batch(9_000, &[b"after"]), 0).unwrap();
    assert_eq!(info.base_offset, 2 * keep as i64);
    drop(log);
    // The repaired log reopens cleanly.
    let log = PartitionLog::open(dir, "t", 0, cfg()).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(log.log_end_offset(), 2 * keep as i64 + 1);
}

#[test]
fn torn_partial_batch_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 10);
    let seg = active_segment(dir.path());
    let full: usize = sizes.iter().sum();
    let cut = full - sizes[9] / 2;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 9, (cut - (full - sizes[9])) as u64, "declares");
}

#[test]
fn torn_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 4);
    let seg = active_segment(dir.path());
    let prefix: usize = sizes[..3].iter().sum();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(prefix as u64 + 20)
        .unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 3, 20, "truncated header");
}

#[test]
fn bad_crc_in_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 5);
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..4].iter().sum();
    bytes[start + 100] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 4, sizes[4] as u64, "CRC");
}

#[test]
fn bad_length_in_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 5);
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..3].iter().sum();
    bytes[start + 8..start + 12].copy_from_slice(&7i32.to_be_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    // Everything from the bad batch on is dropped (the next batch can no longer be found).
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 3, (sizes[3] + sizes[4]) as u64, "batchLength 7");
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 3);
    let seg = active_segment(dir.path());
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    let full: usize = sizes.iter().sum();
    f.set_len(full as u64 + 4096).unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 3, 4096, "batchLength 0");
}

#[test]
fn batch_with_wrong_offset_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), &cfg(), 3);
    let seg = active_segment(dir.path());
    // A valid batch whose base offset does not continue the log (6): claims 100.
    let mut rogue = batch(5, &[b"r"]);
    rogue[..8].copy_from_slice(&100i64.to_be_bytes());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&rogue);
    std::fs::write(&seg, &bytes).unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 3, rogue.len() as u64, "does not continue");
}

#[test]
fn wrong_magic_in_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 3);
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..2].iter().sum();
    bytes[start + 16] = 9;
    std::fs::write(&seg, &bytes).unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 2, sizes[2] as u64, "magic 9");
}

fn multi_segment(dir: &Path) -> (LogConfig, Vec<common::Rec>) {
    let config = LogConfig {
        segment_bytes: 1500,
        ..cfg()
    };
    fill(dir, &config, 30);
    let log = PartitionLog::open(dir, "t", 0, config.clone()).unwrap();
    let recs = all_records(&log);
    assert_eq!(recs.len(), 60);
    assert!(files_with_ext(dir, "log").len() >= 4);
    (config, recs)
}

#[test]
fn missing_indexes_of_sealed_segments_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recs) = multi_segment(dir.path());
    let indexes = files_with_ext(dir.path(), "index");
    let first_index = std::fs::read(&indexes[0]).unwrap();
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::remove_file(&files_with_ext(dir.path(), "timeindex")[1]).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(all_records(&log), recs);
    assert_eq!(log.offset_for_timestamp(55).unwrap(), Some((12, 61)));
    // Rebuilt identically.
    assert_eq!(std::fs::read(&indexes[0]).unwrap(), first_index);
}

#[test]
fn inconsistent_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recs) = multi_segment(dir.path());
    let indexes = files_with_ext(dir.path(), "index");
    let times = files_with_ext(dir.path(), "timeindex");
    let good0 = std::fs::read(&indexes[0]).unwrap();
    // Zero-filled (as after a crash that lost the pages), wrong size, and a pointer past EOF.
    std::fs::write(&indexes[0], vec![0u8; good0.len()]).unwrap();
    std::fs::write(&times[1], [1u8; 5]).unwrap();
    let mut bad2 = std::fs::read(&indexes[2]).unwrap();
    let n = bad2.len();
    bad2[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(&indexes[2], &bad2).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    assert!(log.recovered_tails().is_empty());
    assert_eq!(all_records(&log), recs);
    for off in 0..60 {
        let r = decode(&concat(&log.read(off, 1, i64::MAX).unwrap()));
        assert!(r.iter().any(|r| r.offset == off));
    }
    assert_eq!(std::fs::read(&indexes[0]).unwrap(), good0);
}

#[test]
fn index_pointing_at_wrong_batch_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recs) = multi_segment(dir.path());
    let indexes = files_with_ext(dir.path(), "index");
    // Last entry claims a different relative offset for the same position.
    let mut ix = std::fs::read(&indexes[1]).unwrap();
    let n = ix.len();
    let rel = u32::from_be_bytes(ix[n - 8..n - 4].try_into().unwrap());
    ix[n - 8..n - 4].copy_from_slice(&(rel + 1).to_be_bytes());
    std::fs::write(&indexes[1], &ix).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    assert_eq!(all_records(&log), recs);
}

#[test]
fn corrupt_sealed_segment_truncates_there_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recs) = multi_segment(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    let n_segments = logs.len();
    // Corrupt the last batch of the second segment; its index still looks fine, so only the
    // scan of the batches after the last index entry can catch it.
    let mut bytes = std::fs::read(&logs[1]).unwrap();
    let len = bytes.len();
    bytes[len - 3] ^= 0xff;
    std::fs::write(&logs[1], &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    let tails = log.recovered_tails();
    assert_eq!(tails.len(), 1);
    assert_eq!(tails[0].segments_deleted, n_segments - 2);
    assert!(tails[0].reason.contains("CRC"));
    let kept = all_records(&log);
    assert_eq!(kept[..], recs[..kept.len()]);
    assert_eq!(log.log_end_offset(), kept.len() as i64);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 2);
    assert_eq!(
        log.append(&batch(1, &[b"x"]), 0).unwrap().base_offset,
        kept.len() as i64
    );
}

#[test]
fn leftover_temp_and_orphan_index_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), &cfg(), 3);
    let orphan = dir.path().join(format!("{:020}.index", 999));
    let tmp = dir.path().join(format!("{:020}.log.tmp", 0));
    std::fs::write(&orphan, [0u8; 8]).unwrap();
    std::fs::write(&tmp, [1u8; 100]).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert!(!orphan.exists());
    assert!(!tmp.exists());
}

#[test]
fn corrupt_start_offset_checkpoint_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), &cfg(), 3);
    std::fs::write(dir.path().join("log-start-offset"), "twelve").unwrap();
    match PartitionLog::open(dir.path(), "t", 0, cfg()) {
        Err(StorageError::Corrupt { path, reason, .. }) => {
            assert!(path.ends_with("log-start-offset"));
            assert!(reason.contains("twelve"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_batch_after_crc_fix_but_wrong_count_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 3);
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..2].iter().sum();
    bytes[start + 57..start + 61].copy_from_slice(&9i32.to_be_bytes());
    fix_crc(&mut bytes[start..]);
    std::fs::write(&seg, &bytes).unwrap();
    simulate_crash(dir.path());
    reopen_expect_cut(dir.path(), 2, sizes[2] as u64, "recordCount 9");
}

#[test]
fn sealed_segment_cut_on_a_batch_boundary_drops_the_segments_after_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (config, recs) = multi_segment(dir.path());
    let logs = files_with_ext(dir.path(), "log");
    let n_segments = logs.len();
    // Drop the last batch of the first segment exactly at its boundary: the segment itself
    // still scans clean, but the next segment no longer continues it.
    let bytes = std::fs::read(&logs[0]).unwrap();
    let mut pos = 0;
    let mut last_start = 0;
    while pos < bytes.len() {
        last_start = pos;
        pos += 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
    }
    OpenOptions::new()
        .write(true)
        .open(&logs[0])
        .unwrap()
        .set_len(last_start as u64)
        .unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    let tails = log.recovered_tails();
    assert_eq!(tails.len(), 1, "{tails:?}");
    assert_eq!(tails[0].segments_deleted, n_segments - 1);
    assert!(tails[0].reason.contains("next segment starts"));
    let kept = all_records(&log);
    assert_eq!(kept[..], recs[..kept.len()]);
    assert_eq!(log.log_end_offset(), kept.len() as i64);
    assert_eq!(files_with_ext(dir.path(), "log").len(), 1);
    assert_eq!(
        log.append(&batch(1, &[b"x"]), 0).unwrap().base_offset,
        kept.len() as i64
    );
}

#[test]
fn clean_close_lets_reopen_trust_the_active_segment_and_consumes_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), &cfg(), 6);
    let marker = dir.path().join("clean-shutdown");
    assert!(marker.exists());
    // The active segment's indexes were written by the clean close.
    assert_eq!(files_with_ext(dir.path(), "index").len(), 1);
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert!(
        !marker.exists(),
        "open must consume the marker before any append"
    );
    assert_eq!(all_records(&log).len(), 12);
    assert_eq!(log.append(&batch(1, &[b"x"]), 0).unwrap().base_offset, 12);
    assert_eq!(log.offset_for_timestamp(41).unwrap(), Some((8, 41)));
}

#[test]
fn clean_marker_for_another_length_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 4);
    // Bytes written after the marker (impossible without a crash in between, but the marker
    // must not be trusted when the file disagrees with it).
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..2].iter().sum();
    bytes[start + 16] = 7; // corrupt batch 2 of 4, before the last index entry
    bytes.extend_from_slice(&[0u8; 10]);
    std::fs::write(&seg, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!(log.recovered_tails().len(), 1);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn unreadable_clean_marker_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = fill(dir.path(), &cfg(), 4);
    std::fs::write(dir.path().join("clean-shutdown"), "not a marker").unwrap();
    let seg = active_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let start: usize = sizes[..1].iter().sum();
    bytes[start + 100] ^= 1; // corrupt batch 1 of 4, same length
    std::fs::write(&seg, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), "t", 0, cfg()).unwrap();
    assert_eq!(log.recovered_tails().len(), 1);
    assert!(log.recovered_tails()[0].reason.contains("CRC"));
    assert_eq!(log.log_end_offset(), 2);
}
