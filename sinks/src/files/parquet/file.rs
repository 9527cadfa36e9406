//! One Parquet file being written: `<name>.parquet.part` until it is
//! finished (footer written, file and folder fsynced), then renamed to
//! `<name>.parquet`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::columns::RowBuilders;
use super::schema::Plan;
use std::sync::Arc;

/// File metadata key naming the Avro schema the rows came from.
pub(crate) const AVRO_SCHEMA_KEY: &str = "starlog.avro.schema";

/// Suffix of a file being written.
pub(crate) const PART_SUFFIX: &str = ".part";

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("{path}: assembling the rows: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

impl FileError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
        move |source| FileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The underlying I/O error, when there is one.
    pub(crate) fn into_io(self) -> (PathBuf, std::io::Error) {
        match self {
            FileError::Io { path, source } => (path, source),
            FileError::Parquet { path, source } => {
                let io = match source {
                    ParquetError::External(e) => match e.downcast::<std::io::Error>() {
                        Ok(io) => *io,
                        Err(other) => std::io::Error::other(other),
                    },
                    other => std::io::Error::other(other),
                };
                (path, io)
            }
            FileError::Arrow { path, source } => (path, std::io::Error::other(source)),
        }
    }
}

/// Fsyncs a folder, so that a rename or a new entry in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::io(dir))
}

/// An output file of one schema in one folder: rows not yet encoded, and
/// the Parquet writer once the first row group is written.
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub plan: Arc<Plan>,
    final_path: PathBuf,
    part_path: PathBuf,
    props: WriterProperties,
    writer: Option<ArrowWriter<File>>,
    pending: RowBuilders,
    records: u64,
    opened: Instant,
}

impl OpenFile {
    /// A file to be created at `final_path` (nothing touches the disk yet).
    pub(crate) fn new(plan: Arc<Plan>, final_path: PathBuf, props: WriterProperties) -> Self {
        let mut part = final_path.clone().into_os_string();
        part.push(PART_SUFFIX);
        OpenFile {
            pending: RowBuilders::new(&plan),
            plan,
            final_path,
            part_path: PathBuf::from(part),
            props,
            writer: None,
            records: 0,
            opened: Instant::now(),
        }
    }

    /// Records appended.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// When the first record was appended.
    pub(crate) fn opened(&self) -> Instant {
        self.opened
    }

    /// Rows appended but not yet handed to the Parquet writer.
    pub(crate) fn pending_rows(&self) -> usize {
        self.pending.rows()
    }

    /// Appends a row that was checked against this file's plan.
    pub(crate) fn append(&mut self, root: &apache_avro::types::Value) {
        self.pending.append(root);
        self.records += 1;
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<File>, FileError> {
        if self.writer.is_none() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.part_path)
                .map_err(FileError::io(&self.part_path))?;
            let writer =
                ArrowWriter::try_new(file, Arc::clone(&self.plan.arrow), Some(self.props.clone()))
                    .map_err(|source| FileError::Parquet {
                        path: self.part_path.clone(),
                        source,
                    })?;
            let mut writer = writer;
            writer.append_key_value_metadata(KeyValue::new(
                AVRO_SCHEMA_KEY.to_owned(),
                self.plan.avro_name.clone(),
            ));
            self.writer = Some(writer);
        }
        self.writer.as_mut().ok_or_else(|| FileError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other("no writer"),
        })
    }

    /// Encodes the pending rows as one row group and writes it.
    pub(crate) fn write_row_group(&mut self) -> Result<(), FileError> {
        if self.pending.rows() == 0 {
            return Ok(());
        }
        let batch: RecordBatch =
            self.pending
                .finish(&self.plan)
                .map_err(|source| FileError::Arrow {
                    path: self.part_path.clone(),
                    source,
                })?;
        let path = self.part_path.clone();
        let parquet = |source| FileError::Parquet {
            path: path.clone(),
            source,
        };
        let writer = self.writer()?;
        writer.write(&batch).map_err(parquet)?;
        writer.flush().map_err(parquet)?;
        Ok(())
    }

    /// Writes what is pending and the footer, fsyncs the file, renames it
    /// to its final name and fsyncs the folder. Returns the final path. On
    /// failure the `.part` file is removed.
    pub(crate) fn finish(mut self) -> Result<PathBuf, FileError> {
        match self.finish_in_place() {
            Ok(()) => Ok(self.final_path.clone()),
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    fn finish_in_place(&mut self) -> Result<(), FileError> {
        self.write_row_group()?;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let part = self.part_path.clone();
        // Writes the footer and flushes the buffer.
        let file = writer.into_inner().map_err(|source| FileError::Parquet {
            path: part.clone(),
            source,
        })?;
        file.sync_all().map_err(FileError::io(&part))?;
        drop(file);
        if self.final_path.exists() {
            return Err(FileError::Io {
                path: self.final_path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "refusing to replace an existing file",
                ),
            });
        }
        std::fs::rename(&part, &self.final_path).map_err(FileError::io(&part))?;
        if let Some(dir) = self.final_path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Drops what was written: the rows and the `.part` file.
    pub(crate) fn discard(&mut self) {
        self.writer.take();
        match std::fs::remove_file(&self.part_path) {
            Ok(()) => {
                tracing::debug!(file = %self.part_path.display(), "unfinished Parquet file removed");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.part_path.display(), error = %e, "could not remove an unfinished Parquet file");
            }
        }
    }
}
