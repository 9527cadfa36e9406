//! The database writer both classes share: rows are collected into a
//! batch and upserted on the key when the batch is full and at every
//! `flush`, which returns only once the batch is committed. While the
//! database is unreachable a batch is retried with back-off; past
//! `retry_timeout_ms` the record fails (the runner retries it from its last
//! commit, so the pipeline goes on once the database is back). A row the
//! server refuses is dead-lettered with the server's message and the rest
//! of the batch is written.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use starlog_processors::config::{BuildContext, ConfigError, ProcessorSpec};
use starlog_processors::dead_letter::REASON_HEADER;
use starlog_processors::{Candidate, CandidateProcessor, ProcessError, Response, TopicSink};

use super::backend::{Backend, Batch, DbError, Worker};
use super::columns::{Layout, SqlValue};
use super::settings::Settings;

/// Header carrying the alert id of a dead-lettered row.
pub(crate) const ALERT_ID_HEADER: &str = "starlog.alert.id";
/// Header carrying the table of a dead-lettered row.
pub(crate) const TABLE_HEADER: &str = "starlog.db.table";

/// A validated configuration for backend `B`.
pub(crate) struct WriterSpec<B> {
    /// The class name (for errors and thread names).
    pub class: &'static str,
    pub settings: Arc<Settings>,
    pub backend: PhantomData<fn() -> B>,
}

impl<B> std::fmt::Debug for WriterSpec<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterSpec")
            .field("class", &self.class)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<B: Backend> ProcessorSpec for WriterSpec<B> {
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let s = &self.settings;
        let password = s.password.read().map_err(|e| ConfigError::Invalid {
            path: format!("{path}.params.{}", s.password.key()),
            message: e.to_string(),
        })?;
        let worker = Worker::start::<B>(self.class, Arc::clone(s), password).map_err(|e| {
            ConfigError::Invalid {
                path: format!("{path}.params"),
                message: format!("cannot start the connection thread: {e}"),
            }
        })?;
        // Connect once now, so that a wrong password or URL is reported at
        // load with its YAML path; an unreachable server is only logged (the
        // writer retries when it has rows to write).
        match worker.connect() {
            Ok(()) => {}
            Err(DbError::Auth(msg)) => {
                return Err(ConfigError::Invalid {
                    path: format!("{path}.params.{}", s.password.key()),
                    message: format!(
                        "{}: the server refused the login to {}: {msg}",
                        self.class, s.url
                    ),
                })
            }
            Err(DbError::Tls(msg)) => {
                return Err(ConfigError::Invalid {
                    path: format!("{path}.params.ca"),
                    message: format!("{}: {}: {msg}", self.class, s.url),
                })
            }
            Err(DbError::Schema(msg)) => {
                return Err(ConfigError::Invalid {
                    path: format!("{path}.params.url"),
                    message: format!("{}: {}: {msg}", self.class, s.url),
                })
            }
            Err(e) => {
                tracing::warn!(class = self.class, url = %s.url, error = %e, "database not reachable yet; the writer will retry");
            }
        }
        Ok(Box::new(DbWriter {
            class: self.class,
            settings: Arc::clone(s),
            worker,
            sink: ctx.topic_sink.clone(),
            layout: None,
            rows: Vec::with_capacity(s.batch_size),
            dead_letters_sent: false,
        }))
    }
}

/// One writer instance.
struct DbWriter {
    class: &'static str,
    settings: Arc<Settings>,
    worker: Worker,
    sink: Option<Arc<dyn TopicSink>>,
    /// Settled at the first alert, fitted to the table.
    layout: Option<Arc<Layout>>,
    rows: Vec<Vec<SqlValue>>,
    /// Dead letters were sent since the last flush of the sink.
    dead_letters_sent: bool,
}

