//! Reading record batches from fetched bytes.
//!
//! `split_batches` walks the batches (the walk and the 61-byte v2 header are
//! `starlog-wire`'s) and returns each complete batch as a zero-copy slice; a
//! partial batch at the end (the broker cuts responses at the byte limit) is
//! left for the next fetch. `decode_batch` checks the CRC, decompresses and
//! parses the records.

use bytes::{Buf, Bytes};
use starlog_wire::{CompressionError, RecordFault, WalkError, BATCH_HEADER_LEN};

pub use starlog_wire::BatchHeader;

use super::{ConsumerRecord, Header, TimestampType};
use crate::compression::Compression;

/// Why fetched bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A header field is impossible.
    #[error("bad header: {0}")]
    Header(String),
    /// Not record batch format v2.
    #[error("unsupported record format (magic {0})")]
    Magic(i8),
    /// The CRC does not match the bytes.
    #[error("CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    Crc {
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// Decompression failed.
    #[error("decompression: {0}")]
    Decompress(#[source] CompressionError),
    /// A record does not parse.
    #[error("record {index}: {reason}")]
    Record {
        /// Index of the record in the batch.
        index: i32,
        /// What is wrong.
        reason: String,
    },
}

/// Who set the timestamps of a batch's records.
fn timestamp_type(h: &BatchHeader) -> TimestampType {
    if h.is_log_append_time() {
        TimestampType::LogAppend
    } else {
        TimestampType::Create
    }
}

/// Splits fetched bytes into complete batches: `(header, batch bytes)`.
/// Stops at a trailing partial batch. A header that cannot be right is an
/// error (with the offset it claims).
pub fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, (i64, BatchError)> {
    let mut out = Vec::new();
    for step in starlog_wire::batches(records) {
        let b = match step {
            Ok(b) => b,
            // A partial batch at the end of the response.
            Err(WalkError::Truncated { .. }) => break,
            Err(WalkError::Length {
                base_offset,
                length,
                ..
            }) => {
                return Err((
                    base_offset,
                    BatchError::Header(format!("batch length {length}")),
                ))
            }
            Err(WalkError::Magic {
                base_offset, magic, ..
            }) => return Err((base_offset, BatchError::Magic(magic))),
        };
        let h = b.header;
        if h.record_count < 0 || h.last_offset_delta < 0 {
            return Err((
                h.base_offset,
                BatchError::Header(format!(
                    "record count {} / last offset delta {}",
                    h.record_count, h.last_offset_delta
                )),
            ));
        }
        out.push((h, records.slice(b.at..b.at + b.bytes.len())));
    }
    Ok(out)
}

/// Checks the CRC of a complete batch.
pub fn verify_crc(h: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    let actual = starlog_wire::checksum(batch).map_err(|e| BatchError::Header(e.to_string()))?;
    if actual == h.crc {
        Ok(())
    } else {
        Err(BatchError::Crc {
            expected: h.crc,
            actual,
        })
    }
}

/// Decodes every record of a complete batch with offset `>= from_offset`.
pub fn decode_batch(
    topic: &str,
    partition: i32,
    h: &BatchHeader,
    batch: &Bytes,
    from_offset: i64,
    max_decompressed: usize,
) -> Result<Vec<ConsumerRecord>, BatchError> {
    verify_crc(h, batch)?;
    let codec = h.codec().ok_or_else(|| {
        BatchError::Header(format!("unknown codec in attributes {:#x}", h.attributes))
    })?;
    let body = batch.slice(BATCH_HEADER_LEN.min(batch.len())..);
    let mut body = if codec == Compression::None {
        body
    } else {
        Bytes::from(
            starlog_wire::decompress(codec, &body, max_decompressed)
                .map_err(BatchError::Decompress)?,
        )
    };
    let ts_type = timestamp_type(h);
    // Each record takes at least 7 bytes, so the count is bounded by the body.
    let cap = usize::try_from(h.record_count)
        .unwrap_or(0)
        .min(body.len() / 7 + 1);
    let mut out = Vec::with_capacity(cap);
    for index in 0..h.record_count {
        let rec = read_record(&mut body).map_err(|reason| BatchError::Record { index, reason })?;
        let offset = h.base_offset + rec.offset_delta;
        if offset < from_offset {
            continue;
        }
        let timestamp = if ts_type == TimestampType::LogAppend {
            h.max_timestamp
        } else {
            h.base_timestamp.wrapping_add(rec.timestamp_delta)
        };
        out.push(ConsumerRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            timestamp,
            timestamp_type: ts_type,
            key: rec.key,
            value: rec.value,
            headers: rec.headers,
            leader_epoch: h.partition_leader_epoch,
        });
    }
    Ok(out)
}

