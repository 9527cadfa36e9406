//! Walking the records section of a v2 batch without decoding records.
//!
//! A rewrite only needs to know where each value starts and how long it
//! is; keys, headers and timestamps are skipped over as lengths. Every
//! length is checked against the bytes that are there, so hostile input
//! yields an error, never a panic or an out-of-bounds read.

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

/// Finds the value of each of `count` records in `section`. The section
/// must hold exactly those records.
pub fn value_spans(section: &[u8], count: usize) -> Result<Vec<ValueSpan>, (usize, String)> {
    // Each record takes at least 7 bytes: bound the allocation by the input.
    let mut out = Vec::with_capacity(count.min(section.len() / 7 + 1));
    let mut pos = 0usize;
    for index in 0..count {
        let err = |reason: String| (index, reason);
        let len = varint(section, &mut pos).map_err(err)?;
        let len = usize::try_from(len).map_err(|_| err(format!("negative record length {len}")))?;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= section.len())
            .ok_or_else(|| {
                err(format!(
                    "record length {len} with {} bytes left",
                    section.len() - pos
                ))
            })?;
        let rec = &section[..end];
        let mut p = pos;
        if p >= end {
            return Err(err("empty record".into()));
        }
        p += 1; // attributes
        varint(rec, &mut p).map_err(err)?; // timestamp delta
        let offset_delta = varint(rec, &mut p).map_err(err)?;
        skip_nullable(rec, &mut p, "key").map_err(err)?;
        let value = nullable(rec, &mut p, "value").map_err(err)?;
        let headers = varint(rec, &mut p).map_err(err)?;
        let headers = usize::try_from(headers)
            .map_err(|_| err(format!("negative header count {headers}")))?;
        for _ in 0..headers {
            skip_nullable(rec, &mut p, "header key").map_err(err)?;
            skip_nullable(rec, &mut p, "header value").map_err(err)?;
        }
        if p != end {
            return Err(err(format!(
                "record declares {len} bytes but its fields take {}",
                p - pos
            )));
        }
        out.push(ValueSpan {
            index,
            offset_delta,
            value,
        });
        pos = end;
    }
    if pos != section.len() {
        return Err((
            count,
            format!(
                "{} bytes after the last of {count} records",
                section.len() - pos
            ),
        ));
    }
    Ok(out)
}

fn nullable(b: &[u8], pos: &mut usize, what: &str) -> Result<Option<(usize, usize)>, String> {
    let n = varint(b, pos)?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| format!("{what} length {n}"))?;
    let start = *pos;
    let end = start
        .checked_add(n)
        .filter(|e| *e <= b.len())
        .ok_or_else(|| format!("{what} length {n} with {} bytes left", b.len() - start))?;
    *pos = end;
    Ok(Some((start, n)))
}

fn skip_nullable(b: &[u8], pos: &mut usize, what: &str) -> Result<(), String> {
    nullable(b, pos, what).map(|_| ())
}

/// A zigzag varint of up to 64 bits at `pos`, advancing it.
pub(crate) fn varint(b: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut v: u64 = 0;
    for shift in (0..70).step_by(7) {
        let Some(&byte) = b.get(*pos) else {
            return Err("truncated varint".into());
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err("varint overflows 64 bits".into());
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // Zigzag decoding: the low bit is the sign.
            return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
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
        assert!(value_spans(&extra, 1).is_err(), "trailing bytes");
        let mut bad_len = s.clone();
        bad_len[0] = 1; // record length 0 after zigzag -1? no: 1 -> -1
        assert!(value_spans(&bad_len, 1).is_err());
        assert!(varint(&[0xff; 11], &mut 0).is_err());
        assert_eq!(varint(&[0x01], &mut 0), Ok(-1));
    }
}
