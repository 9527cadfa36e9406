//! The report of one bench invocation: Markdown for people, JSON for tools.
//!
//! Both forms hold the same facts: the machine and commit, the command, the
//! machine's limits, every run (with each group's delivery verdict and the
//! run's share of the limits) and, for a comparison, the pair-by-pair ratios
//! and their spread. A run that lost or corrupted a message says so in its
//! row; nothing is averaged away.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compare::{Better, Comparison};
use crate::error::BenchError;
use crate::limits::{fractions, Fractions, MachineLimits};
use crate::machine::MachineInfo;
use crate::replication::ReplicationReport;
use crate::results::RunResult;
use crate::security_cost::SecurityCost;
use crate::stats::LatencySummary;

/// One run with its share of the machine's limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEntry {
    /// The run.
    pub run: RunResult,
    /// Its figures as fractions of the limits (when limits were measured).
    pub limit_fractions: Option<Fractions>,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// `starlog-bench <version>`.
    pub tool: String,
    /// The command line.
    pub command: String,
    /// The machine and commit.
    pub machine: MachineInfo,
    /// The machine's limits, measured in the same invocation.
    pub limits: Option<MachineLimits>,
    /// Every run, in the order run.
    pub runs: Vec<RunEntry>,
    /// The side-by-side comparisons (one per rate), if any were run.
    pub comparisons: Vec<Comparison>,
    /// The replication benchmark's own figures (`starlog-bench cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationReport>,
    /// The security comparison's own figures (`starlog-bench security`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityCost>,
}

impl BenchReport {
    /// Assembles a report, computing each run's share of the limits.
    pub fn new(
        command: String,
        machine: MachineInfo,
        limits: Option<MachineLimits>,
        runs: Vec<RunResult>,
        comparisons: Vec<Comparison>,
    ) -> Self {
        let runs = runs
            .into_iter()
            .map(|run| RunEntry {
                limit_fractions: limits.as_ref().map(|l| {
                    fractions(
                        l,
                        run.produce.acknowledged_mb_per_s,
                        run.consumed_mb_per_s_total(),
                    )
                }),
                run,
            })
            .collect();
        Self {
            tool: format!("starlog-bench {}", env!("CARGO_PKG_VERSION")),
            command,
            machine,
            limits,
            runs,
            comparisons,
            replication: None,
            security: None,
        }
    }

    /// Adds the replication benchmark's section.
    #[must_use]
    pub fn with_replication(mut self, replication: ReplicationReport) -> Self {
        self.replication = Some(replication);
        self
    }

    /// Adds the security comparison's section.
    #[must_use]
    pub fn with_security(mut self, security: SecurityCost) -> Self {
        self.security = Some(security);
        self
    }

    /// True when every run delivered every acknowledged message intact.
    pub fn all_complete(&self) -> bool {
        self.runs.iter().all(|r| r.run.complete)
    }

    /// Writes `<stem>.json` and `<stem>.md` in `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), BenchError> {
        let fail = |path: &Path, reason: String| BenchError::WriteReport {
            path: path.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
        let json_path = dir.join(format!("{stem}.json"));
        let json =
            serde_json::to_string_pretty(self).map_err(|e| fail(&json_path, e.to_string()))?;
        std::fs::write(&json_path, json + "\n").map_err(|e| fail(&json_path, e.to_string()))?;
        let md_path = dir.join(format!("{stem}.md"));
        std::fs::write(&md_path, self.markdown()).map_err(|e| fail(&md_path, e.to_string()))?;
        Ok((json_path, md_path))
    }

