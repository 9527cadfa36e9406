//! Real alert packets round-trip byte for byte; concurrent appenders share fsyncs while
//! concurrent readers always see whole, valid batches.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{batch, batch_sized, concat, decode, testdata_dir};
use starlog_storage::{validate_batch, FlushPolicy, LogConfig, PartitionLog};

fn avro_files(sub: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![testdata_dir().join(sub)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "avro") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_alerts_round_trip_byte_for_byte() {
    let mut files = avro_files("lsst/schema");
    files.retain(|p| p.file_name().is_some_and(|n| n == "fakeAlert.avro"));
    assert_eq!(files.len(), 15, "expected the 15 Rubin sample alerts");
    files.extend(avro_files("ztf/alerts/kowalski/20231012"));
    assert!(files.len() > 30);
    let alerts: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();

    let dir = tempfile::tempdir().unwrap();
    // Small segments so alerts are spread over sealed (mapped) and active segments.
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        ..LogConfig::default()
    };
    {
        let log = PartitionLog::open(dir.path(), "alerts", 0, config.clone()).unwrap();
        // Three alerts per batch, like a producer batching them.
        for (i, chunk) in alerts.chunks(3).enumerate() {
            let values: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            log.append(&batch(1_700_000_000_000 + i as i64, &values), 1)
                .unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), "alerts", 0, config).unwrap();
    assert_eq!(log.log_end_offset(), alerts.len() as i64);
    let records = decode(&concat(&log.read(0, usize::MAX, i64::MAX).unwrap()));
    assert_eq!(records.len(), alerts.len());
    for (i, (rec, alert)) in records.iter().zip(&alerts).enumerate() {
        assert_eq!(rec.offset, i as i64);
        assert!(
            rec.value == *alert,
            "alert {} differs after the round trip",
            files[i].display()
        );
        assert!(rec.value.starts_with(b"Obj\x01"));
    }
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    // With a long interval the syncing append waits for the appends in progress to join it.
    let config = LogConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(300)),
        ..LogConfig::default()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), "t", 0, config).unwrap());
    log.append(&batch(0, &[b"first"]), 0).unwrap();
    assert_eq!(log.sync_count(), 1);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                for i in 0..4 {
                    barrier.wait();
                    log.append(&batch_sized(i, 1, 64, t), 0).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), 33);
    // 32 appends in 4 rounds of 8 simultaneous ones: at least 4 sync rounds, and far fewer
    // than the 32 that one fdatasync per append would take.
    let syncs = log.sync_count() - 1;
    assert!(
        (4..=16).contains(&syncs),
        "{syncs} sync rounds for 32 appends"
    );
}

#[test]
fn always_policy_syncs_every_append_when_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), "t", 0, config).unwrap();
    for i in 0..5 {
        log.append(&batch(i, &[b"x"]), 0).unwrap();
    }
    assert_eq!(log.sync_count(), 5);
    let never = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(
        never.path(),
        "t",
        0,
        LogConfig {
            flush: FlushPolicy::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    log.append(&batch(0, &[b"x"]), 0).unwrap();
    assert_eq!(log.sync_count(), 0);
    log.flush().unwrap();
    assert_eq!(log.sync_count(), 1);
}

#[test]
fn readers_see_whole_valid_batches_during_appends_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Never,
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        retention_ms: None,
        retention_bytes: Some(64 * 1024),
        ..LogConfig::default()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), "t", 0, config).unwrap());
    let total = 1500i64;
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for i in 0..total {
                log.append(&batch_sized(i, 1, 200, i as u8), 0).unwrap();
                if i % 100 == 0 {
                    log.apply_retention(0).unwrap();
                }
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut checked = 0u64;
                let mut next = 0i64;
                // Bounded: the writer finishes long before this many polls.
                for _ in 0..5_000_000 {
                    if next >= total {
                        break;
                    }
                    let start = log.log_start_offset();
                    let from = next.max(start);
                    let r = match log.read(from, 4096, i64::MAX) {
                        Ok(r) => r,
                        // Retention moved the start past `from` between the two calls.
                        Err(starlog_storage::StorageError::OffsetOutOfRange { .. }) => continue,
                        Err(e) => panic!("read failed: {e}"),
                    };
                    let bytes = concat(&r);
                    let mut pos = 0;
                    while pos < bytes.len() {
                        let h = validate_batch(&bytes[pos..]).expect("reader saw a broken batch");
                        assert!(h.last_offset() >= from || pos > 0);
                        pos += h.total_len();
                        next = h.last_offset() + 1;
                        checked += 1;
                    }
                    if bytes.is_empty() {
                        std::thread::yield_now();
                    }
                }
                assert_eq!(next, total, "reader did not reach the end");
                checked
            })
        })
        .collect();
    writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(log.log_end_offset(), total);
    assert!(log.log_start_offset() > 0, "retention by size never ran");
}
