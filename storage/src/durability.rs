//! Group commit: making appended bytes durable with as few fdatasyncs as possible.
//!
//! Every append adds its size to a monotonically increasing `written` counter (under the
//! partition's writer mutex, after the bytes are in the page cache) and gets the counter value
//! as its ticket. `durable` is the largest ticket an fdatasync is known to cover. An appender
//! that needs durability waits, outside the writer mutex, until `durable >= ticket`: the first
//! waiter to find no sync in progress becomes the leader, reads `written` (every byte counted
//! there was already written), fdatasyncs, and publishes that value; everyone whose ticket it
//! covers returns. Appends arriving while a sync runs are covered by the next one, so N
//! concurrent producers share roughly one fdatasync.
//!
//! `FlushPolicy::Interval(d)` adds a coalescing delay: while other appends are in progress
//! (started but not yet written), the leader waits for them to join its sync, but never longer
//! than `d` after the previous sync and never once [`EARLY_SYNC_BYTES`] are pending. It never
//! waits for appends that have not started, so a lone sequential appender is not slowed down
//! (it syncs at once, like `Always`), while a busy partition coalesces its concurrent appends
//! into at most about one fdatasync per `d`. `Always` never delays: appends that arrive while a
//! sync runs share the next one.
//!
//! Files of segments rolled since the last sync are kept in `pending` and synced with the
//! active one. A failed fdatasync poisons the log: Linux may drop the dirty pages after
//! reporting the error, so no later sync could prove them durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::config::FlushPolicy;

/// Unsynced bytes at which an `Interval` leader syncs without waiting for the interval.
pub(crate) const EARLY_SYNC_BYTES: u64 = 1 << 20;

#[derive(Debug)]
struct SyncState {
    durable: u64,
    syncing: bool,
    leader_waiting: bool,
    last_sync: Option<Instant>,
    active: (Arc<File>, PathBuf),
    pending: Vec<(Arc<File>, PathBuf)>,
    poisoned: Option<String>,
}

/// Durability tracker of one partition log.
#[derive(Debug)]
pub(crate) struct Durability {
    written: AtomicU64,
    in_progress: AtomicUsize,
    syncs: AtomicU64,
    state: Mutex<SyncState>,
    synced: Condvar,
    wake_leader: Condvar,
}

impl Durability {
    pub(crate) fn new(active: Arc<File>, path: PathBuf) -> Self {
        Self {
            written: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            syncs: AtomicU64::new(0),
            state: Mutex::new(SyncState {
                durable: 0,
                syncing: false,
                leader_waiting: false,
                last_sync: None,
                active: (active, path),
                pending: Vec::new(),
                poisoned: None,
            }),
            synced: Condvar::new(),
            wake_leader: Condvar::new(),
        }
    }

    /// Marks an append as in progress until the guard is dropped (after its bytes are written
    /// and recorded, or on failure), so that a waiting leader knows whom it may wait for.
    pub(crate) fn begin_write(&self) -> WriteInProgress<'_> {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        WriteInProgress { durability: self }
    }

    /// Records `n` freshly written bytes; returns the ticket to wait for.
    pub(crate) fn record_write(&self, n: u64) -> u64 {
        self.written.fetch_add(n, Ordering::AcqRel) + n
    }

    /// A new active segment file; the previous one stays pending until the next sync.
    pub(crate) fn set_active(&self, file: Arc<File>, path: PathBuf) {
        let mut st = self.state.lock();
        let old = std::mem::replace(&mut st.active, (file, path));
        st.pending.push(old);
    }

    /// `Err(reason)` if an earlier fdatasync failed.
    pub(crate) fn check_poisoned(&self) -> Result<(), String> {
        match &self.state.lock().poisoned {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }

    /// Number of sync rounds (each fdatasyncs every file with unsynced data) so far.
    pub(crate) fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Returns once the policy is met for `ticket`.
    pub(crate) fn wait(&self, ticket: u64, policy: FlushPolicy) -> Result<(), String> {
        match policy {
            FlushPolicy::Never => Ok(()),
            FlushPolicy::Always => self.sync_until(ticket, Duration::ZERO),
            FlushPolicy::Interval(d) => self.sync_until(ticket, d),
        }
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync_all(&self) -> Result<(), String> {
        self.sync_until(self.written.load(Ordering::Acquire), Duration::ZERO)
    }

    fn pending(&self, st: &SyncState) -> u64 {
        self.written
            .load(Ordering::Acquire)
            .saturating_sub(st.durable)
    }

    fn sync_until(&self, ticket: u64, min_gap: Duration) -> Result<(), String> {
        let mut st = self.state.lock();
        loop {
            if let Some(p) = &st.poisoned {
                return Err(p.clone());
            }
            if st.durable >= ticket {
                return Ok(());
            }
            if st.syncing {
                if st.leader_waiting
                    && (self.pending(&st) >= EARLY_SYNC_BYTES
                        || self.in_progress.load(Ordering::Acquire) == 0)
                {
                    self.wake_leader.notify_one();
                }
                self.synced.wait(&mut st);
                continue;
            }
            st.syncing = true;
            if let Some(last) = st.last_sync {
                let due = last + min_gap;
                st.leader_waiting = true;
                while Instant::now() < due
                    && self.pending(&st) < EARLY_SYNC_BYTES
                    && self.in_progress.load(Ordering::Acquire) > 0
                {
                    self.wake_leader.wait_until(&mut st, due);
                }
                st.leader_waiting = false;
            }
            let target = self.written.load(Ordering::Acquire);
            let mut files = std::mem::take(&mut st.pending);
            files.push(st.active.clone());
            self.syncs.fetch_add(1, Ordering::Relaxed);
            let result = MutexGuard::unlocked(&mut st, || {
                for (f, path) in &files {
                    f.sync_data()
                        .map_err(|e| format!("fdatasync of {} failed: {e}", path.display()))?;
                }
                Ok::<(), String>(())
            });
            st.syncing = false;
            st.last_sync = Some(Instant::now());
            match result {
                Ok(()) => st.durable = st.durable.max(target),
                Err(reason) => {
                    tracing::error!(%reason, "fdatasync failed; log poisoned");
                    st.poisoned = Some(reason);
                }
            }
            self.synced.notify_all();
        }
    }
}

/// An append between its start and the recording of its bytes (see [`Durability::begin_write`]).
#[derive(Debug)]
pub(crate) struct WriteInProgress<'a> {
    durability: &'a Durability,
}

impl Drop for WriteInProgress<'_> {
    fn drop(&mut self) {
        self.durability.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}
