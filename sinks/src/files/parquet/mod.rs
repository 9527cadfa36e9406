//! `ParquetWriter`: writes the alerts that reach it as rows of Parquet
//! files (arrow-rs), and passes them on.
//!
//! One row per alert. The columns are derived from the alert's Avro writer
//! schema ([`schema`]): by default its scalar top-level fields (the ids),
//! every field of the detection record (ZTF `candidate`, Rubin
//! `diaSource`), and its top-level arrays of records (previous detections,
//! forced photometry) as lists of structs; or the `columns` the pipeline
//! chose. Alerts of different schemas (name or columns) go to different
//! files.
//!
//! A file is `<prefix>-<run>-<n>.parquet.part` while written and renamed to
//! `<prefix>-<run>-<n>.parquet` once finished: footer written, file and
//! folder fsynced. Files are finished when they reach `max_records`, when
//! they are older than `max_seconds` at the next append, and at every
//! `flush` — a Parquet file is readable only with its footer, so making the
//! accepted alerts durable means finishing their files. The runner commits
//! its input position only after `flush` returns.
//!
//! Failures: an I/O error (full disk, read-only folder, the output folder
//! gone) drops everything written since the last `flush` (the `.part`
//! files are removed) and answers `Fail`, so the runner replays from its
//! last commit and nothing is written twice or lost; the writer works
//! again once the cause is gone. An alert that can never be written (its
//! schema lacks a chosen column, a value of the wrong type, no observation
//! date to partition by) is answered `DeadLetter` with the reason: the
//! pipeline sends its record to the dead-letter topic and goes on.

mod columns;
mod file;
mod partition;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apache_avro::Schema;
use arrow_schema::SchemaRef;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_yaml::Value as Yaml;
use starlog_processors::config::params::expected;
use starlog_processors::config::{
    BuildContext, ConfigError, Params, ProcessorRegistry, ProcessorSpec,
};
use starlog_processors::{Candidate, CandidateProcessor, ProcessError, Response};

use self::columns::check_row;
use self::file::{sync_dir, FileError, OpenFile, PART_SUFFIX};
use self::schema::{ColumnChoice, ColumnSelection, Plan};

/// The class name pipelines use.
pub(crate) const CLASS: &str = "ParquetWriter";

/// Registers `ParquetWriter`.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    registry.register(CLASS, parse);
}

/// Codec of the data pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Zstd,
    Snappy,
    None,
}

/// How files are spread over folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionBy {
    None,
    ObservationDate,
}

/// Validated parameters.
#[derive(Debug, Clone)]
struct Config {
    directory: PathBuf,
    prefix: String,
    selection: ColumnSelection,
    max_records: u64,
    max_age: Duration,
    row_group_size: usize,
    codec: Codec,
    partition_by: PartitionBy,
}

/// This process's part of file names: its start time and id, so that two
/// runs (or two processes sharing a folder) never pick the same name, and
/// a run can tell its own `.part` files from a crashed run's.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{ms:013}-{}", std::process::id())
    })
}

/// File numbers, unique in the process.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// Schemas seen, by address (the entry holds the schema so the address
/// stays unique), with their plan or why they cannot be written.
type PlanEntry = (Arc<Schema>, Result<(Arc<Plan>, usize), String>);

/// The writer.
pub(crate) struct ParquetWriter {
    config: Arc<Config>,
    props: WriterProperties,
    plans: HashMap<usize, PlanEntry>,
    /// Distinct (Avro schema name, Arrow schema): a file holds one.
    arrow_schemas: Vec<(String, SchemaRef)>,
    /// Open files by (folder under `directory`, Arrow schema number).
    open: HashMap<(PathBuf, usize), OpenFile>,
    finished: u64,
}

impl std::fmt::Debug for ParquetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetWriter")
            .field("directory", &self.config.directory)
            .field("open_files", &self.open.len())
            .field("finished_files", &self.finished)
            .finish_non_exhaustive()
    }
}

fn process_io(e: FileError) -> ProcessError {
    let (path, source) = e.into_io();
    ProcessError::Io { path, source }
}

