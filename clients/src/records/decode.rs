//! Reading record batches from fetched bytes.
//!
//! `split_batches` walks the 61-byte v2 headers and returns each complete
//! batch as a zero-copy slice; a partial batch at the end (the broker cuts
//! responses at the byte limit) is left for the next fetch. `decode_batch`
//! checks the CRC, decompresses and parses the records.

use bytes::{Buf, Bytes};

use super::{ConsumerRecord, Header, TimestampType};
use crate::compression::{self, Compression};

/// Size of the v2 batch header up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Offset of the `length` field's end (base offset 8 + length 4).
const LOG_OVERHEAD: usize = 12;

/// The fixed fields of a v2 record batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch of the appending leader.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C of everything after the CRC field.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// True for transaction markers (never shown to users).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// True when the timestamps are the broker's.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & 0x08 != 0 {
            TimestampType::LogAppend
        } else {
            TimestampType::Create
        }
    }

    /// Parses the header at the start of `b`; `None` if `b` is shorter.
    pub fn parse(mut b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(Self {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        })
    }
}

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
    Decompress(String),
    /// A record does not parse.
    #[error("record {index}: {reason}")]
    Record {
        /// Index of the record in the batch.
        index: i32,
        /// What is wrong.
        reason: String,
    },
}

/// Splits fetched bytes into complete batches: `(header, batch bytes)`.
/// Stops at a trailing partial batch. A header that cannot be right is an
/// error (with the offset it claims).
pub fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, (i64, BatchError)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while records.len() - pos >= LOG_OVERHEAD {
        let mut b = &records[pos..];
        let base_offset = b.get_i64();
        let len = b.get_i32();
        if len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err((
                base_offset,
                BatchError::Header(format!("batch length {len}")),
            ));
        }
        // Non-negative and at least 49, checked above.
        let total = LOG_OVERHEAD + len as usize;
        if records.len() - pos < total {
            break; // partial batch at the end of the response
        }
        let slice = records.slice(pos..pos + total);
        let Some(h) = BatchHeader::parse(&slice) else {
            break;
        };
        if h.magic != 2 {
            return Err((base_offset, BatchError::Magic(h.magic)));
        }
        if h.record_count < 0 || h.last_offset_delta < 0 {
            return Err((
                base_offset,
                BatchError::Header(format!(
                    "record count {} / last offset delta {}",
                    h.record_count, h.last_offset_delta
                )),
            ));
        }
        out.push((h, slice));
        pos += total;
    }
    Ok(out)
}

/// Checks the CRC of a complete batch.
pub fn verify_crc(h: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    // The CRC covers everything after itself (attributes onward, byte 21).
    let actual = crc32c::crc32c(&batch[21..]);
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
    let codec = Compression::from_attributes(h.attributes).ok_or_else(|| {
        BatchError::Header(format!("unknown codec in attributes {:#x}", h.attributes))
    })?;
    let body = batch.slice(HEADER_LEN..);
    let mut body = if codec == Compression::None {
        body
    } else {
        Bytes::from(
            compression::decompress(codec, &body, max_decompressed)
                .map_err(BatchError::Decompress)?,
        )
    };
    let ts_type = h.timestamp_type();
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

/// A zigzag varint of up to 64 bits.
fn varlong(b: &mut Bytes) -> Result<i64, String> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        if b.is_empty() {
            return Err("truncated varint".into());
        }
        let byte = b.get_u8();
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
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
            let mut batch = vec![0u8; HEADER_LEN];
            batch[8..12].copy_from_slice(&i32::try_from(HEADER_LEN - 12 + body.len()).unwrap().to_be_bytes());
            batch[16] = 2;
            batch[57..61].copy_from_slice(&count.to_be_bytes());
            batch.extend_from_slice(&body);
            let crc = crc32c::crc32c(&batch[21..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
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
