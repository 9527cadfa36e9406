//! Splitting a byte run (a produce request's records, a fetch response's records, a log
//! read) into whole batches, without decoding records.
//!
//! Each step checks the length field against the bytes that are left before it slices, so
//! hostile input yields a [`WalkError`] naming the byte position, never a panic. A fetch
//! response may end in a partial batch (the broker cuts at the byte limit): that is the
//! [`WalkError::Truncated`] case, which a consumer treats as the end and a broker as a fault.

use crate::header::{parse_batch_header, BatchError, BatchHeader, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// Why a byte run does not split into batches. `at` is the batch's byte position in the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// Fewer bytes left than the header or than the length field says.
    #[error("batch at byte {at} is truncated: needs {needed} bytes, {available} left")]
    Truncated {
        /// Position in the run.
        at: usize,
        /// Bytes the batch needs (the header, or what its length field claims).
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A length field below the header size.
    #[error("batch at byte {at} (base offset {base_offset}) has invalid length {length}")]
    Length {
        /// Position in the run.
        at: usize,
        /// The batch's base offset field.
        base_offset: i64,
        /// The length field.
        length: i32,
    },
    /// A batch of another magic than 2.
    #[error("batch at byte {at} (base offset {base_offset}) has magic {magic}; only record batch v2 is accepted")]
    Magic {
        /// Position in the run.
        at: usize,
        /// The batch's base offset field.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },
}

/// One whole batch found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Byte position of the batch in the run.
    pub at: usize,
    /// Its header (magic 2, length at least the header).
    pub header: BatchHeader,
    /// The whole batch, base offset field first.
    pub bytes: &'a [u8],
}

/// The walk over a byte run: yields each whole batch, then ends; after an error it yields
/// nothing more.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    run: &'a [u8],
    at: usize,
    failed: bool,
}

/// Walks the back-to-back batches of `run`.
pub fn batches(run: &[u8]) -> Batches<'_> {
    Batches {
        run,
        at: 0,
        failed: false,
    }
}

impl<'a> Batches<'a> {
    fn step(&self) -> Result<Batch<'a>, WalkError> {
        let at = self.at;
        let rest = self.run.get(at..).unwrap_or_default();
        let truncated = |needed: usize| WalkError::Truncated {
            at,
            needed,
            available: rest.len(),
        };
        let Some(prefix) = rest.first_chunk::<LOG_OVERHEAD>() else {
            return Err(truncated(BATCH_HEADER_LEN));
        };
        let (offset_bytes, length_bytes) = prefix.split_at(8);
        let mut o = [0u8; 8];
        o.copy_from_slice(offset_bytes);
        let base_offset = i64::from_be_bytes(o);
        let mut l = [0u8; 4];
        l.copy_from_slice(length_bytes);
        let length = i32::from_be_bytes(l);
        let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if length < min {
            return Err(WalkError::Length {
                at,
                base_offset,
                length,
            });
        }
        // Non-negative and at least 49, checked above.
        let total = LOG_OVERHEAD + length.unsigned_abs() as usize;
        let Some(bytes) = rest.get(..total) else {
            return Err(truncated(total));
        };
        let header = parse_batch_header(bytes).map_err(|e| match e {
            BatchError::BadMagic { magic } => WalkError::Magic {
                at,
                base_offset,
                magic,
            },
            // The length was checked above and `bytes` holds at least 61 bytes.
            _ => truncated(total),
        })?;
        Ok(Batch { at, header, bytes })
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<Batch<'a>, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.run.len() {
            return None;
        }
        let step = self.step();
        match &step {
            Ok(b) => self.at += b.bytes.len(),
            Err(_) => self.failed = true,
        }
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(len_field: i32, magic: i8) -> Vec<u8> {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[8..12].copy_from_slice(&len_field.to_be_bytes());
        b[16] = magic as u8;
        b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
        b
    }

    #[test]
    fn walks_back_to_back_batches() {
        let mut bytes = header(49, 2);
        bytes.extend(header(52, 2));
        bytes.extend([0; 3]);
        let found: Vec<Batch<'_>> = batches(&bytes).map(Result::unwrap).collect();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].at, found[0].bytes.len()), (0, 61));
        assert_eq!((found[1].at, found[1].bytes.len()), (61, 64));
        assert_eq!(found[1].header.producer_id, -1);
        assert_eq!(batches(&[]).count(), 0);
    }

    #[test]
    fn refuses_bad_framing() {
        fn first(b: &[u8]) -> Result<Batch<'_>, WalkError> {
            batches(b).next().unwrap()
        }
        assert_eq!(
            first(&[0u8; 10]),
            Err(WalkError::Truncated {
                at: 0,
                needed: 61,
                available: 10
            })
        );
        assert!(matches!(
            first(&header(49, 1)),
            Err(WalkError::Magic { magic: 1, .. })
        ));
        assert!(matches!(
            first(&header(3, 2)),
            Err(WalkError::Length { length: 3, .. })
        ));
        assert!(matches!(
            first(&header(-5, 2)),
            Err(WalkError::Length { .. })
        ));
        assert!(matches!(
            first(&header(500, 2)),
            Err(WalkError::Truncated { needed: 512, .. })
        ));
        let mut two = header(49, 2);
        two.extend(header(49, 0));
        two.extend(header(49, 2));
        let steps: Vec<_> = batches(&two).collect();
        assert_eq!(steps.len(), 2, "the walk stops at the first fault");
        assert!(matches!(steps[1], Err(WalkError::Magic { at: 61, .. })));
    }
}
