//! The site file: the example loads, and each kind of fault is reported
//! with its YAML path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use starlog_deploy::site::{AlertFiles, Framing, PipelineSource, Placement, SampleSet, Upstream};
use starlog_deploy::{Site, SiteError};
use starlog_processors::config::ProcessorRegistry;

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/site.yaml")
}

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The example with `from` replaced by `to` (once, and it must be there).
fn variant(from: &str, to: &str) -> Result<Site, SiteError> {
    let text = std::fs::read_to_string(example()).unwrap();
    assert!(text.contains(from), "the example has no {from:?}");
    let text = text.replacen(from, to, 1);
    Site::from_yaml_str(&text, "variant", &examples_dir())
}

fn fault(from: &str, to: &str) -> (String, String) {
    match variant(from, to) {
        Err(SiteError::Invalid { path, message }) => (path, message),
        other => panic!("{from:?} -> {to:?}: expected an Invalid fault, got {other:?}"),
    }
}

#[test]
fn the_example_site_loads_with_every_component() {
    let site = Site::load(example()).unwrap();
    assert_eq!(site.name, "demo");
    let alerts = site.buffer("alerts").unwrap();
    assert_eq!(alerts.instances, 3);
    assert_eq!(alerts.listeners.kafka_port(2), 19094);
    assert_eq!(alerts.topics[0].name, "ztf-buffer");
    assert_eq!(alerts.topics[0].partitions, 4);
    assert_eq!(alerts.topics[0].replication, 3);
    assert_eq!(alerts.storage.size.as_deref(), Some("10Gi"));
    let edge = site.buffer("edge").unwrap();
    assert_eq!(edge.instances, 1);
    assert_eq!(edge.topics[0].replication, 1);

    assert_eq!(site.testdata.len(), 1);
    let t = &site.testdata[0];
    assert!(matches!(&t.files, AlertFiles::Paths(p) if p[0].ends_with("kowalski/20231012")));
    assert_eq!(t.framing, Framing::Ocf);
    assert_eq!(t.rate, Some(50.0));

    assert_eq!(site.nodes.len(), 3);
    assert_eq!(
        site.nodes[0].placement,
        Placement::Standalone { instances: 2 }
    );
    assert_eq!(site.nodes[0].source_topic, "ztf-buffer");
    assert!(matches!(site.nodes[0].pipeline, PipelineSource::File(_)));
    assert_eq!(site.nodes[1].placement, Placement::InBroker);
    assert_eq!(site.nodes[2].placement, Placement::InBroker);
    assert!(matches!(site.nodes[2].pipeline, PipelineSource::Inline(_)));
    assert_eq!(site.mirrors[0].upstream, Upstream::Buffer("alerts".into()));
    assert_eq!(site.component_path("bright"), Some("components[3]"));

    site.check_pipelines(&ProcessorRegistry::with_builtins())
        .unwrap();
}

#[test]
fn an_unknown_key_is_named_with_its_path() {
    let (path, message) = fault("    instances: 3 ", "    instancez: 3 ");
    assert_eq!(path, "components[0].instancez");
    assert!(message.contains("unknown"), "{message}");
    let (path, _) = fault("kafka: 19092", "kafka: 19092\n      grpc: 1");
    assert_eq!(path, "components[0].listeners.grpc");
}

#[test]
fn replication_above_instances_is_refused() {
    let (path, message) = fault(
        "{ name: ztf-buffer, partitions: 2 }",
        "{ name: ztf-buffer, partitions: 2, replication: 2 }",
    );
    assert_eq!(path, "components[1].topics[0].replication");
    assert!(
        message.contains("above the buffer's 1 instance"),
        "{message}"
    );
}

#[test]
fn a_node_reading_a_topic_its_buffer_lacks_is_refused() {
    let (path, message) = fault(
        "{ name: ztf-buffer, partitions: 4, replication: 3 }",
        "{ name: ztf-main, partitions: 4, replication: 3 }",
    );
    assert_eq!(path, "components[3].pipeline.file");
    assert!(
        message.contains("buffer \"alerts\" has no topic \"ztf-buffer\""),
        "{message}"
    );

    let (path, message) = fault("topic: ztf-buffer\n    files", "topic: nowhere\n    files");
    assert_eq!(path, "components[2].topic");
    assert!(message.contains("has no topic \"nowhere\""), "{message}");
}

#[test]
fn an_unknown_buffer_or_type_is_refused() {
    let (path, message) = fault(
        "upstream: { buffer: alerts }",
        "upstream: { buffer: elsewhere }",
    );
    assert_eq!(path, "components[4].upstream.buffer");
    assert!(message.contains("elsewhere"), "{message}");
    let (path, message) = fault("type: mirror", "type: mirrror");
    assert_eq!(path, "components[4].type");
    assert!(message.contains("kafka-buffer"), "{message}");
}

#[test]
fn in_broker_chains_run_on_single_brokers_and_on_clusters() {
    let site = Site::load(example()).unwrap();
    let buffers: Vec<(&str, u16)> = site
        .nodes
        .iter()
        .filter(|n| n.placement == Placement::InBroker)
        .map(|n| {
            let b = site.buffer(&n.buffer).unwrap();
            (b.name.as_str(), b.instances)
        })
        .collect();
    assert_eq!(buffers, vec![("edge", 1), ("alerts", 3)]);
}

#[test]
fn overlapping_ports_and_duplicate_names_are_refused() {
    // edge's Kafka port inside alerts' range (19092..19094).
    let (path, message) = fault("kafka: 19095", "kafka: 19093");
    assert_eq!(path, "components[1].listeners.kafka");
    assert!(message.contains("19093"), "{message}");
    let (path, _) = fault("name: edge", "name: alerts");
    assert_eq!(path, "components[1].name");
}

#[test]
fn an_unknown_processor_class_is_named_with_its_path() {
    let text = std::fs::read_to_string(example()).unwrap().replacen(
        "    pipeline: { file: pipelines/bright-transients.yaml }",
        "    pipeline:\n      source: { topic: ztf-buffer, group: g }\n      processors:\n        - class: NoSuchFilter",
        1,
    );
    let site = Site::from_yaml_str(&text, "variant", &examples_dir()).unwrap();
    match site.check_pipelines(&ProcessorRegistry::with_builtins()) {
        Err(SiteError::Invalid { path, message }) => {
            assert_eq!(path, "components[3].pipeline.processors[0].class");
            assert!(message.contains("NoSuchFilter"), "{message}");
        }
        other => panic!("expected an Invalid fault, got {other:?}"),
    }
}

#[test]
fn schemaless_test_data_needs_its_schema() {
    let (path, message) = fault("framing: ocf ", "framing: schemaless ");
    assert_eq!(path, "components[2].schema");
    assert!(message.contains("static schema"), "{message}");
}

#[test]
fn shipped_samples_or_files_not_both() {
    let site = variant(
        "files: [../testdata/ztf/alerts/kowalski/20231012]",
        "samples: lsst",
    )
    .unwrap();
    assert_eq!(site.testdata[0].files, AlertFiles::Samples(SampleSet::Lsst));
    let (path, message) = fault(
        "files: [../testdata/ztf/alerts/kowalski/20231012]",
        "files: [x]\n    samples: ztf",
    );
    assert_eq!(path, "components[2].samples");
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn missing_test_data_files_are_named() {
    let (path, message) = fault(
        "files: [../testdata/ztf/alerts/kowalski/20231012]",
        "files: [../testdata/ztf/alerts/kowalski/20231012, ../testdata/nowhere]",
    );
    assert_eq!(path, "components[2].files[1]");
    assert!(message.contains("does not exist"), "{message}");
}
