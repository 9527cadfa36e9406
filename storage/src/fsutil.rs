//! Small crash-safety helpers: durable directory entries and atomic file replacement.
//!
//! A rename is atomic, but it is durable only once the directory is fsynced; a file's content is
//! durable only once the file is fsynced before the rename. Everything that must survive
//! `kill -9` or power loss at any point goes through [`write_atomic`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::StorageError;

/// Fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = File::open(dir).map_err(|e| StorageError::io("open dir", dir, e))?;
    d.sync_all()
        .map_err(|e| StorageError::io("fsync dir", dir, e))
}

/// Replaces `path` with `bytes` atomically and durably: write `<path>.tmp`, fsync it, rename it
/// over `path`, fsync the directory. A crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StorageError::io("write", &tmp, e))?;
        f.sync_all()
            .map_err(|e| StorageError::io("fsync", &tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", &tmp, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `<path>.tmp` and renames it over `path` without fsync: for files that are
/// rebuildable (indexes), where only "never half-replaced under a reader" matters.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    fs::write(&tmp, bytes).map_err(|e| StorageError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("rename", &tmp, e))
}

/// `<path>.tmp`.
pub(crate) fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    s.into()
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", path, e)),
    }
}
