//! The partition's persisted log start offset.
//!
//! Deleting whole segments moves the log start by itself (it is at least the first segment's
//! base offset), but `advance_start` (DeleteRecords) may move it into the middle of a segment,
//! and `truncate_to` below the start may move it back. Both write this small file atomically
//! *before* touching segments, so after a crash at any point the start offset is the one the
//! last completed call asked for (or the newer one, if the crash hit after the write). On open
//! the start is `max(checkpoint, first segment base)`, clamped to the log end.

use std::path::Path;

use crate::error::StorageError;
use crate::fsutil::write_atomic;

/// File name inside the partition directory.
pub(crate) const FILE_NAME: &str = "log-start-offset";

/// Reads the checkpoint; `None` if it was never written.
pub(crate) fn read(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path, e)),
    };
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| StorageError::Corrupt {
            path,
            position: 0,
            reason: format!(
                "log start offset checkpoint {:?} is not a non-negative integer",
                text.trim()
            ),
        })
}

/// Durably replaces the checkpoint.
pub(crate) fn write(dir: &Path, offset: i64) -> Result<(), StorageError> {
    write_atomic(&dir.join(FILE_NAME), format!("{offset}\n").as_bytes())
}
