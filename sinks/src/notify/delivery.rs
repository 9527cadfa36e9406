//! The delivery machinery every notifier shares: a bounded queue between
//! the chain and a worker thread of the notifier's own, the worker's retry
//! loop, the rate limit and the dead-letter path.
//!
//! The chain's thread only renders the message and puts it on the queue
//! (`try_send`: it never waits for a receiver), so a slow or absent receiver
//! never stalls the chain, nor the broker's produce and fetch paths. When the
//! queue is full the alert is dead-lettered at once. The worker sends a
//! batch (up to `max_batch` alerts already waiting), retries a failure that
//! may pass (network, 5xx, 429 with its Retry-After) at most `max_retries`
//! times with a doubling back-off, and dead-letters the batch's alerts with
//! the reason when it gives up or when the receiver refuses for good. An
//! alert over the rate limit is dead-lettered too (reason: the limit), and
//! a notifier that can says so in a summary message once the limit lifts.
//!
//! [`Notifier::flush`] waits until every alert accepted so far has been
//! delivered or dead-lettered (bounded by the retries and timeouts), then
//! flushes the dead-letter topic, so the runner's commit never runs ahead of
//! a notification. Digest mode is the exception: an alert held for the next
//! digest counts as settled (see the documentation).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use starlog_processors::dead_letter::REASON_HEADER;
use starlog_processors::output::json::candidate_to_json;
use starlog_processors::sink::{SinkError, TopicSink};
use starlog_processors::{Candidate, CandidateProcessor, ProcessError, Response};

use super::throttle::{Limits, RateLimiter};

/// Header naming the notifier that dead-lettered an alert.
pub(crate) const NOTIFIER_HEADER: &str = "starlog.notifier";
/// Header carrying the alert id (decimal).
pub(crate) const ALERT_ID_HEADER: &str = "starlog.alert_id";

/// Whether a failed delivery may pass later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The receiver refused for good (SMTP 5xx, VOEvent nak, HTTP 4xx).
    Never,
    /// A transient failure; wait the given time (Retry-After) or the back-off.
    Later(Option<Duration>),
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryError {
    /// What went wrong, for the dead-letter reason.
    pub reason: String,
    /// Whether to retry.
    pub retry: Retry,
}

impl DeliveryError {
    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        DeliveryError {
            reason: reason.into(),
            retry: Retry::Never,
        }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        DeliveryError {
            reason: reason.into(),
            retry: Retry::Later(None),
        }
    }
}

/// One alert's message, queued for the worker.
#[derive(Debug)]
pub(crate) struct Item<M> {
    /// The alert id.
    pub alert_id: i64,
    /// The object id, the dead letter's key.
    pub key: Option<String>,
    /// The rendered message.
    pub message: M,
    /// The alert as JSON without cutouts, the dead letter's value.
    pub dead_letter_value: Vec<u8>,
}

/// What a notifier's worker does with messages.
pub(crate) trait Deliver: Send + 'static {
    /// The rendered message of one alert.
    type Message: Send + 'static;

    /// Sends one message for `batch` (1 to `max_batch` alerts).
    ///
    /// # Errors
    /// [`DeliveryError`] when the receiver did not take it.
    fn deliver(&mut self, batch: &[&Self::Message]) -> Result<(), DeliveryError>;

    /// Sends a message saying `suppressed` alerts were over the rate limit;
    /// `None` when this notifier sends no summary.
    fn summary(&mut self, _suppressed: u64) -> Option<Result<(), DeliveryError>> {
        None
    }
}

/// When the worker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// As soon as alerts arrive (batches of what is already waiting).
    Immediate,
    /// Everything held, every interval (and at close).
    Digest(Duration),
}

/// Where a notifier's undeliverable alerts go.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetters {
    /// The topic.
    pub topic: String,
    /// The runner's sink (`None`: logged only).
    pub sink: Option<Arc<dyn TopicSink>>,
    /// The notifier's class, for the header.
    pub notifier: &'static str,
}

impl DeadLetters {
    fn send<M>(&self, item: &Item<M>, reason: &str) -> Result<(), SinkError> {
        tracing::warn!(
            notifier = self.notifier,
            alert_id = item.alert_id,
            topic = %self.topic,
            %reason,
            "alert not delivered: sent to the dead-letter topic"
        );
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let id = item.alert_id.to_string();
        sink.send(
            &self.topic,
            item.key.as_deref().map(str::as_bytes),
            &item.dead_letter_value,
            &[
                (REASON_HEADER, reason.as_bytes()),
                (NOTIFIER_HEADER, self.notifier.as_bytes()),
                (ALERT_ID_HEADER, id.as_bytes()),
            ],
        )
    }
}

