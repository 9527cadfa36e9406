//! Files written whole as `<name>.part`, made durable and renamed to their
//! final names together at a flush, so that a reader of the directory never
//! sees half a file and nothing is announced before it is on disk.
//!
//! `stage` writes the bytes (no fsync: a flush covers many files);
//! `commit` fsyncs every staged file, renames it, then fsyncs the
//! directory. A `.part` file left by a crash belongs to input the runner
//! had not committed, which it re-delivers: [`remove_stale_parts`] deletes
//! them when a writer starts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use starlog_processors::ProcessError;

/// The suffix of files not yet committed.
pub(crate) const PART_SUFFIX: &str = ".part";

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProcessError + '_ {
    move |source| ProcessError::Io {
        path: path.to_owned(),
        source,
    }
}

fn part_of(final_path: &Path) -> PathBuf {
    let mut p = final_path.as_os_str().to_owned();
    p.push(PART_SUFFIX);
    PathBuf::from(p)
}

/// Files written but not yet committed, in one directory.
#[derive(Debug)]
pub(crate) struct StagedFiles {
    directory: PathBuf,
    /// Final paths whose `.part` holds their next content.
    pending: Vec<PathBuf>,
}

impl StagedFiles {
    /// Stages into `directory`.
    pub(crate) fn new(directory: PathBuf) -> Self {
        StagedFiles {
            directory,
            pending: Vec::new(),
        }
    }

    /// Writes `bytes` as the next content of `name` (in `<name>.part`).
    /// A failed write removes its partial `.part`.
    pub(crate) fn stage(&mut self, name: &str, bytes: &[u8]) -> Result<(), ProcessError> {
        let final_path = self.directory.join(name);
        let part = part_of(&final_path);
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&part)
            .and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            // Best effort: the error that matters is the write's.
            let _ = std::fs::remove_file(&part);
            return Err(ProcessError::Io {
                path: part,
                source: e,
            });
        }
        if !self.pending.contains(&final_path) {
            self.pending.push(final_path);
        }
        Ok(())
    }

    /// Makes every staged file durable under its final name. On error the
    /// files not yet renamed stay staged (a later commit retries them).
    pub(crate) fn commit(&mut self) -> Result<(), ProcessError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        sync_all(&self.pending)?;
        while let Some(path) = self.pending.last() {
            let part = part_of(path);
            std::fs::rename(&part, path).map_err(io_err(&part))?;
            self.pending.pop();
        }
        File::open(&self.directory)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.directory))
    }
}

/// Threads that fsync a flush's files together: an fsync mostly waits for
/// the disk, and concurrent ones share the file system's journal commits,
/// so a flush of many small files costs a few commits instead of one each.
const SYNC_THREADS: usize = 16;

fn sync_part(path: &Path) -> Result<(), ProcessError> {
    let part = part_of(path);
    File::options()
        .write(true)
        .open(&part)
        .and_then(|f| f.sync_data())
        .map_err(io_err(&part))
}

/// Fsyncs the `.part` of every path, on up to [`SYNC_THREADS`] threads.
fn sync_all(paths: &[PathBuf]) -> Result<(), ProcessError> {
    if paths.len() < 2 {
        return paths.iter().try_for_each(|p| sync_part(p));
    }
    let per_thread = paths.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|p| sync_part(p))))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(ProcessError::Other {
                    processor: "files".to_owned(),
                    reason: "an fsync thread panicked".to_owned(),
                })
            })
        })
    })
}

/// Deletes the `.part` files in `directory` whose final name ends with one of `extensions`.
pub(crate) fn remove_stale_parts(
    directory: &Path,
    extensions: &[&str],
) -> Result<(), ProcessError> {
    for entry in std::fs::read_dir(directory).map_err(io_err(directory))? {
        let entry = entry.map_err(io_err(directory))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(PART_SUFFIX) else {
            continue;
        };
        if extensions.iter().any(|ext| stem.ends_with(ext)) {
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
            tracing::warn!(file = %entry.path().display(), "removed a file left unfinished by a crash (its input is processed again)");
        }
    }
    Ok(())
}
