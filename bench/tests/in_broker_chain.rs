//! The in-broker chain against an in-process Starlog configured from the
//! very YAML the bench writes for a spawned one: every acknowledged input
//! comes out of the chain exactly once, in place, timed, and the broker's
//! counters agree; a run that cannot reach `/metrics` is refused up front.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use starlog_bench::chain::{self, ChainKind};
use starlog_bench::client::LoadClient;
use starlog_bench::pacer::Rate;
use starlog_bench::payload::{testdata_dir, Payloads};
use starlog_bench::rdkafka_client::RdKafkaClient;
use starlog_bench::run::{run, RunContext};
use starlog_bench::workload::Workload;
use starlog_bench::BenchError;
use starlog_broker::{BrokerConfig, Server};

struct ChainBroker {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
    _dir: tempfile::TempDir,
}

impl ChainBroker {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let yaml = ChainKind::PassAll
            .broker_config_template()
            .replace("{host}", "127.0.0.1")
            .replace("{http_port}", "0");
        let mut config = BrokerConfig::from_yaml(&yaml).unwrap();
        assert_eq!(
            config.pipelines.len(),
            1,
            "the bench's YAML holds the chain"
        );
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = dir.path().join("data");
        config.groups.initial_rebalance_delay_ms = 0;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(Server::start(config)).unwrap();
        Self {
            runtime,
            server: Some(server),
            _dir: dir,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn stop(mut self) {
        if let Some(s) = self.server.take() {
            self.runtime.block_on(s.shutdown());
        }
    }
}

#[test]
fn pass_all_chain_outputs_every_input_once_and_is_timed() {
    // The broker's warnings (a failing pipeline step says why) in the test output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let broker = ChainBroker::start();
    let bootstrap = broker.server().local_addr().to_string();
    let http = broker.server().registry_addr().unwrap().to_string();
    let client = RdKafkaClient::new(bootstrap);
    let ctx = RunContext {
        client: &client as &dyn LoadClient,
        broker_pid: Some(std::process::id()),
        label: "starlog",
        broker: "in-process with chain",
        progress: false,
        http_addr: Some(&http),
    };
    let payloads = Payloads::rubin_samples(&testdata_dir()).unwrap();
    let mut w = Workload::alerts(Rate::Fixed(200.0), 200);
    w.partitions = 3;
    w.groups = 1;
    w.drain_timeout = Duration::from_secs(30);
    w.in_broker_chain = Some(ChainKind::PassAll);
    let r = run(ctx, &w, Arc::new(payloads), chain::SOURCE_TOPIC).unwrap();

    let c = r.chain.as_ref().expect("a chain result");
    assert!(c.complete, "{c:#?}");
    assert!(r.complete, "{r:#?}");
    assert_eq!(r.produce.acknowledged, 200);
    assert_eq!(c.expected, 200);
    assert_eq!(c.delivered, 200);
    assert_eq!(c.outputs, 200, "nothing written twice or from elsewhere");
    assert_eq!(
        (c.missing, c.duplicates, c.unexpected, c.unknown),
        (0, 0, 0, 0)
    );
    assert_eq!((c.misrouted, c.out_of_order, c.not_framed), (0, 0, 0));
    assert_eq!(c.source_topic, chain::SOURCE_TOPIC);
    assert_eq!(c.output_topic, chain::OUTPUT_TOPIC);
    // One latency per delivered output, ordered percentiles, and the chain's
    // output cannot be visible before its input was even due.
    let l = c.end_to_end;
    assert_eq!(l.count, 200);
    assert!(l.p50_ms > 0.0, "{l:?}");
    assert!(
        l.p50_ms <= l.p99_ms && l.p99_ms <= l.p999_ms && l.p999_ms <= l.max_ms,
        "{l:?}"
    );
    // The broker's own counters, read from /metrics, agree.
    let m = c.metrics.expect("metrics read");
    assert_eq!((m.records_in, m.passed, m.lag), (200, 200, 0), "{m:?}");
    assert_eq!((m.skipped, m.dead_lettered), (0, 0), "{m:?}");
    assert!(c.metrics_problem.is_none(), "{c:?}");
    // And they match the broker's in-process status.
    let s = &broker.server().pipeline_status()[0];
    assert_eq!(s.name, chain::PIPELINE_NAME);
    assert_eq!((s.records_in, s.passed), (200, 200));
    // The ordinary group still got every input.
    assert!(r.groups[0].verdict.complete, "{:?}", r.groups[0]);
    assert!(r.in_broker_chain.contains("`pass-all`"));
    broker.stop();
}

#[test]
fn a_chain_run_without_the_http_address_is_refused_before_anything_runs() {
    // No broker is needed: the refusal comes before any client call.
    let client = RdKafkaClient::new("127.0.0.1:1");
    let ctx = RunContext {
        client: &client as &dyn LoadClient,
        broker_pid: None,
        label: "peer",
        broker: "external",
        progress: false,
        http_addr: None,
    };
    let mut w = Workload::alerts(Rate::Fixed(10.0), 10);
    w.in_broker_chain = Some(ChainKind::PassAll);
    let payloads = Payloads::synthetic(16, 1).unwrap();
    let err = run(ctx, &w, Arc::new(payloads), chain::SOURCE_TOPIC).unwrap_err();
    match &err {
        BenchError::Chain { chain, reason } => {
            assert_eq!(chain, "pass-all");
            assert!(reason.contains("HTTP address"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}
