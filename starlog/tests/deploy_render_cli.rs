//! The `starlog deploy` commands of the renderers, through the binary:
//! `render` writes a target's files where it is told and lists them;
//! `probe` (the compose health check) succeeds on a broker's `/metrics`
//! and fails on a path it does not serve and on a closed port; `topics`
//! creates a buffer's topics with their partitions and leaves existing
//! ones alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use starlog_testkit::TestBroker;

fn starlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn render_writes_the_target_files_and_lists_them() {
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/site.yaml");
    let out = tempfile::tempdir().unwrap();
    let o = starlog(&[
        "deploy",
        "render",
        "--target",
        "kubernetes",
        site.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--image",
        "registry.example/starlog:test",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let file = out.path().join("kubernetes.yaml");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        file.display().to_string()
    );
    let manifests = std::fs::read_to_string(&file).unwrap();
    assert!(manifests.contains("image: registry.example/starlog:test"));
    let o = starlog(&[
        "deploy",
        "render",
        "--target",
        "nomad",
        site.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("compose"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_and_topics_work_against_a_broker() {
    let broker = TestBroker::start().await;
    let http = broker.registry_url();
    let ok = starlog(&["deploy", "probe", &format!("{http}/metrics")]);
    assert!(ok.status.success(), "{}", text(&ok));
    let missing = starlog(&["deploy", "probe", &format!("{http}/no-such-page")]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("404"), "{}", text(&missing));
    let closed = starlog(&[
        "deploy",
        "probe",
        "http://127.0.0.1:1/metrics",
        "--timeout",
        "1",
    ]);
    assert!(!closed.status.success());

    let bs = broker.bootstrap();
    let args = [
        "deploy",
        "topics",
        "--bootstrap",
        bs.as_str(),
        "--topic",
        "alerts:3:1",
        "--topic",
        "dead:1:1",
        "--config",
        "dead:retention.ms=3600000",
        "--timeout",
        "20",
    ];
    let first = starlog(&args);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains(r#"created: ["alerts", "dead"]"#),
        "{}",
        text(&first)
    );
    let again = starlog(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("created: []"), "{}", text(&again));
    let admin =
        starlog_clients::Admin::new(starlog_clients::ClientConfig::new(bs.as_str())).unwrap();
    let meta = admin.describe_topics(&["alerts"]).await.unwrap();
    assert_eq!(meta[0].partitions.len(), 3, "{meta:?}");
    let bad = starlog(&["deploy", "topics", "--bootstrap", &bs, "--topic", "x:y"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("NAME:PARTITIONS:REPLICATION"),
        "{}",
        text(&bad)
    );
}
