//! Schema-ID rewriting, as pure bytes → bytes functions.
//!
//! Upstream alerts arrive in the Confluent wire format (magic `0`, a 4-byte
//! big-endian schema id, the Avro body). The ids belong to the upstream
//! registry; the local buffer serves its own registry, so every id is
//! mapped to the local id of the same schema and the 4 bytes are patched.
//!
//! Nothing here talks to a network or a registry: the caller resolves the
//! ids it needs first (see [`batch::schema_ids`]) and hands a
//! [`SchemaIdMap`] to the rewrite. That keeps the rule usable anywhere
//! bytes flow — the mirror per record, and the broker per produced batch
//! (a server-side topic rule) — and makes it property-testable.
//!
//! Layout: [`wire`] reads and patches one framed value; [`records`] walks a
//! v2 records section to find each value without decoding records;
//! [`codec`] recompresses a records section; [`batch`] ties them together
//! for a whole record batch (CRC recomputed, untouched batches returned as
//! the same bytes).

pub mod batch;
pub mod codec;
pub mod records;
pub mod wire;

use std::collections::HashMap;

pub use batch::{rewrite_batch, schema_ids, BatchRewrite, RewriteOptions};
pub use wire::{Framing, MAGIC};

/// Maps upstream schema ids to local ones.
pub trait SchemaIdMap {
    /// The local id of the schema the upstream registry calls `upstream`,
    /// or `None` when it is not known.
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

/// Why a batch could not be rewritten. Offsets are the records' offsets as
/// written in the batch (base offset + delta).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The batch header is malformed or not format v2.
    #[error("record batch at offset {base_offset}: {reason}")]
    Header {
        /// Base offset from the header (or -1 if too short to have one).
        base_offset: i64,
        /// What is wrong.
        reason: String,
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
    #[error("record batch at offset {base_offset}: {codec} records do not decompress: {reason}")]
    Decompress {
        /// Base offset.
        base_offset: i64,
        /// Codec name.
        codec: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Recompression failed.
    #[error("record batch at offset {base_offset}: {codec} recompression failed: {reason}")]
    Compress {
        /// Base offset.
        base_offset: i64,
        /// Codec name.
        codec: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// A record inside the batch does not parse.
    #[error("record {index} of the batch at offset {base_offset}: {reason}")]
    Record {
        /// Base offset of the batch.
        base_offset: i64,
        /// Index of the record in the batch.
        index: usize,
        /// What is wrong.
        reason: String,
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
