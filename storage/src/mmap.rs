//! The one place that creates memory maps.
//!
//! A mapping turns into SIGBUS if the file shrinks underneath it, so the rest of the crate maps
//! only files that never shrink or change while mapped: sealed segments and their index files.
//! Sealed files are replaced by write-new + rename (the old mapping keeps the old inode alive)
//! or unlinked (same), never truncated in place while a mapping exists.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::StorageError;

/// Maps `file` read-only. Returns `None` for an empty file (a zero-length map is not portable).
#[allow(unsafe_code)]
pub(crate) fn map_readonly(file: &File, path: &Path) -> Result<Option<Mmap>, StorageError> {
    let len = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: `memmap2::Mmap::map` is unsafe because another writer could modify or truncate
    // the file while it is mapped. Starlog maps only sealed segment files and sealed index files,
    // which it never writes or truncates in place again (truncation of a sealed segment copies
    // the kept prefix to a new file and renames it over; deletion unlinks). Modification by
    // another process is outside the storage contract (the data directory is owned by one broker).
    let map = unsafe { Mmap::map(file) }.map_err(|e| StorageError::io("mmap", path, e))?;
    Ok(Some(map))
}
