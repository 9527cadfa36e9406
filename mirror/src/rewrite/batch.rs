//! Rewriting the schema ids of a whole v2 record batch.
//!
//! An uncompressed batch is patched in a copy, 4 bytes per framed value,
//! and its CRC-32C recomputed; a compressed batch is decompressed, patched
//! and recompressed with the same codec (record bytes, headers, offsets and
//! timestamps stay identical; only the records section's compressed form
//! and the header's length and CRC change). A batch whose ids all map to
//! themselves comes back as [`BatchRewrite::Unchanged`]: the caller keeps
//! the original bytes, zero-copy.

use std::borrow::Cow;
use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use starlog_clients::compression::Compression;

use super::records::{value_spans, ValueSpan};
use super::wire::{framing, patch_id, Framing};
use super::{codec, RewriteError, SchemaIdMap};

/// Length of the v2 batch header, through the record count.
pub const HEADER_LEN: usize = 61;
/// Where the CRC-covered bytes start (the attributes field).
const CRC_START: usize = 21;

/// How strict a rewrite is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteOptions {
    /// A non-null value that is not Confluent-framed is an error (else it
    /// is left as it is).
    pub require_framing: bool,
    /// Largest decompressed records section accepted.
    pub max_decompressed: usize,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        Self {
            require_framing: true,
            max_decompressed: 256 * 1024 * 1024,
        }
    }
}

/// The outcome of a batch rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRewrite {
    /// Every id maps to itself (or there is nothing to map): keep the input.
    Unchanged,
    /// A new batch with `values` ids patched.
    Rewritten {
        /// The new batch bytes (base offset field onward).
        bytes: Bytes,
        /// How many values got a new id.
        values: usize,
    },
}

struct Parsed<'a> {
    base_offset: i64,
    codec: Compression,
    count: usize,
    control: bool,
    section: Cow<'a, [u8]>,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn parse(batch: &[u8], max_decompressed: usize) -> Result<Parsed<'_>, RewriteError> {
    if batch.len() < HEADER_LEN {
        return Err(RewriteError::Header {
            base_offset: if batch.len() >= 8 {
                be_i64(batch, 0)
            } else {
                -1
            },
            reason: format!("{} bytes, shorter than the 61-byte header", batch.len()),
        });
    }
    let base_offset = be_i64(batch, 0);
    let header = |reason: String| RewriteError::Header {
        base_offset,
        reason,
    };
    let length = be_i32(batch, 8);
    if usize::try_from(length).ok().and_then(|l| l.checked_add(12)) != Some(batch.len()) {
        return Err(header(format!(
            "length field {length} does not match the {} bytes given",
            batch.len()
        )));
    }
    if batch[16] != 2 {
        return Err(header(format!(
            "record format (magic) {} is not v2",
            batch[16]
        )));
    }
    let expected = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if expected != actual {
        return Err(RewriteError::Crc {
            base_offset,
            expected,
            actual,
        });
    }
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    let codec = Compression::from_attributes(attributes)
        .ok_or_else(|| header(format!("unknown codec in attributes {attributes:#x}")))?;
    let count = be_i32(batch, 57);
    let count = usize::try_from(count).map_err(|_| header(format!("record count {count}")))?;
    let raw = &batch[HEADER_LEN..];
    let section = if codec == Compression::None {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(
            codec::expand(codec, raw, max_decompressed).map_err(|reason| {
                RewriteError::Decompress {
                    base_offset,
                    codec: codec::name(codec),
                    reason,
                }
            })?,
        )
    };
    Ok(Parsed {
        base_offset,
        codec,
        count,
        control: attributes & 0x20 != 0,
        section,
    })
}

fn spans(p: &Parsed<'_>) -> Result<Vec<ValueSpan>, RewriteError> {
    value_spans(&p.section, p.count).map_err(|(index, reason)| RewriteError::Record {
        base_offset: p.base_offset,
        index,
        reason,
    })
}

/// Classifies the value of every record: `(offset, framing, span)`.
fn classify<'p>(
    p: &'p Parsed<'_>,
    spans: &'p [ValueSpan],
) -> impl Iterator<Item = (i64, Framing, &'p ValueSpan)> + 'p {
    spans.iter().map(move |s| {
        let value = s.value.map(|(start, len)| &p.section[start..start + len]);
        (
            p.base_offset.wrapping_add(s.offset_delta),
            framing(value),
            s,
        )
    })
}

fn check_framing(f: Framing, offset: i64, opts: &RewriteOptions) -> Result<(), RewriteError> {
    match f {
        Framing::Framed { .. } | Framing::Null => Ok(()),
        other if opts.require_framing => Err(RewriteError::NotFramed {
            offset,
            framing: other,
        }),
        _ => Ok(()),
    }
}

/// The distinct upstream schema ids the batch's values carry (control
/// batches carry none). Fails on a malformed batch, and on an unframed
/// value when framing is required.
pub fn schema_ids(batch: &[u8], opts: &RewriteOptions) -> Result<BTreeSet<u32>, RewriteError> {
    let p = parse(batch, opts.max_decompressed)?;
    let mut ids = BTreeSet::new();
    if p.control {
        return Ok(ids);
    }
    let spans = spans(&p)?;
    for (offset, f, _) in classify(&p, &spans) {
        check_framing(f, offset, opts)?;
        if let Framing::Framed { id } = f {
            ids.insert(id);
        }
    }
    Ok(ids)
}

/// Rewrites every framed value's schema id through `map`.
pub fn rewrite_batch(
    batch: &Bytes,
    map: &impl SchemaIdMap,
    opts: &RewriteOptions,
) -> Result<BatchRewrite, RewriteError> {
    let p = parse(batch, opts.max_decompressed)?;
    if p.control {
        return Ok(BatchRewrite::Unchanged);
    }
    let spans = spans(&p)?;
    let mut patches: Vec<(usize, u32)> = Vec::new();
    for (offset, f, span) in classify(&p, &spans) {
        check_framing(f, offset, opts)?;
        if let (Framing::Framed { id }, Some((start, _))) = (f, span.value) {
            let local = map
                .local_id(id)
                .ok_or(RewriteError::UnknownId { offset, id })?;
            if local != id {
                patches.push((start, local));
            }
        }
    }
    if patches.is_empty() {
        return Ok(BatchRewrite::Unchanged);
    }
    let values = patches.len();
    let mut out = if p.codec == Compression::None {
        let mut out = BytesMut::from(&batch[..]);
        for (start, id) in &patches {
            patch_id(&mut out[HEADER_LEN + start..], *id);
        }
        out
    } else {
        let mut section = p.section.into_owned();
        for (start, id) in &patches {
            patch_id(&mut section[*start..], *id);
        }
        let packed =
            codec::compress(p.codec, &section).map_err(|reason| RewriteError::Compress {
                base_offset: p.base_offset,
                codec: codec::name(p.codec),
                reason,
            })?;
        let length =
            i32::try_from(HEADER_LEN - 12 + packed.len()).map_err(|_| RewriteError::Compress {
                base_offset: p.base_offset,
                codec: codec::name(p.codec),
                reason: format!("{} compressed bytes exceed a batch", packed.len()),
            })?;
        let mut out = BytesMut::with_capacity(HEADER_LEN + packed.len());
        out.extend_from_slice(&batch[..HEADER_LEN]);
        out[8..12].copy_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&packed);
        out
    };
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(BatchRewrite::Rewritten {
        bytes: out.freeze(),
        values,
    })
}
