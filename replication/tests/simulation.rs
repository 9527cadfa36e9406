//! Deterministic simulation of Raft over real partition logs: 3 and 5 nodes on a simulated
//! network that drops, delays, duplicates and reorders frames and splits the cluster, with nodes
//! crashing mid-turn (unsynced segment tails torn at a random byte) and restarting from disk.
//! After every step: no two leaders in a term, high watermarks never go back, and whatever any
//! node exposes below its high watermark is byte-identical to what every other node exposes
//! there (so no consumer ever sees a record that is later truncated). At the end the network
//! heals, every node restarts, and every acknowledged proposal must be on every node exactly
//! once at the offset it was acknowledged with.
//!
//! `STARLOG_SIM_SEEDS=1000` runs 1000 seeds per cluster size; `STARLOG_SIM_SEED=n` replays one
//! (add `STARLOG_SIM_TRACE=1` to print its events).

// Test helpers outside #[test] functions unwrap too: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::mem_cluster::{Cluster, NetFaults};
use starlog_replication::{CrashPoint, GroupId};

fn seeds(default: u64) -> Vec<u64> {
    if let Some(one) = std::env::var("STARLOG_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n = std::env::var("STARLOG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// Schedules or applies one random fault; true if every node must restart after this step.
fn random_fault(c: &mut Cluster, max_down: usize) -> bool {
    let ids = c.node_ids();
    let down: Vec<u64> = ids.iter().copied().filter(|&i| !c.is_up(i)).collect();
    let up: Vec<u64> = ids.iter().copied().filter(|&i| c.is_up(i)).collect();
    let r = c.rng.below(1000);
    if r < 10 && down.len() < max_down && !up.is_empty() {
        let id = *c.rng.pick(&up);
        let at = if c.rng.chance(0.7) {
            CrashPoint::BeforeSync
        } else {
            CrashPoint::AfterSync
        };
        c.crash_next.push((id, at));
    } else if r < 25 && !down.is_empty() {
        let id = *c.rng.pick(&down);
        c.note(format!("restart node {id}"));
        c.start(id);
    } else if r < 31 && c.cut.is_empty() {
        let mut shuffled = ids.clone();
        for i in (1..shuffled.len()).rev() {
            let j = c.rng.below(i as u64 + 1) as usize;
            shuffled.swap(i, j);
        }
        let k = 1 + c.rng.below(ids.len() as u64 / 2) as usize;
        let (a, b) = shuffled.split_at(k);
        let (a, b) = (a.to_vec(), b.to_vec());
        c.split(&a, &b);
    } else if r < 39 && !c.cut.is_empty() {
        c.heal();
    } else if r < 41 {
        // Every node down at once, mid-turn, then all back (the "restart all brokers" case).
        for id in up {
            let at = if c.rng.chance(0.7) {
                CrashPoint::BeforeSync
            } else {
                CrashPoint::AfterSync
            };
            c.crash_next.push((id, at));
        }
        return true;
    } else if r < 47 && up.len() > 1 {
        // A node suspects a peer of being gone (the transport saw its listener
        // refuse a connection) — right or wrong: only election timing changes.
        let (who, peer) = (*c.rng.pick(&up), *c.rng.pick(&ids));
        if who != peer {
            let groups = c.driver_mut(who).map_or(0, |d| d.suspect_leader(peer));
            c.note(format!("node {who} suspects node {peer} ({groups} groups)"));
        }
    }
    false
}

fn random_proposal(c: &mut Cluster) {
    let group = GroupId(1 + c.rng.below(c.groups.len() as u64));
    let via = match c.leader(group) {
        Some(l) if c.rng.chance(0.9) => l,
        _ => 1 + c.rng.below(c.nodes.len() as u64),
    };
    let batches = if c.rng.chance(0.1) { 2 } else { 1 };
    let records = 1 + c.rng.below(3) as usize;
    c.propose(group, via, batches, records);
}

fn run_seed(seed: u64, nodes: u64, steps: u64) -> (usize, u64) {
    let net = NetFaults {
        drop: 0.05,
        duplicate: 0.05,
        max_delay: 3,
    };
    let mut c = Cluster::mixed_persistence(seed, nodes, 2, net);
    let trace = c.trace.clone();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let max_down = (nodes as usize - 1) / 2;
        for _ in 0..steps {
            let restart_all = random_fault(&mut c, max_down);
            if c.rng.chance(0.5) {
                random_proposal(&mut c);
            }
            c.step(0.7);
            if restart_all {
                for id in c.node_ids() {
                    if !c.is_up(id) {
                        c.start(id);
                    }
                }
                c.note("restarted every node");
            }
        }
        c.converge_and_verify(3000);
        (c.acked.len(), c.step)
    }));
    match result {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            if msg.starts_with("simulation invariant violated") {
                panic!("{msg}");
            }
            let trace = trace.borrow();
            let tail: Vec<&String> = trace.iter().rev().take(60).rev().collect();
            panic!(
                "simulation seed {seed} ({nodes} nodes) panicked: {msg}\nreplay: STARLOG_SIM_SEED={seed} STARLOG_SIM_TRACE=1 cargo test -p starlog-replication --test simulation -- --nocapture\nlast events:\n{}",
                tail.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[test]
fn three_nodes_survive_loss_reordering_splits_and_torn_crashes() {
    let mut total_acks = 0;
    for seed in seeds(5) {
        let (acks, steps) = run_seed(seed, 3, 300);
        eprintln!("seed {seed}: 3 nodes, {acks} acknowledged proposals, {steps} steps");
        total_acks += acks;
    }
    // The scenario must actually commit things, or the invariants prove nothing.
    assert!(total_acks > 0, "no proposal was ever acknowledged");
}

#[test]
fn five_nodes_survive_loss_reordering_splits_and_torn_crashes() {
    let mut total_acks = 0;
    for seed in seeds(2) {
        let (acks, steps) = run_seed(1_000_000 + seed, 5, 300);
        eprintln!(
            "seed {}: 5 nodes, {acks} acknowledged proposals, {steps} steps",
            1_000_000 + seed
        );
        total_acks += acks;
    }
    assert!(total_acks > 0, "no proposal was ever acknowledged");
}