/// Counters, and what `flush` waits for.
#[derive(Debug, Default)]
struct State {
    /// Accepted and neither delivered nor dead-lettered yet.
    pending: u64,
    delivered: u64,
    dead_lettered: u64,
    /// A dead letter that could not be sent (reported by the next flush).
    dead_letter_error: Option<SinkError>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    settled: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The worker's side.
struct Worker<D: Deliver> {
    deliver: D,
    limits: Limits,
    limiter: RateLimiter,
    dead: DeadLetters,
    shared: Arc<Shared>,
    suppressed: u64,
}

impl<D: Deliver> Worker<D> {
    fn settle(&self, delivered: u64, dead: u64, error: Option<SinkError>) {
        let mut s = self.shared.lock();
        s.pending = s.pending.saturating_sub(delivered + dead);
        s.delivered += delivered;
        s.dead_lettered += dead;
        if let Some(e) = error {
            s.dead_letter_error.get_or_insert(e);
        }
        drop(s);
        self.shared.settled.notify_all();
    }

    fn dead_letter_all(&self, items: &[Item<D::Message>], reason: &str) {
        let mut error = None;
        for item in items {
            if let Err(e) = self.dead.send(item, reason) {
                tracing::error!(notifier = self.dead.notifier, error = %e, "dead letter not sent");
                error.get_or_insert(e);
            }
        }
        self.settle(0, items.len() as u64, error);
    }

    /// Sends with bounded retries; the last reason when it gives up or is refused.
    fn attempt(
        &mut self,
        send: &mut dyn FnMut(&mut D) -> Result<(), DeliveryError>,
    ) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match send(&mut self.deliver) {
                Ok(()) => return Ok(()),
                Err(e) => match e.retry {
                    Retry::Never => return Err(e.reason),
                    Retry::Later(after) => {
                        attempt += 1;
                        if attempt > self.limits.max_retries {
                            return Err(format!("gave up after {attempt} attempts: {}", e.reason));
                        }
                        let wait = after.map_or_else(
                            || self.limits.backoff(attempt),
                            |a| a.min(self.limits.max_retry_after),
                        );
                        tracing::info!(
                            notifier = self.dead.notifier,
                            attempt,
                            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            reason = %e.reason,
                            "delivery failed, retrying"
                        );
                        std::thread::sleep(wait);
                    }
                },
            }
        }
    }

    fn send_summary(&mut self) {
        if self.suppressed == 0 {
            return;
        }
        let n = self.suppressed;
        self.suppressed = 0;
        let mut send = |d: &mut D| d.summary(n).unwrap_or(Ok(()));
        if let Err(reason) = self.attempt(&mut send) {
            tracing::warn!(notifier = self.dead.notifier, %reason, "rate-limit summary not sent");
        }
    }

    fn send_batch(&mut self, items: Vec<Item<D::Message>>) {
        if items.is_empty() {
            return;
        }
        if !self.limiter.try_take() {
            self.suppressed += items.len() as u64;
            let reason = format!(
                "rate limit of {} messages a minute exceeded",
                self.limits.rate_per_minute
            );
            self.dead_letter_all(&items, &reason);
            return;
        }
        self.send_summary();
        let mut send = |d: &mut D| {
            let messages: Vec<&D::Message> = items.iter().map(|i| &i.message).collect();
            d.deliver(&messages)
        };
        match self.attempt(&mut send) {
            Ok(()) => self.settle(items.len() as u64, 0, None),
            Err(reason) => self.dead_letter_all(&items, &reason),
        }
    }

    fn run(mut self, rx: &Receiver<Item<D::Message>>, schedule: Schedule) {
        match schedule {
            Schedule::Immediate => self.run_immediate(rx),
            Schedule::Digest(every) => self.run_digest(rx, every),
        }
    }

    fn run_immediate(&mut self, rx: &Receiver<Item<D::Message>>) {
        loop {
            let first = if self.suppressed > 0 {
                // Wake up when the limit lifts, to send the summary.
                let wait = self.limiter.wait_time().max(Duration::from_millis(10));
                match rx.recv_timeout(wait) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.limiter.try_take() {
                            self.send_summary();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(item) => item,
                    Err(_) => break,
                }
            };
            let mut batch = vec![first];
            while batch.len() < self.limits.max_batch {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.send_batch(batch);
        }
    }

    fn run_digest(&mut self, rx: &Receiver<Item<D::Message>>, every: Duration) {
        let mut held: Vec<Item<D::Message>> = Vec::new();
        let mut next = Instant::now() + every;
        let mut open = true;
        while open {
            let wait = next.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(item) => {
                    held.push(item);
                    // Held for the digest: settled as far as flush is concerned.
                    let mut s = self.shared.lock();
                    s.pending = s.pending.saturating_sub(1);
                    drop(s);
                    self.shared.settled.notify_all();
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            next = Instant::now() + every;
            while !held.is_empty() {
                let rest = held.split_off(held.len().min(self.limits.max_batch));
                let batch = std::mem::replace(&mut held, rest);
                // The digest's alerts were counted as settled already.
                let n = batch.len() as u64;
                self.shared.lock().pending += n;
                self.send_batch(batch);
            }
        }
    }
}

/// Renders one alert's message (on the chain's thread); the `&str` is the filter's name.
pub(crate) type Render<M> = Box<dyn Fn(&Candidate, &str) -> M + Send>;

/// A notifier: renders on the chain's thread, delivers on its own.
pub(crate) struct Notifier<D: Deliver> {
    class: &'static str,
    filter: String,
    render: Render<D::Message>,
    tx: Option<SyncSender<Item<D::Message>>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    dead: DeadLetters,
    capacity: usize,
}

impl<D: Deliver> std::fmt::Debug for Notifier<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("class", &self.class)
            .field("filter", &self.filter)
            .field("dead_letter_topic", &self.dead.topic)
            .finish_non_exhaustive()
    }
}

