//! A pipeline's counters, read from the broker's Prometheus `/metrics` page.
//!
//! The bench checks the chain's output itself, record by record; the
//! broker's own counters (records in, passed, skipped, dead-lettered,
//! failures, lag) are reported beside that check so a disagreement between
//! what the broker says it did and what a consumer saw is visible. The page
//! is fetched with one plain HTTP/1.0 GET (`broker_http`); comment lines
//! (`# HELP`, `# TYPE`, `# EOF`) are skipped.

use std::time::Duration;

use serde::Serialize;

use crate::broker_http;
use crate::error::BenchError;

/// One pipeline's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PipelineMetrics {
    /// `starlog_pipeline_records_in_total`.
    pub records_in: u64,
    /// `starlog_pipeline_passed_total`.
    pub passed: u64,
    /// `starlog_pipeline_skipped_total`.
    pub skipped: u64,
    /// `starlog_pipeline_dead_lettered_total`.
    pub dead_lettered: u64,
    /// `starlog_pipeline_failures_total`.
    pub failures: u64,
    /// `starlog_pipeline_lag`.
    pub lag: i64,
}

/// Fetches `http://<addr>/metrics` and returns the body.
pub fn fetch(addr: &str, timeout: Duration) -> Result<String, BenchError> {
    broker_http::request(addr, "GET", "/metrics", None, timeout)
}

/// The counters of pipeline `name` in a Prometheus text page. Every one of
/// the six families must be present for it.
pub fn parse(page: &str, name: &str, addr: &str) -> Result<PipelineMetrics, BenchError> {
    let fail = |reason: String| BenchError::Metrics {
        addr: addr.to_string(),
        path: "/metrics".to_string(),
        reason,
    };
    let label = format!("pipeline=\"{name}\"");
    let mut m = PipelineMetrics::default();
    let mut found = [false; 6];
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((family, labels)) = series.split_once('{') else {
            continue;
        };
        if !labels.split(',').any(|l| l.trim_end_matches('}') == label) {
            continue;
        }
        let slot = match family {
            "starlog_pipeline_records_in_total" => 0,
            "starlog_pipeline_passed_total" => 1,
            "starlog_pipeline_skipped_total" => 2,
            "starlog_pipeline_dead_lettered_total" => 3,
            "starlog_pipeline_failures_total" => 4,
            "starlog_pipeline_lag" => 5,
            _ => continue,
        };
        let v: i64 = value
            .trim()
            .parse()
            .map_err(|_| fail(format!("`{line}`: value is not an integer")))?;
        let counter = || u64::try_from(v).map_err(|_| fail(format!("`{line}`: negative counter")));
        match slot {
            0 => m.records_in = counter()?,
            1 => m.passed = counter()?,
            2 => m.skipped = counter()?,
            3 => m.dead_lettered = counter()?,
            4 => m.failures = counter()?,
            _ => m.lag = v,
        }
        found[slot] = true;
    }
    if let Some(i) = found.iter().position(|f| !f) {
        let family = [
            "records_in_total",
            "passed_total",
            "skipped_total",
            "dead_lettered_total",
            "failures_total",
            "lag",
        ][i];
        return Err(fail(format!(
            "no starlog_pipeline_{family} for pipeline `{name}`"
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker's OpenMetrics page: `# HELP`/`# TYPE` name a counter family
    /// without `_total`, its samples carry it, and the page ends with `# EOF`.
    const PAGE: &str = "# HELP starlog_pipeline_records_in Input records handled.\n\
        # TYPE starlog_pipeline_records_in counter\n\
        starlog_pipeline_records_in_total{pipeline=\"other\",source=\"x\"} 9\n\
        starlog_pipeline_records_in_total{pipeline=\"bench-chain\",source=\"in\"} 300\n\
        starlog_pipeline_passed_total{pipeline=\"bench-chain\",source=\"in\"} 290\n\
        starlog_pipeline_skipped_total{pipeline=\"bench-chain\",source=\"in\"} 10\n\
        starlog_pipeline_dead_lettered_total{pipeline=\"bench-chain\",source=\"in\"} 0\n\
        starlog_pipeline_failures_total{pipeline=\"bench-chain\",source=\"in\"} 1\n\
        # TYPE starlog_pipeline_lag gauge\n\
        starlog_pipeline_lag{pipeline=\"bench-chain\",source=\"in\"} 4\n\
        starlog_partition_high_watermark{topic=\"in\",partition=\"0\"} 300\n\
        # EOF\n";

    #[test]
    fn reads_one_pipelines_counters() {
        let m = parse(PAGE, "bench-chain", "h:1").unwrap();
        assert_eq!(
            m,
            PipelineMetrics {
                records_in: 300,
                passed: 290,
                skipped: 10,
                dead_lettered: 0,
                failures: 1,
                lag: 4,
            }
        );
    }

    #[test]
    fn a_missing_family_or_bad_value_is_an_error() {
        let err = parse(PAGE, "nope", "h:1").unwrap_err().to_string();
        assert!(
            err.contains("no starlog_pipeline_records_in_total"),
            "{err}"
        );
        assert!(err.contains("http://h:1/metrics"), "{err}");
        let without_lag: String = PAGE
            .lines()
            .filter(|l| !l.starts_with("starlog_pipeline_lag"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = parse(&without_lag, "bench-chain", "h:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no starlog_pipeline_lag"), "{err}");
        let bad = PAGE.replace("} 290", "} 2x0");
        let err = parse(&bad, "bench-chain", "h:1").unwrap_err().to_string();
        assert!(err.contains("not an integer"), "{err}");
        let neg = PAGE.replace("} 290", "} -1");
        let err = parse(&neg, "bench-chain", "h:1").unwrap_err().to_string();
        assert!(err.contains("negative counter"), "{err}");
    }
}
