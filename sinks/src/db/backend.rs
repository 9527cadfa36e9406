//! What a database client must do for the writer, and the thread that runs
//! it.
//!
//! Processors are synchronous (a processing node runs them inside
//! `spawn_blocking`, the broker on a plain thread), and the clients are
//! async. Each writer therefore owns one thread with a single-threaded
//! Tokio runtime and the connection; the writer hands it batches over a
//! channel and waits for the answer. No runtime is ever entered from the
//! caller's thread, so it does not matter whether that thread is inside an
//! async context.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::columns::{Layout, SqlValue};
use super::settings::Settings;

/// How a database operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum DbError {
    /// The server is unreachable or the connection broke: retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server refused the data (value too large, constraint): retrying
    /// the same row will not help.
    #[error("row refused: {0}")]
    Refused(String),
    /// The server refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The TLS settings (CA file) are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The table does not fit the mapping, or another permanent fault.
    #[error("{0}")]
    Schema(String),
    /// Any other server error (retried).
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// True when retrying later may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Other(_))
    }
}

/// A database client as the writer uses it.
#[allow(async_fn_in_trait)]
pub(crate) trait Backend: Sized + 'static {
    /// Connects (with the password read at build time).
    async fn connect(settings: &Settings, password: Option<&str>) -> Result<Self, DbError>;

    /// Creates the table if missing and returns its column names.
    async fn ensure_table(&mut self, layout: &Layout) -> Result<Vec<String>, DbError>;

    /// Inserts or updates (on the key) `rows` in one transaction.
    async fn upsert(&mut self, layout: &Layout, rows: &[&[SqlValue]]) -> Result<(), DbError>;
}

/// A batch to write.
pub(crate) struct Batch {
    pub layout: Arc<Layout>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// What came of a batch: the rows the server refused (index, message).
pub(crate) type BatchResult = Result<Vec<(usize, String)>, DbError>;

enum Command {
    Connect(mpsc::Sender<Result<(), DbError>>),
    Prepare(Layout, mpsc::Sender<Result<Layout, DbError>>),
    Write(Batch, mpsc::Sender<(Batch, BatchResult)>),
}

/// The writer's side of the connection thread.
pub(crate) struct Worker {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

fn gone() -> DbError {
    DbError::Unavailable("the writer's connection thread stopped".to_owned())
}

impl Worker {
    /// Starts the thread for backend `B`.
    pub(crate) fn start<B: Backend>(
        name: &str,
        settings: Arc<Settings>,
        password: Option<String>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Command>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("{name}-conn"))
            .spawn(move || {
                let mut state = State::<B> {
                    settings,
                    password,
                    conn: None,
                };
                while let Ok(cmd) = rx.recv() {
                    match cmd {
                        Command::Connect(reply) => {
                            let r = runtime.block_on(state.connection()).map(|_| ());
                            let _ = reply.send(r);
                        }
                        Command::Prepare(layout, reply) => {
                            let r = runtime.block_on(state.prepare(layout));
                            let _ = reply.send(r);
                        }
                        Command::Write(batch, reply) => {
                            let r = runtime.block_on(state.write(&batch));
                            let _ = reply.send((batch, r));
                        }
                    }
                }
            })?;
        Ok(Worker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Connects now (to report a wrong password at build time).
    pub(crate) fn connect(&self) -> Result<(), DbError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(Command::Connect(reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Creates the table if missing and fits `layout` to it.
    pub(crate) fn prepare(&self, layout: Layout) -> Result<Layout, DbError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(Command::Prepare(layout, reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Writes a batch; gives it back with the outcome.
    pub(crate) fn write(&self, batch: Batch) -> (Option<Batch>, BatchResult) {
        let (reply, answer) = mpsc::channel();
        let Some(tx) = &self.tx else {
            return (Some(batch), Err(gone()));
        };
        if let Err(mpsc::SendError(Command::Write(batch, _))) =
            tx.send(Command::Write(batch, reply))
        {
            return (Some(batch), Err(gone()));
        }
        match answer.recv() {
            Ok((batch, r)) => (Some(batch), r),
            Err(_) => (None, Err(gone())),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State<B> {
    settings: Arc<Settings>,
    password: Option<String>,
    conn: Option<B>,
}

impl<B: Backend> State<B> {
    async fn connection(&mut self) -> Result<&mut B, DbError> {
        if self.conn.is_none() {
            let c = tokio::time::timeout(
                self.settings.connect_timeout,
                B::connect(&self.settings, self.password.as_deref()),
            )
            .await
            .map_err(|_| {
                DbError::Unavailable(format!(
                    "no connection to {} within {:?}",
                    self.settings.url, self.settings.connect_timeout
                ))
            })??;
            self.conn = Some(c);
        }
        self.conn.as_mut().ok_or_else(gone)
    }

    async fn prepare(&mut self, mut layout: Layout) -> Result<Layout, DbError> {
        let r = async {
            let existing = self.connection().await?.ensure_table(&layout).await?;
            layout.fit_to(&existing).map_err(DbError::Schema)?;
            Ok(layout)
        }
        .await;
        self.forget_broken(&r);
        r
    }

    async fn write(&mut self, batch: &Batch) -> BatchResult {
        let r = self.write_inner(batch).await;
        self.forget_broken(&r);
        r
    }

    /// Drops the connection after a retryable error: it may be broken.
    fn forget_broken<T>(&mut self, r: &Result<T, DbError>) {
        if r.as_ref().is_err_and(DbError::is_retryable) {
            self.conn = None;
        }
    }

    async fn write_inner(&mut self, batch: &Batch) -> BatchResult {
        let layout = &batch.layout;
        let conn = self.connection().await?;
        let rows: Vec<&[SqlValue]> = batch.rows.iter().map(Vec::as_slice).collect();
        match conn.upsert(layout, &rows).await {
            Ok(()) => Ok(Vec::new()),
            Err(DbError::Refused(batch_msg)) => {
                tracing::debug!(table = %layout.table, error = %batch_msg, "batch refused; writing its rows one by one");
                let mut refused = Vec::new();
                for (i, row) in rows.iter().enumerate() {
                    match conn.upsert(layout, std::slice::from_ref(row)).await {
                        Ok(()) => {}
                        Err(DbError::Refused(msg)) => refused.push((i, msg)),
                        Err(e) => return Err(e),
                    }
                }
                Ok(refused)
            }
            Err(e) => Err(e),
        }
    }
}