impl<D: Deliver> Notifier<D> {
    /// Starts the worker thread.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub(crate) fn start(
        class: &'static str,
        filter: String,
        deliver: D,
        limits: Limits,
        schedule: Schedule,
        dead: DeadLetters,
        render: Render<D::Message>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(limits.queue_capacity);
        let shared = Arc::new(Shared::default());
        let capacity = limits.queue_capacity;
        let worker = Worker {
            deliver,
            limiter: RateLimiter::new(limits.rate_per_minute, limits.burst),
            limits,
            dead: dead.clone(),
            shared: Arc::clone(&shared),
            suppressed: 0,
        };
        let handle = std::thread::Builder::new()
            .name(format!("notify-{class}"))
            .spawn(move || worker.run(&rx, schedule))?;
        Ok(Notifier {
            class,
            filter,
            render,
            tx: Some(tx),
            worker: Some(handle),
            shared,
            dead,
            capacity,
        })
    }

    fn fail(&self, reason: impl Into<String>) -> ProcessError {
        ProcessError::Other {
            processor: self.class.to_owned(),
            reason: reason.into(),
        }
    }

    /// Waits until nothing accepted is pending (or the worker is gone).
    fn wait_settled(&self) -> Result<(), ProcessError> {
        let mut s = self.shared.lock();
        while s.pending > 0 {
            if self.worker.as_ref().is_none_or(JoinHandle::is_finished) {
                return Err(self.fail("the delivery thread has stopped"));
            }
            s = self
                .shared
                .settled
                .wait_timeout(s, Duration::from_millis(200))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        match s.dead_letter_error.take() {
            Some(source) => Err(ProcessError::Sink {
                topic: self.dead.topic.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl<D: Deliver> CandidateProcessor for Notifier<D> {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        let message = (self.render)(candidate, &self.filter);
        let item = Item {
            alert_id: candidate.alert_id(),
            key: candidate.object_id().map(ToString::to_string),
            message,
            dead_letter_value: serde_json::to_vec(&candidate_to_json(candidate, false))
                .unwrap_or_default(),
        };
        let Some(tx) = &self.tx else {
            return Response::Fail(self.fail("closed"));
        };
        self.shared.lock().pending += 1;
        match tx.try_send(item) {
            Ok(()) => Response::Pass,
            Err(TrySendError::Full(item)) => {
                let reason = format!("delivery queue full ({} alerts waiting)", self.capacity);
                let result = self.dead.send(&item, &reason);
                let mut s = self.shared.lock();
                s.pending -= 1;
                s.dead_lettered += 1;
                drop(s);
                match result {
                    Ok(()) => Response::Pass,
                    Err(source) => Response::Fail(ProcessError::Sink {
                        topic: self.dead.topic.clone(),
                        source,
                    }),
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.lock().pending -= 1;
                Response::Fail(self.fail("the delivery thread has stopped"))
            }
        }
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.wait_settled()?;
        match &self.dead.sink {
            Some(sink) => sink.flush().map_err(|source| ProcessError::Sink {
                topic: self.dead.topic.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    fn close(&mut self) -> Result<(), ProcessError> {
        // Closing the queue makes the worker send what it holds (a digest) and stop.
        self.tx = None;
        if let Some(handle) = self.worker.take() {
            if handle.join().is_err() {
                return Err(self.fail("the delivery thread panicked"));
            }
        }
        let s = self.shared.lock();
        tracing::info!(
            notifier = self.class,
            delivered = s.delivered,
            dead_lettered = s.dead_lettered,
            "notifier closed"
        );
        let error = s.dead_letter_error.clone();
        drop(s);
        if let Some(source) = error {
            return Err(ProcessError::Sink {
                topic: self.dead.topic.clone(),
                source,
            });
        }
        match &self.dead.sink {
            Some(sink) => sink.flush().map_err(|source| ProcessError::Sink {
                topic: self.dead.topic.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl<D: Deliver> Drop for Notifier<D> {
    fn drop(&mut self) {
        // Let the worker finish on its own; it stops when the queue is empty.
        self.tx = None;
    }
}

/// Reads `dead_letter_topic` (default `notify-dead-letter`).
///
/// # Errors
/// Not a string.
pub(crate) fn parse_dead_letter_topic(
    p: &mut starlog_processors::config::Params<'_>,
) -> Result<String, starlog_processors::config::ConfigError> {
    Ok(p.optional_str("dead_letter_topic", "a topic name")?
        .unwrap_or_else(|| "notify-dead-letter".to_owned()))
}
