//! `/metrics`: counters in the OpenMetrics text format, encoded by
//! `prometheus-client` — per partition (offsets, size), per in-broker
//! pipeline (in, passed, skipped, dead letters, failures, lag) and per
//! in-broker mirror and upstream topic (read, written, rewritten, copied as
//! bytes, dead-lettered, skipped, already present, bytes, lag; runs and
//! whether one is going on), then the mode's own families
//! ([`Control::encode_metrics`](crate::control::Control::encode_metrics)).
//!
//! Every family is a [`Collector`] that reads the live state when the page
//! is scraped; nothing on the hot path writes to a metric object. Counter
//! families are named here without the `_total` the encoder appends to
//! their samples.

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::broker::Broker;
use crate::extensions::{MirrorCounters, MirrorCountersSource, MirrorTopicCounters};
use crate::pipelines::PipelineStatus;

/// The page's Content-Type: the OpenMetrics text format, which Prometheus
/// scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a partition's families (the partition's log, its Raft group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// Labels of a pipeline's families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PipelineLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Its source topic.
    pub source: String,
}

/// Labels of a mirror's per-topic families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MirrorTopicLabels {
    /// Mirror name.
    pub mirror: String,
    /// Upstream topic.
    pub topic: String,
    /// Target topic.
    pub target: String,
}

/// Labels of a mirror's own families.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MirrorLabels {
    /// Mirror name.
    pub mirror: String,
}

/// Writes one counter family, a sample per labelled value. `name` is
/// without `_total`; the encoder appends it to each sample.
pub(crate) fn counter_family<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one counter without labels (`name` without `_total`).
pub(crate) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(family)
}

/// Writes one gauge family, a sample per labelled value.
pub(crate) fn gauge_family<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, i64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
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
        .with_state(Arc::new(registry(broker, pipelines, mirrors)))
}

/// The page's registry: one collector per group of families, in page order.
fn registry(
    broker: Arc<Broker>,
    pipelines: Vec<Arc<Mutex<PipelineStatus>>>,
    mirrors: Vec<(String, Arc<dyn MirrorCountersSource>)>,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Partitions(Arc::clone(&broker))));
    registry.register_collector(Box::new(Pipelines(pipelines)));
    registry.register_collector(Box::new(Mirrors(mirrors)));
    registry.register_collector(Box::new(ModeFamilies(broker)));
    registry
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut page = String::new();
    if let Err(e) = encode(&mut page, &registry) {
        tracing::warn!(error = %e, "encoding /metrics failed");
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "encoding the metrics failed\n".to_string(),
        );
    }
    (
        axum::http::StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        page,
    )
}

/// The hosted partitions' offsets and sizes.
struct Partitions(Arc<Broker>);

impl fmt::Debug for Partitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partitions").finish_non_exhaustive()
    }
}

impl Collector for Partitions {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let topics = self.0.topics.all();
        let partitions: Vec<(PartitionLabels, i64, i64, i64)> = topics
            .iter()
            .flat_map(|t| {
                t.hosted().map(move |(i, p)| {
                    let labels = PartitionLabels {
                        topic: t.name.clone(),
                        partition: i,
                    };
                    let size = i64::try_from(p.log().size_bytes()).unwrap_or(i64::MAX);
                    (labels, p.high_watermark(), p.log().log_start_offset(), size)
                })
            })
            .collect();
        gauge_family(
            &mut encoder,
            "starlog_partition_high_watermark",
            "Offset up to which consumers may read.",
            partitions.iter().map(|p| (p.0.clone(), p.1)),
        )?;
        gauge_family(
            &mut encoder,
            "starlog_partition_log_start_offset",
            "First offset still stored.",
            partitions.iter().map(|p| (p.0.clone(), p.2)),
        )?;
        gauge_family(
            &mut encoder,
            "starlog_partition_size_bytes",
            "Bytes stored for the partition.",
            partitions.iter().map(|p| (p.0.clone(), p.3)),
        )
    }
}

/// The in-broker pipelines' counters.
#[derive(Debug)]
struct Pipelines(Vec<Arc<Mutex<PipelineStatus>>>);

impl Collector for Pipelines {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let statuses: Vec<PipelineStatus> = self.0.iter().map(|p| p.lock().clone()).collect();
        let labels = |p: &PipelineStatus| PipelineLabels {
            pipeline: p.name.clone(),
            source: p.source.clone(),
        };
        type Get = fn(&PipelineStatus) -> u64;
        let counters: [(&str, &str, Get); 5] = [
            (
                "starlog_pipeline_records_in",
                "Input records handled.",
                |p| p.records_in,
            ),
            (
                "starlog_pipeline_passed",
                "Candidates that passed the whole chain.",
                |p| p.passed,
            ),
            (
                "starlog_pipeline_skipped",
                "Candidates a step skipped.",
                |p| p.skipped,
            ),
            (
                "starlog_pipeline_dead_lettered",
                "Records sent to the dead-letter topic.",
                |p| p.dead_lettered,
            ),
            (
                "starlog_pipeline_failures",
                "Steps that failed and were retried.",
                |p| p.failures,
            ),
        ];
        for (name, help, get) in counters {
            counter_family(
                &mut encoder,
                name,
                help,
                statuses.iter().map(|p| (labels(p), get(p))),
            )?;
        }
        gauge_family(
            &mut encoder,
            "starlog_pipeline_lag",
            "Records between the committed position and the high watermark.",
            statuses.iter().map(|p| (labels(p), p.lag)),
        )
    }
}

