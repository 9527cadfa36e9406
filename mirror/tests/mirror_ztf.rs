//! Two Starlog brokers on loopback, each with its own schema registry, as
//! upstream and local. Three daily ZTF topics filled with real alerts,
//! framed with the UPSTREAM registry's ids, are mirrored into one merged,
//! re-partitioned topic whose values carry the LOCAL registry's ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use common::*;
use starlog_clients::admin::ConfigResource;
use starlog_clients::{Admin, ClientConfig};
use starlog_mirror::partitioning;
use starlog_mirror::{run, MirrorConfig};
use starlog_wire::{framing, Framing};

const DAYS: [(&str, &str); 3] = [
    ("ztf_20191121_programid1", "ztf/alerts/kowalski/20200202"),
    ("ztf_20191122_programid1", "ztf/alerts/kowalski/20231012"),
    ("ztf_20191123_programid1", "ztf/alerts/fink-broker-local"),
];
const TARGET: &str = "ztf-buffer";
const PARTS: i32 = 3;

/// Fills the three daily topics; returns per day the alerts in offset
/// order and the upstream ids used.
async fn fill_upstream(up: &TestBroker) -> (BTreeMap<String, Vec<Alert>>, Vec<u32>) {
    // Unrelated schemas first, so upstream ids differ from the local ones.
    register_unrelated(&up.registry_url(), 5).await;
    let reg = registry(&up.registry_url());
    let mut days = BTreeMap::new();
    let mut ids = Vec::new();
    for (topic, folder) in DAYS {
        create_topic(&up.bootstrap(), topic, 1).await;
        let alerts = alerts(folder);
        let mut values = Vec::new();
        for a in &alerts {
            let id = reg
                .register(&format!("{topic}-value"), &a.schema_json)
                .await
                .unwrap();
            ids.push(id);
            values.push(Some(frame(id, &a.body)));
        }
        produce(&up.bootstrap(), topic, &values).await;
        days.insert(topic.to_owned(), alerts);
    }
    ids.sort_unstable();
    ids.dedup();
    (days, ids)
}

fn config(up: &TestBroker, local: &TestBroker, extra: &str) -> MirrorConfig {
    let yaml = format!(
        r#"
name: ztf-test
upstream:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
local:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: 'ztf_(\d{{8}})_programid(\d)'
    target: {TARGET}
    partitions: {PARTS}
    retention_ms: 604800000
    subject: '{{upstream}}-value'
start: earliest
progress: false
checkpoint_interval_ms: 100
bad_input: {{ policy: stop }}
{extra}
"#,
        up.bootstrap(),
        up.registry_url(),
        local.bootstrap(),
        local.registry_url()
    );
    MirrorConfig::from_yaml(&yaml, Path::new(".")).unwrap()
}

