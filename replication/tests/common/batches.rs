//! Building and decoding Kafka v2 record batches for the tests (uncompressed, CRC-32C set).

use bytes::Bytes;

fn put_varint(out: &mut Vec<u8>, v: i64) {
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

fn get_varint(buf: &[u8], pos: &mut usize) -> i64 {
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

/// A valid batch as a producer sends it (base offset 0, leader epoch -1), one record per value.
pub fn batch(timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    assert!(!values.is_empty());
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut body = vec![0u8];
        put_varint(&mut body, 0);
        put_varint(&mut body, i as i64);
        put_varint(&mut body, -1);
        put_varint(&mut body, v.len() as i64);
        body.extend_from_slice(v);
        put_varint(&mut body, 0);
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&((values.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch with one record holding `value`.
pub fn one(value: &[u8]) -> Bytes {
    Bytes::from(batch(0, &[value]))
}

/// One stored batch: base offset, leader epoch, record values, raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub leader_epoch: i32,
    pub values: Vec<Vec<u8>>,
    pub bytes: Bytes,
}

/// Splits concatenated stored batches and decodes their record values.
pub fn split(bytes: &Bytes) -> Vec<StoredBatch> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let base_offset = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let leader_epoch = i32::from_be_bytes(bytes[pos + 12..pos + 16].try_into().unwrap());
        let count = i32::from_be_bytes(bytes[pos + 57..pos + 61].try_into().unwrap());
        let mut values = Vec::new();
        let mut p = pos + 61;
        for _ in 0..count {
            let _len = get_varint(bytes, &mut p);
            p += 1; // attributes
            let _ts = get_varint(bytes, &mut p);
            let _od = get_varint(bytes, &mut p);
            let kl = get_varint(bytes, &mut p);
            if kl > 0 {
                p += kl as usize;
            }
            let vl = get_varint(bytes, &mut p) as usize;
            values.push(bytes[p..p + vl].to_vec());
            p += vl;
            let headers = get_varint(bytes, &mut p);
            assert_eq!(headers, 0);
        }
        out.push(StoredBatch {
            base_offset,
            leader_epoch,
            values,
            bytes: bytes.slice(pos..pos + len),
        });
        pos += len;
    }
    out
}

/// Every batch of `log` in `[from, to)` (whole batches starting in the range).
pub fn read_range(log: &starlog_storage::PartitionLog, from: i64, to: i64) -> Vec<StoredBatch> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < to {
        let r = log.read(offset, 1 << 20, to).unwrap();
        if r.is_empty() {
            break;
        }
        let bytes = Bytes::from(r.chunks.concat());
        for b in split(&bytes) {
            offset = b.base_offset + b.values.len() as i64;
            if b.base_offset >= from {
                out.push(b);
            }
        }
    }
    out
}
