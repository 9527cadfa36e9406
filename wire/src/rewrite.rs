//! Schema-id rewriting of a whole v2 record batch, as a pure bytes → bytes function.
//!
//! Upstream alerts arrive in the Confluent wire format (magic `0`, a 4-byte big-endian schema
//! id, the Avro body). The ids belong to the upstream registry; the local buffer serves its
//! own registry, so every id is mapped to the local id of the same schema and the 4 bytes are
//! patched.
//!
//! Nothing here talks to a network or a registry: the caller resolves the ids it needs first
//! ([`schema_ids`]) and hands a [`SchemaIdMap`] to [`rewrite_batch`]. That keeps the rule
//! usable anywhere bytes flow — the mirror per batch, and the broker per produced batch (a
//! server-side topic rule) — and makes it property-testable.
//!
//! An uncompressed batch is patched in a copy, 4 bytes per framed value, and its CRC-32C
//! recomputed; a compressed batch is decompressed, patched and recompressed with the same
//! codec (record bytes, headers, offsets and timestamps stay identical; only the records
//! section's compressed form and the header's length and CRC change). A batch whose ids all
//! map to themselves comes back as [`BatchRewrite::Unchanged`]: the caller keeps the original
//! bytes, zero-copy.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use bytes::{Bytes, BytesMut};

use crate::compression::{self, Compression, CompressionError};
use crate::confluent::{framing, patch_id, Framing};
use crate::crc;
use crate::header::{
    BatchError, BatchHeader, BATCH_HEADER_LEN, BATCH_LENGTH_AT, LOG_OVERHEAD, MAGIC_V2,
};
use crate::records::{value_spans, RecordError, ValueSpan};

/// Maps upstream schema ids to local ones.
pub trait SchemaIdMap {
    /// The local id of the schema the upstream registry calls `upstream`, or `None` when it
    /// is not known.
    fn local_id(&self, upstream: u32) -> Option<u32>;
}

impl SchemaIdMap for HashMap<u32, u32> {
    fn local_id(&self, upstream: u32) -> Option<u32> {
        self.get(&upstream).copied()
    }
}

impl<F: Fn(u32) -> Option<u32>> SchemaIdMap for F {
    fn local_id(&self, upstream: u32) -> Option<u32> {
        self(upstream)
    }
}

/// Why a batch could not be rewritten. Offsets are the records' offsets as written in the
/// batch (base offset + delta).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The batch header is malformed, not format v2, or names no codec.
    #[error("record batch at offset {base_offset}: {fault}")]
    Header {
        /// Base offset from the header (or -1 if too short to have one).
        base_offset: i64,
        /// What is wrong.
        #[source]
        fault: BatchError,
    },
    /// The stored CRC does not match the bytes.
    #[error("record batch at offset {base_offset}: CRC mismatch (header {expected:#010x}, bytes {actual:#010x})")]
    Crc {
        /// Base offset.
        base_offset: i64,
        /// From the header.
        expected: u32,
        /// Computed.
        actual: u32,
    },
    /// The records section does not decompress (or is too large).
    #[error("record batch at offset {base_offset}: records do not decompress: {source}")]
    Decompress {
        /// Base offset.
        base_offset: i64,
        /// The decoder's fault (it names the codec).
        #[source]
        source: CompressionError,
    },
    /// Recompression failed, or its output does not fit a batch.
    #[error("record batch at offset {base_offset}: {source}")]
    Compress {
        /// Base offset.
        base_offset: i64,
        /// The encoder's fault (it names the codec).
        #[source]
        source: CompressionError,
    },
    /// A record inside the batch does not parse.
    #[error("record batch at offset {base_offset}: {source}")]
    Record {
        /// Base offset of the batch.
        base_offset: i64,
        /// Which record, where, and why.
        #[source]
        source: RecordError,
    },
    /// A value is not Confluent-framed and the options require framing.
    #[error("offset {offset}: value is not Confluent-framed ({framing})")]
    NotFramed {
        /// The record's offset.
        offset: i64,
        /// What the value looks like instead.
        framing: Framing,
    },
    /// A framed value names an id the map does not know.
    #[error("offset {offset}: upstream schema id {id} has no local id")]
    UnknownId {
        /// The record's offset.
        offset: i64,
        /// The upstream id.
        id: u32,
    },
}

