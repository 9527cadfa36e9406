//! Topic config keys: which ones Starlog accepts, and what it reports.
//!
//! Log-shaping keys (`retention.ms`, `segment.bytes`, ...) are handed to the
//! storage crate, which validates their values. Keys that name behaviour
//! Starlog does not have (log compaction, broker-side recompression,
//! log-append time) are refused rather than silently ignored.

use std::collections::BTreeMap;

use starlog_storage::LogConfig;

/// Keys whose value the storage log consumes.
const LOG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "flush.ms",
];

/// Keys accepted with a fixed set of values: (key, allowed values).
const FIXED_KEYS: &[(&str, &[&str])] = &[
    ("cleanup.policy", &["delete"]),
    ("compression.type", &["producer"]),
    ("message.timestamp.type", &["CreateTime"]),
];

/// Keys accepted and stored for client compatibility, with no effect on a single node.
const INERT_KEYS: &[&str] = &["min.insync.replicas", "unclean.leader.election.enable"];

/// Checks one key/value pair; the error names the key and why.
pub fn check(key: &str, value: &str) -> Result<(), String> {
    if LOG_KEYS.contains(&key) || INERT_KEYS.contains(&key) {
        return Ok(());
    }
    if key == crate::schema_rule::UPSTREAM_REGISTRY_KEY {
        return crate::schema_rule::check_url(value);
    }
    if let Some((_, allowed)) = FIXED_KEYS.iter().find(|(k, _)| *k == key) {
        return if allowed.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "config {key}={value} is not supported; allowed: {}",
                allowed.join(", ")
            ))
        };
    }
    Err(format!("unknown topic config {key}"))
}

/// Checks every pair of a config map.
pub fn check_all(configs: &BTreeMap<String, String>) -> Result<(), String> {
    configs.iter().try_for_each(|(k, v)| check(k, v))
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-1".to_string(), |v| v.to_string())
}

/// Every reported key with its effective value, and whether it is a topic override.
pub fn describe(
    effective: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(String, String, bool)> {
    let flush_ms = match effective.flush {
        starlog_storage::FlushPolicy::Always => "0".to_string(),
        starlog_storage::FlushPolicy::Interval(d) => d.as_millis().to_string(),
        starlog_storage::FlushPolicy::Never => i64::MAX.to_string(),
    };
    let defaults = [
        ("cleanup.policy", "delete".to_string()),
        ("compression.type", "producer".to_string()),
        ("flush.ms", flush_ms),
        ("max.message.bytes", effective.max_batch_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".to_string()),
        ("min.insync.replicas", "1".to_string()),
        ("retention.bytes", opt(effective.retention_bytes)),
        ("retention.ms", opt(effective.retention_ms)),
        ("segment.bytes", effective.segment_bytes.to_string()),
        ("segment.ms", effective.segment_ms.to_string()),
        ("unclean.leader.election.enable", "false".to_string()),
    ];
    let mut all: Vec<(String, String, bool)> = defaults
        .iter()
        .map(|(k, v)| match overrides.get(*k) {
            Some(o) => ((*k).to_string(), o.clone(), true),
            None => ((*k).to_string(), v.clone(), false),
        })
        .collect();
    // Overrides with no default (Starlog's own keys) are reported too.
    all.extend(
        overrides
            .iter()
            .filter(|(k, _)| !defaults.iter().any(|(d, _)| d == k))
            .map(|(k, v)| (k.clone(), v.clone(), true)),
    );
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_and_refuses_unsupported() {
        assert!(check("retention.ms", "1000").is_ok());
        assert!(check("cleanup.policy", "delete").is_ok());
        let e = check("cleanup.policy", "compact").unwrap_err();
        assert!(e.contains("cleanup.policy=compact"), "{e}");
        let e = check("retention.mss", "1").unwrap_err();
        assert!(e.contains("retention.mss"), "{e}");
    }

    #[test]
    fn describe_marks_overrides() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "5".to_string());
        let d = describe(&LogConfig::default(), &o);
        let r = d.iter().find(|(k, _, _)| k == "retention.ms").unwrap();
        assert_eq!((r.1.as_str(), r.2), ("5", true));
        let s = d.iter().find(|(k, _, _)| k == "segment.bytes").unwrap();
        assert!(!s.2);
    }
}
