//! Cross-match throughput against the Mangrove catalog: alerts per second
//! through `CrossmatchProcessor::process`, on the real alerts of the
//! repository's `testdata/` (clustered in a few fields) and on positions
//! spread uniformly over the sky. Decoding is measured apart.
//!
//! The catalog is `testdata/catalogs/mangrove_radec.csv` (4,565 of the
//! 295,341 galaxies; see `testdata/README.md`), or the CSV named by
//! `CROSSMATCH_BENCH_CATALOG` (same columns), e.g. the full catalog the
//! figures in bench/RESULTS.md were measured against.
//!
//! Run: `cargo bench -p starlog-processors --bench crossmatch`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apache_avro::types::Value;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use starlog_processors::builtins::{CatalogIndex, CrossmatchProcessor};
use starlog_processors::sky::{Catalog, CatalogColumns};
use starlog_processors::{AlertDecoder, Candidate, CandidateProcessor};

fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn alert_files() -> Vec<PathBuf> {
    let text = std::fs::read_to_string(testdata_dir().join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| testdata_dir().join(l.split(',').next().unwrap()))
        .collect()
}

/// A Rubin sample alert (small) moved to `n` positions uniform on the sphere.
fn uniform_candidates(n: usize) -> Vec<Candidate> {
    let bytes =
        std::fs::read(testdata_dir().join("lsst/schema/11/1/sample_data/fakeAlert.avro")).unwrap();
    let template = AlertDecoder::default().decode(&bytes).unwrap().remove(0);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // xorshift64*; the top 53 bits as a fraction in [0, 1).
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        #[allow(clippy::cast_precision_loss)]
        let f = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        f
    };
    (0..n)
        .map(|_| {
            let ra = next() * 360.0;
            let dec = (next() * 2.0 - 1.0).asin().to_degrees();
            let mut value = template.value().clone();
            if let Value::Record(fields) = &mut value {
                for (name, v) in fields.iter_mut() {
                    if name == "diaSource" {
                        if let Value::Record(inner) = v {
                            for (k, x) in inner.iter_mut() {
                                match k.as_str() {
                                    "ra" => *x = Value::Double(ra),
                                    "dec" => *x = Value::Double(dec),
                                    _ => {}
                                }
                            }
                        }
                    }
                }
            }
            Candidate::new(value, Arc::clone(template.schema())).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let catalog_file = std::env::var_os("CROSSMATCH_BENCH_CATALOG").map_or_else(
        || testdata_dir().join("catalogs/mangrove_radec.csv"),
        PathBuf::from,
    );
    let catalog = Catalog::from_csv(&catalog_file, &CatalogColumns::default()).unwrap();
    println!(
        "catalog: {} ({} galaxies)",
        catalog_file.display(),
        catalog.len()
    );
    let decoder = AlertDecoder::default();
    let files: Vec<Vec<u8>> = alert_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut real: Vec<Candidate> = files
        .iter()
        .map(|b| decoder.decode(b).unwrap().remove(0))
        .collect();
    let mut uniform = uniform_candidates(20_000);

    let mut group = c.benchmark_group("crossmatch_mangrove");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(4));
    for radius_arcsec in [2.0, 10.0, 60.0] {
        let index = Arc::new(CatalogIndex::new(catalog.clone(), radius_arcsec / 3600.0));
        let mut xm = CrossmatchProcessor::new("mangrove", Arc::clone(&index), radius_arcsec, false);
        group.throughput(Throughput::Elements(real.len() as u64));
        group.bench_function(format!("real_alerts/{radius_arcsec}arcsec"), |b| {
            b.iter(|| {
                for cand in &mut real {
                    cand.clear_annotations();
                    let _ = xm.process(cand);
                }
            });
        });
        group.throughput(Throughput::Elements(uniform.len() as u64));
        group.bench_function(format!("uniform_sky/{radius_arcsec}arcsec"), |b| {
            b.iter(|| {
                for cand in &mut uniform {
                    cand.clear_annotations();
                    let _ = xm.process(cand);
                }
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(4));
    group.throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("ocf_real_alerts", |b| {
        b.iter(|| {
            for f in &files {
                let _ = decoder.decode(f).unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