/// Removes `.part` files of this prefix left by an earlier run (a crash):
/// their alerts were never committed, so the runner replays them.
fn remove_stale_parts(dir: &Path, prefix: &str, depth: usize) -> std::io::Result<()> {
    let own = format!("{prefix}-{}-", run_id());
    let others = format!("{prefix}-");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() && depth < 3 && name.contains('=') {
            remove_stale_parts(&entry.path(), prefix, depth + 1)?;
        } else if kind.is_file()
            && name.starts_with(&others)
            && !name.starts_with(&own)
            && name.ends_with(&format!(".parquet{PART_SUFFIX}"))
        {
            std::fs::remove_file(entry.path())?;
            tracing::warn!(file = %entry.path().display(), "removed an unfinished Parquet file left by an earlier run");
        }
    }
    Ok(())
}

impl ParquetWriter {
    fn open(config: Arc<Config>) -> Result<Self, FileError> {
        let dir = &config.directory;
        std::fs::create_dir_all(dir).map_err(FileError::io(dir))?;
        remove_stale_parts(dir, &config.prefix, 0).map_err(FileError::io(dir))?;
        let compression = match config.codec {
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(config.row_group_size))
            .set_created_by(format!("starlog {CLASS}"))
            // Min/max per column chunk (row-group pruning); page-level
            // statistics and their index cost more than they save on
            // files of a few thousand alerts.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        Ok(ParquetWriter {
            config,
            props,
            plans: HashMap::new(),
            arrow_schemas: Vec::new(),
            open: HashMap::new(),
            finished: 0,
        })
    }

    /// The plan for `schema` and the number of its Arrow schema.
    fn plan_for(&mut self, schema: &Arc<Schema>) -> Result<(Arc<Plan>, usize), String> {
        let key = Arc::as_ptr(schema) as usize;
        if let Some((_, p)) = self.plans.get(&key) {
            return p.clone();
        }
        let result = match schema::plan(schema, &self.config.selection) {
            Ok(plan) => {
                let id = match self
                    .arrow_schemas
                    .iter()
                    .position(|(n, s)| *n == plan.avro_name && **s == *plan.arrow)
                {
                    Some(i) => i,
                    None => {
                        self.arrow_schemas
                            .push((plan.avro_name.clone(), Arc::clone(&plan.arrow)));
                        self.arrow_schemas.len() - 1
                    }
                };
                Ok((Arc::new(plan), id))
            }
            Err(e) => Err(e.to_string()),
        };
        if self.plans.len() >= 256 {
            self.plans.clear();
        }
        self.plans.insert(key, (Arc::clone(schema), result.clone()));
        result
    }

    /// The folder (under `directory`) of `c`'s file.
    fn folder_of(&self, c: &Candidate) -> Result<PathBuf, String> {
        match self.config.partition_by {
            PartitionBy::None => Ok(PathBuf::new()),
            PartitionBy::ObservationDate => match c.mjd() {
                Some(mjd) => partition::date_folder(mjd),
                None => Err("partition_by observation_date: the alert has no observation time (ZTF candidate.jd, Rubin diaSource.midpointMjdTai)".to_owned()),
            },
        }
    }

    /// Creates `rel` under the output folder, fsyncing each parent that
    /// gains an entry. The output folder itself must exist: if it is gone
    /// (unmounted, deleted) nothing is created in its place.
    fn make_folder(&self, rel: &Path) -> Result<PathBuf, FileError> {
        let root = &self.config.directory;
        if !root.is_dir() {
            return Err(FileError::Io {
                path: root.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the output folder is gone",
                ),
            });
        }
        let mut dir = root.clone();
        for part in rel.components() {
            let parent = dir.clone();
            dir.push(part);
            match std::fs::create_dir(&dir) {
                Ok(()) => sync_dir(&parent)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FileError::io(&dir)(e)),
            }
        }
        Ok(dir)
    }

    fn next_path(&self, dir: &Path) -> PathBuf {
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(
            "{}-{}-{n:06}.parquet",
            self.config.prefix,
            run_id()
        ))
    }

    fn finish_file(&mut self, file: OpenFile) -> Result<(), FileError> {
        let records = file.records();
        let path = file.finish()?;
        self.finished += 1;
        tracing::debug!(file = %path.display(), records, "Parquet file finished");
        Ok(())
    }

    /// Drops everything since the last flush and answers `Fail`.
    fn fail(&mut self, e: FileError) -> Response {
        self.discard_all();
        tracing::warn!(error = %e, "Parquet write failed; alerts since the last commit will be written again");
        Response::Fail(process_io(e))
    }

    fn discard_all(&mut self) {
        for (_, mut f) in self.open.drain() {
            f.discard();
        }
    }

    /// `c` can never be written: the pipeline sends its record to the
    /// dead-letter topic with `reason`.
    fn dead_letter(c: &Candidate, reason: &str) -> Response {
        tracing::debug!(alert_id = c.alert_id(), %reason, "alert cannot be written to Parquet");
        Response::DeadLetter(format!("{CLASS}: {reason}"))
    }

    fn append(&mut self, c: &Candidate) -> Response {
        let (plan, schema_no) = match self.plan_for(c.schema()) {
            Ok(p) => p,
            Err(reason) => return Self::dead_letter(c, &reason),
        };
        if let Err(reason) = check_row(&plan, c.value()) {
            let reason = format!("schema {}: {reason}", plan.avro_name);
            return Self::dead_letter(c, &reason);
        }
        let folder = match self.folder_of(c) {
            Ok(f) => f,
            Err(reason) => return Self::dead_letter(c, &reason),
        };
        let key = (folder, schema_no);
        let roll = self.open.get(&key).is_some_and(|f| {
            f.records() >= self.config.max_records || f.opened().elapsed() >= self.config.max_age
        });
        if roll {
            if let Some(f) = self.open.remove(&key) {
                if let Err(e) = self.finish_file(f) {
                    return self.fail(e);
                }
            }
        }
        if !self.open.contains_key(&key) {
            let dir = match self.make_folder(&key.0) {
                Ok(d) => d,
                Err(e) => return self.fail(e),
            };
            let path = self.next_path(&dir);
            self.open.insert(
                key.clone(),
                OpenFile::new(Arc::clone(&plan), path, self.props.clone()),
            );
        }
        let row_group = self.config.row_group_size;
        let result = match self.open.get_mut(&key) {
            Some(f) => {
                f.append(c.value());
                if f.pending_rows() >= row_group {
                    f.write_row_group()
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        };
        match result {
            Ok(()) => Response::Pass,
            Err(e) => self.fail(e),
        }
    }

    fn finish_all(&mut self) -> Result<(), ProcessError> {
        let files: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        let mut files = files.into_iter();
        while let Some(f) = files.next() {
            if let Err(e) = self.finish_file(f) {
                for mut rest in files {
                    rest.discard();
                }
                tracing::warn!(error = %e, "finishing a Parquet file failed; alerts since the last commit will be written again");
                return Err(process_io(e));
            }
        }
        Ok(())
    }
}

impl CandidateProcessor for ParquetWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        self.append(candidate)
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.finish_all()
    }

    fn close(&mut self) -> Result<(), ProcessError> {
        self.finish_all()
    }
}