struct RawRecord {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

fn read_record(buf: &mut Bytes) -> Result<RawRecord, String> {
    let len = varlong(buf)?;
    let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
    if len > buf.len() {
        return Err(format!("record length {len}, {} bytes left", buf.len()));
    }
    let mut r = buf.split_to(len);
    if r.is_empty() {
        return Err("empty record".into());
    }
    let _attributes = r.get_i8();
    let timestamp_delta = varlong(&mut r)?;
    let offset_delta = varlong(&mut r)?;
    let key = nullable_bytes(&mut r, "key")?;
    let value = nullable_bytes(&mut r, "value")?;
    let n = varlong(&mut r)?;
    let n = usize::try_from(n).map_err(|_| format!("negative header count {n}"))?;
    if n > r.len() {
        return Err(format!("{n} headers in {} bytes", r.len()));
    }
    let mut headers = Vec::with_capacity(n);
    for _ in 0..n {
        let k = nullable_bytes(&mut r, "header key")?.ok_or("null header key")?;
        let value = nullable_bytes(&mut r, "header value")?;
        headers.push(Header {
            key: String::from_utf8_lossy(&k).into_owned(),
            value,
        });
    }
    Ok(RawRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

fn nullable_bytes(r: &mut Bytes, what: &str) -> Result<Option<Bytes>, String> {
    let n = varlong(r)?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| format!("{what} length {n}"))?;
    if n > r.len() {
        return Err(format!("{what} length {n}, {} bytes left", r.len()));
    }
    Ok(Some(r.split_to(n)))
}

/// A zigzag varint of up to 64 bits (`starlog-wire`'s reader), advancing `b`.
fn varlong(b: &mut Bytes) -> Result<i64, String> {
    let mut pos = 0usize;
    let v = starlog_wire::varint(b, &mut pos).map_err(|e: RecordFault| e.to_string())?;
    b.advance(pos);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::encode::{encode_batch, BatchMeta, PendingRecord};

    fn rec(i: u8) -> PendingRecord {
        PendingRecord {
            key: (i.is_multiple_of(2)).then(|| Bytes::from(vec![i; 3])),
            value: (!i.is_multiple_of(3)).then(|| Bytes::from(vec![i; 100])),
            headers: vec![
                Header::new("h", vec![i]),
                Header {
                    key: "n".into(),
                    value: None,
                },
            ],
            timestamp: 1_700_000_000_000 + i64::from(i),
        }
    }

    #[test]
    fn encoder_output_decodes_with_every_codec() {
        let records: Vec<PendingRecord> = (0..10).map(rec).collect();
        for codec in Compression::ALL {
            for meta in [
                BatchMeta::plain(),
                BatchMeta {
                    producer_id: 7,
                    producer_epoch: 1,
                    base_sequence: 40,
                },
            ] {
                let bytes = encode_batch(&records, codec, meta).unwrap();
                let batches = split_batches(&bytes).unwrap();
                assert_eq!(batches.len(), 1, "{codec:?}: one batch");
                let (h, b) = &batches[0];
                assert_eq!(h.record_count, 10);
                assert_eq!(h.base_sequence, meta.base_sequence);
                assert_eq!(h.producer_id, meta.producer_id);
                assert_eq!(Compression::from_attributes(h.attributes), Some(codec));
                let out = decode_batch("t", 0, h, b, 0, 1 << 20).unwrap();
                assert_eq!(out.len(), 10);
                for (i, r) in out.iter().enumerate() {
                    let want = rec(u8::try_from(i).unwrap());
                    assert_eq!(r.offset, i as i64);
                    assert_eq!(r.key, want.key);
                    assert_eq!(r.value, want.value);
                    assert_eq!(r.headers, want.headers);
                    assert_eq!(r.timestamp, want.timestamp);
                }
                let tail = decode_batch("t", 0, h, b, 7, 1 << 20).unwrap();
                assert_eq!(
                    tail.iter().map(|r| r.offset).collect::<Vec<_>>(),
                    vec![7, 8, 9]
                );
            }
        }
    }

    #[test]
    fn partial_tail_is_left_and_bad_headers_are_errors() {
        let bytes = encode_batch(&[rec(1), rec(2)], Compression::None, BatchMeta::plain()).unwrap();
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes[..bytes.len() - 5]);
        let two = Bytes::from(two);
        assert_eq!(split_batches(&two).unwrap().len(), 1);
        let mut bad = bytes.to_vec();
        bad[16] = 1; // magic
        assert!(matches!(
            split_batches(&Bytes::from(bad)),
            Err((0, BatchError::Magic(1)))
        ));
        let mut bad = bytes.to_vec();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            split_batches(&Bytes::from(bad)),
            Err((0, BatchError::Header(_)))
        ));
    }

    #[test]
    fn corrupted_bytes_fail_the_crc() {
        let bytes = encode_batch(&[rec(1)], Compression::None, BatchMeta::plain()).unwrap();
        let mut bad = bytes.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let bad = Bytes::from(bad);
        let (h, b) = &split_batches(&bad).unwrap()[0];
        assert!(matches!(
            decode_batch("t", 0, h, b, 0, 1 << 20),
            Err(BatchError::Crc { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Arbitrary bytes with a valid CRC never panic the record parser.
        #[test]
        fn random_record_sections_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), count in 0i32..50) {
            let mut batch = vec![0u8; BATCH_HEADER_LEN];
            batch[8..12].copy_from_slice(&i32::try_from(BATCH_HEADER_LEN - 12 + body.len()).unwrap().to_be_bytes());
            batch[16] = 2;
            batch[57..61].copy_from_slice(&count.to_be_bytes());
            batch.extend_from_slice(&body);
            starlog_wire::recompute_crc(&mut batch).unwrap();
            let batch = Bytes::from(batch);
            if let Ok(v) = split_batches(&batch) {
                for (h, b) in v {
                    let _ = decode_batch("t", 0, &h, &b, 0, 1 << 20);
                }
            }
        }

        #[test]
        fn varints_round_trip(v in proptest::prelude::any::<i64>()) {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            let mut buf = Vec::new();
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 { buf.push(b); break; }
                buf.push(b | 0x80);
            }
            proptest::prop_assert_eq!(varlong(&mut Bytes::from(buf)).unwrap(), v);
        }
    }
}
