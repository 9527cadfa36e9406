//! One value in the Confluent wire format (magic byte 0, a 4-byte big-endian schema id, the
//! Avro body): classify it, patch its id.
//!
//! Classification never fails: a null value, a value shorter than the
//! 5-byte header and a value with another first byte are each reported so
//! the caller can apply its bad-input policy with a precise reason.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// The first byte of every Confluent-framed value.
pub const MAGIC: u8 = 0;
/// Magic byte plus 4-byte schema id.
pub const FRAME_LEN: usize = 5;

/// What a record value looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Magic 0 and a schema id; the body follows.
    Framed {
        /// The schema id in bytes 1-4.
        id: u32,
    },
    /// A null value (a tombstone).
    Null,
    /// Starts with the magic but is shorter than the header.
    TooShort {
        /// The value's length.
        len: usize,
    },
    /// Starts with another byte (an OCF file starts with `O`, JSON with `{`).
    OtherMagic {
        /// The first byte.
        first: u8,
    },
    /// An empty value.
    Empty,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Framed { id } => write!(f, "framed with schema id {id}"),
            Self::Null => f.write_str("null value"),
            Self::TooShort { len } => {
                write!(f, "{len}-byte value is shorter than the 5-byte header")
            }
            Self::OtherMagic { first } => {
                write!(f, "first byte {first:#04x} is not the magic byte 0")
            }
            Self::Empty => f.write_str("empty value"),
        }
    }
}

/// Classifies a value.
pub fn framing(value: Option<&[u8]>) -> Framing {
    match value {
        None => Framing::Null,
        Some([]) => Framing::Empty,
        Some([first, ..]) if *first != MAGIC => Framing::OtherMagic { first: *first },
        Some(v) if v.len() < FRAME_LEN => Framing::TooShort { len: v.len() },
        Some(v) => Framing::Framed {
            id: u32::from_be_bytes([v[1], v[2], v[3], v[4]]),
        },
    }
}

/// Writes `id` into a framed value in place. The caller has classified the
/// value as [`Framing::Framed`], so it has at least 5 bytes.
pub fn patch_id(value: &mut [u8], id: u32) {
    if value.len() >= FRAME_LEN {
        value[1..FRAME_LEN].copy_from_slice(&id.to_be_bytes());
    }
}

/// A copy of a framed value with the id replaced; the value itself when
/// the id is already `id` (no copy).
pub fn with_id(value: &Bytes, id: u32) -> Bytes {
    if let Framing::Framed { id: old } = framing(Some(value)) {
        if old == id {
            return value.clone();
        }
        let mut out = BytesMut::from(&value[..]);
        patch_id(&mut out, id);
        return out.freeze();
    }
    value.clone()
}

/// The Avro body of a framed value (empty when the value is not framed).
pub fn body(value: &[u8]) -> &[u8] {
    value.get(FRAME_LEN..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_shape_is_classified() {
        assert_eq!(framing(None), Framing::Null);
        assert_eq!(framing(Some(b"")), Framing::Empty);
        assert_eq!(
            framing(Some(b"Obj\x01")),
            Framing::OtherMagic { first: b'O' }
        );
        assert_eq!(framing(Some(&[0, 1, 2])), Framing::TooShort { len: 3 });
        assert_eq!(
            framing(Some(&[0, 0, 0, 1, 2, 9])),
            Framing::Framed { id: 258 }
        );
        assert_eq!(framing(Some(&[0, 0, 0, 0, 7])), Framing::Framed { id: 7 });
    }

    #[test]
    fn with_id_copies_only_when_the_id_changes() {
        let v = Bytes::from_static(&[0, 0, 0, 0, 7, 42, 43]);
        let same = with_id(&v, 7);
        assert_eq!(same.as_ptr(), v.as_ptr(), "no copy for an unchanged id");
        let new = with_id(&v, 0x0102_0304);
        assert_eq!(&new[..], &[0, 1, 2, 3, 4, 42, 43]);
        assert_eq!(body(&new), &[42, 43]);
        let not_framed = Bytes::from_static(b"{}");
        assert_eq!(with_id(&not_framed, 5), not_framed);
    }

    #[test]
    fn reasons_name_the_problem() {
        assert!(Framing::OtherMagic { first: 0x4f }
            .to_string()
            .contains("0x4f"));
        assert!(Framing::TooShort { len: 3 }.to_string().contains("3-byte"));
    }
}
