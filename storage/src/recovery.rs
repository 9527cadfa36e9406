//! Scanning segment bytes: validating batches, rebuilding indexes, finding a torn tail.
//!
//! Used on open for the active segment (always), for sealed segments whose indexes are
//! missing or inconsistent, and for the few batches after a sealed segment's last index entry.
//! The scan stops at the first byte that is not a valid batch continuing the offset sequence:
//! everything before it is kept, everything from it on is the "tail" the caller truncates.

use crate::index::SegmentIndex;
use starlog_wire::{parse_batch_header, validate_batch, BatchError};

/// No timestamp seen yet.
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

/// Running state of a segment scan, which is also the state the segment keeps while appending.
#[derive(Debug)]
pub(crate) struct ScanState {
    /// Bytes of valid batches from the start of the segment.
    pub valid_len: u64,
    /// Offset the next batch must start at.
    pub next_offset: i64,
    /// Largest batch max timestamp so far, or [`NO_TIMESTAMP`].
    pub max_timestamp: i64,
    /// Max timestamp of the segment's first batch, or [`NO_TIMESTAMP`].
    pub first_timestamp: i64,
    /// Bytes appended since the last index entry.
    pub bytes_since_entry: u64,
    /// Batches scanned by this scan.
    pub batches: u64,
}

/// Why a scan stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TailFault {
    /// Byte position in the segment of the first invalid byte.
    pub position: u64,
    /// What is wrong there.
    pub reason: String,
}

/// Scans segment bytes from `state.valid_len`. `bytes` holds the segment from byte
/// `bytes_start` on (0 for the whole file) up to the end of what is to be scanned; validating each batch (CRC
/// included when `check_crc`), checking that offsets continue densely, and appending index
/// entries every `index_interval` bytes when `index` is given. Returns the fault that stopped
/// the scan, if the scan did not reach the end of `bytes` cleanly.
pub(crate) fn scan(
    bytes: &[u8],
    bytes_start: u64,
    base_offset: i64,
    state: &mut ScanState,
    mut index: Option<&mut SegmentIndex>,
    index_interval: u64,
    check_crc: bool,
) -> Option<TailFault> {
    loop {
        // The caller starts at or after bytes_start and valid_len only grows within bytes, so
        // the difference is a position inside `bytes`.
        let pos =
            usize::try_from(state.valid_len.saturating_sub(bytes_start)).unwrap_or(usize::MAX);
        if pos >= bytes.len() {
            return None;
        }
        let rest = &bytes[pos..];
        let fault = |reason: String| {
            Some(TailFault {
                position: state.valid_len,
                reason,
            })
        };
        let header = if check_crc {
            validate_batch(rest)
        } else {
            parse_batch_header(rest).and_then(|h| {
                if h.total_len() > rest.len() {
                    Err(BatchError::TruncatedBatch {
                        batch_length: h.batch_length,
                        declared: h.total_len(),
                        available: rest.len(),
                    })
                } else {
                    Ok(h)
                }
            })
        };
        let header = match header {
            Ok(h) => h,
            Err(e) => return fault(e.to_string()),
        };
        if header.base_offset != state.next_offset {
            return fault(format!(
                "batch base offset {} does not continue the log at offset {}",
                header.base_offset, state.next_offset
            ));
        }
        let relative = header.last_offset() - base_offset;
        if relative < 0 || relative > i64::from(u32::MAX) {
            return fault(format!(
                "batch offsets {}..={} do not fit segment base {}",
                header.base_offset,
                header.last_offset(),
                base_offset
            ));
        }
        if state.valid_len + (header.total_len() as u64) > u64::from(u32::MAX) {
            return fault("batch ends beyond the 4 GiB a segment can address".to_owned());
        }
        state.max_timestamp = state.max_timestamp.max(header.max_timestamp);
        if state.first_timestamp == NO_TIMESTAMP {
            state.first_timestamp = header.max_timestamp;
        }
        if let Some(ix) = index.as_deref_mut() {
            if ix.len() == 0 || state.bytes_since_entry >= index_interval {
                // Both conversions were range-checked above.
                let rel = u32::try_from(header.base_offset - base_offset).unwrap_or(u32::MAX);
                let p = u32::try_from(state.valid_len).unwrap_or(u32::MAX);
                // Cannot fail: the batch continues the log (checked above) at a later
                // position; if it did, the scan stops here as for any other fault.
                if let Err(e) = ix.push(rel, p, state.max_timestamp) {
                    return fault(e.to_string());
                }
                state.bytes_since_entry = 0;
            }
        }
        state.bytes_since_entry += header.total_len() as u64;
        state.valid_len += header.total_len() as u64;
        state.next_offset = header.last_offset() + 1;
        state.batches += 1;
    }
}
