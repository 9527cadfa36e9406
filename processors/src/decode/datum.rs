//! Decoding one Avro datum with a known writer schema.
//!
//! Wraps `apache-avro`'s reader so that (a) the number of bytes consumed is
//! known (container blocks hold several records; a framed message must hold
//! exactly one), (b) truncated input is an error — apache-avro 0.22 decodes
//! a boolean, string or union cut off by the end of input as a null, so a
//! truncated alert would otherwise "decode" — and (c) a panic inside the
//! library on hostile bytes becomes a [`DecodeError`] instead of taking a
//! broker task down.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::Schema;

use super::DecodeError;

fn schema_label(schema: &Schema) -> String {
    schema
        .name()
        .map_or_else(|| "(unnamed)".to_owned(), ToString::to_string)
}

/// A byte-slice reader that remembers whether anyone asked for bytes past
/// its end. A complete datum never does; a truncated one always does.
struct EofGuard<'a> {
    rest: &'a [u8],
    read_past_end: bool,
}

impl Read for EofGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.read_past_end = true;
            return Ok(0);
        }
        let n = buf.len().min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

/// Decodes one datum from the front of `bytes`; returns it and the bytes used.
pub(crate) fn decode(schema: &Schema, bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    let run = || -> Result<(Value, usize, bool), apache_avro::Error> {
        let mut guard = EofGuard {
            rest: bytes,
            read_past_end: false,
        };
        let reader = GenericDatumReader::builder(schema).build()?;
        let value = reader.read_value(&mut guard)?;
        Ok((value, bytes.len() - guard.rest.len(), guard.read_past_end))
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok((_, _, true))) => Err(DecodeError::Body {
            schema: schema_label(schema),
            reason: format!(
                "truncated: the record needs more than the {} bytes available",
                bytes.len()
            ),
        }),
        Ok(Ok((value, used, false))) => Ok((value, used)),
        Ok(Err(e)) => Err(DecodeError::Body {
            schema: schema_label(schema),
            reason: e.to_string(),
        }),
        Err(panic) => Err(DecodeError::DecoderPanic {
            schema: schema_label(schema),
            reason: panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_owned()),
        }),
    }
}

/// Decodes a datum that must occupy all of `bytes`.
pub(crate) fn decode_exact(schema: &Schema, bytes: &[u8]) -> Result<Value, DecodeError> {
    let (value, used) = decode(schema, bytes)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            schema: schema_label(schema),
            count: bytes.len() - used,
        });
    }
    Ok(value)
}
