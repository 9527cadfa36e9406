//! The replication families of `/metrics`: per Raft group on this broker,
//! its role, term, commit index and high watermark, and on the leader each
//! replica's lag; the inter-broker frames; the replication path's stage
//! timings and work counters. Read live at each scrape.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use starlog_replication::{DriverMetrics, GroupStatus, Histogram, NodeId, Role};

use super::transport::Faults;
use crate::metrics::{counter, counter_family, gauge_family, PartitionLabels};

/// Labels of a replica's lag: its partition and its node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplicaLabels {
    #[prometheus(flatten)]
    group: PartitionLabels,
    replica: NodeId,
}

/// Labels of the inter-broker frame counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn labels(s: &GroupStatus) -> PartitionLabels {
    PartitionLabels {
        topic: s.topic.clone(),
        partition: s.partition,
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Writes the families for `statuses` (nothing when empty).
pub fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    statuses: &[GroupStatus],
    faults: &Faults,
) -> fmt::Result {
    if statuses.is_empty() {
        return Ok(());
    }
    let per_group =
        |get: fn(&GroupStatus) -> i64| statuses.iter().map(move |s| (labels(s), get(s)));
    gauge_family(
        encoder,
        "starlog_raft_leader",
        "1 when this broker leads the partition's Raft group.",
        per_group(|s| i64::from(s.role == Role::Leader)),
    )?;
    gauge_family(
        encoder,
        "starlog_raft_leader_id",
        "The leader this broker knows of (-1: none).",
        per_group(|s| s.leader.map_or(-1, as_i64)),
    )?;
    gauge_family(
        encoder,
        "starlog_raft_term",
        "Current Raft term (the leader epoch).",
        per_group(|s| as_i64(s.term)),
    )?;
    gauge_family(
        encoder,
        "starlog_raft_commit_index",
        "Raft commit index.",
        per_group(|s| as_i64(s.commit_index)),
    )?;
    gauge_family(
        encoder,
        "starlog_raft_high_watermark",
        "Kafka high watermark (the commit index as an offset).",
        per_group(|s| s.high_watermark),
    )?;
    gauge_family(
        encoder,
        "starlog_raft_replica_lag_records",
        "Records a replica is behind the leader (on the leader; -1 when unknown).",
        statuses.iter().flat_map(|s| {
            s.replicas.iter().map(move |r| {
                let labels = ReplicaLabels {
                    group: labels(s),
                    replica: r.node,
                };
                (labels, r.lag_offsets.unwrap_or(-1))
            })
        }),
    )?;
    let load = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    counter_family(
        encoder,
        "starlog_raft_frames",
        "Inter-broker frames by outcome.",
        [
            ("sent", load(&faults.sent)),
            ("received", load(&faults.received)),
            ("dropped", load(&faults.dropped)),
        ]
        .map(|(outcome, v)| (OutcomeLabels { outcome }, v)),
    )?;
    encode_timings(encoder, faults)
}

/// One histogram family in seconds (`_sum`, `_count`, `_bucket`).
fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &Histogram,
) -> fmt::Result {
    let s = h.snapshot();
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = s
        .cumulative
        .iter()
        .map(|&(bound, cumulative)| {
            let upper = bound.map_or(f64::INFINITY, |us| us as f64 / 1e6);
            let count = cumulative.saturating_sub(below);
            below = cumulative;
            (upper, count)
        })
        .collect();
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    family.encode_histogram::<NoLabelSet>(s.sum_us as f64 / 1e6, s.count, &buckets, None)
}

/// The replication path's stage timings and work counters.
fn encode_timings(encoder: &mut DescriptorEncoder<'_>, faults: &Faults) -> fmt::Result {
    let d: &DriverMetrics = &faults.driver;
    let histograms: [(&str, &str, &Histogram); 9] = [
        (
            "starlog_replicated_produce_seconds",
            "Replicated produce of one partition: write stage began to committed.",
            &crate::partition::REPLICATED_PRODUCE,
        ),
        (
            "starlog_replicated_produce_propose_seconds",
            "Replicated produce of one partition: write stage began to proposal accepted by the driver.",
            &crate::partition::REPLICATED_PRODUCE_PROPOSE,
        ),
        (
            "starlog_raft_commit_latency_seconds",
            "Proposal accepted by the leader to committed by a quorum.",
            &d.commit_latency,
        ),
        (
            "starlog_raft_turn_seconds",
            "One driver turn that had work (store, sync, apply).",
            &d.turn,
        ),
        (
            "starlog_raft_turn_store_seconds",
            "Turn phase: take Readys, write new entries, send the leaders' messages.",
            &d.turn_store,
        ),
        (
            "starlog_raft_turn_sync_seconds",
            "Turn phase: data syncs of the dirty partitions (turns with any).",
            &d.turn_sync,
        ),
        (
            "starlog_raft_turn_apply_seconds",
            "Turn phase after the syncs: acknowledgements, applying, high watermarks.",
            &d.turn_apply,
        ),
        (
            "starlog_raft_inputs_phase_seconds",
            "Driver loop: handling one round of inputs before a turn.",
            &d.inputs_phase,
        ),
        (
            "starlog_raft_peer_queue_wait_seconds",
            "A frame queued for a peer until it is written to the socket.",
            &faults.queue_wait,
        ),
    ];
    for (name, help, h) in histograms {
        histogram(encoder, name, help, h)?;
    }
    let counters: [(&str, &str, &AtomicU64); 7] = [
        ("starlog_raft_turns", "Driver turns.", &d.turns),
        (
            "starlog_raft_busy_turns",
            "Driver turns in which a group had work.",
            &d.busy_turns,
        ),
        ("starlog_raft_syncs", "Data fdatasync calls.", &d.syncs),
        (
            "starlog_raft_messages_sent",
            "Raft messages handed to the transport.",
            &d.messages_sent,
        ),
        (
            "starlog_raft_messages_received",
            "Raft messages received from peers.",
            &d.messages_received,
        ),
        (
            "starlog_raft_proposals",
            "Proposals accepted as leader.",
            &d.proposals,
        ),
        (
            "starlog_raft_inputs",
            "Inputs handled by the driver loop.",
            &d.inputs,
        ),
    ];
    for (name, help, c) in counters {
        counter(encoder, name, help, DriverMetrics::get(c))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::text::encode as encode_page;
    use prometheus_client::registry::Registry;

    use super::*;

    #[derive(Debug)]
    struct One(Histogram);

    impl Collector for One {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            histogram(&mut encoder, "t_seconds", "A timing.", &self.0)
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_in_seconds() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(80));
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_secs(60));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(h)));
        let mut page = String::new();
        encode_page(&mut page, &registry).unwrap();
        for line in [
            "# TYPE t_seconds histogram",
            "t_seconds_bucket{le=\"0.0001\"} 1",
            "t_seconds_bucket{le=\"0.00025\"} 1",
            "t_seconds_bucket{le=\"0.0005\"} 3",
            "t_seconds_bucket{le=\"10.0\"} 3",
            "t_seconds_bucket{le=\"+Inf\"} 4",
            "t_seconds_count 4",
            "t_seconds_sum 60.00068",
        ] {
            assert!(page.lines().any(|l| l == line), "no `{line}` in\n{page}");
        }
    }
}
