//! The replication benchmark (issue 7's target): acks=all throughput at
//! replication factor N against replication factor 1 in the same
//! invocation, and leader failover time.
//!
//! Throughput runs alternate a fresh 1-node cluster (replication factor 1
//! through the same Raft code path) and a fresh N-node cluster, A B A B, so
//! the machine's drift stays inside each pair; each run is the ordinary
//! `run::run` (same payloads, producer, checks) with every node's CPU
//! sampled around it. The comparison is `compare::compare(rfN, rf1)`, so
//! every ratio reads "RF N ÷ RF 1". The failover part is `failover`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cluster::{sample_nodes, usage_between, ClusterSpec, ClusterUsage, SpawnedCluster};
use crate::compare::{self, Comparison, Spread};
use crate::error::BenchError;
use crate::failover::{FailoverResult, TARGET};
use crate::results::RunResult;

/// The throughput target: RF N ÷ RF 1 acked msgs/s at least this.
pub const THROUGHPUT_TARGET: f64 = 0.6;

/// One throughput run on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRun {
    /// 1-based pair.
    pub pair: usize,
    /// Replication factor (cluster size).
    pub replication_factor: usize,
    /// All nodes' CPU over the run.
    pub usage: ClusterUsage,
    /// Wall seconds of the run (for cores).
    pub wall_seconds: f64,
}

/// What the replication benchmark found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationReport {
    /// The larger cluster's size.
    pub nodes: usize,
    /// Each throughput run's cluster usage, in run order.
    pub runs: Vec<ClusterRun>,
    /// RF N ÷ RF 1 acked msgs/s over the pairs.
    pub throughput_ratio: Option<Spread>,
    /// The target ratio.
    pub throughput_target: f64,
    /// Median ratio ≥ target (`None` when throughput was not measured).
    pub throughput_met: Option<bool>,
    /// The failover measurement, when run.
    pub failover: Option<FailoverResult>,
}

/// Runs `pairs` × (RF 1, RF N) throughput runs. `run_one(cluster, name)`
/// does one run on a started cluster. Returns the runs in order (RF1, RFN,
/// RF1, ...), the comparison RF N ÷ RF 1 and each run's cluster usage.
pub fn throughput_pairs(
    rf1: &ClusterSpec,
    rfn: &ClusterSpec,
    pairs: usize,
    run_one: &mut dyn FnMut(&SpawnedCluster, &str) -> Result<RunResult, BenchError>,
) -> Result<(Vec<RunResult>, Comparison, Vec<ClusterRun>), BenchError> {
    if pairs == 0 {
        return Err(BenchError::Compare("zero pairs asked for".into()));
    }
    let mut ones = Vec::with_capacity(pairs);
    let mut ns = Vec::with_capacity(pairs);
    let mut all = Vec::with_capacity(2 * pairs);
    let mut usage = Vec::with_capacity(2 * pairs);
    for pair in 1..=pairs {
        for (k, spec) in [rf1, rfn].into_iter().enumerate() {
            let cluster = SpawnedCluster::start(spec.clone())?;
            let before = sample_nodes(&cluster);
            let started = std::time::Instant::now();
            let result = run_one(&cluster, &spec.name);
            let after = sample_nodes(&cluster);
            let wall = started.elapsed().as_secs_f64();
            let stopped = cluster.stop();
            let result = result?;
            stopped?;
            usage.push(ClusterRun {
                pair,
                replication_factor: spec.nodes,
                usage: usage_between(&before, &after),
                wall_seconds: wall,
            });
            if k == 0 {
                ones.push(result.clone());
            } else {
                ns.push(result.clone());
            }
            all.push(result);
        }
    }
    let comparison = compare::compare(&ns, &ones)?;
    Ok((all, comparison, usage))
}

impl ReplicationReport {
    /// Assembles the report from what was measured.
    pub fn new(
        nodes: usize,
        runs: Vec<ClusterRun>,
        comparison: Option<&Comparison>,
        failover: Option<FailoverResult>,
    ) -> Self {
        let throughput_ratio = comparison.and_then(|c| {
            c.spreads
                .iter()
                .find(|m| m.metric == "acked msgs/s")
                .and_then(|m| m.ratio)
        });
        Self {
            nodes,
            runs,
            throughput_met: throughput_ratio.map(|r| r.median >= THROUGHPUT_TARGET),
            throughput_ratio,
            throughput_target: THROUGHPUT_TARGET,
            failover,
        }
    }

