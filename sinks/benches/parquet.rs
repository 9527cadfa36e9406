//! `ParquetWriter` throughput on one core, on the shipped alerts, with the
//! disk's own write limit measured in the same run.
//!
//! `cargo bench -p starlog-sinks --bench parquet`
//!
//! - `parquet/write/<set>`: decoded alerts through the writer (default
//!   columns, zstd), a flush (files finished: footer, fsync, rename) every
//!   1,104 alerts, as a runner flushes after each batch it polled;
//! - `parquet/decode_and_write/all`: the same from the alert bytes, through
//!   a pipeline (decoder + writer), what a processing node does per record.
//!
//! Before the benches it prints the disk's sequential write limit (`dd`
//! with `conv=fdatasync` in the same folder) and the bytes the writer puts
//! on disk per alert, so the alert rate can be set against the disk's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::{
    AlertDecoder, Candidate, CandidateProcessor, InputFormat, InputRecord, Pipeline, Response,
};

/// Alerts per flush: the 138 shipped alerts eight times.
const ROUNDS: usize = 8;

fn alert_files(prefix: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let text = std::fs::read_to_string(root.join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|f| f.starts_with(prefix))
        .map(|f| root.join(f))
        .collect()
}

fn decode(files: &[PathBuf]) -> Vec<Candidate> {
    let decoder = AlertDecoder::new(InputFormat::ObjectContainer);
    files
        .iter()
        .flat_map(|f| decoder.decode(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

fn spec(dir: &Path) -> PipelineSpec {
    let yaml = "component:\n  type: processing-node\n  name: bench\n  source: { topic: alerts }\n  processors:\n    - class: ParquetWriter\n      params: { directory: out, compression: zstd }\n";
    PipelineSpec::from_yaml_str(yaml, "bench", dir, &starlog_sinks::registry()).unwrap()
}

fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            bytes_under(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Sequential write speed of the disk under `dir`: 256 MiB with `dd`,
/// fdatasync before it reports.
fn disk_limit(dir: &Path) -> String {
    let target = dir.join("dd.bin");
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args(["bs=1M", "count=256", "conv=fdatasync"])
        .output()
        .expect("dd");
    let _ = std::fs::remove_file(&target);
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = String::from_utf8(
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse::<f64>()
    .unwrap();
    ticks / hz
}

/// Alerts per CPU-second over `rounds` flushes of the write loop: the
/// per-core rate whatever else the machine runs (fsync waits are not CPU).
fn per_cpu_second(
    name: &str,
    w: &mut impl CandidateProcessor,
    alerts: &mut [Candidate],
    rounds: usize,
) -> f64 {
    let wall = std::time::Instant::now();
    let start = cpu_seconds();
    for _ in 0..rounds {
        for _ in 0..ROUNDS {
            for a in alerts.iter_mut() {
                assert!(matches!(w.process(a), Response::Pass));
            }
        }
        w.flush().unwrap();
    }
    let cpu = cpu_seconds() - start;
    let n = (rounds * ROUNDS * alerts.len()) as f64;
    println!(
        "{name}: {n} alerts in {cpu:.2} CPU-s ({:.2} s wall): {:.0} alerts per CPU-second",
        wall.elapsed().as_secs_f64(),
        n / cpu
    );
    n / cpu
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(
        std::env::var_os("PARQUET_BENCH_DIR").unwrap_or_else(|| std::env::temp_dir().into()),
    )
    .unwrap();
    println!(
        "disk write limit (dd bs=1M count=256 conv=fdatasync, {}): {}",
        tmp.path().display(),
        disk_limit(tmp.path())
    );

    let sets = [
        ("all", alert_files("")),
        ("ztf_4.01", alert_files("ztf/alerts/kowalski/20231012/")),
    ];
    let mut group = c.benchmark_group("parquet");
    for (name, files) in &sets {
        let mut alerts = decode(files);
        // Bytes on disk per alert, written once.
        {
            let dir = tempfile::tempdir_in(tmp.path()).unwrap();
            let mut w = spec(dir.path())
                .chain
                .build(&BuildContext::default())
                .unwrap();
            for _ in 0..ROUNDS {
                for a in &mut alerts {
                    assert!(matches!(w.process(a), Response::Pass));
                }
            }
            w.flush().unwrap();
            per_cpu_second(name, &mut w, &mut alerts, 10);
            let n = (11 * ROUNDS * alerts.len()) as u64;
            println!(
                "{name}: {} alerts, {} bytes of Parquet per alert (zstd)",
                alerts.len(),
                bytes_under(&dir.path().join("out")) / n
            );
        }
        let dir = tempfile::tempdir_in(tmp.path()).unwrap();
        let mut w = spec(dir.path())
            .chain
            .build(&BuildContext::default())
            .unwrap();
        group.throughput(Throughput::Elements((ROUNDS * alerts.len()) as u64));
        group.bench_function(format!("write/{name}"), |b| {
            b.iter(|| {
                for _ in 0..ROUNDS {
                    for a in &mut alerts {
                        assert!(matches!(w.process(a), Response::Pass));
                    }
                }
                w.flush().unwrap();
            });
        });
    }

    let files = alert_files("");
    let bodies: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let dir = tempfile::tempdir_in(tmp.path()).unwrap();
    let mut p: Pipeline = spec(dir.path()).build(&BuildContext::default()).unwrap();
    group.throughput(Throughput::Elements((ROUNDS * bodies.len()) as u64));
    group.bench_function("decode_and_write/all", |b| {
        b.iter(|| {
            for _ in 0..ROUNDS {
                for (i, body) in bodies.iter().enumerate() {
                    let outcome = p.handle(&InputRecord {
                        topic: "alerts",
                        partition: 0,
                        offset: i64::try_from(i).unwrap(),
                        key: None,
                        value: body,
                        headers: &[],
                    });
                    assert!(matches!(
                        outcome,
                        starlog_processors::RecordOutcome::Processed { passed: 1, .. }
                    ));
                }
            }
            p.flush().unwrap();
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
