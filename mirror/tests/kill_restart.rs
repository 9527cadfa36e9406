//! `kill -9` of the mirror process mid-stream, twice, then a restart that
//! runs to the end: the local buffer holds exactly the upstream records,
//! each once, in per-day order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The binary under test.
const MIRROR: &str = env!("CARGO_BIN_EXE_starlog-mirror");

use std::collections::{BTreeSet, HashMap};

use common::*;

const TARGET: &str = "ztf-buffer";
const PARTS: i32 = 4;
const PER_DAY: usize = 200;
const DAYS: [&str; 3] = [
    "ztf_20191121_programid1",
    "ztf_20191122_programid1",
    "ztf_20191123_programid1",
];

/// The mirror is killed twice; before each restart of the mirror the local
/// broker is restarted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_and_restart_leave_each_upstream_record_once() {
    kill_and_restart(true).await;
}

/// The same without restarting the local broker: the records a killed
/// mirror had in flight must become visible (the broker drives a dead
/// connection's queued produce completions to the end), so the restarted
/// mirror sees them in the tails and does not write them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_and_restart_without_a_broker_restart() {
    kill_and_restart(false).await;
}

async fn kill_and_restart(restart_local_broker: bool) {
    let up = TestBroker::start().await;
    let mut local = TestBroker::start().await;
    register_unrelated(&up.registry_url(), 3).await;
    let reg = registry(&up.registry_url());
    let pool = alerts("ztf/alerts/fink-alert-simulator");
    let id = reg
        .register("ztf-value", &pool[0].schema_json)
        .await
        .unwrap();
    for day in DAYS {
        create_topic(&up.bootstrap(), day, 1).await;
        let values: Vec<_> = (0..PER_DAY)
            .map(|i| {
                let a = &pool[i % pool.len()];
                let id = if a.schema_json == pool[0].schema_json {
                    id
                } else {
                    panic!("one schema in this folder")
                };
                Some(frame(id, &a.body))
            })
            .collect();
        produce(&up.bootstrap(), day, &values).await;
    }
    let total = (PER_DAY * DAYS.len()) as i64;

    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("mirror.yaml");
    std::fs::write(
        &yaml,
        format!(
            r#"
name: kill-test
upstream:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
local:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: {PARTS}
checkpoint_interval_ms: 300
max_in_flight_records: 64
linger_ms: 2
bad_input: {{ policy: stop }}
"#,
            up.bootstrap(),
            up.registry_url(),
            local.bootstrap(),
            local.registry_url()
        ),
    )
    .unwrap();

    // Two runs killed with SIGKILL while records are flowing.
    let mut at_kill = Vec::new();
    for (run, threshold) in [(0, 60i64), (1, 300)] {
        let log = dir.path().join(format!("run{run}.log"));
        let have = run_then_kill_9(
            MIRROR,
            &yaml,
            &log,
            &local.bootstrap(),
            TARGET,
            PARTS,
            threshold,
        )
        .await;
        at_kill.push(have);
        if restart_local_broker {
            local.restart().await;
        }
    }
    assert!(
        at_kill[0] < total,
        "the first kill landed mid-stream ({at_kill:?})"
    );

    // A last run to the end, stopped with SIGTERM.
    let log = dir.path().join("final.log");
    let (status, out) = run_to_end_then_term(
        MIRROR,
        &yaml,
        &log,
        &local.bootstrap(),
        TARGET,
        PARTS,
        total,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "exit {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(stdout.contains("checkpoints"), "summary printed: {stdout}");

    // Exactly the upstream records, once each, in per-day order.
    assert_eq!(end_total(&local.bootstrap(), TARGET, PARTS).await, total);
    let parts = read_all(&local.bootstrap(), TARGET, PARTS).await;
    let mut seen = BTreeSet::new();
    for records in parts.values() {
        let mut last: HashMap<String, i64> = HashMap::new();
        for r in records {
            let (day, _, offset) = source(r);
            if let Some(prev) = last.insert(day.clone(), offset) {
                assert!(prev < offset, "{day}: {offset} after {prev}");
            }
            assert!(seen.insert((day, offset)), "duplicate {:?}", source(r));
        }
    }
    let want: BTreeSet<(String, i64)> = DAYS
        .iter()
        .flat_map(|d| (0..PER_DAY as i64).map(move |o| ((*d).to_owned(), o)))
        .collect();
    assert_eq!(seen, want);
    eprintln!("killed at {at_kill:?} of {total}; final summary:\n{stdout}");
    local.stop().await;
    up.stop().await;
}
