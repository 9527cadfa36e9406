//! What the light-curve and cutout benches share: the shipped alerts as
//! candidates, writers built from YAML with the sinks registry, and the
//! disk's own limit for the way these writers write (whole small files,
//! fsynced, renamed), measured in the same run.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkGroup, Throughput};
use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::{AlertDecoder, Candidate, Pipeline};

pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every shipped alert (manifest order), decoded once.
pub fn candidates() -> Vec<Candidate> {
    let text = std::fs::read_to_string(testdata_dir().join("manifest.csv")).unwrap();
    let decoder = AlertDecoder::default();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| {
            let bytes = std::fs::read(testdata_dir().join(l.split(',').next().unwrap())).unwrap();
            decoder.decode(&bytes).unwrap()
        })
        .collect()
}

/// Where the benches write: `SINKS_BENCH_DIR`, else the system's temporary
/// directory (check that it is a disk, not a tmpfs, before quoting figures).
pub fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("SINKS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// A one-step pipeline of `class` with `params`.
pub fn pipeline(class: &str, params: &str) -> Pipeline {
    let yaml = format!(
        "component:\n  type: processing-node\n  source: {{ topic: alerts, group: bench }}\n  processors:\n    - class: {class}\n      params: {{ {params} }}\n"
    );
    PipelineSpec::from_yaml_str(
        &yaml,
        "bench.yaml",
        Path::new("."),
        &starlog_sinks::registry(),
    )
    .unwrap()
    .build(&BuildContext::default())
    .unwrap()
}

/// Runs every candidate through `p`, then flushes (everything durable).
pub fn run_batch(p: &mut Pipeline, batch: &[Candidate]) {
    let ran = p.run(batch.to_vec()).unwrap();
    assert_eq!(ran.passed, batch.len());
    p.flush().unwrap();
}

/// Bytes of the files in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The disk's limit for this way of writing: whole files of `size` bytes,
/// each written as `.part`, fsynced, renamed, then one directory fsync per
/// `per_flush` files (the writers' flush).
pub fn disk_limit(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    size: usize,
    per_flush: usize,
) {
    let dir = bench_dir();
    let payload = vec![0x5au8; size];
    group.throughput(Throughput::Elements(per_flush as u64));
    group.bench_function(
        format!("disk: {per_flush} files of {size} B, fsync + rename"),
        |b| {
            let mut n = 0u64;
            b.iter(|| {
                for _ in 0..per_flush {
                    n += 1;
                    let path = dir.path().join(format!("{}.bin", n % 4096));
                    let part = dir.path().join(format!("{}.bin.part", n % 4096));
                    let mut f = std::fs::File::create(&part).unwrap();
                    f.write_all(&payload).unwrap();
                    f.sync_all().unwrap();
                    std::fs::rename(&part, &path).unwrap();
                }
                std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
            });
        },
    );
    group.bench_function(
        format!("disk: {per_flush} files of {size} B, fsync on 16 threads + rename"),
        |b| {
            b.iter(|| {
                let parts: Vec<PathBuf> = (0..per_flush)
                    .map(|i| {
                        let part = dir.path().join(format!("p{i}.bin.part"));
                        std::fs::write(&part, &payload).unwrap();
                        part
                    })
                    .collect();
                std::thread::scope(|s| {
                    for chunk in parts.chunks(per_flush.div_ceil(16)) {
                        s.spawn(move || {
                            for p in chunk {
                                std::fs::File::options()
                                    .write(true)
                                    .open(p)
                                    .unwrap()
                                    .sync_data()
                                    .unwrap();
                            }
                        });
                    }
                });
                for p in &parts {
                    std::fs::rename(p, p.with_extension("")).unwrap();
                }
                std::fs::File::open(dir.path()).unwrap().sync_all().unwrap();
            });
        },
    );
    group.throughput(Throughput::Bytes(64 << 20));
    group.bench_function("disk: 64 MiB sequential + fsync", |b| {
        let block = vec![0xa5u8; 1 << 20];
        b.iter(|| {
            let mut f = std::fs::File::create(dir.path().join("seq.bin")).unwrap();
            for _ in 0..64 {
                f.write_all(&block).unwrap();
            }
            f.sync_all().unwrap();
        });
    });
}

/// A short measurement: fsync-bound iterations on a shared machine.
pub fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
}
