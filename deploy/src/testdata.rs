//! The test-data producer behind `starlog testdata`: fills a topic from
//! alert files (Avro object container files, one alert each, like the
//! shipped `testdata/` samples), once or for a count, at a fixed rate or
//! flat out, in one of the framings real streams use ([`Framing`]):
//!
//! - `ocf`: the file's bytes, one container file per message (ZTF);
//! - `confluent`: magic byte 0, the id of the file's writer schema
//!   registered in the buffer's registry (subject `<topic>-value` by
//!   default), the Avro body (Rubin);
//! - `schemaless`: the bare Avro body of a static schema named in the
//!   configuration (each record resolved to that schema);
//! - `schema-key`: the bare Avro body, the writer schema's JSON in the
//!   message key (Fink's streams).
//!
//! Every message is sent with `acks=all` and idempotence; the run ends when
//! every send is acknowledged, with a [`Summary`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::Schema;
use bytes::Bytes;
use starlog_clients::registry::client::RegistryClient;
use starlog_clients::{Producer, ProducerConfig, ProducerRecord};

pub use crate::site::Framing;
use crate::site::NamedSchema;

/// What went wrong filling a topic.
#[derive(Debug, thiserror::Error)]
pub enum TestDataError {
    /// No alert files, or one could not be read or decoded.
    #[error("{file}: {reason}")]
    File {
        /// The file or folder.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The static schema could not be loaded, or a record does not fit it.
    #[error("schema: {0}")]
    Schema(String),
    /// The schema registry refused or could not be reached.
    #[error("registry: {0}")]
    Registry(String),
    /// The producer failed.
    #[error("producing to {topic}: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// The client error.
        #[source]
        source: starlog_clients::ClientError,
    },
    /// A configuration fault (a framing without what it needs).
    #[error("{0}")]
    Config(String),
}

/// One run of the producer.
#[derive(Debug, Clone)]
pub struct Job {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The topic to fill.
    pub topic: String,
    /// Alert files and folders of them (searched recursively for `*.avro`).
    pub files: Vec<PathBuf>,
    /// The framing.
    pub framing: Framing,
    /// Messages per second; `None`: flat out.
    pub rate: Option<f64>,
    /// Messages to send, cycling over the files; `None`: each file once.
    pub count: Option<u64>,
    /// The schema registry's URL (confluent framing).
    pub registry: Option<String>,
    /// The registry subject; default `<topic>-value`.
    pub subject: Option<String>,
    /// The static schema (schemaless framing).
    pub schema: Option<NamedSchema>,
    /// Print a progress line every second (on stderr).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The topic.
    pub topic: String,
    /// The framing.
    pub framing: Framing,
    /// Alert files read.
    pub files: usize,
    /// Messages acknowledged.
    pub messages: u64,
    /// Bytes of keys and values acknowledged.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the run was stopped before the end.
    pub interrupted: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        #[allow(clippy::cast_precision_loss)]
        let rate = self.messages as f64 / secs;
        write!(
            f,
            "{}sent {} messages ({} bytes) from {} files to {} ({} framing) in {:.1} s: {:.1} messages/s",
            if self.interrupted { "interrupted: " } else { "" },
            self.messages,
            self.bytes,
            self.files,
            self.topic,
            self.framing.name(),
            secs,
            rate
        )
    }
}

/// One alert file, decoded once.
#[derive(Debug)]
struct Alert {
    file: PathBuf,
    raw: Bytes,
    schema: Arc<Schema>,
    value: Value,
}

/// The `*.avro` files under `paths` (folders searched recursively), sorted.
///
/// # Errors
/// A path cannot be read, or no file was found.
pub fn alert_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, TestDataError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TestDataError> {
        let entries = std::fs::read_dir(dir).map_err(|e| TestDataError::File {
            file: dir.to_owned(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| TestDataError::File {
                file: dir.to_owned(),
                reason: e.to_string(),
            })?;
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "avro") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(TestDataError::File {
                file: p.clone(),
                reason: "no such file or folder".into(),
            });
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(TestDataError::File {
            file: paths.first().cloned().unwrap_or_default(),
            reason: "no .avro files found".into(),
        });
    }
    Ok(out)
}

