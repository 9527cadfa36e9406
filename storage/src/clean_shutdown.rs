//! The clean-shutdown marker: lets a cleanly closed log reopen without scanning its active
//! segment.
//!
//! After a crash the active segment may end in a torn batch, so open scans all of it (CRC
//! included) — for a 1 GiB segment that means reading 1 GiB. A clean close instead syncs
//! everything, writes the active segment's index files, and then this marker naming the active
//! segment and its exact length. Open consumes the marker (removes it durably before any new
//! append can happen), and trusts the active segment like a sealed one only if the marker
//! matches the file on disk; any mismatch falls back to the full scan. A crash can therefore
//! never leave a stale marker that matches: the marker is gone from the first append on.

use std::path::Path;

use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, sync_dir, write_atomic};
use crate::segment::file_name;

/// File name inside the partition directory.
pub(crate) const FILE_NAME: &str = "clean-shutdown";

/// What a clean close recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    base_offset: i64,
    len: u64,
}

impl CleanShutdown {
    /// True if the segment `base_offset` in `dir` is the one recorded, with the same length.
    pub(crate) fn matches(&self, dir: &Path, base_offset: i64) -> bool {
        base_offset == self.base_offset
            && std::fs::metadata(dir.join(file_name(base_offset, "log")))
                .is_ok_and(|m| m.len() == self.len)
    }
}

/// Reads and durably removes the marker. A missing or unreadable marker means "not clean".
pub(crate) fn take(dir: &Path) -> Result<Option<CleanShutdown>, StorageError> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    remove_if_exists(&path)?;
    sync_dir(dir)?;
    let mut parts = text.split_whitespace();
    let parsed = match (parts.next(), parts.next(), parts.next()) {
        (Some(b), Some(l), None) => b.parse().ok().zip(l.parse().ok()),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(marker = %path.display(), "unreadable clean-shutdown marker ignored; scanning the active segment");
    }
    Ok(parsed.map(|(base_offset, len)| CleanShutdown { base_offset, len }))
}

/// Durably records a clean close of the active segment `base_offset` of `len` bytes.
pub(crate) fn write(dir: &Path, base_offset: i64, len: u64) -> Result<(), StorageError> {
    write_atomic(
        &dir.join(FILE_NAME),
        format!("{base_offset} {len}\n").as_bytes(),
    )
}
