//! Property tests of the partition log against a simple in-memory model.

// Test helpers outside #[test] fns panic on purpose when a fixture cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;

use common::{batch_with_timestamps, concat, files_with_ext};
use proptest::prelude::*;
use starlog_storage::{FlushPolicy, LogConfig, PartitionLog};

/// One batch to produce: record timestamps and value length.
#[derive(Debug, Clone)]
struct BatchSpec {
    timestamps: Vec<i64>,
    value_len: usize,
}

fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (prop::collection::vec(0i64..10_000, 1..4), 0usize..300).prop_map(|(timestamps, value_len)| {
        BatchSpec {
            timestamps,
            value_len,
        }
    })
}

/// An append request: one to three batches.
fn request() -> impl Strategy<Value = Vec<BatchSpec>> {
    prop::collection::vec(batch_spec(), 1..4)
}

fn config_strategy() -> impl Strategy<Value = LogConfig> {
    (400u64..3000, 32u32..1024).prop_map(|(segment_bytes, index_interval_bytes)| LogConfig {
        segment_bytes,
        index_interval_bytes,
        flush: FlushPolicy::Never,
        ..LogConfig::default()
    })
}

/// A stored batch as the model knows it.
#[derive(Debug, Clone)]
struct Stored {
    base: i64,
    last: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

fn encode(spec: &BatchSpec, seed: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..spec.timestamps.len())
        .map(|i| vec![(seed + i) as u8; spec.value_len])
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch_with_timestamps(&spec.timestamps, &refs)
}

/// Appends every request, checking offsets, and returns the model.
fn append_all(log: &PartitionLog, requests: &[Vec<BatchSpec>], epoch: i32) -> Vec<Stored> {
    let mut model = Vec::new();
    let mut next = log.log_end_offset();
    for (ri, req) in requests.iter().enumerate() {
        let encoded: Vec<Vec<u8>> = req
            .iter()
            .enumerate()
            .map(|(i, s)| encode(s, ri * 7 + i))
            .collect();
        let records: Vec<u8> = encoded.concat();
        let info = log.append(&records, epoch).unwrap();
        assert_eq!(info.base_offset, next, "offsets must be dense");
        for (spec, mut bytes) in req.iter().zip(encoded) {
            let n = spec.timestamps.len() as i64;
            bytes[..8].copy_from_slice(&next.to_be_bytes());
            bytes[12..16].copy_from_slice(&epoch.to_be_bytes());
            model.push(Stored {
                base: next,
                last: next + n - 1,
                max_ts: *spec.timestamps.iter().max().unwrap(),
                bytes,
            });
            next += n;
        }
        assert_eq!(info.last_offset, next - 1);
        assert!(info.last_offset >= info.base_offset, "strictly increasing");
        assert_eq!(log.log_end_offset(), next);
    }
    model
}

fn model_bytes(model: &[Stored]) -> Vec<u8> {
    model.iter().flat_map(|s| s.bytes.iter().copied()).collect()
}

/// Checks every read the model can predict.
fn check_reads(log: &PartitionLog, model: &[Stored], max_bytes: usize) {
    assert_eq!(
        concat(
            &log.read(log.log_start_offset(), usize::MAX, i64::MAX)
                .unwrap()
        ),
        model_bytes(model)
    );
    for (i, s) in model.iter().enumerate() {
        for offset in [s.base, s.last] {
            let r = log.read(offset, max_bytes, i64::MAX).unwrap();
            // Whole batches from batch i, at least one, within max_bytes beyond the first.
            let mut expected = s.bytes.clone();
            for next in &model[i + 1..] {
                if expected.len() + next.bytes.len() > max_bytes {
                    break;
                }
                expected.extend_from_slice(&next.bytes);
            }
            assert_eq!(concat(&r), expected, "read at {offset} max {max_bytes}");
        }
        // max_offset stops before batch i.
        if i > 0 {
            let r = log.read(model[0].base, usize::MAX, s.base).unwrap();
            assert_eq!(concat(&r), model_bytes(&model[..i]));
        }
    }
}