/// The repository's `testdata/` folder (the one holding `manifest.csv`):
/// `STARLOG_TESTDATA` when set, else the first found walking up from `from`.
#[must_use]
pub fn find_testdata_dir(from: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STARLOG_TESTDATA") {
        return Some(PathBuf::from(dir));
    }
    let start = std::path::absolute(from).ok()?;
    start
        .ancestors()
        .map(|a| a.join("testdata"))
        .find(|t| t.join("manifest.csv").is_file())
}

/// Reads an Avro container file holding one alert.
fn read_alert(file: &Path) -> Result<Alert, TestDataError> {
    let bad = |reason: String| TestDataError::File {
        file: file.to_owned(),
        reason,
    };
    let raw = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
    let reader = apache_avro::Reader::new(&raw[..])
        .map_err(|e| bad(format!("not an Avro container file: {e}")))?;
    let schema = Arc::new(reader.writer_schema().clone());
    let mut values = Vec::new();
    for v in reader {
        values.push(v.map_err(|e| bad(format!("undecodable record: {e}")))?);
    }
    let value = match values.len() {
        1 => values.pop().unwrap_or(Value::Null),
        n => {
            return Err(bad(format!(
                "holds {n} records, expected one alert per file"
            )))
        }
    };
    Ok(Alert {
        file: file.to_owned(),
        raw: Bytes::from(raw),
        schema,
        value,
    })
}

/// How each alert becomes a message, once per distinct writer schema.
struct Framer {
    framing: Framing,
    registry: Option<RegistryClient>,
    subject: String,
    static_schema: Option<Arc<Schema>>,
    /// Writer schema JSON → (registered id, JSON text).
    known: Vec<(Arc<Schema>, u32, String)>,
}

impl Framer {
    async fn schema_info(&mut self, schema: &Arc<Schema>) -> Result<(u32, String), TestDataError> {
        if let Some((_, id, json)) = self.known.iter().find(|(s, _, _)| s == schema) {
            return Ok((*id, json.clone()));
        }
        let json = serde_json::to_string(schema.as_ref())
            .map_err(|e| TestDataError::Schema(format!("writer schema as JSON: {e}")))?;
        let id = match &self.registry {
            Some(r) if self.framing == Framing::Confluent => {
                r.register(&self.subject, &json).await.map_err(|e| {
                    TestDataError::Registry(format!("registering under {}: {e}", self.subject))
                })?
            }
            _ => 0,
        };
        self.known.push((Arc::clone(schema), id, json.clone()));
        Ok((id, json))
    }

    /// The message's key and value.
    async fn frame(&mut self, alert: &Alert) -> Result<(Option<Bytes>, Bytes), TestDataError> {
        let name_key = || {
            alert
                .file
                .file_stem()
                .map(|s| Bytes::from(s.to_string_lossy().into_owned()))
        };
        let datum = |schema: &Schema, value: Value| {
            let bad = |e: apache_avro::Error| TestDataError::File {
                file: alert.file.clone(),
                reason: format!("cannot encode the record: {e}"),
            };
            let writer = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
                .build()
                .map_err(bad)?;
            let mut out = Vec::new();
            writer.write_value_ref(&mut out, &value).map_err(bad)?;
            Ok::<_, TestDataError>(out)
        };
        match self.framing {
            Framing::Ocf => Ok((name_key(), alert.raw.clone())),
            Framing::Confluent => {
                let (id, _) = self.schema_info(&alert.schema).await?;
                let body = datum(&alert.schema, alert.value.clone())?;
                let mut v = Vec::with_capacity(body.len() + 5);
                v.push(0);
                v.extend_from_slice(&id.to_be_bytes());
                v.extend_from_slice(&body);
                Ok((name_key(), Bytes::from(v)))
            }
            Framing::Schemaless => {
                let schema = self.static_schema.clone().ok_or_else(|| {
                    TestDataError::Config("schemaless framing needs a static schema".into())
                })?;
                let resolved = alert.value.clone().resolve(&schema).map_err(|e| {
                    TestDataError::Schema(format!(
                        "{} does not fit the static schema: {e}",
                        alert.file.display()
                    ))
                })?;
                Ok((name_key(), Bytes::from(datum(&schema, resolved)?)))
            }
            Framing::SchemaKey => {
                let (_, json) = self.schema_info(&alert.schema).await?;
                let body = datum(&alert.schema, alert.value.clone())?;
                Ok((Some(Bytes::from(json)), Bytes::from(body)))
            }
        }
    }
}

