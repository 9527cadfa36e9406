//! The A B A B alternation and the ratio arithmetic, with two in-process
//! Starlog brokers (different fsync policies) standing in for Starlog and a
//! peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use starlog_bench::client::LoadClient;
use starlog_bench::compare::{self, Better};
use starlog_bench::limits::{MachineLimits, Throughput};
use starlog_bench::machine;
use starlog_bench::pacer::Rate;
use starlog_bench::payload::{testdata_dir, Payloads};
use starlog_bench::rdkafka_client::RdKafkaClient;
use starlog_bench::report::BenchReport;
use starlog_bench::run::{fresh_topic, run, RunContext};
use starlog_bench::workload::Workload;

#[test]
fn alternates_a_b_a_b_and_ratios_come_from_the_runs() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut a =
        common::InProcessTarget::new("starlog", common::flush_always(), Arc::clone(&starts));
    let mut b = common::InProcessTarget::new(
        "peer",
        starlog_broker::config::FlushSetting::IntervalMs(5),
        Arc::clone(&starts),
    );
    let payloads = Arc::new(Payloads::rubin_samples(&testdata_dir()).unwrap());
    let mut w = Workload::alerts(Rate::Max, 120);
    w.groups = 1;
    w.partitions = 2;
    let (a_runs, b_runs) = compare::alternate(&mut a, &mut b, 2, &mut |broker, name| {
        let client = RdKafkaClient::new(broker.bootstrap());
        let describe = broker.describe();
        let ctx = RunContext {
            client: &client as &dyn LoadClient,
            broker_pid: broker.pid(),
            label: name,
            broker: &describe,
            progress: false,
            http_addr: None,
        };
        run(ctx, &w, Arc::clone(&payloads), &fresh_topic("ab"))
    })
    .unwrap();

    assert_eq!(
        *starts.lock().unwrap(),
        ["starlog", "peer", "starlog", "peer"]
    );
    assert!(a_runs.iter().chain(&b_runs).all(|r| r.complete));
    assert!(a_runs.iter().all(|r| r.label == "starlog"));
    assert!(b_runs.iter().all(|r| r.label == "peer"));

    let c = compare::compare(&a_runs, &b_runs).unwrap();
    assert_eq!((c.a.as_str(), c.b.as_str()), ("starlog", "peer"));
    assert_eq!(c.pairs.len(), 2);
    let idx = compare::METRICS
        .iter()
        .position(|(m, _)| *m == "acked msgs/s")
        .unwrap();
    let mut ratios = Vec::new();
    for (i, p) in c.pairs.iter().enumerate() {
        let m = &p.metrics[idx];
        assert_eq!(m.better, Better::Higher);
        assert_eq!(m.a, Some(a_runs[i].produce.acknowledged_per_s));
        assert_eq!(m.b, Some(b_runs[i].produce.acknowledged_per_s));
        let expect = a_runs[i].produce.acknowledged_per_s / b_runs[i].produce.acknowledged_per_s;
        assert_eq!(m.ratio, Some(expect));
        ratios.push(expect);
    }
    let s = c.spreads[idx].ratio.unwrap();
    assert_eq!(s.n, 2);
    assert_eq!(s.min, ratios[0].min(ratios[1]));
    assert_eq!(s.max, ratios[0].max(ratios[1]));
    assert_eq!(s.median, (ratios[0] + ratios[1]) / 2.0);

    // The report carries all of it, in both forms.
    let t = |mb| Throughput {
        bytes: 1 << 30,
        seconds: 1.0,
        mb_per_s: mb,
    };
    let limits = MachineLimits {
        disk_write_fdatasync: t(1000.0),
        loopback_tcp: t(4000.0),
        memory_copy: t(10_000.0),
    };
    let runs: Vec<_> = a_runs
        .iter()
        .cloned()
        .chain(b_runs.iter().cloned())
        .collect();
    let report = BenchReport::new(
        "starlog-bench compare ...".into(),
        machine::describe(std::path::Path::new(".")),
        Some(limits),
        runs.clone(),
        vec![c],
    );
    assert!(report.all_complete());
    let f = report.runs[0].limit_fractions.unwrap();
    assert_eq!(f.disk, runs[0].produce.acknowledged_mb_per_s / 1000.0);
    assert_eq!(
        f.loopback,
        (runs[0].produce.acknowledged_mb_per_s + runs[0].consumed_mb_per_s_total()) / 4000.0
    );
    let md = report.markdown();
    assert!(md.contains("Side by side, A = starlog, B = peer"));
    assert!(md.contains("| acked msgs/s | higher |"));
    assert!(md.contains("sequential write + fdatasync"));
    let dir = tempfile::tempdir().unwrap();
    let (json, mdp) = report.write(dir.path(), "r").unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 4);
    assert_eq!(v["comparisons"][0]["pairs"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_to_string(mdp).unwrap(), md);
}