fn linear_scan(model: &[Stored], ts: i64) -> Option<(i64, i64)> {
    model
        .iter()
        .find(|s| s.max_ts >= ts)
        .map(|s| (s.base, s.max_ts))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn appends_are_dense_and_read_back_identical(
        config in config_strategy(),
        requests in prop::collection::vec(request(), 1..25),
        max_bytes in 1usize..2000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), "p", 0, config.clone()).unwrap();
        let model = append_all(&log, &requests, 9);
        check_reads(&log, &model, max_bytes);
        drop(log);
        let log = PartitionLog::open(dir.path(), "p", 0, config).unwrap();
        prop_assert!(log.recovered_tails().is_empty());
        check_reads(&log, &model, max_bytes);
    }

    #[test]
    fn timestamp_lookup_equals_linear_scan(
        config in config_strategy(),
        requests in prop::collection::vec(request(), 1..25),
        queries in prop::collection::vec(-10i64..10_100, 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), "p", 0, config.clone()).unwrap();
        let model = append_all(&log, &requests, 0);
        for &q in &queries {
            prop_assert_eq!(log.offset_for_timestamp(q).unwrap(), linear_scan(&model, q));
        }
        drop(log);
        let log = PartitionLog::open(dir.path(), "p", 0, config).unwrap();
        for &q in &queries {
            prop_assert_eq!(log.offset_for_timestamp(q).unwrap(), linear_scan(&model, q));
        }
    }

    #[test]
    fn torn_file_reopens_as_a_prefix_and_accepts_appends(
        config in config_strategy(),
        requests in prop::collection::vec(request(), 1..20),
        segment_pick in any::<prop::sample::Index>(),
        cut_pick in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = {
            let log = PartitionLog::open(dir.path(), "p", 0, config.clone()).unwrap();
            append_all(&log, &requests, 1)
        };
        let segments = files_with_ext(dir.path(), "log");
        let seg = segment_pick.get(&segments);
        let len = seg.metadata().unwrap().len();
        let cut = cut_pick.index(len as usize + 1) as u64;
        OpenOptions::new().write(true).open(seg).unwrap().set_len(cut).unwrap();

        let log = PartitionLog::open(dir.path(), "p", 0, config).unwrap();
        let stored = concat(&log.read(0, usize::MAX, i64::MAX).unwrap());
        let all = model_bytes(&model);
        prop_assert!(all.starts_with(&stored), "stored bytes are not a prefix of what was appended");
        // The prefix ends on a batch boundary and the end offset matches it.
        let kept: Vec<&Stored> = {
            let mut acc = 0;
            model.iter().take_while(|s| { acc += s.bytes.len(); acc <= stored.len() }).collect()
        };
        prop_assert_eq!(kept.iter().map(|s| s.bytes.len()).sum::<usize>(), stored.len());
        let end = kept.last().map_or(0, |s| s.last + 1);
        prop_assert_eq!(log.log_end_offset(), end);
        let info = log.append(&encode(&BatchSpec { timestamps: vec![5], value_len: 3 }, 0), 2).unwrap();
        prop_assert_eq!(info.base_offset, end);
    }

    #[test]
    fn truncate_to_keeps_exactly_the_batches_below(
        config in config_strategy(),
        requests in prop::collection::vec(request(), 1..20),
        cut_pick in any::<prop::sample::Index>(),
        more in prop::collection::vec(request(), 0..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), "p", 0, config.clone()).unwrap();
        let model = append_all(&log, &requests, 1);
        let end = model.last().map_or(0, |s| s.last + 1);
        let offset = cut_pick.index(end as usize + 1) as i64;
        log.truncate_to(offset).unwrap();
        let mut expected: Vec<Stored> = model.iter().filter(|s| s.last < offset).cloned().collect();
        prop_assert_eq!(log.log_end_offset(), expected.last().map_or(0, |s| s.last + 1));
        prop_assert_eq!(concat(&log.read(0, usize::MAX, i64::MAX).unwrap()), model_bytes(&expected));
        expected.extend(append_all(&log, &more, 2));
        drop(log);
        let log = PartitionLog::open(dir.path(), "p", 0, config).unwrap();
        prop_assert!(log.recovered_tails().is_empty());
        prop_assert_eq!(concat(&log.read(0, usize::MAX, i64::MAX).unwrap()), model_bytes(&expected));
        for q in [0, 2500, 5000, 9999] {
            prop_assert_eq!(log.offset_for_timestamp(q).unwrap(), linear_scan(&expected, q));
        }
    }
}
