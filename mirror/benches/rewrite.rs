//! Cost of the schema-id rewrite per batch: uncompressed (patch in a copy
//! and re-CRC), zstd (decompress, patch, recompress), and a batch whose
//! ids already match (no copy). 24 records of 42 KB, as a 1 MB produce
//! batch of Rubin-sized alerts would hold.

// A benchmark of generated inputs: a failure is a bug to see at once.
#![allow(clippy::expect_used)]

use std::collections::HashMap;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use starlog_clients::records::encode::{encode_batch, BatchMeta, PendingRecord};
use starlog_clients::Compression;
use starlog_wire::{rewrite_batch, RewriteOptions};

fn batch(codec: Compression) -> Bytes {
    let records: Vec<PendingRecord> = (0..24u32)
        .map(|i| {
            let mut v = vec![0u8, 0, 0, 0, 7];
            v.extend((0..42_000u32).map(|j| ((i * 31 + j * 7) % 251) as u8));
            PendingRecord {
                key: None,
                value: Some(Bytes::from(v)),
                headers: vec![],
                timestamp: 1_700_000_000_000 + i64::from(i),
            }
        })
        .collect();
    encode_batch(&records, codec, BatchMeta::plain()).expect("encodes")
}

fn bench(c: &mut Criterion) {
    let map: HashMap<u32, u32> = [(7, 1007)].into_iter().collect();
    let same: HashMap<u32, u32> = [(7, 7)].into_iter().collect();
    let opts = RewriteOptions::default();
    let mut g = c.benchmark_group("rewrite_batch_24x42KB");
    for (name, codec) in [("none", Compression::None), ("zstd", Compression::Zstd)] {
        let b = batch(codec);
        g.throughput(Throughput::Elements(24));
        g.bench_function(name, |x| {
            x.iter(|| rewrite_batch(&b, &map, &opts).expect("rewrites"))
        });
    }
    let b = batch(Compression::None);
    g.bench_function("unchanged", |x| {
        x.iter(|| rewrite_batch(&b, &same, &opts).expect("checks"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
