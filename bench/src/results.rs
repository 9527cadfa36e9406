//! What one run measured, in the shape the reports print.
//!
//! Kept apart from the runner so the report and comparison code (and their
//! tests) can build and read results without running anything. Every rate is
//! computed by `stats::per_second` from counts and the run's own clock:
//! nothing here is estimated.

use serde::Serialize;

use crate::chain_output::ChainResult;
use crate::ledger::Verdict;
use crate::stats::LatencySummary;
use crate::workload::WorkloadSummary;

/// One run against one broker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    /// The target's name (`starlog`, `tansu`).
    pub label: String,
    /// How the broker was started.
    pub broker: String,
    /// Its bootstrap address.
    pub bootstrap: String,
    /// The client library.
    pub client: String,
    /// The run's fresh topic.
    pub topic: String,
    /// The traffic.
    pub workload: WorkloadSummary,
    /// The producer side.
    pub produce: ProduceResult,
    /// One entry per consumer group.
    pub groups: Vec<GroupResult>,
    /// End-to-end latency over all groups together.
    pub end_to_end: LatencySummary,
    /// The broker process's CPU and memory, when its pid is known.
    pub broker_usage: Option<ProcessUsage>,
    /// This process's (the load generator's: client library, checks) CPU
    /// and memory, to show whether the generator was the bottleneck. For an
    /// in-process broker it is the same process as `broker_usage`.
    pub load_generator: Option<ProcessUsage>,
    /// The in-broker chain option's status.
    pub in_broker_chain: String,
    /// The in-broker chain's output, latency and counters, when one ran.
    pub chain: Option<ChainResult>,
    /// Nothing failed, nothing acknowledged is missing or corrupt.
    pub complete: bool,
    /// For a fixed rate: sends, acknowledgements and every group kept within
    /// 5 % of the target rate. `None` at max rate.
    pub kept_up: Option<bool>,
}

/// The producer side of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProduceResult {
    /// Messages handed to the client.
    pub sent: u64,
    /// Messages acknowledged.
    pub acknowledged: u64,
    /// Messages the client reported as failed.
    pub failed: u64,
    /// Messages with no outcome when the flush timeout ran out.
    pub unresolved: u64,
    /// The first failure's reason.
    pub first_failure: Option<String>,
    /// Value bytes acknowledged.
    pub acknowledged_bytes: u64,
    /// Seconds from the run's start to the last acknowledgement.
    pub seconds: f64,
    /// Messages offered per second: `(sent - 1) / (last send - start)`.
    pub offered_per_s: f64,
    /// Acknowledged per second over `seconds`.
    pub acknowledged_per_s: f64,
    /// Acknowledged value MB (10^6 bytes) per second over `seconds`.
    pub acknowledged_mb_per_s: f64,
    /// Due time → acknowledgement.
    pub latency: LatencySummary,
    /// How far behind its schedule the generator fell at worst, ms.
    pub max_schedule_lag_ms: f64,
}

/// One consumer group's side of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupResult {
    /// The group id.
    pub group: String,
    /// Whether it got everything, once, intact.
    pub verdict: Verdict,
    /// Records read (duplicates included).
    pub records: u64,
    /// Value bytes read.
    pub bytes: u64,
    /// Seconds from the run's start to its last record.
    pub seconds: f64,
    /// Distinct messages per second over `seconds`.
    pub consumed_per_s: f64,
    /// Value MB per second over `seconds`.
    pub consumed_mb_per_s: f64,
    /// Due time → this group's consumer had it.
    pub end_to_end: LatencySummary,
    /// Errors the client reported while polling (it retries by itself).
    pub client_errors: u64,
    /// The first such error.
    pub first_client_error: Option<String>,
}

/// A process (the broker, or the load generator) during the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessUsage {
    /// The process sampled.
    pub pid: u32,
    /// CPU seconds (user + system) used between the run's start and end.
    pub cpu_seconds: f64,
    /// Seconds between the two samples (the run's start to its end).
    pub wall_seconds: f64,
    /// `cpu_seconds` / `wall_seconds`: average cores busy.
    pub cpu_cores: f64,
    /// Peak resident memory since the process started (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

impl RunResult {
    /// The worst group's end-to-end p99 (0 without groups).
    pub fn worst_group_e2e_p99_ms(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| g.end_to_end.p99_ms)
            .fold(0.0, f64::max)
    }

    /// The slowest group's consumption rate (0 without groups).
    pub fn slowest_group_per_s(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| g.consumed_per_s)
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    /// Value MB/s read by all groups together.
    pub fn consumed_mb_per_s_total(&self) -> f64 {
        self.groups.iter().map(|g| g.consumed_mb_per_s).sum()
    }
}
