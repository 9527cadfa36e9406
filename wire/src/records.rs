//! Walking the records section of a v2 batch without decoding records.
//!
//! A rewrite only needs to know where each value starts and how long it is; keys, headers and
//! timestamps are skipped over as lengths. Every length is checked against the bytes that are
//! there, so hostile input yields an error, never a panic or an out-of-bounds read.

use std::fmt;

/// Where one record's value sits in the records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSpan {
    /// Index of the record in the batch.
    pub index: usize,
    /// The record's offset delta from the batch's base offset.
    pub offset_delta: i64,
    /// Start and length of the value, `None` for a null value.
    pub value: Option<(usize, usize)>,
}

/// What is wrong at one position of a records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordFault {
    /// The bytes end inside a varint.
    TruncatedVarint,
    /// A 10-byte varint with more than 64 bits.
    VarintOverflow,
    /// A varint longer than 10 bytes.
    VarintTooLong,
    /// A record length or header count below zero.
    Negative {
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
    },
    /// A length that runs past the bytes left.
    PastEnd {
        /// The field.
        field: &'static str,
        /// The declared length.
        len: i64,
        /// Bytes left.
        left: usize,
    },
    /// A record of length 0 (it has no attributes byte).
    EmptyRecord,
    /// A record whose fields take another number of bytes than its length says.
    LengthMismatch {
        /// The record's length field.
        declared: usize,
        /// Bytes its fields take.
        used: usize,
    },
    /// Bytes after the last of the records the header counts.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for RecordFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedVarint => f.write_str("truncated varint"),
            Self::VarintOverflow => f.write_str("varint overflows 64 bits"),
            Self::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            Self::Negative { field, value } => write!(f, "negative {field} {value}"),
            Self::PastEnd { field, len, left } => {
                write!(f, "{field} length {len} with {left} bytes left")
            }
            Self::EmptyRecord => f.write_str("empty record"),
            Self::LengthMismatch { declared, used } => write!(
                f,
                "record declares {declared} bytes but its fields take {used}"
            ),
            Self::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the last record")
            }
        }
    }
}

/// A records section that does not walk: which record, at which byte, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record {index} (byte {at} of the records section): {fault}")]
pub struct RecordError {
    /// Index of the record in the batch (the record count for trailing bytes).
    pub index: usize,
    /// Byte position in the records section.
    pub at: usize,
    /// What is wrong.
    pub fault: RecordFault,
}

/// Finds the value of each of `count` records in `section`. The section must hold exactly
/// those records.
pub fn value_spans(section: &[u8], count: usize) -> Result<Vec<ValueSpan>, RecordError> {
    // Each record takes at least 7 bytes: bound the allocation by the input.
    let mut out = Vec::with_capacity(count.min(section.len() / 7 + 1));
    let mut pos = 0usize;
    for index in 0..count {
        let err = |at: usize| move |fault: RecordFault| RecordError { index, at, fault };
        let len = varint(section, &mut pos).map_err(err(pos))?;
        let len = usize::try_from(len).map_err(|_| {
            err(pos)(RecordFault::Negative {
                field: "record length",
                value: len,
            })
        })?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= section.len())
            .ok_or_else(|| {
                err(pos)(RecordFault::PastEnd {
                    field: "record",
                    len: i64::try_from(len).unwrap_or(i64::MAX),
                    left: section.len() - pos,
                })
            })?;
        let rec = section.get(..end).unwrap_or_default();
        let mut p = pos;
        if p >= end {
            return Err(err(p)(RecordFault::EmptyRecord));
        }
        p += 1; // attributes
        varint(rec, &mut p).map_err(err(p))?; // timestamp delta
        let offset_delta = varint(rec, &mut p).map_err(err(p))?;
        nullable(rec, &mut p, "key").map_err(err(p))?;
        let value = nullable(rec, &mut p, "value").map_err(err(p))?;
        let at = p;
        let headers = varint(rec, &mut p).map_err(err(at))?;
        let headers = usize::try_from(headers).map_err(|_| {
            err(at)(RecordFault::Negative {
                field: "header count",
                value: headers,
            })
        })?;
        for _ in 0..headers {
            nullable(rec, &mut p, "header key").map_err(err(p))?;
            nullable(rec, &mut p, "header value").map_err(err(p))?;
        }
        if p != end {
            return Err(err(pos)(RecordFault::LengthMismatch {
                declared: len,
                used: p - pos,
            }));
        }
        out.push(ValueSpan {
            index,
            offset_delta,
            value,
        });
        pos = end;
    }
    if pos != section.len() {
        return Err(RecordError {
            index: count,
            at: pos,
            fault: RecordFault::TrailingBytes {
                extra: section.len() - pos,
            },
        });
    }
    Ok(out)
}

