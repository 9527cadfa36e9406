//! The notification and stream examples under `examples/pipelines/` load
//! and build with the `starlog` binary's registry (the secrets they name
//! set in the environment), so they cannot rot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use starlog_processors::config::{BuildContext, PipelineSpec};
use starlog_processors::sink::MemoryTopicSink;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/pipelines")
        .join(name)
}

fn builds(name: &str, classes: &[&str]) {
    std::env::set_var(
        "STARLOG_SLACK_WEBHOOK",
        "https://hooks.slack.example/services/T/B/X",
    );
    std::env::set_var("STARLOG_SMTP_PASSWORD", "not-a-real-password");
    let file = example(name);
    let spec = PipelineSpec::from_file(&file, &starlog_sinks::registry())
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert_eq!(spec.chain.classes(), classes, "{name}");
    let mut pipeline = spec
        .build(&BuildContext::default().with_sink(Arc::new(MemoryTopicSink::new())))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    // Nothing was sent: closing has nothing to deliver.
    pipeline.close().unwrap();
}

#[test]
fn voevent_example() {
    builds(
        "voevent-followup.yaml",
        &[
            "SolarSystemFilter",
            "ExpressionFilter",
            "WatchlistFilter",
            "VOEventWriter",
        ],
    );
}

#[test]
fn slack_example() {
    builds(
        "slack-bright.yaml",
        &["SolarSystemFilter", "ExpressionFilter", "SlackNotifier"],
    );
}

#[test]
fn email_example() {
    builds(
        "email-digest.yaml",
        &["CrossmatchProcessor", "EmailNotifier"],
    );
}

#[test]
fn lasair_streams_example() {
    builds(
        "lasair-streams.yaml",
        &[
            "SolarSystemFilter",
            "ExpressionFilter",
            "KafkaTopicWriter",
            "KafkaTopicWriter",
            "KafkaTopicWriter",
        ],
    );
}
