//! `CutoutWriter` throughput: the shipped alerts (138: ZTF and Rubin, 369
//! stamps) through a pipeline built from YAML, flushed after each pass
//! (every file fsynced and renamed), one thread: alerts/s per core, for
//! FITS alone, PNG (zscale + asinh) alone, and all three formats. The
//! disk's limit for the same way of writing is measured in the same run.
//!
//! Run: `cargo bench -p starlog-sinks --bench cutout`
//! (`SINKS_BENCH_DIR` chooses the disk).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod astro_common;
use astro_common as common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let batch = common::candidates();
    let mut group = c.benchmark_group("cutout");
    common::configure(&mut group);
    group.throughput(Throughput::Elements(batch.len() as u64));
    for formats in ["fits", "png", "fits, png, jpeg"] {
        let dir = common::bench_dir();
        let mut p = common::pipeline(
            "CutoutWriter",
            &format!(
                "directory: {}, formats: [{formats}], stretch: asinh, limits: zscale",
                dir.path().display()
            ),
        );
        common::run_batch(&mut p, &batch);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        println!(
            "cutout [{formats}]: {} alerts -> {files} files, {} bytes per alert",
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
    // 369 stamps per pass, ~20 KiB each as FITS.
    common::disk_limit(&mut group, 20 << 10, 369);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