/// A nullable length-prefixed field at `pos`: its start and length, `None` when null.
fn nullable(
    b: &[u8],
    pos: &mut usize,
    field: &'static str,
) -> Result<Option<(usize, usize)>, RecordFault> {
    let n = varint(b, pos)?;
    if n < 0 {
        return Ok(None);
    }
    let start = *pos;
    let end = usize::try_from(n)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|e| *e <= b.len())
        .ok_or(RecordFault::PastEnd {
            field,
            len: n,
            left: b.len().saturating_sub(start),
        })?;
    *pos = end;
    Ok(Some((start, end - start)))
}

/// A zigzag varint of up to 64 bits at `pos`, advancing it.
pub fn varint(b: &[u8], pos: &mut usize) -> Result<i64, RecordFault> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&byte) = b.get(*pos) else {
            return Err(RecordFault::TruncatedVarint);
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(RecordFault::VarintOverflow);
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // Zigzag decoding: the low bit is the sign.
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    Err(RecordFault::VarintTooLong)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn zz(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn record(offset_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![0u8];
        zz(0, &mut body);
        zz(offset_delta, &mut body);
        for f in [key, value] {
            match f {
                None => zz(-1, &mut body),
                Some(b) => {
                    zz(b.len() as i64, &mut body);
                    body.extend_from_slice(b);
                }
            }
        }
        zz(1, &mut body);
        zz(1, &mut body);
        body.push(b'h');
        zz(-1, &mut body);
        let mut out = Vec::new();
        zz(body.len() as i64, &mut out);
        out.extend(body);
        out
    }

    #[test]
    fn spans_point_at_values() {
        let mut s = record(0, Some(b"k"), Some(b"value-0"));
        s.extend(record(1, None, None));
        s.extend(record(2, None, Some(b"")));
        let spans = value_spans(&s, 3).unwrap();
        let (start, len) = spans[0].value.unwrap();
        assert_eq!(&s[start..start + len], b"value-0");
        assert_eq!(spans[1].value, None);
        assert_eq!(spans[2].value.map(|v| v.1), Some(0));
        assert_eq!(spans[2].offset_delta, 2);
    }

    #[test]
    fn malformed_sections_are_errors() {
        let s = record(0, None, Some(b"abc"));
        assert!(value_spans(&s, 2).is_err(), "fewer records than declared");
        assert!(value_spans(&s[..s.len() - 1], 1).is_err(), "truncated");
        let mut extra = s.clone();
        extra.push(0);
        assert!(matches!(
            value_spans(&extra, 1),
            Err(RecordError {
                index: 1,
                fault: RecordFault::TrailingBytes { extra: 1 },
                ..
            })
        ));
        let mut bad_len = s.clone();
        bad_len[0] = 1; // zigzag 1 is -1: a negative record length
        assert!(matches!(
            value_spans(&bad_len, 1),
            Err(RecordError {
                index: 0,
                at: 1,
                fault: RecordFault::Negative { .. }
            })
        ));
        assert_eq!(
            varint(&[0xff; 11], &mut 0),
            Err(RecordFault::VarintOverflow)
        );
        assert_eq!(
            varint(&[0x80; 3], &mut 0),
            Err(RecordFault::TruncatedVarint)
        );
        assert_eq!(varint(&[0x01], &mut 0), Ok(-1));
    }

    proptest::proptest! {
        #[test]
        fn varints_round_trip(v in proptest::prelude::any::<i64>()) {
            let mut buf = Vec::new();
            zz(v, &mut buf);
            let mut pos = 0;
            proptest::prop_assert_eq!(varint(&buf, &mut pos), Ok(v));
            proptest::prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn arbitrary_sections_never_panic(
            section in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            count in 0usize..50,
        ) {
            if let Ok(spans) = value_spans(&section, count) {
                proptest::prop_assert_eq!(spans.len(), count);
                for s in spans {
                    if let Some((start, len)) = s.value {
                        proptest::prop_assert!(start + len <= section.len());
                    }
                }
            }
        }
    }
}
