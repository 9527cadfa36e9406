//! Avro Object Container Files, as ZTF ships every alert (one record per
//! file, the ~20 kB writer schema in the header).
//!
//! The container framing is parsed here rather than with
//! `apache_avro::Reader` so that the header schema is parsed **once per
//! distinct schema text** (kept in [`OcfSchemaCache`]) instead of once per
//! alert, and so every candidate of the same schema shares one
//! `Arc<Schema>` — which is what lets writers cache the annotated schema
//! they derive from it.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema};
use parking_lot::Mutex;

use super::varint::{read_bytes, read_long};
use super::{datum, DecodeError};

/// The four bytes every container file starts with.
pub const MAGIC: &[u8; 4] = b"Obj\x01";

/// Distinct header schemas kept before the cache is cleared (a stream
/// carries a handful of schema versions; this only bounds hostile input).
const MAX_CACHED_SCHEMAS: usize = 64;

/// Header schemas by their exact JSON text.
#[derive(Debug, Default)]
pub struct OcfSchemaCache {
    by_text: Mutex<HashMap<Vec<u8>, Arc<Schema>>>,
}

impl OcfSchemaCache {
    fn get(&self, text: &[u8]) -> Result<Arc<Schema>, DecodeError> {
        if let Some(s) = self.by_text.lock().get(text) {
            return Ok(Arc::clone(s));
        }
        let header = |reason: String| DecodeError::OcfHeader { reason };
        let json = std::str::from_utf8(text)
            .map_err(|e| header(format!("avro.schema is not UTF-8: {e}")))?;
        let schema = Arc::new(
            Schema::parse_str(json)
                .map_err(|e| header(format!("avro.schema does not parse: {e}")))?,
        );
        let mut map = self.by_text.lock();
        if map.len() >= MAX_CACHED_SCHEMAS {
            map.clear();
        }
        map.insert(text.to_vec(), Arc::clone(&schema));
        Ok(schema)
    }

    /// Number of distinct schemas cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_text.lock().len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Header<'a> {
    schema_text: &'a [u8],
    codec_name: &'a [u8],
    sync: &'a [u8; 16],
    /// Everything after the header.
    blocks: &'a [u8],
}

fn parse_header(bytes: &[u8]) -> Result<Header<'_>, DecodeError> {
    let header = |reason: &str| DecodeError::OcfHeader {
        reason: reason.to_owned(),
    };
    let Some(mut input) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err(header("missing the Obj\\x01 magic"));
    };
    let mut schema_text = None;
    let mut codec_name: &[u8] = b"null";
    loop {
        let count = read_long(&mut input).ok_or_else(|| header("truncated metadata map"))?;
        if count == 0 {
            break;
        }
        if count < 0 {
            // A negative count is followed by the block's byte size.
            read_long(&mut input).ok_or_else(|| header("truncated metadata map"))?;
        }
        for _ in 0..count.unsigned_abs() {
            let key = read_bytes(&mut input).ok_or_else(|| header("truncated metadata key"))?;
            let value = read_bytes(&mut input).ok_or_else(|| header("truncated metadata value"))?;
            match key {
                b"avro.schema" => schema_text = Some(value),
                b"avro.codec" => codec_name = value,
                _ => {}
            }
        }
    }
    let schema_text = schema_text.ok_or_else(|| header("no avro.schema in the header"))?;
    let Some((sync, blocks)) = input.split_first_chunk::<16>() else {
        return Err(header("truncated sync marker"));
    };
    Ok(Header {
        schema_text,
        codec_name,
        sync,
        blocks,
    })
}

/// Length of the longest prefix of `bytes` made of a valid header and
/// complete blocks (each ending with the file's sync marker). Used to cut a
/// torn tail off a file whose writer crashed. `None` when the header itself
/// is incomplete.
#[must_use]
pub fn complete_prefix_len(bytes: &[u8]) -> Option<usize> {
    let h = parse_header(bytes).ok()?;
    let mut input = h.blocks;
    let mut good = bytes.len() - input.len();
    loop {
        let mut rest = input;
        let (Some(count), Some(size)) = (read_long(&mut rest), read_long(&mut rest)) else {
            return Some(good);
        };
        let (Ok(_), Ok(size)) = (usize::try_from(count), usize::try_from(size)) else {
            return Some(good);
        };
        if size.checked_add(16).is_none_or(|n| n > rest.len()) || &rest[size..size + 16] != h.sync {
            return Some(good);
        }
        input = &rest[size + 16..];
        good = bytes.len() - input.len();
    }
}

/// Decodes every record of a container file.
pub(crate) fn decode(
    bytes: &[u8],
    cache: &OcfSchemaCache,
) -> Result<(Arc<Schema>, Vec<Value>), DecodeError> {
    let Header {
        schema_text,
        codec_name,
        sync,
        blocks: mut input,
    } = parse_header(bytes)?;
    let codec = match codec_name {
        b"null" => Codec::Null,
        b"deflate" => Codec::Deflate(DeflateSettings::default()),
        other => {
            return Err(DecodeError::UnsupportedCodec {
                codec: String::from_utf8_lossy(other).into_owned(),
            })
        }
    };
    let schema = cache.get(schema_text)?;
    let mut values = Vec::new();
    let mut block = 0usize;
    while !input.is_empty() {
        let bad = |reason: String| DecodeError::OcfBlock { block, reason };
        let count =
            read_long(&mut input).ok_or_else(|| bad("truncated record count".to_owned()))?;
        let size = read_long(&mut input).ok_or_else(|| bad("truncated block size".to_owned()))?;
        let (Ok(count), Ok(size)) = (usize::try_from(count), usize::try_from(size)) else {
            return Err(bad(format!("negative record count {count} or size {size}")));
        };
        if size > input.len() {
            return Err(bad(format!(
                "block of {size} bytes but only {} remain",
                input.len()
            )));
        }
        let (data, rest) = input.split_at(size);
        let Some((marker, rest)) = rest.split_first_chunk::<16>() else {
            return Err(bad("missing sync marker".to_owned()));
        };
        if marker != sync {
            return Err(bad("sync marker differs from the header's".to_owned()));
        }
        input = rest;
        let mut owned;
        let mut data = match codec {
            Codec::Null => data,
            _ => {
                owned = data.to_vec();
                codec
                    .decompress(&mut owned)
                    .map_err(|e| bad(format!("cannot decompress: {e}")))?;
                &owned[..]
            }
        };
        // Every record takes at least one byte in an alert schema; this bounds
        // the loop and the allocation for a forged count.
        if count > data.len().max(1) {
            return Err(bad(format!(
                "{count} records claimed in {} bytes",
                data.len()
            )));
        }
        values.reserve(count);
        for _ in 0..count {
            let (value, used) = datum::decode(&schema, data)?;
            data = &data[used..];
            values.push(value);
        }
        if !data.is_empty() {
            return Err(bad(format!(
                "{} bytes left after {count} records",
                data.len()
            )));
        }
        block += 1;
    }
    Ok((schema, values))
}
