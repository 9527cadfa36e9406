//! Starlog clusters started by the bench: N `starlog serve` processes on
//! loopback forming one Raft cluster, started with the test kit's
//! process-cluster harness (`starlog_testkit::cluster`, the same one the
//! cluster tests use).
//!
//! Every broker replicates every partition, so an N-node cluster measures
//! replication factor N. A 1-node cluster (its peer list is itself) goes
//! through the same Raft code path as a 3-node one, which is what makes
//! "replication factor 1" a fair baseline for "replication factor 3".

use serde::Serialize;

use crate::error::BenchError;
use crate::target::{BrokerTarget, RunningBroker};

pub use starlog_testkit::cluster::{kill_all_nodes, ClusterError, ClusterSpec, SpawnedCluster};

/// A `BrokerTarget` that starts a fresh cluster per run (for `compare::alternate`).
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    spec: ClusterSpec,
}

impl ClusterTarget {
    /// Fresh clusters from `spec`.
    pub fn new(spec: ClusterSpec) -> Self {
        Self { spec }
    }
}

impl BrokerTarget for ClusterTarget {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError> {
        Ok(Box::new(RunningCluster(SpawnedCluster::start(
            self.spec.clone(),
        )?)))
    }
}

/// A started cluster serving one run.
#[derive(Debug)]
pub struct RunningCluster(pub SpawnedCluster);

impl RunningCluster {
    /// The cluster.
    pub fn cluster(&self) -> &SpawnedCluster {
        &self.0
    }
}

impl RunningCluster {
    /// How `cluster` was started, for reports.
    pub fn describe_cluster(cluster: &SpawnedCluster) -> String {
        let n = cluster.nodes().len();
        format!(
            "{n} x `{} serve --config nodeN.yaml` ({n}-node Raft cluster, replication factor {n})",
            cluster.spec().starlog_bin.display(),
        )
    }
}

impl RunningBroker for RunningCluster {
    fn bootstrap(&self) -> String {
        self.0.bootstrap()
    }

    /// Node 1's process (the run's `broker CPU` column); the whole
    /// cluster's CPU is sampled separately (`ClusterUsage`).
    fn pid(&self) -> Option<u32> {
        self.0.pids().first().map(|&(_, pid)| pid)
    }

    fn http_addr(&self) -> Option<String> {
        self.0.http_addr(1)
    }

    fn describe(&self) -> String {
        Self::describe_cluster(&self.0)
    }

    fn stop(self: Box<Self>) -> Result<(), BenchError> {
        Ok(self.0.stop()?)
    }
}

/// CPU and memory of every node of a cluster over one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterUsage {
    /// CPU seconds of all nodes together.
    pub cpu_seconds: f64,
    /// Per node: (id, CPU seconds, peak RSS bytes).
    pub nodes: Vec<(i32, f64, u64)>,
}

/// Samples every running node's `/proc` figures.
pub fn sample_nodes(cluster: &SpawnedCluster) -> Vec<(i32, crate::proc_stats::ProcSample)> {
    let ticks = crate::proc_stats::clock_ticks();
    cluster
        .pids()
        .into_iter()
        .filter_map(|(id, pid)| Some((id, crate::proc_stats::sample(pid, ticks).ok()?)))
        .collect()
}

/// The usage between two `sample_nodes`.
pub fn usage_between(
    before: &[(i32, crate::proc_stats::ProcSample)],
    after: &[(i32, crate::proc_stats::ProcSample)],
) -> ClusterUsage {
    let nodes: Vec<(i32, f64, u64)> = after
        .iter()
        .filter_map(|(id, a)| {
            let b = before.iter().find(|(i, _)| i == id)?;
            Some((
                *id,
                (a.cpu_seconds - b.1.cpu_seconds).max(0.0),
                a.peak_rss_bytes,
            ))
        })
        .collect();
    ClusterUsage {
        cpu_seconds: nodes.iter().map(|n| n.1).sum(),
        nodes,
    }
}