/// How strict a rewrite is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteOptions {
    /// A non-null value that is not Confluent-framed is an error (else it is left as it is).
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

/// Checks one whole batch (exactly the bytes given) and expands its records section.
fn parse(batch: &[u8], max_decompressed: usize) -> Result<Parsed<'_>, RewriteError> {
    let h = BatchHeader::read(batch).map_err(|fault| RewriteError::Header {
        base_offset: batch
            .first_chunk::<8>()
            .map_or(-1, |b| i64::from_be_bytes(*b)),
        fault,
    })?;
    let base_offset = h.base_offset;
    let header = |fault: BatchError| RewriteError::Header { base_offset, fault };
    if usize::try_from(h.batch_length)
        .ok()
        .and_then(|l| l.checked_add(LOG_OVERHEAD))
        != Some(batch.len())
    {
        return Err(header(BatchError::LengthMismatch {
            batch_length: h.batch_length,
            given: batch.len(),
        }));
    }
    if h.magic != MAGIC_V2 {
        return Err(header(BatchError::BadMagic { magic: h.magic }));
    }
    let actual = crc::checksum(batch).map_err(header)?;
    if h.crc != actual {
        return Err(RewriteError::Crc {
            base_offset,
            expected: h.crc,
            actual,
        });
    }
    let codec = h.codec().ok_or(header(BatchError::UnknownCompression {
        attributes: h.attributes,
    }))?;
    let count = usize::try_from(h.record_count).map_err(|_| {
        header(BatchError::NegativeRecordCount {
            record_count: h.record_count,
        })
    })?;
    let raw = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    let section = if codec == Compression::None {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(
            compression::decompress(codec, raw, max_decompressed).map_err(|source| {
                RewriteError::Decompress {
                    base_offset,
                    source,
                }
            })?,
        )
    };
    Ok(Parsed {
        base_offset,
        codec,
        count,
        control: h.is_control(),
        section,
    })
}

fn spans(p: &Parsed<'_>) -> Result<Vec<ValueSpan>, RewriteError> {
    value_spans(&p.section, p.count).map_err(|source| RewriteError::Record {
        base_offset: p.base_offset,
        source,
    })
}

/// Classifies the value of every record: `(offset, framing, span)`.
fn classify<'p>(
    p: &'p Parsed<'_>,
    spans: &'p [ValueSpan],
) -> impl Iterator<Item = (i64, Framing, &'p ValueSpan)> + 'p {
    spans.iter().map(move |s| {
        let value = s
            .value
            .and_then(|(start, len)| p.section.get(start..start + len));
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

/// The distinct upstream schema ids the batch's values carry (control batches carry none).
/// Fails on a malformed batch, and on an unframed value when framing is required.
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
    let base_offset = p.base_offset;
    let mut out = if p.codec == Compression::None {
        let mut out = BytesMut::from(&batch[..]);
        for (start, id) in &patches {
            if let Some(value) = out.get_mut(BATCH_HEADER_LEN + start..) {
                patch_id(value, *id);
            }
        }
        out
    } else {
        let mut section = p.section.into_owned();
        for (start, id) in &patches {
            if let Some(value) = section.get_mut(*start..) {
                patch_id(value, *id);
            }
        }
        let packed =
            compression::compress(p.codec, &section).map_err(|source| RewriteError::Compress {
                base_offset,
                source,
            })?;
        let length =
            i32::try_from(BATCH_HEADER_LEN - LOG_OVERHEAD + packed.len()).map_err(|_| {
                RewriteError::Compress {
                    base_offset,
                    source: CompressionError::Compress {
                        codec: p.codec.name(),
                        reason: format!("{} compressed bytes exceed a batch", packed.len()),
                    },
                }
            })?;
        let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + packed.len());
        out.extend_from_slice(batch.get(..BATCH_HEADER_LEN).unwrap_or_default());
        if let Some(field) = out.get_mut(BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4) {
            field.copy_from_slice(&length.to_be_bytes());
        }
        out.extend_from_slice(&packed);
        out
    };
    crc::recompute_crc(&mut out).map_err(|fault| RewriteError::Header { base_offset, fault })?;
    Ok(BatchRewrite::Rewritten {
        bytes: out.freeze(),
        values,
    })
}
