//! The pipeline files of the repository's `examples/` load and build with
//! the real parser and the built-in classes, so they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use starlog_processors::config::{BuildContext, ComponentKind, PipelineSpec, ProcessorRegistry};
use starlog_processors::dead_letter::REASON_HEADER;
use starlog_processors::decode::MemorySchemaRegistry;
use starlog_processors::sink::MemoryTopicSink;
use starlog_processors::{InputFormat, InputRecord, RecordOutcome};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/pipelines")
        .join(name)
}

fn load(name: &str) -> PipelineSpec {
    let file = example(name);
    PipelineSpec::from_file(&file, &ProcessorRegistry::with_builtins())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A message no decoder accepts goes to the pipeline's dead-letter topic:
/// the built pipeline is wired to the sink it was given.
fn dead_letters_garbage(
    pipeline: &mut starlog_processors::Pipeline,
    sink: &MemoryTopicSink,
    dead_letter_topic: &str,
) {
    let record = InputRecord {
        topic: "ztf-buffer",
        partition: 0,
        offset: 7,
        key: None,
        value: b"not an alert",
        headers: &[],
    };
    assert!(matches!(
        pipeline.handle(&record),
        RecordOutcome::DeadLettered { .. }
    ));
    pipeline.flush().unwrap();
    let dead = sink.records_for(dead_letter_topic);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value, b"not an alert");
    assert!(dead[0].header(REASON_HEADER).is_some());
}

#[test]
fn in_broker_example_loads_and_builds() {
    let spec = load("solar-system.yaml");
    assert_eq!(spec.kind, ComponentKind::InBroker);
    assert_eq!(spec.name, "solar-system-bright");
    assert_eq!(spec.source.topic, "ztf-buffer");
    assert_eq!(spec.input.format, InputFormat::Auto);
    assert_eq!(spec.dead_letter_topic, "ztf-buffer-dead-letter");
    assert_eq!(
        spec.chain.classes(),
        ["SolarSystemFilter", "ExpressionFilter", "KafkaTopicWriter"]
    );
    // The broker gives in-broker pipelines its sink and its registry.
    let sink = Arc::new(MemoryTopicSink::new());
    let ctx = BuildContext::default()
        .with_sink(sink.clone())
        .with_registry(Arc::new(MemorySchemaRegistry::new()));
    let mut pipeline = spec.build(&ctx).unwrap();
    assert_eq!(pipeline.chain().step_counters().len(), 3);
    dead_letters_garbage(&mut pipeline, &sink, "ztf-buffer-dead-letter");
}

#[test]
fn processing_node_example_loads_and_builds_without_a_registry() {
    let spec = load("bright-transients.yaml");
    assert_eq!(spec.kind, ComponentKind::ProcessingNode);
    assert_eq!(spec.name, "bright-transients");
    assert_eq!(spec.source.group.as_deref(), Some("bright-transients"));
    assert_eq!(spec.input.format, InputFormat::ObjectContainer);
    assert_eq!(
        spec.chain.classes(),
        ["SolarSystemFilter", "ExpressionFilter", "KafkaTopicWriter"]
    );
    // `starlog process` gives a sink and no registry, as here.
    let sink = Arc::new(MemoryTopicSink::new());
    let mut pipeline = spec
        .build(&BuildContext::default().with_sink(sink.clone()))
        .unwrap();
    dead_letters_garbage(&mut pipeline, &sink, "bright-transients-dead-letter");
}