impl Drop for ParquetWriter {
    fn drop(&mut self) {
        if let Err(e) = self.finish_all() {
            tracing::error!(error = %e, "could not finish the Parquet files on drop");
        }
    }
}

#[derive(Debug)]
struct ParquetWriterSpec {
    config: Arc<Config>,
}

impl ProcessorSpec for ParquetWriterSpec {
    fn build(
        &self,
        _ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        ParquetWriter::open(Arc::clone(&self.config))
            .map(|w| Box::new(w) as Box<dyn CandidateProcessor>)
            .map_err(|e| ConfigError::Invalid {
                path: format!("{path}.params.directory"),
                message: e.to_string(),
            })
    }
}

/// A dotted field path, checked.
fn field_path(text: &str, at: &str) -> Result<Vec<String>, ConfigError> {
    let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::Invalid {
            path: at.to_owned(),
            message: format!(
                "expected a dotted field path such as candidate.magpsf, found {text:?}"
            ),
        });
    }
    Ok(segments)
}

fn parse_columns(p: &mut Params<'_>) -> Result<ColumnSelection, ConfigError> {
    let at = p.path_of("columns");
    let base = p.base_dir();
    let Some(node) = p.get("columns") else {
        return Ok(ColumnSelection::Default);
    };
    let Yaml::Sequence(items) = node else {
        return Err(expected(
            &at,
            "a list of field paths or { name, path } mappings",
            node,
        ));
    };
    if items.is_empty() {
        return Err(ConfigError::Invalid {
            path: at,
            message: "expected at least one column".to_owned(),
        });
    }
    let mut out: Vec<ColumnChoice> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_at = format!("{at}[{i}]");
        let choice = match item {
            Yaml::String(s) => {
                let path = field_path(s, &item_at)?;
                let name = path.last().cloned().unwrap_or_default();
                ColumnChoice { name, path }
            }
            Yaml::Mapping(_) => {
                let mut m = Params::new(item_at.clone(), Some(item), base)?;
                let name = m.required_str("name", "a column name")?;
                let path_text = m.required_str("path", "a dotted field path")?;
                let path = field_path(&path_text, &m.path_of("path"))?;
                m.finish()?;
                ColumnChoice { name, path }
            }
            other => {
                return Err(expected(
                    &item_at,
                    "a field path or a { name, path } mapping",
                    other,
                ))
            }
        };
        if out.iter().any(|c| c.name == choice.name) {
            return Err(ConfigError::Invalid {
                path: item_at,
                message: format!(
                    "column name {:?} is used twice (give one a `name`)",
                    choice.name
                ),
            });
        }
        out.push(choice);
    }
    Ok(ColumnSelection::Chosen(out))
}

