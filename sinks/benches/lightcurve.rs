//! `LightCurveWriter` throughput: the shipped alerts (138: ZTF and Rubin)
//! through a pipeline built from YAML, flushed after each pass (every
//! changed curve rewritten, fsynced, renamed), one thread: alerts/s per
//! core. The disk's limit for the same way of writing is measured in the
//! same run.
//!
//! Run: `cargo bench -p starlog-sinks --bench lightcurve`
//! (`SINKS_BENCH_DIR` chooses the disk).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod astro_common;
use astro_common as common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let batch = common::candidates();
    let mut group = c.benchmark_group("lightcurve");
    common::configure(&mut group);
    group.throughput(Throughput::Elements(batch.len() as u64));
    for formats in ["fits", "votable", "fits, votable"] {
        let dir = common::bench_dir();
        let mut p = common::pipeline(
            "LightCurveWriter",
            &format!("directory: {}, formats: [{formats}]", dir.path().display()),
        );
        common::run_batch(&mut p, &batch);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        println!(
            "lightcurve [{formats}]: {} alerts -> {files} files, {} bytes per alert",
            batch.len(),
            common::dir_bytes(dir.path()) / batch.len() as u64
        );
        group.bench_function(
            format!("{} alerts, formats [{formats}]", batch.len()),
            |b| {
                b.iter(|| common::run_batch(&mut p, &batch));
            },
        );
    }
    // 118 curves per pass, ~6 KiB each as FITS.
    common::disk_limit(&mut group, 6 << 10, 118);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
