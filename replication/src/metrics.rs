//! Stage timings of the replication path, for `/metrics`: how long a proposal takes to commit,
//! how long the driver's turns and their phases take, and how much work a turn does.
//!
//! Lock-free (relaxed atomics): the driver thread records, the metrics page reads. A reader may
//! see a bucket count and the total from slightly different moments; that is fine for a
//! dashboard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in microseconds (the last bucket is `+Inf`).
pub const BUCKET_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A fixed-bucket latency histogram (Prometheus style: cumulative on render).
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKET_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram (usable in a `static`).
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKET_BOUNDS_US.len() + 1],
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKET_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKET_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound (`None` = `+Inf`), the sum in microseconds and the
    /// count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.load(Ordering::Relaxed);
            cumulative.push((BUCKET_BOUNDS_US.get(i).copied(), acc));
        }
        HistogramSnapshot {
            cumulative,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in µs, observations at or below it)`; `None` is `+Inf`.
    pub cumulative: Vec<(Option<u64>, u64)>,
    /// Sum of all observations, µs.
    pub sum_us: u64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// The smallest bucket bound (µs) at or below which at least `q` (0..=1) of the
    /// observations fall; `None` without observations or when it is the `+Inf` bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let want = (q * self.count as f64).ceil() as u64;
        self.cumulative
            .iter()
            .find(|(_, c)| *c >= want.max(1))
            .and_then(|(b, _)| *b)
    }
}

/// What the driver records (see the module docs).
#[derive(Debug, Default)]
pub struct DriverMetrics {
    /// Proposal accepted by the leader → committed (its produce may be answered).
    pub commit_latency: Histogram,
    /// One whole turn.
    pub turn: Histogram,
    /// The part of a turn that takes `Ready`s and writes new entries (no sync).
    pub turn_store: Histogram,
    /// The part of a turn that waits for data syncs (turns with at least one dirty partition).
    pub turn_sync: Histogram,
    /// The part of a turn after the syncs: acknowledgements, applying, high watermarks.
    pub turn_apply: Histogram,
    /// Turns run.
    pub turns: AtomicU64,
    /// Turns in which at least one group had a `Ready`.
    pub busy_turns: AtomicU64,
    /// fdatasync calls.
    pub syncs: AtomicU64,
    /// Raft messages handed to the transport.
    pub messages_sent: AtomicU64,
    /// Raft messages received.
    pub messages_received: AtomicU64,
    /// Proposals accepted (leader).
    pub proposals: AtomicU64,
    /// Recorded by the loop that runs the driver: handling one round of inputs (messages,
    /// proposals) before a turn.
    pub inputs_phase: Histogram,
    /// Recorded by the loop that runs the driver: inputs handled.
    pub inputs: AtomicU64,
}

impl DriverMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative.first(), Some(&(Some(100), 1)));
        assert_eq!(s.cumulative.last(), Some(&(None, 4)));
        assert!(s.cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(s.quantile_bound_us(0.5), Some(500));
        assert_eq!(s.quantile_bound_us(0.75), Some(5_000));
        assert_eq!(s.quantile_bound_us(1.0), None);
        assert_eq!(Histogram::default().snapshot().quantile_bound_us(0.5), None);
    }
}
