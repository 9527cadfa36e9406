//! The replication families of `/metrics`: per Raft group on this broker,
//! its role, term, commit index and high watermark, and on the leader each
//! replica's lag.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;

use starlog_replication::{DriverMetrics, GroupStatus, Histogram, Role};

use super::transport::Faults;
use crate::metrics::{label, write_family};

fn labels(s: &GroupStatus) -> String {
    format!(
        "topic=\"{}\",partition=\"{}\"",
        label(&s.topic),
        s.partition
    )
}

/// Renders the families for `statuses` (nothing when empty).
pub fn render(statuses: &[GroupStatus], faults: &Faults) -> String {
    let mut out = String::new();
    if statuses.is_empty() {
        return out;
    }
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, i64)>| {
        write_family(&mut out, name, kind, help, rows);
    };
    let per_group = |get: &dyn Fn(&GroupStatus) -> i64| -> Vec<(String, i64)> {
        statuses.iter().map(|s| (labels(s), get(s))).collect()
    };
    family(
        "starlog_raft_leader",
        "gauge",
        "1 when this broker leads the partition's Raft group.",
        per_group(&|s| i64::from(s.role == Role::Leader)),
    );
    family(
        "starlog_raft_leader_id",
        "gauge",
        "The leader this broker knows of (-1: none).",
        per_group(&|s| s.leader.map_or(-1, as_i64)),
    );
    family(
        "starlog_raft_term",
        "gauge",
        "Current Raft term (the leader epoch).",
        per_group(&|s| as_i64(s.term)),
    );
    family(
        "starlog_raft_commit_index",
        "gauge",
        "Raft commit index.",
        per_group(&|s| as_i64(s.commit_index)),
    );
    family(
        "starlog_raft_high_watermark",
        "gauge",
        "Kafka high watermark (the commit index as an offset).",
        per_group(&|s| s.high_watermark),
    );
    family(
        "starlog_raft_replica_lag_records",
        "gauge",
        "Records a replica is behind the leader (on the leader; -1 when unknown).",
        statuses
            .iter()
            .flat_map(|s| {
                s.replicas.iter().map(move |r| {
                    (
                        format!("{},replica=\"{}\"", labels(s), r.node),
                        r.lag_offsets.unwrap_or(-1),
                    )
                })
            })
            .collect(),
    );
    let load = |c: &std::sync::atomic::AtomicU64| {
        i64::try_from(c.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
    };
    family(
        "starlog_raft_frames_total",
        "counter",
        "Inter-broker frames by outcome.",
        vec![
            ("outcome=\"sent\"".to_string(), load(&faults.sent)),
            ("outcome=\"received\"".to_string(), load(&faults.received)),
            ("outcome=\"dropped\"".to_string(), load(&faults.dropped)),
        ],
    );
    render_timings(&mut out, faults);
    out
}

/// Appends one histogram family in seconds (`_bucket`, `_sum`, `_count`).
fn write_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let s = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, count) in &s.cumulative {
        match bound {
            Some(us) => {
                let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", *us as f64 / 1e6);
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum {}", s.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", s.count);
}

/// The replication path's stage timings and work counters.
fn render_timings(out: &mut String, faults: &Faults) {
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
        write_histogram(out, name, help, h);
    }
    let get = |c: &AtomicU64| i64::try_from(DriverMetrics::get(c)).unwrap_or(i64::MAX);
    let counters: [(&str, &str, &AtomicU64); 7] = [
        ("starlog_raft_turns_total", "Driver turns.", &d.turns),
        (
            "starlog_raft_busy_turns_total",
            "Driver turns in which a group had work.",
            &d.busy_turns,
        ),
        (
            "starlog_raft_syncs_total",
            "Data fdatasync calls.",
            &d.syncs,
        ),
        (
            "starlog_raft_messages_sent_total",
            "Raft messages handed to the transport.",
            &d.messages_sent,
        ),
        (
            "starlog_raft_messages_received_total",
            "Raft messages received from peers.",
            &d.messages_received,
        ),
        (
            "starlog_raft_proposals_total",
            "Proposals accepted as leader.",
            &d.proposals,
        ),
        (
            "starlog_raft_inputs_total",
            "Inputs handled by the driver loop.",
            &d.inputs,
        ),
    ];
    for (name, help, c) in counters {
        write_family(out, name, "counter", help, vec![(String::new(), get(c))]);
    }
}