/// Runs a job until it is done or `stop` is raised.
///
/// # Errors
/// [`TestDataError`]; messages already acknowledged stay written.
pub async fn run(job: &Job, stop: &AtomicBool) -> Result<Summary, TestDataError> {
    let files = alert_files(&job.files)?;
    let alerts = files
        .iter()
        .map(|f| read_alert(f))
        .collect::<Result<Vec<_>, _>>()?;
    let static_schema = match (&job.schema, job.framing) {
        (Some(s), _) => Some(Arc::new(
            starlog_processors::decode::named_schema::from_files(&s.files, &s.name)
                .map_err(|e| TestDataError::Schema(e.to_string()))?
                .0,
        )),
        (None, Framing::Schemaless) => {
            return Err(TestDataError::Config(
                "schemaless framing needs the static schema (--schema-name, --schema-file)".into(),
            ))
        }
        (None, _) => None,
    };
    let registry = match (&job.registry, job.framing) {
        (Some(url), _) => Some(
            RegistryClient::new("local", url, None, None, Duration::from_secs(10))
                .map_err(|e| TestDataError::Registry(format!("{url}: {e}")))?,
        ),
        (None, Framing::Confluent) => {
            return Err(TestDataError::Config(
                "confluent framing needs the schema registry (--registry URL)".into(),
            ))
        }
        (None, _) => None,
    };
    let mut framer = Framer {
        framing: job.framing,
        registry,
        subject: job
            .subject
            .clone()
            .unwrap_or_else(|| format!("{}-value", job.topic)),
        static_schema,
        known: Vec::new(),
    };
    let produce_err = |source| TestDataError::Produce {
        topic: job.topic.clone(),
        source,
    };
    let mut config = ProducerConfig::new(&job.bootstrap);
    config.max_request_size = 16 * 1024 * 1024;
    config.buffer_memory = 64 * 1024 * 1024;
    let producer = Producer::new(config).map_err(produce_err)?;
    let total = job.count.unwrap_or(alerts.len() as u64);
    let started = Instant::now();
    let mut last_progress = started;
    let mut pending = Vec::new();
    let mut sent_bytes = 0u64;
    let mut interrupted = false;
    let mut acked = 0u64;
    let mut acked_bytes = 0u64;
    for i in 0..total {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        if let Some(rate) = job.rate {
            #[allow(clippy::cast_precision_loss)]
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        let alert = &alerts[usize::try_from(i % alerts.len() as u64).unwrap_or(0)];
        let (key, value) = framer.frame(alert).await?;
        let size = value.len() as u64 + key.as_ref().map_or(0, |k| k.len() as u64);
        let mut record = ProducerRecord::new(job.topic.clone()).value(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        let delivery = producer.send(record).await.map_err(produce_err)?;
        pending.push((delivery, size));
        sent_bytes += size;
        // Settle acknowledgements as they come, so memory stays bounded.
        if pending.len() >= 256 {
            for (d, size) in pending.drain(..) {
                d.await.map_err(produce_err)?;
                acked += 1;
                acked_bytes += size;
            }
        }
        if job.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            tracing::info!(sent = i + 1, total, bytes = sent_bytes, "test data");
        }
    }
    producer.flush().await.map_err(produce_err)?;
    for (d, size) in pending.drain(..) {
        d.await.map_err(produce_err)?;
        acked += 1;
        acked_bytes += size;
    }
    let _ = producer.close().await;
    Ok(Summary {
        topic: job.topic.clone(),
        framing: job.framing,
        files: alerts.len(),
        messages: acked,
        bytes: acked_bytes,
        elapsed: started.elapsed(),
        interrupted,
    })
}