    /// The Markdown form.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_markdown(&mut s);
        s
    }

    fn write_markdown(&self, s: &mut String) -> std::fmt::Result {
        let m = &self.machine;
        writeln!(s, "### {} — {}\n", self.tool, m.date_utc)?;
        writeln!(
            s,
            "Machine: {} cores ({}), {} memory, data on {}, kernel {}, load average {} at start; commit {}{}.  ",
            m.nproc,
            m.cpu_model.as_deref().unwrap_or("CPU unknown"),
            m.memory_bytes.map_or("unknown".into(), |b| format!(
                "{:.1} GiB",
                b as f64 / (1u64 << 30) as f64
            )),
            m.filesystem.as_deref().unwrap_or("unknown filesystem"),
            m.kernel.as_deref().unwrap_or("unknown"),
            m.load_average.as_deref().unwrap_or("unknown"),
            m.commit.as_deref().unwrap_or("unknown"),
            if m.dirty == Some(true) {
                " (with uncommitted changes)"
            } else {
                ""
            },
        )?;
        writeln!(s, "Command: `{}`\n", self.command)?;
        if let Some(l) = &self.limits {
            writeln!(s, "| machine limit | MB/s | measured |")?;
            writeln!(s, "| --- | ---: | --- |")?;
            for (name, t) in [
                ("sequential write + fdatasync", &l.disk_write_fdatasync),
                ("loopback TCP (one stream)", &l.loopback_tcp),
                ("memory copy", &l.memory_copy),
            ] {
                writeln!(
                    s,
                    "| {name} | {:.0} | {:.2} GiB in {:.2} s |",
                    t.mb_per_s,
                    t.bytes as f64 / (1u64 << 30) as f64,
                    t.seconds
                )?;
            }
            writeln!(s)?;
        }
        self.write_runs(s)?;
        for c in &self.comparisons {
            write_comparison(s, c)?;
        }
        if let Some(r) = &self.replication {
            s.push_str(&r.markdown());
        }
        if let Some(c) = &self.security {
            s.push_str(&c.markdown());
        }
        Ok(())
    }

    fn write_runs(&self, s: &mut String) -> std::fmt::Result {
        if self.runs.is_empty() {
            return Ok(());
        }
        writeln!(
            s,
            "| run | broker | payload | rate | msgs | groups | acked msgs/s | acked MB/s | \
             produce ms p50 / p99 / p99.9 / max | e2e ms p50 / p99 / p99.9 / max | \
             delivered | kept up | broker CPU s (cores) | peak RSS MB | generator CPU s (cores) | of disk / loopback / memcpy |"
        )?;
        writeln!(
            s,
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: | --- | --- |"
        )?;
        for (i, e) in self.runs.iter().enumerate() {
            let r = &e.run;
            let w = &r.workload;
            let payload = match &w.payload {
                crate::payload::PayloadSource::Synthetic { bytes, .. } => {
                    format!("synthetic {bytes} B")
                }
                other => format!(
                    "{} (mean {:.1} KB)",
                    serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(String::from)))
                        .unwrap_or_default(),
                    w.mean_value_bytes / 1000.0
                ),
            };
            let delivered = if r.complete {
                "all".to_string()
            } else {
                let missing: u64 = r.groups.iter().map(|g| g.verdict.missing).sum();
                format!(
                    "**NO**: {missing} acked but not consumed by the drain timeout, \
                     {} failed, {} unacknowledged by the flush timeout",
                    r.produce.failed, r.produce.unresolved
                )
            };
            let usage = r.broker_usage.map_or(("n/a".into(), "n/a".into()), |u| {
                (
                    format!("{:.1} ({:.2})", u.cpu_seconds, u.cpu_cores),
                    format!("{:.0}", u.peak_rss_bytes as f64 / 1e6),
                )
            });
            let generator = r.load_generator.map_or("n/a".into(), |u| {
                format!("{:.1} ({:.2})", u.cpu_seconds, u.cpu_cores)
            });
            let frac = e.limit_fractions.map_or("n/a".into(), |f| {
                format!("{:.2} / {:.2} / {:.3}", f.disk, f.loopback, f.memory_copy)
            });
            writeln!(
                s,
                "| {} {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                r.label,
                r.bootstrap,
                payload,
                w.rate,
                r.produce.sent,
                w.groups,
                r.produce.acknowledged_per_s,
                r.produce.acknowledged_mb_per_s,
                lat(&r.produce.latency),
                if r.groups.is_empty() { "n/a".into() } else { lat(&r.end_to_end) },
                delivered,
                r.kept_up.map_or("n/a", |k| if k { "yes" } else { "**no**" }),
                usage.0,
                usage.1,
                generator,
                frac,
            )?;
        }
        writeln!(s)?;
        writeln!(
            s,
            "| run | group | consumed | missing | duplicates | corrupt/foreign | msgs/s | MB/s | e2e ms p50 / p99 / p99.9 / max | first problem |"
        )?;
        writeln!(
            s,
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
        )?;
        for (i, e) in self.runs.iter().enumerate() {
            for g in &e.run.groups {
                let v = &g.verdict;
                writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {} | {} |",
                    i + 1,
                    g.group,
                    v.consumed,
                    v.missing,
                    v.duplicates,
                    v.mismatched + v.unknown,
                    g.consumed_per_s,
                    g.consumed_mb_per_s,
                    lat(&g.end_to_end),
                    v.first_problem.as_deref().unwrap_or(""),
                )?;
            }
        }
        writeln!(s)?;
        if self.runs.iter().any(|e| e.run.chain.is_some()) {
            writeln!(
                s,
                "| run | in-broker chain | expected | outputs | missing | duplicates | unexpected/unknown | misrouted/out of order | chain e2e ms p50 / p99 / p99.9 / max | broker in / passed / skipped / dead / lag | exact | first problem |"
            )?;
            writeln!(
                s,
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |"
            )?;
            for (i, e) in self.runs.iter().enumerate() {
                let Some(c) = &e.run.chain else { continue };
                let counters = c.metrics.map_or("n/a".into(), |m| {
                    format!(
                        "{} / {} / {} / {} / {}",
                        m.records_in, m.passed, m.skipped, m.dead_lettered, m.lag
                    )
                });
                let problem = c
                    .first_problem
                    .iter()
                    .chain(c.metrics_problem.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    i + 1,
                    c.chain,
                    c.expected,
                    c.outputs,
                    c.missing,
                    c.duplicates,
                    c.unexpected + c.unknown,
                    c.misrouted + c.out_of_order,
                    lat(&c.end_to_end),
                    counters,
                    if c.complete { "yes" } else { "**no**" },
                    problem,
                )?;
            }
            writeln!(s)?;
        }
        for (i, e) in self.runs.iter().enumerate() {
            let r = &e.run;
            writeln!(
                s,
                "Run {} ({}): broker `{}`, client {}, acks={}, compression {}, topic `{}` with {} partitions; \
                 worst schedule lag {:.1} ms; in-broker chain: {}.{}  ",
                i + 1,
                r.label,
                r.broker,
                r.client,
                serde_json::to_value(r.workload.acks)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.workload.compression,
                r.topic,
                r.workload.partitions,
                r.produce.max_schedule_lag_ms,
                r.in_broker_chain,
                r.produce
                    .first_failure
                    .as_deref()
                    .map_or(String::new(), |f| format!(" First failure: {f}.")),
            )?;
        }
        writeln!(s)
    }
}

