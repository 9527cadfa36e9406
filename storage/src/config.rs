//! Per-partition log configuration and its mapping from Kafka topic config keys.
//!
//! Defaults follow Kafka where Kafka has one (1 GiB segments, 7-day retention, 4 KiB index
//! interval) and Starlog's workload where it differs (10 MiB batches, because one alert is
//! 40-100 KB and producers batch many of them).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::StorageError;

/// When appended bytes are forced to disk, and so when `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append returns only after an fdatasync covering it. Concurrent appends share one
    /// fdatasync (group commit).
    Always,
    /// Group commit with a coalescing delay: an append waits until an fdatasync covers it.
    /// The append that performs the sync first waits for appends already in progress to join,
    /// but at most until the interval has passed since the previous sync (or until 1 MiB is
    /// pending). It never waits for appends that have not started, so a lone sequential
    /// producer syncs at once, and a busy partition does about one fdatasync per interval.
    /// Added latency is bounded by the interval plus one fdatasync.
    Interval(Duration),
    /// Never fsync on the append path (rely on replication or the OS); `append` returns after
    /// the write. [`crate::PartitionLog::flush`] still syncs on demand.
    Never,
}

/// Default flush interval: 5 ms bounds the added produce latency while letting a busy
/// partition coalesce hundreds of appends into one fdatasync.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// Largest segment size: index entries hold 32-bit file positions.
pub const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Configuration of one partition log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment before it would exceed this many bytes (default 1 GiB,
    /// at most [`MAX_SEGMENT_BYTES`]).
    pub segment_bytes: u64,
    /// Roll when the incoming batch's max timestamp is this much later than the first batch's
    /// timestamp in the active segment (default 7 days), like Kafka's `segment.ms`.
    pub segment_ms: u64,
    /// Delete sealed segments whose newest timestamp is older than this (default 7 days);
    /// `None` keeps them forever (Kafka's -1).
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this; `None` = no limit.
    pub retention_bytes: Option<u64>,
    /// Bytes between sparse index entries (default 4096).
    pub index_interval_bytes: u32,
    /// Largest accepted batch (default 10 MiB); larger => [`StorageError::BatchTooLarge`].
    pub max_batch_bytes: u32,
    /// Durability policy (default `Interval(5 ms)`, see [`DEFAULT_FLUSH_INTERVAL`]).
    pub flush: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 604_800_000,
            retention_ms: Some(604_800_000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            max_batch_bytes: 10 << 20,
            flush: FlushPolicy::Interval(DEFAULT_FLUSH_INTERVAL),
        }
    }
}

impl LogConfig {
    /// Segment size clamped to what the index format can address.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, MAX_SEGMENT_BYTES)
    }
}

/// Starlog's own topic config key for the flush policy: `always`, `never`, or a number of
/// milliseconds for `Interval` (`0` means `always`). It overrides `flush.ms`/`flush.messages`.
pub const FLUSH_POLICY_KEY: &str = "starlog.flush.policy";

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidConfig {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn parse_i64(key: &str, value: &str) -> Result<i64, StorageError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|e| invalid(key, value, format!("not an integer: {e}")))
}

/// `-1` => `None`, other negatives rejected, otherwise `Some(v)`.
fn parse_limit(key: &str, value: &str) -> Result<Option<u64>, StorageError> {
    match parse_i64(key, value)? {
        -1 => Ok(None),
        v if v < 0 => Err(invalid(key, value, "must be -1 (unlimited) or >= 0")),
        // Non-negative i64 always fits in u64.
        v => Ok(Some(v.unsigned_abs())),
    }
}

fn parse_positive(key: &str, value: &str, max: u64) -> Result<u64, StorageError> {
    let v = parse_i64(key, value)?;
    if v <= 0 {
        return Err(invalid(key, value, "must be > 0"));
    }
    let v = v.unsigned_abs();
    if v > max {
        return Err(invalid(key, value, format!("must be <= {max}")));
    }
    Ok(v)
}

fn parse_flush_ms(key: &str, value: &str) -> Result<FlushPolicy, StorageError> {
    match parse_i64(key, value)? {
        0 => Ok(FlushPolicy::Always),
        i64::MAX => Ok(FlushPolicy::Never),
        v if v < 0 => Err(invalid(key, value, "must be >= 0")),
        v => Ok(FlushPolicy::Interval(Duration::from_millis(
            v.unsigned_abs(),
        ))),
    }
}

