//! When each message is due: a fixed-rate schedule or as fast as possible.
//!
//! The schedule is open-loop: message `i` is due at `start + i / rate`
//! whatever happened to message `i - 1`. Latencies are measured from the due
//! time, not from the moment the generator got round to sending, so a broker
//! that stalls the producer is charged for the whole queue that built up
//! behind the stall (no "coordinated omission"). How far the generator
//! itself fell behind is reported separately as the schedule lag.

use std::time::{Duration, Instant};

use serde::Serialize;

/// How fast to offer messages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "per_second")]
pub enum Rate {
    /// A fixed number of messages per second.
    Fixed(f64),
    /// Each message as soon as the client accepts it.
    Max,
}

impl Rate {
    /// Parses `max` or a positive number of messages per second.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Self::Fixed(r)),
            _ => Err(format!(
                "rate must be `max` or a positive number, got `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(r) => write!(f, "{r}/s"),
            Self::Max => f.write_str("max"),
        }
    }
}

/// The due times of a run.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: Instant,
    rate: Rate,
}

impl Pacer {
    /// A schedule starting at `start`.
    pub fn new(start: Instant, rate: Rate) -> Self {
        Self { start, rate }
    }

    /// Offset of message `i`'s due time from the start (`None` at max rate).
    pub fn offset_of(&self, i: u64) -> Option<Duration> {
        match self.rate {
            Rate::Fixed(r) => Some(Duration::from_secs_f64(i as f64 / r)),
            Rate::Max => None,
        }
    }

    /// When message `i` is due; `now` at max rate.
    pub fn due(&self, i: u64, now: Instant) -> Instant {
        match self.offset_of(i) {
            Some(off) => self.start + off,
            None => now,
        }
    }

    /// Sleeps until `due` (returns at once when it has passed).
    pub fn wait_until(due: Instant) {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(Rate::parse("max"), Ok(Rate::Max));
        assert_eq!(Rate::parse("MAX"), Ok(Rate::Max));
        assert_eq!(Rate::parse("1000"), Ok(Rate::Fixed(1000.0)));
        assert_eq!(Rate::parse("2.5"), Ok(Rate::Fixed(2.5)));
        for bad in ["0", "-5", "fast", "", "inf", "NaN"] {
            assert!(Rate::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn fixed_schedule_is_open_loop() {
        let t0 = Instant::now();
        let p = Pacer::new(t0, Rate::Fixed(10_000.0));
        assert_eq!(p.offset_of(0), Some(Duration::ZERO));
        assert_eq!(p.offset_of(1), Some(Duration::from_micros(100)));
        assert_eq!(p.offset_of(10_000), Some(Duration::from_secs(1)));
        // The due time does not depend on when we ask.
        let late = t0 + Duration::from_secs(5);
        assert_eq!(p.due(3, late), t0 + Duration::from_micros(300));
    }

    #[test]
    fn max_rate_is_due_now() {
        let t0 = Instant::now();
        let p = Pacer::new(t0, Rate::Max);
        let now = t0 + Duration::from_millis(7);
        assert_eq!(p.due(123, now), now);
        assert_eq!(p.offset_of(123), None);
    }
}
