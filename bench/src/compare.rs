//! Side by side: A B A B runs, ratios pair by pair, min / median / max.
//!
//! Two brokers on one small machine are never measured under identical
//! conditions: page cache, thermal state and neighbours drift. Alternating
//! A and B and pairing each A run with the B run right after it keeps the
//! drift inside a pair; the spread of the per-pair ratios (min, median, max)
//! then shows whether a difference is larger than the noise. A ratio is
//! always A ÷ B (Starlog ÷ peer), and each metric says whether higher or
//! lower is better, so `> 1` is not silently read as "A wins".

use serde::Serialize;

use crate::error::BenchError;
use crate::results::RunResult;
use crate::target::{BrokerTarget, RunningBroker};

/// Which direction is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput-like.
    Higher,
    /// Latency- and cost-like.
    Lower,
}

/// The metrics compared, in report order.
pub const METRICS: &[(&str, Better)] = &[
    ("acked msgs/s", Better::Higher),
    ("acked MB/s", Better::Higher),
    ("slowest group msgs/s", Better::Higher),
    ("produce p50 ms", Better::Lower),
    ("produce p99 ms", Better::Lower),
    ("e2e p50 ms", Better::Lower),
    ("e2e p99 ms (worst group)", Better::Lower),
    ("broker CPU s", Better::Lower),
    ("broker peak RSS MB", Better::Lower),
];

/// A metric's value in a run (`None` when the run has no such figure).
pub fn metric(run: &RunResult, name: &str) -> Option<f64> {
    let has_groups = !run.groups.is_empty();
    match name {
        "acked msgs/s" => Some(run.produce.acknowledged_per_s),
        "acked MB/s" => Some(run.produce.acknowledged_mb_per_s),
        "slowest group msgs/s" => has_groups.then(|| run.slowest_group_per_s()),
        "produce p50 ms" => Some(run.produce.latency.p50_ms),
        "produce p99 ms" => Some(run.produce.latency.p99_ms),
        "e2e p50 ms" => has_groups.then_some(run.end_to_end.p50_ms),
        "e2e p99 ms (worst group)" => has_groups.then(|| run.worst_group_e2e_p99_ms()),
        "broker CPU s" => run.broker_usage.map(|u| u.cpu_seconds),
        "broker peak RSS MB" => run.broker_usage.map(|u| u.peak_rss_bytes as f64 / 1e6),
        _ => None,
    }
}

/// `a / b`, when both are finite and `b` is positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

/// Smallest, median and largest of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Smallest.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

/// The spread of `values`; `None` when empty. NaNs are ignored.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[n - 1],
        n,
    })
}

/// One metric in one pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairMetric {
    /// The metric.
    pub metric: &'static str,
    /// Which way is better.
    pub better: Better,
    /// A's value.
    pub a: Option<f64>,
    /// B's value.
    pub b: Option<f64>,
    /// `a / b`.
    pub ratio: Option<f64>,
}

/// One A run and the B run after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    /// 1-based pair number.
    pub pair: usize,
    /// Every metric of the pair.
    pub metrics: Vec<PairMetric>,
    /// Both runs complete (nothing acknowledged lost).
    pub both_complete: bool,
}

/// A metric's ratios over all pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSpread {
    /// The metric.
    pub metric: &'static str,
    /// Which way is better.
    pub better: Better,
    /// Spread of A ÷ B over the pairs that have the ratio.
    pub ratio: Option<Spread>,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// A's name (Starlog).
    pub a: String,
    /// B's name (the peer).
    pub b: String,
    /// Pair by pair.
    pub pairs: Vec<Pair>,
    /// Per metric, over the pairs.
    pub spreads: Vec<MetricSpread>,
}

/// Pairs `a_runs[i]` with `b_runs[i]` and computes every ratio.
pub fn compare(a_runs: &[RunResult], b_runs: &[RunResult]) -> Result<Comparison, BenchError> {
    if a_runs.is_empty() || a_runs.len() != b_runs.len() {
        return Err(BenchError::Compare(format!(
            "need the same, non-zero number of runs on each side (got {} and {})",
            a_runs.len(),
            b_runs.len()
        )));
    }
    let pairs: Vec<Pair> = a_runs
        .iter()
        .zip(b_runs)
        .enumerate()
        .map(|(i, (a, b))| Pair {
            pair: i + 1,
            metrics: METRICS
                .iter()
                .map(|&(name, better)| {
                    let (va, vb) = (metric(a, name), metric(b, name));
                    PairMetric {
                        metric: name,
                        better,
                        a: va,
                        b: vb,
                        ratio: va.zip(vb).and_then(|(x, y)| ratio(x, y)),
                    }
                })
                .collect(),
            both_complete: a.complete && b.complete,
        })
        .collect();
    let spreads = METRICS
        .iter()
        .enumerate()
        .map(|(m, &(name, better))| {
            let ratios: Vec<f64> = pairs.iter().filter_map(|p| p.metrics[m].ratio).collect();
            MetricSpread {
                metric: name,
                better,
                ratio: spread(&ratios),
            }
        })
        .collect();
    Ok(Comparison {
        a: a_runs[0].label.clone(),
        b: b_runs[0].label.clone(),
        pairs,
        spreads,
    })
}

/// Runs `pairs` × (A then B), each on a freshly started broker, via
/// `run_one(broker, target_name)`. Returns A's runs and B's runs in order.
pub fn alternate(
    a: &mut dyn BrokerTarget,
    b: &mut dyn BrokerTarget,
    pairs: usize,
    run_one: &mut dyn FnMut(&dyn RunningBroker, &str) -> Result<RunResult, BenchError>,
) -> Result<(Vec<RunResult>, Vec<RunResult>), BenchError> {
    if pairs == 0 {
        return Err(BenchError::Compare("zero pairs asked for".into()));
    }
    let mut a_runs = Vec::with_capacity(pairs);
    let mut b_runs = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        a_runs.push(run_on(a, run_one)?);
        b_runs.push(run_on(b, run_one)?);
    }
    Ok((a_runs, b_runs))
}

/// Starts `target`, runs once, stops it (also when the run failed).
pub fn run_on(
    target: &mut dyn BrokerTarget,
    run_one: &mut dyn FnMut(&dyn RunningBroker, &str) -> Result<RunResult, BenchError>,
) -> Result<RunResult, BenchError> {
    let name = target.name().to_string();
    let broker = target.start()?;
    let result = run_one(broker.as_ref(), &name);
    let stopped = broker.stop();
    let result = result?;
    stopped?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_refuse_nonsense() {
        assert_eq!(ratio(10.0, 4.0), Some(2.5));
        assert_eq!(ratio(0.0, 4.0), Some(0.0));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(1.0, f64::INFINITY), None);
    }

    #[test]
    fn spreads_of_odd_and_even_counts() {
        assert_eq!(spread(&[]), None);
        let s = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.0, 3.0, 3));
        let s = spread(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.5, 4.0, 4));
        let s = spread(&[5.0, f64::NAN]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (5.0, 5.0, 5.0, 1));
    }

    #[test]
    fn unequal_sides_are_refused() {
        assert!(compare(&[], &[]).is_err());
    }
}