/// Applies Kafka topic config overrides to `base`.
///
/// Understood keys: `retention.ms`, `retention.bytes` (-1 = unlimited), `segment.bytes`,
/// `segment.ms`, `max.message.bytes`, `index.interval.bytes`, `flush.ms` (0 = always,
/// `9223372036854775807` = never, otherwise an interval), `flush.messages` (`1` = always; any other
/// positive value leaves the policy unchanged), and [`FLUSH_POLICY_KEY`]. Other keys (e.g.
/// `cleanup.policy`, `compression.type`) belong to the broker and are ignored here. An invalid
/// value is an [`StorageError::InvalidConfig`] naming the key.
pub fn log_config_from_topic_configs(
    base: &LogConfig,
    configs: &BTreeMap<String, String>,
) -> Result<LogConfig, StorageError> {
    let mut c = base.clone();
    for (key, value) in configs {
        match key.as_str() {
            "retention.ms" => c.retention_ms = parse_limit(key, value)?,
            "retention.bytes" => c.retention_bytes = parse_limit(key, value)?,
            "segment.bytes" => c.segment_bytes = parse_positive(key, value, MAX_SEGMENT_BYTES)?,
            "segment.ms" => c.segment_ms = parse_positive(key, value, i64::MAX as u64)?,
            "max.message.bytes" => {
                // Bounded by i32::MAX, so the narrowing cannot fail.
                let v = parse_positive(key, value, i32::MAX as u64)?;
                c.max_batch_bytes = u32::try_from(v).unwrap_or(u32::MAX);
            }
            "index.interval.bytes" => {
                let v = parse_positive(key, value, i32::MAX as u64)?;
                c.index_interval_bytes = u32::try_from(v).unwrap_or(u32::MAX);
            }
            "flush.ms" if !configs.contains_key(FLUSH_POLICY_KEY) => {
                c.flush = parse_flush_ms(key, value)?;
            }
            "flush.messages" if !configs.contains_key(FLUSH_POLICY_KEY) => {
                let every = parse_positive(key, value, i64::MAX as u64)?;
                c.flush = if every == 1 {
                    FlushPolicy::Always
                } else {
                    c.flush
                };
            }
            FLUSH_POLICY_KEY => {
                c.flush = match value.trim() {
                    "always" => FlushPolicy::Always,
                    "never" => FlushPolicy::Never,
                    other => parse_flush_ms(key, other).map_err(|_| {
                        invalid(key, value, "expected always, never, or milliseconds")
                    })?,
                };
            }
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn overrides_apply() {
        let c = log_config_from_topic_configs(
            &LogConfig::default(),
            &cfg(&[
                ("retention.ms", "-1"),
                ("retention.bytes", "1000"),
                ("segment.bytes", "4096"),
                ("segment.ms", "60000"),
                ("max.message.bytes", "2048"),
                ("flush.ms", "20"),
                ("cleanup.policy", "delete"),
            ]),
        )
        .unwrap();
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.retention_bytes, Some(1000));
        assert_eq!(c.segment_bytes, 4096);
        assert_eq!(c.segment_ms, 60000);
        assert_eq!(c.max_batch_bytes, 2048);
        assert_eq!(c.flush, FlushPolicy::Interval(Duration::from_millis(20)));
    }

    #[test]
    fn flush_policy_key_wins() {
        let c = log_config_from_topic_configs(
            &LogConfig::default(),
            &cfg(&[("flush.ms", "20"), (FLUSH_POLICY_KEY, "never")]),
        )
        .unwrap();
        assert_eq!(c.flush, FlushPolicy::Never);
        let c = log_config_from_topic_configs(
            &LogConfig::default(),
            &cfg(&[(FLUSH_POLICY_KEY, "always")]),
        )
        .unwrap();
        assert_eq!(c.flush, FlushPolicy::Always);
        let c =
            log_config_from_topic_configs(&LogConfig::default(), &cfg(&[("flush.messages", "1")]))
                .unwrap();
        assert_eq!(c.flush, FlushPolicy::Always);
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("retention.ms", "abc"),
            ("retention.ms", "-2"),
            ("retention.bytes", "-5"),
            ("segment.bytes", "0"),
            ("segment.bytes", "99999999999"),
            ("segment.ms", "-1"),
            ("max.message.bytes", "0"),
            ("index.interval.bytes", "x"),
            ("flush.ms", "-3"),
            ("flush.messages", "0"),
            (FLUSH_POLICY_KEY, "sometimes"),
        ] {
            let err =
                log_config_from_topic_configs(&LogConfig::default(), &cfg(&[(k, v)])).unwrap_err();
            match err {
                StorageError::InvalidConfig { key, value, .. } => {
                    assert_eq!(key, k);
                    assert_eq!(value, v);
                }
                other => panic!("unexpected error {other:?}"),
            }
        }
    }
}
