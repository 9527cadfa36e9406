//! Latency histograms and rate arithmetic.
//!
//! Latencies go into an HdrHistogram in microseconds (1 µs .. 1 hour, three
//! significant digits), so p99.9 and max are exact to 0.1 % however long the
//! run; a sample beyond the range is clamped to it and counted as clamped
//! rather than dropped. Rates are plain count / seconds; keeping them here,
//! tested, means the report's arithmetic is checked in one place.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest trackable latency: one hour, in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
    clamped: u64,
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Samples above the histogram's range (1 h), recorded as 1 h.
    pub clamped: u64,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty histogram covering 1 µs .. 1 h at 3 significant digits.
    pub fn new() -> Self {
        // The bounds are constants that satisfy the crate's rules
        // (low >= 1, high >= 2 * low, sigfig <= 5), so this cannot fail.
        #[allow(clippy::expect_used)]
        let hist = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds are valid");
        Self { hist, clamped: 0 }
    }

    /// Records one latency; zero counts as 1 µs, above 1 h as 1 h (clamped).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let v = if micros > MAX_MICROS {
            self.clamped += 1;
            MAX_MICROS
        } else {
            micros.max(1)
        };
        // `v` is within the histogram's bounds, so recording cannot fail.
        let _ = self.hist.record(v);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.clamped += other.clamped;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// p50 / p99 / p99.9 / max / mean in milliseconds (all zero when empty).
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.hist.is_empty() {
            return LatencySummary {
                count: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
                clamped: 0,
            };
        }
        LatencySummary {
            count: self.hist.len(),
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
            mean_ms: self.hist.mean() / 1000.0,
            clamped: self.clamped,
        }
    }
}

/// Events per second; zero when no time passed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// Megabytes (10^6 bytes) per second; zero when no time passed.
pub fn mb_per_second(bytes: u64, elapsed: Duration) -> f64 {
    per_second(bytes, elapsed) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand_micros() {
        let mut r = LatencyRecorder::new();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_ms, 0.5);
        assert_eq!(s.p99_ms, 0.99);
        assert_eq!(s.p999_ms, 0.999);
        assert_eq!(s.max_ms, 1.0);
        assert!((s.mean_ms - 0.5005).abs() < 1e-9, "{}", s.mean_ms);
    }

    #[test]
    fn tail_is_seen_at_p999_not_p99() {
        let mut r = LatencyRecorder::new();
        for _ in 0..998 {
            r.record(Duration::from_millis(2));
        }
        r.record(Duration::from_millis(250));
        r.record(Duration::from_millis(250));
        let s = r.summary();
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p99_ms, 2.0);
        // 250 ms at 3 significant digits: within 0.1 %.
        assert!((s.p999_ms - 250.0).abs() <= 0.25, "{}", s.p999_ms);
        assert!((s.max_ms - 250.0).abs() <= 0.25, "{}", s.max_ms);
    }

    #[test]
    fn zero_and_huge_are_kept_not_dropped() {
        let mut r = LatencyRecorder::new();
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(7200));
        let s = r.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.clamped, 1);
        assert!(s.max_ms >= 3_600_000.0 * 0.999);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = LatencyRecorder::new().summary();
        assert_eq!(s.count, 0);
        assert_eq!(s.max_ms, 0.0);
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 2);
        // 3 ms = 3000 µs sits in a bucket 2 µs wide at 3 significant digits.
        assert!((s.max_ms - 3.0).abs() <= 0.003, "{}", s.max_ms);
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(1000, Duration::from_millis(500)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(mb_per_second(42_000_000, Duration::from_secs(2)), 21.0);
    }
}
