//! What a secured listener costs (issue 14's targets): the same Starlog with
//! a plaintext listener and with a secured one (SASL_SSL by default),
//! alternately, at each rate.
//!
//! Per pair (a plaintext run and the secured run right after it) it keeps
//! acknowledged msgs/s and MB/s, produce p50/p99, and broker CPU seconds per
//! acknowledged MB (the cost of TLS and SASL shows up there first on a
//! machine whose disk or cores are the limit). Over the pairs it gives the
//! secured ÷ plaintext throughput ratio and the p50 added by the secured
//! listener as min / median / max, and judges the targets on the medians:
//! flat out (`--rate max`) the secured listener keeps at least 85 % of the
//! plaintext throughput; at a fixed rate it adds at most 2 ms to produce p50.

use std::fmt::Write as _;

use serde::Serialize;

use crate::compare::{spread, Spread};
use crate::pacer::Rate;
use crate::results::RunResult;
use crate::security::Protocol;

/// Flat out, secured ÷ plaintext acked msgs/s at least this (15 % cost at most).
pub const THROUGHPUT_TARGET: f64 = 0.85;
/// At a fixed rate, the secured listener adds at most this to produce p50.
pub const P50_ADDED_TARGET_MS: f64 = 2.0;

/// One arm's figures in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmFigures {
    /// Acknowledged messages per second.
    pub acked_per_s: f64,
    /// Acknowledged MB per second.
    pub acked_mb_per_s: f64,
    /// Produce latency p50, ms.
    pub produce_p50_ms: f64,
    /// Produce latency p99, ms.
    pub produce_p99_ms: f64,
    /// Broker CPU seconds over the run (when sampled).
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU seconds per acknowledged MB (when sampled).
    pub broker_cpu_s_per_mb: Option<f64>,
    /// Every acknowledged message reached every group intact.
    pub complete: bool,
}

impl ArmFigures {
    /// The figures of `run`.
    pub fn of(run: &RunResult) -> Self {
        let mb = run.produce.acknowledged_bytes as f64 / 1e6;
        let cpu = run.broker_usage.map(|u| u.cpu_seconds);
        Self {
            acked_per_s: run.produce.acknowledged_per_s,
            acked_mb_per_s: run.produce.acknowledged_mb_per_s,
            produce_p50_ms: run.produce.latency.p50_ms,
            produce_p99_ms: run.produce.latency.p99_ms,
            broker_cpu_s: cpu,
            broker_cpu_s_per_mb: cpu.filter(|_| mb > 0.0).map(|c| c / mb),
            complete: run.complete,
        }
    }
}

/// One plaintext run and the secured run after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairCost {
    /// 1-based pair.
    pub pair: usize,
    /// The plaintext run.
    pub plaintext: ArmFigures,
    /// The secured run.
    pub secured: ArmFigures,
}

/// Every pair at one rate, and their spreads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateCost {
    /// The offered rate.
    pub rate: Rate,
    /// Pair by pair.
    pub pairs: Vec<PairCost>,
    /// Secured ÷ plaintext acknowledged msgs/s.
    pub throughput_ratio: Option<Spread>,
    /// Secured − plaintext produce p50, ms.
    pub p50_added_ms: Option<Spread>,
    /// Secured − plaintext produce p99, ms.
    pub p99_added_ms: Option<Spread>,
    /// Secured ÷ plaintext broker CPU seconds per acknowledged MB.
    pub cpu_per_mb_ratio: Option<Spread>,
}

impl RateCost {
    /// Pairs `plaintext[i]` with `secured[i]` (extra runs on either side are ignored).
    pub fn new(rate: Rate, plaintext: &[RunResult], secured: &[RunResult]) -> Self {
        let pairs: Vec<PairCost> = plaintext
            .iter()
            .zip(secured)
            .enumerate()
            .map(|(i, (p, s))| PairCost {
                pair: i + 1,
                plaintext: ArmFigures::of(p),
                secured: ArmFigures::of(s),
            })
            .collect();
        let over = |f: &dyn Fn(&PairCost) -> Option<f64>| {
            spread(&pairs.iter().filter_map(f).collect::<Vec<_>>())
        };
        Self {
            rate,
            throughput_ratio: over(&|p| {
                crate::compare::ratio(p.secured.acked_per_s, p.plaintext.acked_per_s)
            }),
            p50_added_ms: over(&|p| Some(p.secured.produce_p50_ms - p.plaintext.produce_p50_ms)),
            p99_added_ms: over(&|p| Some(p.secured.produce_p99_ms - p.plaintext.produce_p99_ms)),
            cpu_per_mb_ratio: over(&|p| {
                p.secured
                    .broker_cpu_s_per_mb
                    .zip(p.plaintext.broker_cpu_s_per_mb)
                    .and_then(|(s, c)| crate::compare::ratio(s, c))
            }),
            pairs,
        }
    }
}

