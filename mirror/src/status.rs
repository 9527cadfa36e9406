//! Live counters of a mirror, shared with whoever shows them (the broker's
//! `/metrics` when the mirror runs inside the broker).
//!
//! The engine publishes its running [`Summary`] counts and per-topic lag a
//! few times a second and once more at the end of a run. Counters never go
//! back: when a run ends (and the broker starts the next one after an
//! error), its counts are folded into the totals of the ended runs.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::summary::{Summary, TopicCounts};

/// One upstream topic as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicStatus {
    /// Counters since the status was created (all runs).
    pub counts: TopicCounts,
    /// Upstream records not yet read (high watermark − position), summed
    /// over the topic's partitions; 0 when not running.
    pub lag: i64,
}

/// A copy of the status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusView {
    /// Per upstream topic.
    pub topics: BTreeMap<String, TopicStatus>,
    /// Checkpoints written, all runs.
    pub checkpoints: u64,
    /// Whether a run is going on.
    pub running: bool,
    /// Runs started.
    pub runs: u64,
    /// How the last run that failed ended.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    ended: BTreeMap<String, TopicCounts>,
    ended_checkpoints: u64,
    current: BTreeMap<String, TopicCounts>,
    checkpoints: u64,
    lag: BTreeMap<String, i64>,
    running: bool,
    runs: u64,
    last_error: Option<String>,
}

/// The shared status of one mirror.
#[derive(Debug, Default)]
pub struct MirrorStatus {
    inner: Mutex<Inner>,
}

impl MirrorStatus {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the counters.
    pub fn view(&self) -> StatusView {
        let i = self.lock();
        let mut topics: BTreeMap<String, TopicStatus> = BTreeMap::new();
        for (name, c) in i.ended.iter().chain(i.current.iter()) {
            topics.entry(name.clone()).or_default().counts.add(c);
        }
        for (name, lag) in &i.lag {
            topics.entry(name.clone()).or_default().lag = *lag;
        }
        StatusView {
            topics,
            checkpoints: i.ended_checkpoints + i.checkpoints,
            running: i.running,
            runs: i.runs,
            last_error: i.last_error.clone(),
        }
    }

    pub(crate) fn run_started(&self) {
        let mut i = self.lock();
        i.running = true;
        i.runs += 1;
    }

    pub(crate) fn publish(&self, summary: &Summary, lag: BTreeMap<String, i64>) {
        let mut i = self.lock();
        i.current = summary.topics.clone();
        i.checkpoints = summary.checkpoints;
        i.lag = lag;
    }

    pub(crate) fn run_ended(&self, summary: &Summary, error: Option<String>) {
        let mut i = self.lock();
        for (name, c) in &summary.topics {
            i.ended.entry(name.clone()).or_default().add(c);
        }
        i.ended_checkpoints += summary.checkpoints;
        i.current.clear();
        i.checkpoints = 0;
        i.lag.clear();
        i.running = false;
        if error.is_some() {
            i.last_error = error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_the_end_of_a_run() {
        let s = MirrorStatus::default();
        let mut sum = Summary::default();
        let c = sum.topics.entry("day1".into()).or_default();
        c.target = "buf".into();
        c.read = 10;
        c.mirrored = 9;
        c.skipped = 1;
        sum.checkpoints = 2;
        s.run_started();
        s.publish(&sum, [("day1".to_owned(), 5)].into_iter().collect());
        let v = s.view();
        assert!(v.running);
        assert_eq!(v.topics["day1"].counts.mirrored, 9);
        assert_eq!(v.topics["day1"].lag, 5);
        s.run_ended(&sum, Some("boom".into()));
        s.run_started();
        s.publish(&sum, BTreeMap::new());
        let v = s.view();
        assert_eq!(v.topics["day1"].counts.mirrored, 18);
        assert_eq!(v.topics["day1"].counts.target, "buf");
        assert_eq!(v.checkpoints, 4);
        assert_eq!(v.runs, 2);
        assert_eq!(v.last_error.as_deref(), Some("boom"));
    }
}
