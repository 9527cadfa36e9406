//! Partition log benchmarks: append MB/s (1 KiB and 64 KiB batches, each flush policy, one
//! appender and 16 (and for 64 KiB, 64) concurrent appenders), sequential read MB/s, and reopen time of a log whose
//! active segment is 1 GiB. Data goes to a temporary directory (set `TMPDIR` to choose the disk).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use starlog_storage::{FlushPolicy, LogConfig, PartitionLog};

/// A valid v2 batch of `size` bytes in total: one record with a value filling the rest.
fn batch_of(size: usize) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    // Value length chosen so that the whole batch is `size` bytes (varints are <= 3 bytes here).
    let mut value_len = size - 61 - 12;
    let mut attempts = 0;
    loop {
        let mut rec = vec![0u8];
        varint(&mut rec, 0);
        varint(&mut rec, 0);
        varint(&mut rec, -1);
        varint(&mut rec, value_len as i64);
        rec.extend(std::iter::repeat_n(0xa5u8, value_len));
        varint(&mut rec, 0);
        let mut records = Vec::new();
        varint(&mut records, rec.len() as i64);
        records.extend_from_slice(&rec);
        let total = 61 + records.len();
        if total != size && attempts < 8 {
            attempts += 1;
            value_len = (value_len as i64 + size as i64 - total as i64) as usize;
            continue;
        }
        let mut b = Vec::with_capacity(size);
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(b.len(), size);
        return b;
    }
}

fn policies() -> [(&'static str, FlushPolicy); 3] {
    [
        ("always", FlushPolicy::Always),
        (
            "interval_5ms",
            FlushPolicy::Interval(Duration::from_millis(5)),
        ),
        ("never", FlushPolicy::Never),
    ]
}

/// Appends `iters` batches with `threads` concurrent appenders to a fresh log; returns the
/// time from the first append to the last acknowledgement.
fn timed_appends(batch: &Arc<Vec<u8>>, flush: FlushPolicy, threads: u64, iters: u64) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush,
        ..LogConfig::default()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), "bench", 0, config).unwrap());
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            let batch = Arc::clone(batch);
            let n = iters / threads + u64::from(t < iters % threads);
            std::thread::spawn(move || {
                for _ in 0..n {
                    log.append(&batch, 0).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    for (size_name, size) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let batch = Arc::new(batch_of(size));
        let mut group = c.benchmark_group(format!("append_{size_name}"));
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
        for (name, policy) in policies() {
            let appenders: &[u64] = if size >= 64 * 1024 {
                &[1, 16, 64]
            } else {
                &[1, 16]
            };
            for &threads in appenders {
                group.bench_function(
                    BenchmarkId::new(name, format!("{threads}_appenders")),
                    |b| {
                        b.iter_custom(|iters| timed_appends(&batch, policy, threads, iters));
                    },
                );
            }
        }
        group.finish();
    }
}

fn sequential_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequential_read");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    for (size_name, size) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Never,
            segment_bytes: 64 << 20,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), "bench", 0, config).unwrap();
        let batch = batch_of(size);
        let total: u64 = 256 << 20;
        for _ in 0..total / batch.len() as u64 {
            log.append(&batch, 0).unwrap();
        }
        let bytes = log.size_bytes();
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::new("fetch_1MiB", size_name), |b| {
            b.iter(|| {
                let mut offset = 0;
                let mut read = 0usize;
                while offset < log.log_end_offset() {
                    let r = log.read(offset, 1 << 20, i64::MAX).unwrap();
                    for chunk in &r.chunks {
                        read += chunk.len();
                        // Touch the data as a socket write would.
                        std::hint::black_box(chunk.iter().step_by(4096).fold(0u8, |a, b| a ^ b));
                    }
                    let last = r.chunks.last().unwrap();
                    let mut pos = 0;
                    let mut next = offset;
                    while pos < last.len() {
                        let h = starlog_storage::parse_batch_header(&last[pos..]).unwrap();
                        next = h.last_offset() + 1;
                        pos += h.total_len();
                    }
                    offset = next;
                }
                assert_eq!(read as u64, bytes);
            });
        });
    }
    group.finish();
}

/// Asks the kernel to drop the cached pages of `path` (GNU dd `iflag=nocache count=0`), so the
/// next open reads the segment from the disk. Only this file's clean pages are affected.
fn evict_from_page_cache(path: &std::path::Path) {
    let status = std::process::Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn reopen(c: &mut Criterion) {
    let mut group = c.benchmark_group("reopen_active_segment_1GiB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (size_name, size) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: FlushPolicy::Never,
            segment_bytes: 2 << 30,
            ..LogConfig::default()
        };
        {
            let log = PartitionLog::open(dir.path(), "bench", 0, config.clone()).unwrap();
            let batch = batch_of(size);
            for _ in 0..(1u64 << 30) / batch.len() as u64 {
                log.append(&batch, 0).unwrap();
            }
        }
        let segment = dir.path().join(format!("{:020}.log", 0));
        let marker = dir.path().join("clean-shutdown");
        let open = || {
            let log = PartitionLog::open(dir.path(), "bench", 0, config.clone()).unwrap();
            assert!(log.size_bytes() > (1 << 30) - (64 << 10));
            assert!(log.recovered_tails().is_empty());
            log
        };
        // After a clean close: indexes trusted, only the last index interval is scanned.
        group.bench_function(BenchmarkId::new("after_clean_close", size_name), |b| {
            // One log instance at a time: each iteration's log is dropped (closing cleanly and
            // writing the marker again) before the next open.
            b.iter_batched(|| (), |()| open(), BatchSize::PerIteration);
        });
        // After a crash (no marker): the whole segment is read and CRC-checked.
        group.bench_function(BenchmarkId::new("after_crash_warm_cache", size_name), |b| {
            b.iter_batched(
                || std::fs::remove_file(&marker).unwrap(),
                |()| open(),
                BatchSize::PerIteration,
            );
        });
        group.bench_function(BenchmarkId::new("after_crash_cold_cache", size_name), |b| {
            b.iter_batched(
                || {
                    std::fs::remove_file(&marker).unwrap();
                    evict_from_page_cache(&segment);
                },
                |()| open(),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, append, sequential_read, reopen);
criterion_main!(benches);