/// The `security` comparison's own section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityCost {
    /// The secured arm's listener (`SASL_SSL`).
    pub protocol: Protocol,
    /// Its login (`SASL_SSL SCRAM-SHA-512 as bench`).
    pub login: String,
    /// Per rate, in the order run.
    pub rates: Vec<RateCost>,
    /// Flat-out throughput target (secured ÷ plaintext, at least).
    pub throughput_target: f64,
    /// Fixed-rate p50 target (ms added, at most).
    pub p50_added_target_ms: f64,
    /// Median flat-out ratio ≥ target, over every flat-out rate (`None`: none run).
    pub throughput_met: Option<bool>,
    /// Median p50 added ≤ target at every fixed rate (`None`: none run).
    pub latency_met: Option<bool>,
}

impl SecurityCost {
    /// Judges the targets on `rates`.
    pub fn new(protocol: Protocol, login: String, rates: Vec<RateCost>) -> Self {
        let judge = |flat_out: bool, ok: &dyn Fn(&RateCost) -> bool| {
            let chosen: Vec<&RateCost> = rates
                .iter()
                .filter(|r| matches!(r.rate, Rate::Max) == flat_out)
                .collect();
            (!chosen.is_empty()).then(|| chosen.iter().all(|r| ok(r)))
        };
        let throughput_met = judge(true, &|r| {
            r.throughput_ratio
                .is_some_and(|s| s.median >= THROUGHPUT_TARGET)
        });
        let latency_met = judge(false, &|r| {
            r.p50_added_ms
                .is_some_and(|s| s.median <= P50_ADDED_TARGET_MS)
        });
        Self {
            protocol,
            login,
            rates,
            throughput_target: THROUGHPUT_TARGET,
            p50_added_target_ms: P50_ADDED_TARGET_MS,
            throughput_met,
            latency_met,
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
        writeln!(
            s,
            "#### Security: PLAINTEXT against {} ({}), issue 14 targets\n",
            self.protocol, self.login
        )?;
        writeln!(
            s,
            "| rate | pair | arm | acked msgs/s | acked MB/s | produce p50 ms | produce p99 ms | broker CPU s | broker CPU s per MB | delivered |"
        )?;
        writeln!(
            s,
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        )?;
        for r in &self.rates {
            for p in &r.pairs {
                for (arm, f) in [
                    ("PLAINTEXT", &p.plaintext),
                    (self.protocol.name(), &p.secured),
                ] {
                    writeln!(
                        s,
                        "| {} | {} | {arm} | {:.0} | {:.1} | {:.2} | {:.2} | {} | {} | {} |",
                        r.rate,
                        p.pair,
                        f.acked_per_s,
                        f.acked_mb_per_s,
                        f.produce_p50_ms,
                        f.produce_p99_ms,
                        f.broker_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                        f.broker_cpu_s_per_mb
                            .map_or("-".into(), |c| format!("{c:.4}")),
                        if f.complete { "all" } else { "**NOT all**" }
                    )?;
                }
            }
        }
        writeln!(s)?;
        let sp = |x: Option<Spread>, digits: usize| {
            x.map_or("-".to_string(), |v| {
                format!(
                    "{:.d$} / {:.d$} / {:.d$} (n={})",
                    v.min,
                    v.median,
                    v.max,
                    v.n,
                    d = digits
                )
            })
        };
        writeln!(
            s,
            "| rate | {p} ÷ PLAINTEXT acked msgs/s | {p} − PLAINTEXT produce p50 ms | {p} − PLAINTEXT produce p99 ms | {p} ÷ PLAINTEXT broker CPU per MB |",
            p = self.protocol
        )?;
        writeln!(s, "| --- | --- | --- | --- | --- |")?;
        for r in &self.rates {
            writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.rate,
                sp(r.throughput_ratio, 3),
                sp(r.p50_added_ms, 2),
                sp(r.p99_added_ms, 2),
                sp(r.cpu_per_mb_ratio, 2)
            )?;
        }
        writeln!(s, "\n(min / median / max over the pairs.)\n")?;
        let verdict = |v: Option<bool>| match v {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        writeln!(
            s,
            "**Targets** (medians): flat out, {} keeps ≥ {:.0} % of PLAINTEXT's acked msgs/s: **{}**; \
             at a fixed rate it adds ≤ {:.0} ms to produce p50: **{}**.\n",
            self.protocol,
            self.throughput_target * 100.0,
            verdict(self.throughput_met),
            self.p50_added_target_ms,
            verdict(self.latency_met)
        )
    }
}
