//! Short runs against an in-process Starlog: every produced message is
//! consumed by every group (count and content), and the report's numbers
//! follow from its own counts and clocks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use starlog_bench::client::LoadClient;
use starlog_bench::pacer::Rate;
use starlog_bench::payload::{testdata_dir, PayloadSource, Payloads};
use starlog_bench::rdkafka_client::RdKafkaClient;
use starlog_bench::results::RunResult;
use starlog_bench::run::{fresh_topic, run, RunContext};
use starlog_bench::target::RunningBroker;
use starlog_bench::workload::Workload;
use starlog_bench::BenchError;

fn run_on(broker: &common::InProcess, w: &Workload, payloads: Payloads) -> RunResult {
    let client = RdKafkaClient::new(broker.bootstrap_addr());
    let ctx = RunContext {
        client: &client as &dyn LoadClient,
        broker_pid: broker.pid(),
        label: "starlog",
        broker: "in-process",
        progress: false,
        http_addr: None,
    };
    run(ctx, w, Arc::new(payloads), &fresh_topic("t")).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

#[test]
fn alert_workload_reaches_both_groups_complete_and_intact() {
    let broker = common::start_default();
    let payloads = Payloads::rubin_samples(&testdata_dir()).unwrap();
    let mut w = Workload::alerts(Rate::Fixed(300.0), 240);
    w.partitions = 2;
    w.groups = 2;
    w.drain_timeout = Duration::from_secs(30);
    let r = run_on(&broker, &w, payloads.clone());

    // Every message acknowledged, every group got each exactly once, intact.
    assert!(r.complete, "{r:#?}");
    assert_eq!(r.produce.sent, 240);
    assert_eq!(r.produce.acknowledged, 240);
    assert_eq!((r.produce.failed, r.produce.unresolved), (0, 0));
    assert_eq!(r.groups.len(), 2);
    for g in &r.groups {
        assert!(g.verdict.complete, "{g:#?}");
        assert_eq!(g.verdict.consumed, 240);
        assert_eq!(g.verdict.missing, 0);
        assert_eq!(g.verdict.mismatched + g.verdict.unknown, 0);
        assert_eq!(g.records, 240 + g.verdict.duplicates);
        // Bytes read are exactly the alert files' bytes (no duplicates here).
        if g.verdict.duplicates == 0 {
            assert_eq!(g.bytes, payloads.bytes_of_first(240));
        }
        assert_eq!(g.end_to_end.count, g.records);
        // Rates are counts over the group's own clock.
        assert!(close(g.consumed_per_s, 240.0 / g.seconds, 1e-9));
        assert!(close(
            g.consumed_mb_per_s,
            g.bytes as f64 / g.seconds / 1e6,
            1e-9
        ));
    }

    // The producer's figures follow from its counts.
    assert_eq!(r.produce.acknowledged_bytes, payloads.bytes_of_first(240));
    assert_eq!(r.produce.latency.count, 240);
    assert!(close(
        r.produce.acknowledged_per_s,
        240.0 / r.produce.seconds,
        1e-9
    ));
    assert!(close(
        r.produce.acknowledged_mb_per_s,
        payloads.bytes_of_first(240) as f64 / r.produce.seconds / 1e6,
        1e-9
    ));
    // Paced at 300/s: the offered rate is the schedule's, within scheduler noise.
    assert!(
        close(r.produce.offered_per_s, 300.0, 0.1),
        "{}",
        r.produce.offered_per_s
    );
    // 240 messages at 300/s take at least 0.797 s to offer.
    assert!(r.produce.seconds >= 239.0 / 300.0);
    assert!(r.kept_up.is_some());

    // Percentiles are ordered, and e2e over all groups counts every record.
    for l in [&r.produce.latency, &r.end_to_end] {
        assert!(
            l.p50_ms <= l.p99_ms && l.p99_ms <= l.p999_ms && l.p999_ms <= l.max_ms,
            "{l:?}"
        );
        assert!(l.p50_ms > 0.0);
    }
    assert_eq!(
        r.end_to_end.count,
        r.groups.iter().map(|g| g.records).sum::<u64>()
    );

    // The process was sampled.
    let u = r.broker_usage.unwrap();
    assert_eq!(u.pid, std::process::id());
    assert!(u.cpu_seconds > 0.0 && u.peak_rss_bytes > 0);
    assert!(close(u.cpu_cores, u.cpu_seconds / u.wall_seconds, 1e-12));
    // The sampled window covers the whole run: start to the last record read.
    assert!(u.wall_seconds >= r_wall(&r));
    assert_eq!(r.workload.distinct_values, 15);
    assert_eq!(r.in_broker_chain, "not requested");
    Box::new(broker).stop().unwrap();
}

/// The run's wall time as implied by the slowest clock in it (≥ produce and groups).
fn r_wall(r: &RunResult) -> f64 {
    r.groups
        .iter()
        .map(|g| g.seconds)
        .fold(r.produce.seconds, f64::max)
}

#[test]
fn throughput_mode_sends_n_synthetic_messages_flat_out() {
    let broker = common::start_default();
    let payloads = Payloads::synthetic(1024, 7).unwrap();
    let mut w = Workload::alerts(Rate::Max, 600);
    w.payload = PayloadSource::Synthetic {
        bytes: 1024,
        distinct: 7,
    };
    w.partitions = 3;
    w.groups = 1;
    let r = run_on(&broker, &w, payloads);
    assert!(r.complete, "{r:#?}");
    assert_eq!(r.produce.acknowledged_bytes, 600 * 1024);
    assert_eq!(
        r.groups[0].bytes,
        (600 + r.groups[0].verdict.duplicates) * 1024
    );
    assert_eq!(r.kept_up, None);
    assert_eq!(r.in_broker_chain, "not requested");
    assert!(r.chain.is_none());
    Box::new(broker).stop().unwrap();
}

#[test]
fn produce_only_runs_without_groups() {
    let broker = common::start_default();
    let mut w = Workload::alerts(Rate::Max, 50);
    w.groups = 0;
    w.partitions = 1;
    let r = run_on(
        &broker,
        &w,
        Payloads::rubin_samples(&testdata_dir()).unwrap(),
    );
    assert!(r.complete);
    assert!(r.groups.is_empty());
    assert_eq!(r.end_to_end.count, 0);
    assert_eq!(r.produce.acknowledged, 50);
    Box::new(broker).stop().unwrap();
}

#[test]
fn an_unreachable_broker_is_a_named_error_not_a_hang() {
    // A port nobody listens on.
    let port = starlog_bench::spawned::free_port().unwrap();
    let client = RdKafkaClient::new(format!("127.0.0.1:{port}"));
    let err = client
        .create_topic("nowhere", 2, Duration::from_secs(2))
        .unwrap_err();
    match err {
        BenchError::CreateTopic {
            topic, partitions, ..
        } => assert_eq!((topic.as_str(), partitions), ("nowhere", 2)),
        other => panic!("expected CreateTopic, got {other:?}"),
    }
}

#[test]
fn an_existing_topic_is_refused_so_no_run_reads_old_data() {
    let broker = common::start_default();
    let client = RdKafkaClient::new(broker.bootstrap_addr());
    client
        .create_topic("taken", 1, Duration::from_secs(10))
        .unwrap();
    let err = client
        .create_topic("taken", 1, Duration::from_secs(10))
        .unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    Box::new(broker).stop().unwrap();
}
