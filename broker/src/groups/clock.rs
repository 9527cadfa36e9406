//! Time for the coordinator: tokio's monotonic clock for deadlines, plus a wall
//! clock derived from it for commit timestamps and offset retention.
//!
//! Deriving wall time from `tokio::time::Instant` (instead of reading
//! `SystemTime` each time) keeps the two consistent and lets tests drive both
//! with tokio's paused time.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Wall-clock milliseconds anchored to one monotonic instant.
#[derive(Clone, Copy, Debug)]
pub(super) struct Clock {
    base_instant: Instant,
    base_wall_ms: i64,
}

impl Clock {
    pub(super) fn new() -> Self {
        let base_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            // A clock set before 1970 is a host misconfiguration; timestamps then start at 0.
            .unwrap_or(0);
        Self {
            base_instant: Instant::now(),
            base_wall_ms,
        }
    }

    /// Milliseconds since the Unix epoch at `at`.
    pub(super) fn wall_ms_at(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.base_instant);
        self.base_wall_ms
            .saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the Unix epoch now.
    pub(super) fn wall_ms(&self) -> i64 {
        self.wall_ms_at(Instant::now())
    }
}
