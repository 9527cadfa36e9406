//! Limits shared by the notifiers: a rate limit (token bucket), the
//! maximum batch size, the retry policy and the delivery queue's bound, read
//! from the same parameters for every notifier.

use std::time::{Duration, Instant};

use starlog_processors::config::{ConfigError, Params};

/// A token bucket: `per_minute` messages a minute, up to `burst` at once.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    per_minute: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket; `per_minute` 0 means unlimited.
    pub(crate) fn new(per_minute: u64, burst: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let (per_minute, burst) = (per_minute as f64, burst.max(1) as f64);
        RateLimiter {
            per_minute,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_minute / 60.0).min(self.burst);
    }

    /// Takes one token when there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        if self.per_minute <= 0.0 {
            return true;
        }
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero when one is).
    pub(crate) fn wait_time(&mut self) -> Duration {
        if self.per_minute <= 0.0 {
            return Duration::ZERO;
        }
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / self.per_minute)
        }
    }
}

/// The limits of one notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Messages a minute (0: unlimited).
    pub rate_per_minute: u64,
    /// Messages that may go at once after a quiet period.
    pub burst: u64,
    /// Alerts per message (1: a message per alert).
    pub max_batch: usize,
    /// Alerts waiting for delivery before new ones are dead-lettered.
    pub queue_capacity: usize,
    /// Further attempts after a failed delivery that may succeed later.
    pub max_retries: u32,
    /// First back-off between attempts (doubling, at most 30 s).
    pub retry_backoff: Duration,
    /// Longest wait a receiver's Retry-After is honoured with.
    pub max_retry_after: Duration,
    /// Connect / read / write timeout of one attempt.
    pub timeout: Duration,
}

/// Cap of the doubling back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Limits {
    /// Reads `rate_limit_per_minute` (default `default_rate`), `burst`
    /// (default: the rate, at least 1), `max_batch` (default 1),
    /// `queue_capacity` (1000), `max_retries` (3), `retry_backoff_ms` (500),
    /// `max_retry_after_s` (60) and `timeout_ms` (10000).
    ///
    /// # Errors
    /// Mistyped or out-of-range values.
    pub(crate) fn parse(p: &mut Params<'_>, default_rate: u64) -> Result<Self, ConfigError> {
        let rate_per_minute = p.optional_u64(
            "rate_limit_per_minute",
            "a number of messages a minute",
            default_rate,
        )?;
        let burst = p.optional_u64("burst", "a number of messages", rate_per_minute.max(1))?;
        let max_batch = p.optional_u64("max_batch", "a number of alerts per message", 1)?;
        if max_batch == 0 {
            return Err(p.error("max_batch", "must be at least 1"));
        }
        let queue_capacity = p.optional_u64("queue_capacity", "a number of alerts", 1000)?;
        if queue_capacity == 0 {
            return Err(p.error("queue_capacity", "must be at least 1"));
        }
        let max_retries = p.optional_u64("max_retries", "a number of retries", 3)?;
        let retry_backoff_ms = p.optional_u64("retry_backoff_ms", "milliseconds", 500)?;
        let max_retry_after_s = p.optional_u64("max_retry_after_s", "seconds", 60)?;
        let timeout_ms = p.optional_u64("timeout_ms", "milliseconds", 10_000)?;
        if timeout_ms == 0 {
            return Err(p.error("timeout_ms", "must be at least 1"));
        }
        Ok(Limits {
            rate_per_minute,
            burst,
            max_batch: usize::try_from(max_batch).unwrap_or(usize::MAX),
            queue_capacity: usize::try_from(queue_capacity).unwrap_or(usize::MAX),
            max_retries: u32::try_from(max_retries).unwrap_or(u32::MAX),
            retry_backoff: Duration::from_millis(retry_backoff_ms),
            max_retry_after: Duration::from_secs(max_retry_after_s),
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// The wait before attempt `attempt` (1 = the first retry).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_backoff.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_waits() {
        let mut r = RateLimiter::new(60, 2);
        assert!(r.try_take());
        assert!(r.try_take());
        assert!(!r.try_take());
        assert!(r.wait_time() > Duration::from_millis(500));
        let mut unlimited = RateLimiter::new(0, 1);
        for _ in 0..1000 {
            assert!(unlimited.try_take());
        }
    }
}
