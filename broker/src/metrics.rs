//! `/metrics`: counters in the Prometheus text format — per partition
//! (offsets, size) and per in-broker pipeline (in, passed, skipped, dead
//! letters, failures, lag).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::pipelines::PipelineStatus;

#[derive(Clone)]
struct Sources {
    broker: Arc<Broker>,
    pipelines: Vec<Arc<Mutex<PipelineStatus>>>,
}

/// The `/metrics` route.
pub fn router(broker: Arc<Broker>, pipelines: Vec<Arc<Mutex<PipelineStatus>>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Sources { broker, pipelines })
}

async fn metrics(State(s): State<Sources>) -> impl IntoResponse {
    let statuses: Vec<PipelineStatus> = s.pipelines.iter().map(|p| p.lock().clone()).collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&s.broker, &statuses),
    )
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render(broker: &Broker, pipelines: &[PipelineStatus]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, i64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let topics = broker.topics.all();
    let partitions: Vec<(String, i64, i64, i64)> = topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().enumerate().map(move |(i, p)| {
                let labels = format!("topic=\"{}\",partition=\"{i}\"", label(&t.name));
                let size = i64::try_from(p.log().size_bytes()).unwrap_or(i64::MAX);
                (labels, p.high_watermark(), p.log().log_start_offset(), size)
            })
        })
        .collect();
    family(
        "starlog_partition_high_watermark",
        "gauge",
        "Offset up to which consumers may read.",
        partitions.iter().map(|p| (p.0.clone(), p.1)).collect(),
    );
    family(
        "starlog_partition_log_start_offset",
        "gauge",
        "First offset still stored.",
        partitions.iter().map(|p| (p.0.clone(), p.2)).collect(),
    );
    family(
        "starlog_partition_size_bytes",
        "gauge",
        "Bytes stored for the partition.",
        partitions.iter().map(|p| (p.0.clone(), p.3)).collect(),
    );
    let pl = |p: &PipelineStatus| {
        format!(
            "pipeline=\"{}\",source=\"{}\"",
            label(&p.name),
            label(&p.source)
        )
    };
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (name, kind, help, get) in [
        (
            "starlog_pipeline_records_in_total",
            "counter",
            "Input records handled.",
            (|p: &PipelineStatus| p.records_in) as fn(&PipelineStatus) -> u64,
        ),
        (
            "starlog_pipeline_passed_total",
            "counter",
            "Candidates that passed the whole chain.",
            |p| p.passed,
        ),
        (
            "starlog_pipeline_skipped_total",
            "counter",
            "Candidates a step skipped.",
            |p| p.skipped,
        ),
        (
            "starlog_pipeline_dead_lettered_total",
            "counter",
            "Records sent to the dead-letter topic.",
            |p| p.dead_lettered,
        ),
        (
            "starlog_pipeline_failures_total",
            "counter",
            "Steps that failed and were retried.",
            |p| p.failures,
        ),
    ] {
        family(
            name,
            kind,
            help,
            pipelines.iter().map(|p| (pl(p), as_i64(get(p)))).collect(),
        );
    }
    family(
        "starlog_pipeline_lag",
        "gauge",
        "Records between the committed position and the high watermark.",
        pipelines.iter().map(|p| (pl(p), p.lag)).collect(),
    );
    out
}
