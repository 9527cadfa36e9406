//! The Confluent wire format: byte 0 is the magic `0`, bytes 1-4 the
//! big-endian schema id, then the schemaless Avro body.
//!
//! Rubin's production stream and every Confluent serializer use it; the
//! schema comes from a registry (see `schema_source`).

use super::DecodeError;

/// The magic byte that starts every Confluent-framed message.
pub const MAGIC: u8 = 0;

/// Length of the magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Splits a framed message into its schema id and Avro body.
///
/// # Errors
/// [`DecodeError::ConfluentTooShort`] or [`DecodeError::ConfluentMagic`].
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::ConfluentTooShort { len: bytes.len() });
    };
    if header[0] != MAGIC {
        return Err(DecodeError::ConfluentMagic { magic: header[0] });
    }
    let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    Ok((id, body))
}

/// Frames an Avro body with a schema id.
#[must_use]
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_then_split() {
        let framed = frame(0x0102_0304, b"body");
        assert_eq!(&framed[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(split(&framed).unwrap(), (0x0102_0304, &b"body"[..]));
    }

    #[test]
    fn short_and_bad_magic_are_errors() {
        assert!(matches!(
            split(&[0, 0, 0, 1]),
            Err(DecodeError::ConfluentTooShort { len: 4 })
        ));
        assert!(matches!(
            split(&[1, 0, 0, 0, 1]),
            Err(DecodeError::ConfluentMagic { magic: 1 })
        ));
    }
}