fn lat(l: &LatencySummary) -> String {
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1}",
        l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
    )
}

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| {
        if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    })
}

fn write_comparison(s: &mut String, c: &Comparison) -> std::fmt::Result {
    writeln!(
        s,
        "Side by side, A = {}, B = {}, run A B A B...; ratio = A ÷ B.\n",
        c.a, c.b
    )?;
    writeln!(s, "| metric | better | pair | A | B | A ÷ B |")?;
    writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: |")?;
    for m in 0..c.spreads.len() {
        for p in &c.pairs {
            let pm = &p.metrics[m];
            writeln!(
                s,
                "| {} | {} | {}{} | {} | {} | {} |",
                pm.metric,
                better(pm.better),
                p.pair,
                if p.both_complete {
                    ""
                } else {
                    " (incomplete delivery)"
                },
                num(pm.a),
                num(pm.b),
                pm.ratio.map_or("n/a".into(), ratio_text),
            )?;
        }
    }
    writeln!(s)?;
    writeln!(s, "| metric | better | A ÷ B min | median | max | pairs |")?;
    writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: |")?;
    for m in &c.spreads {
        match m.ratio {
            Some(r) => writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                m.metric,
                better(m.better),
                ratio_text(r.min),
                ratio_text(r.median),
                ratio_text(r.max),
                r.n
            )?,
            None => writeln!(
                s,
                "| {} | {} | n/a | n/a | n/a | 0 |",
                m.metric,
                better(m.better)
            )?,
        }
    }
    writeln!(s)
}

/// A ratio with three decimals, or three significant digits when tiny.
fn ratio_text(r: f64) -> String {
    if r != 0.0 && r.abs() < 0.01 {
        format!("{r:.2e}")
    } else {
        format!("{r:.3}")
    }
}

fn better(b: Better) -> &'static str {
    match b {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_print_readably() {
        assert_eq!(ratio_text(7.0356), "7.036");
        assert_eq!(ratio_text(0.000123), "1.23e-4");
        assert_eq!(ratio_text(0.0), "0.000");
    }

    #[test]
    fn a_limits_only_report_has_no_run_tables() {
        let t = |mb| crate::limits::Throughput {
            bytes: 1 << 30,
            seconds: 1.0,
            mb_per_s: mb,
        };
        let limits = MachineLimits {
            disk_write_fdatasync: t(300.0),
            loopback_tcp: t(2000.0),
            memory_copy: t(4000.0),
        };
        let r = BenchReport::new(
            "starlog-bench limits".into(),
            crate::machine::describe(Path::new(".")),
            Some(limits),
            Vec::new(),
            Vec::new(),
        );
        let md = r.markdown();
        assert!(
            md.contains("| sequential write + fdatasync | 300 |"),
            "{md}"
        );
        assert!(!md.contains("| run |"), "{md}");
        assert!(r.all_complete());
    }
}
