//! Reading the fixed fields of Kafka record batch v2 headers that the broker
//! needs (offsets, idempotence fields) without decoding records.
//!
//! The walk over back-to-back batches and the header decoder are
//! `starlog-wire`'s (storage validates batches fully on append: CRC, lengths,
//! magic); this module refuses anything that does not frame, so a malformed
//! request gets an error code instead of a panic, and keeps what the broker
//! needs of each header.

use starlog_wire::{batches, WalkError};

/// Bytes of a v2 batch header.
#[cfg(test)]
pub const HEADER_LEN: usize = starlog_wire::BATCH_HEADER_LEN;

/// The idempotence fields of one batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    /// Producer id (>= 0 for idempotent batches, -1 otherwise).
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset delta of the last record (record count - 1 for produced batches).
    pub last_offset_delta: i32,
}

/// A batch header as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Base offset field.
    pub base_offset: i64,
    /// Whole batch length in bytes, header included.
    pub total_len: usize,
    /// Idempotence fields.
    pub identity: BatchIdentity,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
}

/// A framing fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a header or than the length field says.
    #[error("batch at byte {at} is truncated: needs {needed} bytes, {available} left")]
    Truncated {
        /// Position in the records field.
        at: usize,
        /// Bytes the batch claims.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A batch of another magic than 2.
    #[error("batch at byte {at} has magic {magic}; only record batch v2 is accepted")]
    Magic {
        /// Position in the records field.
        at: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// A length field below the header size.
    #[error("batch at byte {at} has invalid length {length}")]
    Length {
        /// Position in the records field.
        at: usize,
        /// The length field.
        length: i32,
    },
    /// An empty records field.
    #[error("no record batch in the request")]
    Empty,
}

impl From<WalkError> for FrameError {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::Truncated {
                at,
                needed,
                available,
            } => Self::Truncated {
                at,
                needed,
                available,
            },
            WalkError::Magic { at, magic, .. } => Self::Magic { at, magic },
            WalkError::Length { at, length, .. } => Self::Length { at, length },
        }
    }
}

/// Walks the batches in `bytes` (`starlog-wire`'s walk), returning each header.
pub fn headers(bytes: &[u8]) -> Result<Vec<Header>, FrameError> {
    if bytes.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut out = Vec::new();
    for step in batches(bytes) {
        let b = step?;
        let h = b.header;
        out.push(Header {
            base_offset: h.base_offset,
            total_len: b.bytes.len(),
            identity: BatchIdentity {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                first_seq: h.base_sequence,
                last_seq: h.base_sequence.wrapping_add(h.last_offset_delta.max(0)) & i32::MAX,
                last_offset_delta: h.last_offset_delta,
            },
            max_timestamp: h.max_timestamp,
        });
    }
    Ok(out)
}

/// The idempotence fields of every batch in a produce request's records.
pub fn identities(bytes: &[u8]) -> Result<Vec<BatchIdentity>, FrameError> {
    Ok(headers(bytes)?.into_iter().map(|h| h.identity).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len_field: i32, magic: i8) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[8..12].copy_from_slice(&len_field.to_be_bytes());
        b[16] = magic as u8;
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b
    }

    #[test]
    fn walks_back_to_back_batches() {
        let mut bytes = header(49, 2);
        bytes.extend(header(49, 2));
        let h = headers(&bytes).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].total_len, HEADER_LEN);
        assert_eq!(h[1].identity.producer_id, -1);
    }

    #[test]
    fn refuses_bad_framing() {
        assert_eq!(headers(&[]), Err(FrameError::Empty));
        assert!(matches!(
            headers(&[0u8; 10]),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            headers(&header(49, 1)),
            Err(FrameError::Magic { magic: 1, .. })
        ));
        assert!(matches!(
            headers(&header(3, 2)),
            Err(FrameError::Length { length: 3, .. })
        ));
        assert!(matches!(
            headers(&header(-5, 2)),
            Err(FrameError::Length { .. })
        ));
        assert!(matches!(
            headers(&header(500, 2)),
            Err(FrameError::Truncated { needed: 512, .. })
        ));
    }
}
