//! `/metrics`: counters in the Prometheus text format — per partition
//! (offsets, size), per in-broker pipeline (in, passed, skipped, dead
//! letters, failures, lag) and per in-broker mirror and upstream topic
//! (read, written, rewritten, copied as bytes, dead-lettered, skipped,
//! already present, bytes, lag; runs and whether one is going on).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::extensions::{MirrorCounters, MirrorCountersSource, MirrorTopicCounters};
use crate::pipelines::PipelineStatus;

#[derive(Clone)]
struct Sources {
    broker: Arc<Broker>,
    pipelines: Vec<Arc<Mutex<PipelineStatus>>>,
    mirrors: Vec<(String, Arc<dyn MirrorCountersSource>)>,
}

/// The `/metrics` route.
pub fn router(broker: Arc<Broker>, pipelines: Vec<Arc<Mutex<PipelineStatus>>>) -> Router {
    router_with_mirrors(broker, pipelines, Vec::new())
}

/// The `/metrics` route, with the in-broker mirrors' counters (by name).
pub fn router_with_mirrors(
    broker: Arc<Broker>,
    pipelines: Vec<Arc<Mutex<PipelineStatus>>>,
    mirrors: Vec<(String, Arc<dyn MirrorCountersSource>)>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Sources {
            broker,
            pipelines,
            mirrors,
        })
}

async fn metrics(State(s): State<Sources>) -> impl IntoResponse {
    let statuses: Vec<PipelineStatus> = s.pipelines.iter().map(|p| p.lock().clone()).collect();
    let mirrors: Vec<(String, MirrorCounters)> = s
        .mirrors
        .iter()
        .map(|(name, m)| (name.clone(), m.counters()))
        .collect();
    let mut page = render(&s.broker, &statuses);
    page.push_str(&render_mirrors(&mirrors));
    s.broker.control.render_metrics(&mut page);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page)
}

/// Appends one metric family (HELP, TYPE and a line per labelled value).
pub(crate) fn write_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: Vec<(String, i64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// Escapes a label value.
pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render(broker: &Broker, pipelines: &[PipelineStatus]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, i64)>| {
        write_family(&mut out, name, kind, help, rows);
    };
    let topics = broker.topics.all();
    let partitions: Vec<(String, i64, i64, i64)> = topics
        .iter()
        .flat_map(|t| {
            t.hosted().map(move |(i, p)| {
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

/// The mirrors' families (empty when no mirror runs in the broker).
pub fn render_mirrors(mirrors: &[(String, MirrorCounters)]) -> String {
    let mut out = String::new();
    if mirrors.is_empty() {
        return out;
    }
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, i64)>| {
        write_family(&mut out, name, kind, help, rows);
    };
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let per_topic = |get: &dyn Fn(&MirrorTopicCounters) -> i64| -> Vec<(String, i64)> {
        mirrors
            .iter()
            .flat_map(|(m, v)| {
                v.topics.iter().map(move |(topic, t)| {
                    (
                        format!(
                            "mirror=\"{}\",topic=\"{}\",target=\"{}\"",
                            label(m),
                            label(topic),
                            label(&t.target)
                        ),
                        get(t),
                    )
                })
            })
            .collect()
    };
    type Get = fn(&MirrorTopicCounters) -> u64;
    let counters: [(&str, &str, Get); 8] = [
        (
            "starlog_mirror_records_read_total",
            "Upstream records handled.",
            |t| t.read,
        ),
        (
            "starlog_mirror_records_written_total",
            "Records written to the target and acknowledged.",
            |t| t.written,
        ),
        (
            "starlog_mirror_records_rewritten_total",
            "Records whose schema id was rewritten.",
            |t| t.rewritten,
        ),
        (
            "starlog_mirror_records_passed_through_total",
            "Records copied inside whole upstream batches, as bytes (also counted as written).",
            |t| t.passed_through,
        ),
        (
            "starlog_mirror_records_dead_lettered_total",
            "Records sent to the dead-letter topic.",
            |t| t.dead_lettered,
        ),
        (
            "starlog_mirror_records_skipped_total",
            "Records dropped by the skip policy.",
            |t| t.skipped,
        ),
        (
            "starlog_mirror_records_already_present_total",
            "Records found in the target after a restart and not written again.",
            |t| t.already_present,
        ),
        (
            "starlog_mirror_value_bytes_total",
            "Value bytes written to the target.",
            |t| t.value_bytes,
        ),
    ];
    for (name, help, get) in counters {
        family(name, "counter", help, per_topic(&|t| as_i64(get(t))));
    }
    family(
        "starlog_mirror_lag",
        "gauge",
        "Upstream records not read yet (high watermark minus position), over the topic's partitions.",
        per_topic(&|t| t.lag),
    );
    let per_mirror = |get: &dyn Fn(&MirrorCounters) -> i64| -> Vec<(String, i64)> {
        mirrors
            .iter()
            .map(|(m, v)| (format!("mirror=\"{}\"", label(m)), get(v)))
            .collect()
    };
    family(
        "starlog_mirror_running",
        "gauge",
        "1 while a run of the mirror is going on.",
        per_mirror(&|v| i64::from(v.running)),
    );
    family(
        "starlog_mirror_runs_total",
        "counter",
        "Runs started (a run that failed is started again after a back-off).",
        per_mirror(&|v| as_i64(v.runs)),
    );
    family(
        "starlog_mirror_checkpoints_total",
        "counter",
        "Checkpoints written.",
        per_mirror(&|v| as_i64(v.checkpoints)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_families_have_one_row_per_topic() {
        let v = MirrorCounters {
            running: true,
            runs: 2,
            checkpoints: 7,
            topics: vec![(
                "ztf_20191121_programid1".into(),
                MirrorTopicCounters {
                    target: "ztf-buffer".into(),
                    read: 12,
                    written: 11,
                    skipped: 1,
                    lag: 3,
                    ..MirrorTopicCounters::default()
                },
            )],
        };
        let page = render_mirrors(&[("ztf".into(), v)]);
        let row = "mirror=\"ztf\",topic=\"ztf_20191121_programid1\",target=\"ztf-buffer\"";
        assert!(
            page.contains(&format!("starlog_mirror_records_read_total{{{row}}} 12")),
            "{page}"
        );
        assert!(page.contains(&format!("starlog_mirror_records_written_total{{{row}}} 11")));
        assert!(page.contains(&format!("starlog_mirror_records_skipped_total{{{row}}} 1")));
        assert!(page.contains(&format!("starlog_mirror_lag{{{row}}} 3")));
        assert!(page.contains("starlog_mirror_running{mirror=\"ztf\"} 1"));
        assert!(page.contains("starlog_mirror_runs_total{mirror=\"ztf\"} 2"));
        assert!(page.contains("# TYPE starlog_mirror_lag gauge"));
        assert!(render_mirrors(&[]).is_empty());
    }
}
