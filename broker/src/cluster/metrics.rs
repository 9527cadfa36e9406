//! The replication families of `/metrics`: per Raft group on this broker,
//! its role, term, commit index and high watermark, and on the leader each
//! replica's lag.

use starlog_replication::{GroupStatus, Role};

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
    out
}