/// The in-broker mirrors' counters (no family when no mirror runs in the
/// broker).
struct Mirrors(Vec<(String, Arc<dyn MirrorCountersSource>)>);

impl fmt::Debug for Mirrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_tuple("Mirrors").field(&names).finish()
    }
}

impl Collector for Mirrors {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mirrors: Vec<(String, MirrorCounters)> = self
            .0
            .iter()
            .map(|(name, m)| (name.clone(), m.counters()))
            .collect();
        encode_mirrors(&mut encoder, &mirrors)
    }
}

/// The mirrors' families for `mirrors` (nothing when empty).
fn encode_mirrors(
    encoder: &mut DescriptorEncoder<'_>,
    mirrors: &[(String, MirrorCounters)],
) -> fmt::Result {
    if mirrors.is_empty() {
        return Ok(());
    }
    let per_topic = || {
        mirrors.iter().flat_map(|(m, v)| {
            v.topics.iter().map(move |(topic, t)| {
                let labels = MirrorTopicLabels {
                    mirror: m.clone(),
                    topic: topic.clone(),
                    target: t.target.clone(),
                };
                (labels, t)
            })
        })
    };
    type Get = fn(&MirrorTopicCounters) -> u64;
    let counters: [(&str, &str, Get); 8] = [
        (
            "starlog_mirror_records_read",
            "Upstream records handled.",
            |t| t.read,
        ),
        (
            "starlog_mirror_records_written",
            "Records written to the target and acknowledged.",
            |t| t.written,
        ),
        (
            "starlog_mirror_records_rewritten",
            "Records whose schema id was rewritten.",
            |t| t.rewritten,
        ),
        (
            "starlog_mirror_records_passed_through",
            "Records copied inside whole upstream batches, as bytes (also counted as written).",
            |t| t.passed_through,
        ),
        (
            "starlog_mirror_records_dead_lettered",
            "Records sent to the dead-letter topic.",
            |t| t.dead_lettered,
        ),
        (
            "starlog_mirror_records_skipped",
            "Records dropped by the skip policy.",
            |t| t.skipped,
        ),
        (
            "starlog_mirror_records_already_present",
            "Records found in the target after a restart and not written again.",
            |t| t.already_present,
        ),
        (
            "starlog_mirror_value_bytes",
            "Value bytes written to the target.",
            |t| t.value_bytes,
        ),
    ];
    for (name, help, get) in counters {
        counter_family(encoder, name, help, per_topic().map(|(l, t)| (l, get(t))))?;
    }
    gauge_family(
        encoder,
        "starlog_mirror_lag",
        "Upstream records not read yet (high watermark minus position), over the topic's partitions.",
        per_topic().map(|(l, t)| (l, t.lag)),
    )?;
    let per_mirror = || {
        mirrors.iter().map(|(m, v)| {
            let labels = MirrorLabels { mirror: m.clone() };
            (labels, v)
        })
    };
    gauge_family(
        encoder,
        "starlog_mirror_running",
        "1 while a run of the mirror is going on.",
        per_mirror().map(|(l, v)| (l, i64::from(v.running))),
    )?;
    counter_family(
        encoder,
        "starlog_mirror_runs",
        "Runs started (a run that failed is started again after a back-off).",
        per_mirror().map(|(l, v)| (l, v.runs)),
    )?;
    counter_family(
        encoder,
        "starlog_mirror_checkpoints",
        "Checkpoints written.",
        per_mirror().map(|(l, v)| (l, v.checkpoints)),
    )
}

/// The mode's families (the cluster's `starlog_raft_*`; none for a single
/// broker).
struct ModeFamilies(Arc<Broker>);

impl fmt::Debug for ModeFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeFamilies").finish_non_exhaustive()
    }
}

impl Collector for ModeFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.0.control.encode_metrics(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collector over fixed mirror counters.
    #[derive(Debug)]
    struct Fixed(Vec<(String, MirrorCounters)>);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            encode_mirrors(&mut encoder, &self.0)
        }
    }

    fn page_of(mirrors: Vec<(String, MirrorCounters)>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(mirrors)));
        let mut page = String::new();
        encode(&mut page, &registry).unwrap();
        page
    }

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
        let page = page_of(vec![("ztf".into(), v)]);
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
        assert!(page.contains("# TYPE starlog_mirror_runs counter"));
        assert!(page.ends_with("# EOF\n"), "{page}");
        assert_eq!(page_of(Vec::new()), "# EOF\n");
    }

    #[test]
    fn label_values_are_escaped() {
        let v = MirrorCounters {
            running: false,
            ..MirrorCounters::default()
        };
        let page = page_of(vec![("a\"b\\c\nd".into(), v)]);
        assert!(
            page.contains("starlog_mirror_running{mirror=\"a\\\"b\\\\c\\nd\"} 0"),
            "{page}"
        );
    }
}