impl std::fmt::Debug for DbWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbWriter")
            .field("class", &self.class)
            .field("table", &self.settings.table)
            .field("pending", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl DbWriter {
    fn fail(&self, reason: impl std::fmt::Display) -> ProcessError {
        ProcessError::Other {
            processor: self.class.to_owned(),
            reason: format!(
                "table {} at {}: {reason}",
                self.settings.table, self.settings.url
            ),
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the retry time is up.
    fn with_retries<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let retry = self.settings.retry;
        let start = Instant::now();
        let mut backoff = retry.initial;
        loop {
            match op() {
                Err(e) if e.is_retryable() && start.elapsed() + backoff <= retry.give_up_after => {
                    tracing::warn!(class = self.class, table = %self.settings.table, url = %self.settings.url, error = %e, retry_in = ?backoff, "{what} failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(retry.max);
                }
                r => return r,
            }
        }
    }

    fn layout_for(&mut self, c: &Candidate) -> Result<Arc<Layout>, ProcessError> {
        if let Some(l) = &self.layout {
            return Ok(Arc::clone(l));
        }
        let s = &self.settings;
        let layout =
            Layout::settle(&s.table, &s.mapping, s.key.as_deref(), c).map_err(|e| self.fail(e))?;
        let fitted = self
            .with_retries("creating the table", || self.worker.prepare(layout.clone()))
            .map_err(|e| self.fail(e))?;
        tracing::info!(class = self.class, table = %fitted.table, columns = fitted.columns.len(), key = fitted.key_name(), "database table ready");
        let fitted = Arc::new(fitted);
        self.layout = Some(Arc::clone(&fitted));
        Ok(fitted)
    }

    /// Sends a refused row to the dead-letter topic with the reason.
    fn dead_letter(
        &mut self,
        layout: &Layout,
        row: &[SqlValue],
        reason: &str,
    ) -> Result<(), ProcessError> {
        let alert_id = row[layout.key].to_json().to_string();
        tracing::warn!(class = self.class, table = %layout.table, alert = %alert_id, topic = %self.settings.dead_letter_topic, %reason, "row dead-lettered");
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let object: serde_json::Map<String, serde_json::Value> = layout
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect();
        let value = serde_json::to_vec(&object).map_err(|e| self.fail(e))?;
        let headers = [
            (REASON_HEADER, reason.as_bytes()),
            (ALERT_ID_HEADER, alert_id.as_bytes()),
            (TABLE_HEADER, layout.table.as_bytes()),
        ];
        sink.send(
            &self.settings.dead_letter_topic,
            Some(alert_id.as_bytes()),
            &value,
            &headers,
        )
        .map_err(|source| ProcessError::Sink {
            topic: self.settings.dead_letter_topic.clone(),
            source,
        })?;
        self.dead_letters_sent = true;
        Ok(())
    }

    /// Writes the pending rows (committed when this returns `Ok`).
    fn write_pending(&mut self) -> Result<(), ProcessError> {
        let Some(layout) = self.layout.clone() else {
            return Ok(());
        };
        if self.rows.is_empty() {
            return Ok(());
        }
        // One row per key: a statement may not update a row twice, and the last alert wins.
        dedup_last_by_key(&mut self.rows, layout.key);
        let mut batch = Some(Batch {
            layout: Arc::clone(&layout),
            rows: std::mem::take(&mut self.rows),
        });
        let started = Instant::now();
        let result = self.with_retries("writing a batch", || {
            let Some(b) = batch.take() else {
                return Err(DbError::Unavailable(
                    "batch lost by the connection thread".to_owned(),
                ));
            };
            let (back, r) = self.worker.write(b);
            batch = back;
            r
        });
        let rows = batch.map(|b| b.rows).unwrap_or_default();
        match result {
            Ok(refused) => {
                tracing::debug!(class = self.class, table = %layout.table, rows = rows.len(), refused = refused.len(), took = ?started.elapsed(), "batch committed");
                for (i, msg) in refused {
                    if let Some(row) = rows.get(i) {
                        self.dead_letter(&layout, row, &format!("{}: {msg}", self.class))?;
                    }
                }
                Ok(())
            }
            // The rows are dropped: the runner re-delivers them from its
            // last commit.
            Err(e) => Err(self.fail(e)),
        }
    }
}

fn dedup_last_by_key(rows: &mut Vec<Vec<SqlValue>>, key: usize) {
    if rows.len() < 2 {
        return;
    }
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        seen.insert(format!("{:?}", r[key]), i);
    }
    if seen.len() == rows.len() {
        return;
    }
    let mut i = 0;
    rows.retain(|r| {
        let keep = seen.get(&format!("{:?}", r[key])) == Some(&i);
        i += 1;
        keep
    });
}

impl CandidateProcessor for DbWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        let layout = match self.layout_for(candidate) {
            Ok(l) => l,
            Err(e) => return Response::Fail(e),
        };
        match layout.row(candidate) {
            Ok(row) => self.rows.push(row),
            Err(reason) => {
                // Never writable: the pipeline sends the record to its
                // dead-letter topic with the reason, and the chain goes on.
                return Response::DeadLetter(format!(
                    "{}: alert {} cannot be mapped to a row of {}: {reason}",
                    self.class,
                    candidate.alert_id(),
                    layout.table
                ));
            }
        }
        if self.rows.len() >= self.settings.batch_size {
            if let Err(e) = self.write_pending() {
                return Response::Fail(e);
            }
        }
        Response::Pass
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.write_pending()?;
        if self.dead_letters_sent {
            if let Some(sink) = &self.sink {
                sink.flush().map_err(|source| ProcessError::Sink {
                    topic: self.settings.dead_letter_topic.clone(),
                    source,
                })?;
            }
            self.dead_letters_sent = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{dedup_last_by_key, SqlValue};

    #[test]
    fn a_batch_keeps_the_last_row_of_each_key_in_order() {
        let row = |k: i64, v: &str| vec![SqlValue::Int(k), SqlValue::Text(v.to_owned())];
        let mut rows = vec![row(1, "a"), row(2, "b"), row(1, "c"), row(3, "d")];
        dedup_last_by_key(&mut rows, 0);
        assert_eq!(rows, vec![row(2, "b"), row(1, "c"), row(3, "d")]);
    }
}
