//! A mirror running inside the local broker (`mirrors:` in its config)
//! reads a second, upstream broker; its counters on the local broker's
//! `/metrics` match what really landed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The mirror's test helpers (brokers with registries, framed ZTF alerts).
#[path = "../../mirror/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TARGET: &str = "ztf-buffer";
const PARTS: i32 = 2;
const DAYS: [&str; 2] = ["ztf_20191121_programid1", "ztf_20191122_programid1"];

async fn get_metrics(registry_url: &str) -> String {
    let addr = registry_url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of each row of `family`, by its labels.
fn rows(page: &str, family: &str) -> BTreeMap<String, i64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((labels[family.len()..].to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sum(page: &str, family: &str) -> i64 {
    rows(page, family).values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_broker_mirror_counters_on_metrics_match_the_mirrored_records() {
    let up = TestBroker::start().await;
    register_unrelated(&up.registry_url(), 4).await;
    let reg = registry(&up.registry_url());
    let pool = alerts("ztf/alerts/fink-alert-simulator");
    let id = reg
        .register("ztf-value", &pool[0].schema_json)
        .await
        .unwrap();
    let per_day = 60usize;
    let bad_every = 20usize;
    let mut bad = 0i64;
    for day in DAYS {
        create_topic(&up.bootstrap(), day, 1).await;
        let values: Vec<Option<Bytes>> = (0..per_day)
            .map(|i| {
                if i % bad_every == 7 {
                    bad += 1;
                    // Not Confluent-framed: skipped by the policy.
                    Some(Bytes::from_static(b"not an alert"))
                } else {
                    Some(frame(id, &pool[i % pool.len()].body))
                }
            })
            .collect();
        produce(&up.bootstrap(), day, &values).await;
    }
    let read = (per_day * DAYS.len()) as i64;
    let good = read - bad;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    // No `local:` section: the mirror writes into the broker it runs in.
    std::fs::write(
        &file,
        format!(
            r#"
name: in-broker
upstream:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: {PARTS}
checkpoint_interval_ms: 200
bad_input: {{ policy: skip }}
"#,
            up.bootstrap(),
            up.registry_url()
        ),
    )
    .unwrap();
    let mirror_file = file.clone();
    let local = TestBroker::start_extended(starlog::extensions(), move |c| {
        c.mirrors = vec![mirror_file];
    })
    .await;
    wait_for(
        &local.bootstrap(),
        TARGET,
        PARTS,
        good,
        Duration::from_secs(120),
    )
    .await;

    // The counters are published a few times a second: look until the
    // written count has caught up (bounded), then compare everything.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = get_metrics(&local.registry_url()).await;
        if sum(&page, "starlog_mirror_records_read_total") == read
            && sum(&page, "starlog_mirror_records_written_total") == good
        {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counters did not reach {read} read / {good} written:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let landed = end_total(&local.bootstrap(), TARGET, PARTS).await;
    assert_eq!(landed, good, "the target holds exactly the good records");
    assert_eq!(sum(&page, "starlog_mirror_records_written_total"), landed);
    assert_eq!(sum(&page, "starlog_mirror_records_rewritten_total"), landed);
    assert_eq!(sum(&page, "starlog_mirror_records_skipped_total"), bad);
    assert_eq!(sum(&page, "starlog_mirror_records_dead_lettered_total"), 0);
    assert_eq!(sum(&page, "starlog_mirror_records_passed_through_total"), 0);
    let written = rows(&page, "starlog_mirror_records_written_total");
    for day in DAYS {
        let row = format!("{{mirror=\"in-broker\",topic=\"{day}\",target=\"{TARGET}\"}}");
        let day_bad = bad / DAYS.len() as i64;
        assert_eq!(
            written.get(&row),
            Some(&(per_day as i64 - day_bad)),
            "{page}"
        );
    }
    // Everything upstream was read: no lag left.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = get_metrics(&local.registry_url()).await;
        let lag = rows(&page, "starlog_mirror_lag");
        if lag.len() == DAYS.len() && lag.values().all(|l| *l == 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag stays: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains("starlog_mirror_running{mirror=\"in-broker\"} 1"));
    // The broker stops its mirror first on shutdown, cleanly.
    local.stop().await;
    up.stop().await;
}

/// An in-broker mirror writes into a broker whose only Kafka listener
/// requires a SASL login and which allows nothing without an ACL: it logs
/// in as the broker's own principal (`User:starlog-internal`, this run's
/// random password), and an outside client with no login gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_broker_mirror_logs_in_as_the_internal_principal() {
    use starlog_broker::listener::{ListenerSettings, SecurityProtocol};
    let up = TestBroker::start().await;
    let pool = alerts("ztf/alerts/fink-alert-simulator");
    let id = registry(&up.registry_url())
        .register("ztf-value", &pool[0].schema_json)
        .await
        .unwrap();
    create_topic(&up.bootstrap(), DAYS[0], 1).await;
    let n = 40usize;
    let values: Vec<Option<Bytes>> = (0..n)
        .map(|i| Some(frame(id, &pool[i % pool.len()].body)))
        .collect();
    produce(&up.bootstrap(), DAYS[0], &values).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            r#"
name: in-broker-sasl
upstream:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: 1
checkpoint_interval_ms: 200
"#,
            up.bootstrap(),
            up.registry_url()
        ),
    )
    .unwrap();
    let local = TestBroker::start_extended(starlog::extensions(), move |c| {
        c.listen = starlog_broker::BrokerConfig::default().listen;
        let mut l = ListenerSettings::plaintext(([127, 0, 0, 1], 0).into(), None);
        l.name = "sasl-only".into();
        l.security = SecurityProtocol::SaslPlaintext;
        c.listeners = vec![l];
        c.security.allow_everyone_if_no_acl_found = false;
        c.mirrors = vec![file];
    })
    .await;
    let landed = || {
        local.server().broker().topics.get(TARGET).map_or(0, |t| {
            t.hosted().map(|(_, p)| p.high_watermark()).sum::<i64>()
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while landed() < n as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the in-broker mirror wrote {} of {n}",
            landed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(landed(), n as i64);
    // A client without a login is closed before any request but ApiVersions.
    let mut raw = tokio::net::TcpStream::connect(local.addr()).await.unwrap();
    // Metadata v1 request header + empty body (all topics).
    let frame: [u8; 16] = [0, 0, 0, 12, 0, 3, 0, 1, 0, 0, 0, 7, 0, 0, 0xff, 0xff];
    raw.write_all(&frame[..14]).await.unwrap();
    raw.write_all(&frame[14..]).await.unwrap();
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );
    local.stop().await;
    up.stop().await;
}
