//! KafkaTopicWriter's Lasair-style JSON shapes, written by an in-broker
//! pipeline (classes from the `starlog` binary's registry) and read back
//! with kafka-python: every message of the full, chosen-fields and lite
//! light-curve streams is compared with its source alert, decoded
//! independently with fastavro, and the keys with the object ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use starlog_broker::Extensions;
use starlog_testkit::TestBroker;

#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;

const PIPELINE: &str = r#"
type: in-broker
name: lasair
source: { topic: ztf-buffer }
processors:
  - class: KafkaTopicWriter
    params: { topic: lasair-full, format: json, shape: full, key: object_id }
  - class: KafkaTopicWriter
    params:
      topic: lasair-fields
      format: json
      shape: fields
      fields: [objectId, candid, candidate.magpsf, magpsf, candidate.fid, ra, prv_candidates, candidate.no_such_field]
  - class: KafkaTopicWriter
    params: { topic: lasair-lite, format: json, shape: lite_lightcurve, key: none }
"#;

const RUBIN_PIPELINE: &str = r#"
type: in-broker
name: lasair-rubin
source: { topic: lsst-buffer }
processors:
  - class: KafkaTopicWriter
    params: { topic: rubin-fields, format: json, shape: fields, fields: [diaSourceId, diaSource.diaObjectId, psfFlux, band, diaObject.nDiaSources] }
  - class: KafkaTopicWriter
    params: { topic: rubin-lite, format: json, shape: lite_lightcurve, key: alert_id }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lasair_shapes_read_back_with_kafka_python() {
    let node: serde_yaml::Value = serde_yaml::from_str(PIPELINE).unwrap();
    let rubin: serde_yaml::Value = serde_yaml::from_str(RUBIN_PIPELINE).unwrap();
    let extensions = Extensions {
        processors: Some(starlog_sinks::registry()),
        ..Extensions::default()
    };
    let broker = TestBroker::start_extended(extensions, |c| {
        c.pipelines = vec![node, rubin];
    })
    .await;
    let mut files = starlog_testkit::alert_files("ztf/alerts/kowalski/20231012");
    files.sort();
    files.truncate(12);
    let mut rubin_files = starlog_testkit::alert_files("lsst/alerts/fink-broker-rubin");
    rubin_files.sort();
    assert_eq!(
        rubin_files.len(),
        9,
        "testdata's real Rubin alerts (v7.4 and v9.0)"
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/lasair_streams.py");
    let bootstrap = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .arg(&bootstrap)
            .args(&files)
            .arg("--rubin")
            .args(&rubin_files)
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafka-python / fastavro (scripts/test installs them):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("lasair streams ok: 12 ZTF alerts, 9 Rubin alerts"),
        "{stdout}"
    );
    broker.stop().await;
}