    /// The Markdown section.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut s);
        s
    }

    fn write_markdown(&self, s: &mut String) -> std::fmt::Result {
        writeln!(s, "#### Replication (issue 7 targets)\n")?;
        if !self.runs.is_empty() {
            writeln!(
                s,
                "| run | pair | replication factor | all nodes' CPU s (cores) | per node CPU s / peak RSS MB |"
            )?;
            writeln!(s, "| ---: | ---: | ---: | --- | --- |")?;
            for (i, r) in self.runs.iter().enumerate() {
                let cores = if r.wall_seconds > 0.0 {
                    r.usage.cpu_seconds / r.wall_seconds
                } else {
                    0.0
                };
                let per: Vec<String> = r
                    .usage
                    .nodes
                    .iter()
                    .map(|(id, cpu, rss)| format!("node {id}: {cpu:.1} / {:.0}", *rss as f64 / 1e6))
                    .collect();
                writeln!(
                    s,
                    "| {} | {} | {} | {:.1} ({:.2}) | {} |",
                    i + 1,
                    r.pair,
                    r.replication_factor,
                    r.usage.cpu_seconds,
                    cores,
                    per.join("; ")
                )?;
            }
            writeln!(s)?;
        }
        match self.throughput_ratio {
            Some(r) => writeln!(
                s,
                "**Throughput, RF {} ÷ RF 1 acked msgs/s** over {} pairs: min {:.3}, median {:.3}, max {:.3}. \
                 Target ≥ {:.2}: **{}**.\n",
                self.nodes,
                r.n,
                r.min,
                r.median,
                r.max,
                self.throughput_target,
                if r.median >= self.throughput_target {
                    "met"
                } else {
                    "not met"
                }
            )?,
            None => writeln!(s, "Throughput: not measured.\n")?,
        }
        let Some(f) = &self.failover else {
            return writeln!(s, "Failover: not measured.\n");
        };
        writeln!(
            s,
            "Failover: {} nodes, one-partition topic `{}` replicated on every node, {:.0} msgs/s steadily \
             (acks=all, idempotent; client settings {}).\n",
            f.nodes,
            f.topic,
            f.rate,
            if f.producer_extra.is_empty() {
                "default".to_string()
            } else {
                f.producer_extra
                    .iter()
                    .map(|(k, v)| format!("`{k}={v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )?;
        writeln!(
            s,
            "| round | killed (leader, term) | kill -9 → first ack of a message sent after the kill, ms | → first ack of any message, ms | new leader (term) | failed deliveries | restart → caught up, ms | producer errors |"
        )?;
        writeln!(s, "| ---: | --- | ---: | ---: | --- | ---: | ---: | --- |")?;
        for r in &f.rounds {
            writeln!(
                s,
                "| {} | node {} (term {}) | {} | {} | {} | {} | {:.0} | {} |",
                r.round,
                r.killed,
                r.killed_term,
                r.first_ack_ms
                    .map_or("**none**".into(), |m| format!("{m:.0}")),
                r.first_any_ack_ms
                    .map_or("none".into(), |m| format!("{m:.0}")),
                r.new_leader
                    .map_or("unknown".into(), |(n, t)| format!("node {n} ({t})")),
                r.failed,
                r.catch_up_ms,
                if r.producer_errors.is_empty() {
                    "none".to_string()
                } else {
                    format!("**{}**", r.producer_errors.join("; ").replace('|', "/"))
                },
            )?;
        }
        writeln!(s)?;
        let target_ms = TARGET.as_secs_f64() * 1000.0;
        match f.first_ack {
            Some(sp) => writeln!(
                s,
                "**Failover, kill -9 → first successful produce**: median {:.0} ms, max {:.0} ms over {} of {} rounds. \
                 Target < {target_ms:.0} ms in every round (and no producer error): **{}**. Messages sent {}, acknowledged {}, failed {}, abandoned with a dead producer {}{}.\n",
                sp.median,
                sp.max,
                sp.n,
                f.rounds.len(),
                if f.target_met { "met" } else { "not met" },
                f.sent,
                f.acknowledged,
                f.failed,
                f.abandoned,
                f.first_failure
                    .as_deref()
                    .map_or(String::new(), |m| format!(" (first failure: {m})")),
            )?,
            None => writeln!(
                s,
                "**Failover**: no round had an acknowledgement after the kill. Target: **not met**.\n"
            )?,
        }
        Ok(())
    }
}