/// Parameters: `directory` (required), `prefix` (default `alerts`),
/// `columns` (default: ids, detection fields, lists of previous
/// detections), `max_records` (default 100000), `max_seconds` (default
/// 600), `row_group_size` (default 8192), `compression` (`zstd` |
/// `snappy` | `none`, default `zstd`), `partition_by` (`none` |
/// `observation_date`, default `none`).
fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let directory = p.required_path("directory", "an output directory")?;
    let prefix = p
        .optional_str("prefix", "a file name prefix")?
        .unwrap_or_else(|| "alerts".to_owned());
    if prefix.contains(['/', '\\']) {
        return Err(p.error(
            "prefix",
            "expected a file name prefix without path separators",
        ));
    }
    let selection = parse_columns(p)?;
    let max_records = p.optional_u64("max_records", "a positive number of records", 100_000)?;
    if max_records == 0 {
        return Err(p.error(
            "max_records",
            "expected a positive number of records, found 0",
        ));
    }
    let max_seconds = p.optional_u64("max_seconds", "a positive number of seconds", 600)?;
    if max_seconds == 0 {
        return Err(p.error(
            "max_seconds",
            "expected a positive number of seconds, found 0",
        ));
    }
    let row_group_size = p.optional_u64("row_group_size", "a positive number of rows", 8192)?;
    let row_group_size = usize::try_from(row_group_size)
        .ok()
        .filter(|n| (1..=1 << 24).contains(n))
        .ok_or_else(|| {
            p.error(
                "row_group_size",
                format!("expected 1 to {} rows, found {row_group_size}", 1 << 24),
            )
        })?;
    let codec = match p
        .choice("compression", &["zstd", "snappy", "none"], Some("zstd"))?
        .as_str()
    {
        "snappy" => Codec::Snappy,
        "none" => Codec::None,
        _ => Codec::Zstd,
    };
    let partition_by = match p
        .choice("partition_by", &["none", "observation_date"], Some("none"))?
        .as_str()
    {
        "observation_date" => PartitionBy::ObservationDate,
        _ => PartitionBy::None,
    };
    Ok(Box::new(ParquetWriterSpec {
        config: Arc::new(Config {
            directory,
            prefix,
            selection,
            max_records,
            max_age: Duration::from_secs(max_seconds),
            row_group_size,
            codec,
            partition_by,
        }),
    }))
}