async fn until_local_has(local: String, n: i64) {
    wait_for(&local, TARGET, PARTS, n, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_days_merge_repartition_and_decode_with_the_local_registry() {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    let (days, upstream_ids) = fill_upstream(&up).await;
    let total: i64 = days.values().map(|v| v.len() as i64).sum();

    let summary = run(
        config(&up, &local, ""),
        until_local_has(local.bootstrap(), total),
    )
    .await
    .unwrap();
    assert_eq!(summary.mirrored(), total as u64);
    assert_eq!(summary.dead_lettered() + summary.skipped(), 0);
    for (topic, alerts) in &days {
        assert_eq!(
            summary.topics[topic].mirrored,
            alerts.len() as u64,
            "{topic}"
        );
        assert_eq!(summary.topics[topic].target, TARGET);
    }
    // Each upstream id was resolved once (one GET upstream, one POST locally
    // per (id, subject)), however many records carried it.
    let pairs = summary.schema_ids.len() as u64;
    assert!(pairs >= upstream_ids.len() as u64);
    assert!(
        summary.registry_calls <= upstream_ids.len() as u64 + pairs,
        "{summary}"
    );

    // Read everything back from the local buffer.
    let parts = read_all(&local.bootstrap(), TARGET, PARTS).await;
    let local_reg = registry(&local.registry_url());
    let mut schemas: HashMap<u32, apache_avro::Schema> = HashMap::new();
    let mut per_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (partition, records) in &parts {
        let mut last_per_day: HashMap<String, i64> = HashMap::new();
        for r in records {
            let (day, up_partition, up_offset) = source(r);
            assert_eq!(up_partition, 0);
            // Per-day order holds inside each target partition.
            if let Some(prev) = last_per_day.insert(day.clone(), up_offset) {
                assert!(
                    prev < up_offset,
                    "{day}: offset {up_offset} after {prev} in partition {partition}"
                );
            }
            per_day.entry(day.clone()).or_default().push(up_offset);
            let original = &days[&day][usize::try_from(up_offset).unwrap()];
            let value = r.value.as_ref().expect("a value");
            let Framing::Framed { id } = framing(Some(value)) else {
                panic!("not framed: {:?}", framing(Some(value)));
            };
            assert!(
                !upstream_ids.contains(&id),
                "id {id} is an upstream id ({upstream_ids:?})"
            );
            if let std::collections::hash_map::Entry::Vacant(e) = schemas.entry(id) {
                let text = local_reg.schema_text(id).await.unwrap();
                e.insert(apache_avro::Schema::parse_str(&text).unwrap());
            }
            let decoded = decode(&schemas[&id], &value[5..]);
            assert_eq!(decoded, original.value, "{day} offset {up_offset}");
            // Keyless alerts are placed by their alert id.
            assert!(original.candid > 0);
            let (want, basis) = partitioning::choose(None, Some(original.candid), None, PARTS);
            assert_eq!(basis, partitioning::Basis::AlertId);
            assert_eq!(
                *partition, want,
                "candid {} in partition {partition}",
                original.candid
            );
        }
    }
    for (day, alerts) in &days {
        let mut got = per_day.remove(day).unwrap_or_default();
        got.sort_unstable();
        let want: Vec<i64> = (0..alerts.len() as i64).collect();
        assert_eq!(got, want, "{day}: every upstream record exactly once");
    }
    assert!(per_day.is_empty());
    assert!(
        parts.values().all(|v| !v.is_empty()),
        "alerts spread over all partitions"
    );

    // The target topic got the configured retention.
    let admin = Admin::new(ClientConfig::new(&local.bootstrap())).unwrap();
    let cfgs = admin
        .describe_configs(&ConfigResource::Topic(TARGET.into()), &["retention.ms"])
        .await
        .unwrap();
    assert_eq!(cfgs[0].value.as_deref(), Some("604800000"));

    // A restart with nothing new writes nothing; new upstream records are
    // mirrored once.
    let again = run(
        config(&up, &local, ""),
        tokio::time::sleep(Duration::from_millis(3000)),
    )
    .await
    .unwrap();
    assert_eq!(again.mirrored(), 0, "{again}");
    let extra = &days["ztf_20191121_programid1"];
    let reg = registry(&up.registry_url());
    let id = reg
        .register("ztf_20191121_programid1-value", &extra[0].schema_json)
        .await
        .unwrap();
    produce(
        &up.bootstrap(),
        "ztf_20191121_programid1",
        &[
            Some(frame(id, &extra[0].body)),
            Some(frame(id, &extra[1].body)),
        ],
    )
    .await;
    let third = run(
        config(&up, &local, ""),
        until_local_has(local.bootstrap(), total + 2),
    )
    .await
    .unwrap();
    assert_eq!(third.mirrored(), 2, "{third}");
    assert_eq!(
        end_total(&local.bootstrap(), TARGET, PARTS).await,
        total + 2
    );
    local.stop().await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_upstream_batches_and_one_subject_for_two_schema_versions() {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    register_unrelated(&up.registry_url(), 2).await;
    let reg = registry(&up.registry_url());
    // ZTF 3.3 then 4.01 alerts in one day, zstd-compressed upstream.
    let mut all = alerts("ztf/alerts/kowalski/20200202");
    all.extend(alerts("ztf/alerts/kowalski/20231012"));
    let mut values = Vec::new();
    for a in &all {
        let id = reg.register("ztf-value", &a.schema_json).await.unwrap();
        values.push(Some(frame(id, &a.body)));
    }
    let day = "ztf_20191125_programid1";
    create_topic(&up.bootstrap(), day, 1).await;
    produce_with(
        &up.bootstrap(),
        day,
        &values,
        starlog_clients::Compression::Zstd,
    )
    .await;
    let n = all.len() as i64;
    // The default subject ({target}-value) takes both versions, in order;
    // the local batches are lz4-compressed.
    let yaml = format!(
        r#"
name: zstd
upstream: {{ bootstrap: "{}", registry: {{ url: "{}" }} }}
local: {{ bootstrap: "{}", registry: {{ url: "{}" }} }}
topics: [ {{ match: 'ztf_.*', target: {TARGET}, partitions: {PARTS} }} ]
compression: lz4
progress: false
bad_input: {{ policy: dead-letter, topic: dlq }}
"#,
        up.bootstrap(),
        up.registry_url(),
        local.bootstrap(),
        local.registry_url()
    );
    let cfg = MirrorConfig::from_yaml(&yaml, Path::new(".")).unwrap();
    let summary = run(cfg, until_local_has(local.bootstrap(), n))
        .await
        .unwrap();
    assert_eq!(summary.mirrored(), n as u64, "{summary}");
    assert_eq!(summary.dead_lettered(), 0, "{summary}");
    let local_reg = registry(&local.registry_url());
    let mut checked = 0;
    for r in read_all(&local.bootstrap(), TARGET, PARTS)
        .await
        .into_values()
        .flatten()
    {
        let (_, _, offset) = source(&r);
        let v = r.value.unwrap();
        let Framing::Framed { id } = framing(Some(&v)) else {
            panic!("not framed")
        };
        let schema =
            apache_avro::Schema::parse_str(&local_reg.schema_text(id).await.unwrap()).unwrap();
        assert_eq!(
            decode(&schema, &v[5..]),
            all[usize::try_from(offset).unwrap()].value
        );
        checked += 1;
    }
    assert_eq!(checked, n);
    local.stop().await;
    up.stop().await;
}
