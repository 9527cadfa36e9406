//! Test helpers: building valid Kafka v2 record batches and decoding them back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

pub fn get_varint(buf: &[u8], pos: &mut usize) -> i64 {
    let mut z = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// A valid uncompressed v2 batch (base offset 0, epoch -1) holding one record per value, with
/// the given record timestamps.
pub fn batch_with_timestamps(timestamps: &[i64], values: &[&[u8]]) -> Vec<u8> {
    assert_eq!(timestamps.len(), values.len());
    assert!(!values.is_empty());
    let base_ts = timestamps[0];
    let max_ts = *timestamps.iter().max().unwrap();
    let mut records = Vec::new();
    for (i, (ts, v)) in timestamps.iter().zip(values).enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, ts - base_ts);
        put_varint(&mut body, i as i64);
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&((values.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    fix_crc(&mut b);
    b
}

/// A batch of `values`, record `i` at timestamp `base_ts + i`.
pub fn batch(base_ts: i64, values: &[&[u8]]) -> Vec<u8> {
    let ts: Vec<i64> = (0..values.len() as i64).map(|i| base_ts + i).collect();
    batch_with_timestamps(&ts, values)
}

/// A batch of `count` records of `value_len` bytes each (value bytes derived from `seed`).
pub fn batch_sized(base_ts: i64, count: usize, value_len: usize, seed: u8) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            (0..value_len)
                .map(|j| seed.wrapping_add((i + j) as u8))
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    batch(base_ts, &refs)
}

/// Recomputes the CRC-32C of the batch at the start of `b`.
pub fn fix_crc(b: &mut [u8]) {
    let len = 12 + i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&b[21..len]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A decoded record: absolute offset, timestamp, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: i64,
    pub timestamp: i64,
    pub value: Vec<u8>,
}

/// Decodes every record of the uncompressed batches in `bytes`.
pub fn decode(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let base_ts = i64::from_be_bytes(bytes[pos + 27..pos + 35].try_into().unwrap());
        let count = i32::from_be_bytes(bytes[pos + 57..pos + 61].try_into().unwrap());
        let mut p = pos + 61;
        for _ in 0..count {
            let _len = get_varint(bytes, &mut p);
            p += 1; // attributes
            let ts_delta = get_varint(bytes, &mut p);
            let off_delta = get_varint(bytes, &mut p);
            let klen = get_varint(bytes, &mut p);
            if klen > 0 {
                p += klen as usize;
            }
            let vlen = get_varint(bytes, &mut p) as usize;
            let value = bytes[p..p + vlen].to_vec();
            p += vlen;
            let hcount = get_varint(bytes, &mut p);
            assert_eq!(hcount, 0);
            out.push(Rec {
                offset: base + off_delta,
                timestamp: base_ts + ts_delta,
                value,
            });
        }
        pos += len;
    }
    out
}

/// Concatenated chunks of a read.
pub fn concat(r: &starlog_storage::ReadResult) -> Vec<u8> {
    r.chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

/// The repository's `testdata/` folder (real alert files; see its README).
pub fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Paths of the files with extension `ext` in `dir`, sorted by name.
pub fn files_with_ext(dir: &std::path::Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}
