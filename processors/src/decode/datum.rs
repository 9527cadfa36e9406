//! Decoding one Avro datum with a known writer schema.
//!
//! Wraps `apache-avro`'s reader so that (a) the number of bytes consumed is
//! known (container blocks hold several records; a framed message must hold
//! exactly one), and (b) a panic inside the library on hostile bytes becomes
//! a [`DecodeError`] instead of taking a broker task down.

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

/// Decodes one datum from the front of `bytes`; returns it and the bytes used.
pub(crate) fn decode(schema: &Schema, bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    let run = || -> Result<(Value, usize), apache_avro::Error> {
        let mut cursor = bytes;
        let reader = GenericDatumReader::builder(schema).build()?;
        let value = reader.read_value(&mut cursor)?;
        Ok((value, bytes.len() - cursor.len()))
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(v)) => Ok(v),
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
