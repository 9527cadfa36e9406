//! Starlog wire: the Kafka record batch (format v2) as bytes.
//!
//! Everything that knows where a field of a record batch sits lives here, once: the storage
//! log, the clients, the mirror and the broker read and patch batches through this crate.
//! It is sans-io and synchronous (no runtime, no sockets, no files), and every decoder of
//! outside bytes checks each length against what is there: bad input is a typed error that
//! names the offset or field at fault, never a panic.
//!
//! Module map: `header` (field offsets, [`BatchHeader`] parse, patching the base
//! offset, leader epoch and producer fields), `crc` (CRC-32C of the covered range: compute,
//! verify, recompute), `validate` (a whole batch: header, length, CRC, record count), `walk` (a byte run split into whole batches, bounds-checked),
//! `records` (varints and the record walk to each value's span), `compression` (the five
//! codecs, decompression bounded in size), `confluent` (the magic byte and schema-id framing
//! of one value), `rewrite` (the pure schema-id rewrite of a whole batch through a
//! [`SchemaIdMap`], shared by the mirror and the broker's server-side rule).

mod compression;
mod confluent;
mod crc;
mod header;
mod records;
mod rewrite;
mod validate;
mod walk;

pub use compression::{compress, decompress, Compression, CompressionError};
pub use confluent::{body, framing, patch_id, with_id, Framing, FRAME_LEN, MAGIC};
pub use crc::{checksum, recompute_crc, verify_crc, CRC_START};
pub use header::{
    parse_batch_header, patch_base_offset_and_epoch, patch_producer, BatchError, BatchHeader,
    BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};
pub use records::{value_spans, varint, RecordError, RecordFault, ValueSpan};
pub use rewrite::{
    rewrite_batch, schema_ids, BatchRewrite, RewriteError, RewriteOptions, SchemaIdMap,
};
pub use validate::validate_batch;
pub use walk::{batches, Batch, Batches, WalkError};
