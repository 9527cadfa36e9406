//! Bad upstream input under each policy: a value that is not
//! Confluent-framed, a framed value too short to hold an id, an id the
//! upstream registry does not know, a body that is not Avro, and an
//! upstream registry that is down. Nothing is lost silently: every bad
//! record is dead-lettered with its reason, or counted as skipped, or
//! stops the run at exactly that record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use starlog_mirror::{run, MirrorConfig, MirrorError};

const UP: &str = "ztf_20191124_programid1";
const TARGET: &str = "ztf-buffer";
const DLQ: &str = "ztf-dead-letters";
const PARTS: i32 = 2;

/// Offsets of the good records, and the bad ones with a reason fragment.
const GOOD: [i64; 4] = [0, 2, 5, 7];
const BAD: [(i64, &str); 4] = [
    (1, "first byte 0x4f is not the magic byte 0"),
    (3, "unknown upstream schema id 9999"),
    (4, "not an Avro datum of the writer schema"),
    (6, "shorter than the 5-byte header"),
];

struct Setup {
    up: TestBroker,
    local: TestBroker,
    alert: Alert,
}

async fn setup() -> Setup {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    register_unrelated(&up.registry_url(), 2).await;
    let alert = alerts("ztf/alerts/kowalski/20200202").remove(0);
    let id = registry(&up.registry_url())
        .register("ztf-value", &alert.schema_json)
        .await
        .unwrap();
    let good = Some(frame(id, &alert.body));
    let ocf = Bytes::from(std::fs::read(&alert.file).unwrap());
    create_topic(&up.bootstrap(), UP, 1).await;
    produce(
        &up.bootstrap(),
        UP,
        &[
            good.clone(),
            Some(ocf),
            good.clone(),
            Some(frame(9999, &alert.body)),
            Some(frame(id, b"this is not avro")),
            good.clone(),
            Some(Bytes::from_static(&[0, 0, 1])),
            good,
        ],
    )
    .await;
    Setup { up, local, alert }
}

fn config(s: &Setup, policy: &str, upstream_registry: &str) -> MirrorConfig {
    let yaml = format!(
        r#"
name: bad-input
upstream:
  bootstrap: "{}"
  registry: {{ url: "{upstream_registry}", timeout_ms: 2000 }}
local:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: {PARTS}
progress: false
checkpoint_interval_ms: 100
bad_input: {policy}
"#,
        s.up.bootstrap(),
        s.local.bootstrap(),
        s.local.registry_url()
    );
    MirrorConfig::from_yaml(&yaml, Path::new(".")).unwrap()
}

async fn sources(
    bootstrap: &str,
    topic: &str,
    parts: i32,
) -> Vec<(i64, Option<String>, Option<Bytes>)> {
    let mut out: Vec<_> = read_all(bootstrap, topic, parts)
        .await
        .into_values()
        .flatten()
        .map(|r| {
            (
                source(&r).2,
                header(&r, "starlog.error").map(str::to_owned),
                r.value.clone(),
            )
        })
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_policy_keeps_every_bad_record_with_its_reason() {
    let s = setup().await;
    let cfg = config(
        &s,
        &format!("{{ policy: dead-letter, topic: {DLQ} }}"),
        &s.up.registry_url(),
    );
    let local = s.local.bootstrap();
    let done = async move {
        wait_for(&local, TARGET, PARTS, 4, Duration::from_secs(60)).await;
        wait_for(&local, DLQ, 1, 4, Duration::from_secs(60)).await;
    };
    let summary = run(cfg, done).await.unwrap();
    assert_eq!(summary.mirrored(), 4);
    assert_eq!(summary.dead_lettered(), 4);
    assert_eq!(summary.bad_input.values().sum::<u64>(), 4, "{summary}");
    assert_eq!(summary.bad_input["value not Confluent-framed"], 2);
    assert_eq!(summary.bad_input["unknown schema id"], 1);
    assert_eq!(summary.bad_input["not an Avro body"], 1);

    let good = sources(&s.local.bootstrap(), TARGET, PARTS).await;
    assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), GOOD);
    let dead = sources(&s.local.bootstrap(), DLQ, 1).await;
    assert_eq!(dead.len(), BAD.len());
    let upstream = read_all(&s.up.bootstrap(), UP, 1).await.remove(&0).unwrap();
    for ((offset, reason, value), (want_offset, fragment)) in dead.iter().zip(BAD) {
        assert_eq!(*offset, want_offset);
        let reason = reason.as_deref().expect("a reason header");
        assert!(
            reason.contains(fragment),
            "offset {offset}: {reason:?} lacks {fragment:?}"
        );
        assert_eq!(
            value,
            &upstream[usize::try_from(*offset).unwrap()].value,
            "original bytes kept"
        );
    }
    s.local.stop().await;
    s.up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_policy_counts_what_it_drops() {
    let s = setup().await;
    let cfg = config(&s, "{ policy: skip }", &s.up.registry_url());
    let local = s.local.bootstrap();
    let summary = run(cfg, async move {
        wait_for(&local, TARGET, PARTS, 4, Duration::from_secs(60)).await;
    })
    .await
    .unwrap();
    assert_eq!(summary.mirrored(), 4);
    assert_eq!(summary.skipped(), 4, "{summary}");
    assert_eq!(summary.topics[UP].skipped, 4);
    let good = sources(&s.local.bootstrap(), TARGET, PARTS).await;
    assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), GOOD);
    // The decoded good records are the alert.
    assert!(good
        .iter()
        .all(|g| g.2.as_ref().is_some_and(|v| v[5..] == s.alert.body[..])));
    s.local.stop().await;
    s.up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_policy_ends_at_the_bad_record_and_a_restart_stops_there_again() {
    let s = setup().await;
    for attempt in 0..2 {
        let cfg = config(&s, "{ policy: stop }", &s.up.registry_url());
        let err = run(cfg, std::future::pending::<()>()).await.unwrap_err();
        match err {
            MirrorError::BadInput {
                topic,
                partition,
                offset,
                reason,
            } => {
                assert_eq!(
                    (topic.as_str(), partition, offset),
                    (UP, 0, 1),
                    "attempt {attempt}"
                );
                assert!(reason.contains("0x4f"), "{reason}");
            }
            other => panic!("attempt {attempt}: expected BadInput, got {other}"),
        }
        let good = sources(&s.local.bootstrap(), TARGET, PARTS).await;
        assert_eq!(
            good.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![0],
            "attempt {attempt}: only what precedes the bad record, once"
        );
    }
    s.local.stop().await;
    s.up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_registry_is_bad_input_too() {
    let s = setup().await;
    // A port nobody listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = config(
        &s,
        &format!("{{ policy: dead-letter, topic: {DLQ} }}"),
        &format!("http://{closed}"),
    );
    let local = s.local.bootstrap();
    let summary = run(cfg, async move {
        wait_for(&local, DLQ, 1, 8, Duration::from_secs(60)).await;
    })
    .await
    .unwrap();
    assert_eq!(summary.mirrored(), 0);
    assert_eq!(summary.dead_lettered(), 8);
    assert_eq!(summary.bad_input["registry unavailable"], 6, "{summary}");
    let dead = sources(&s.local.bootstrap(), DLQ, 1).await;
    assert_eq!(
        dead.iter().map(|d| d.0).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    for (offset, reason, _) in &dead {
        let reason = reason.as_deref().unwrap();
        if [1, 6].contains(offset) {
            assert!(reason.contains("not Confluent-framed"), "{reason}");
        } else {
            assert!(
                reason.contains("upstream registry unavailable"),
                "{offset}: {reason}"
            );
        }
    }
    s.local.stop().await;
    s.up.stop().await;
}
