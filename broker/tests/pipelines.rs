//! In-broker pipelines on real alerts: the solar-system filter's output
//! topic holds exactly the alerts whose association is set (counted from the
//! data's manifest, independently), read back with librdkafka and decoded
//! against the broker's registry; a replay after a crash between output and
//! commit writes nothing twice, also when it comes before the first commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use starlog_broker::{parse_source_header, SOURCE_HEADER};
use starlog_storage::CommittedOffset;

const PIPELINE: &str = r#"
type: in-broker
name: ss
source: { topic: ztf-buffer }
processors:
  - class: SolarSystemFilter
    params: { action: include }
  - class: KafkaTopicWriter
    params: { topic: solar-system, format: avro, key: alert_id }
"#;

const GROUP: &str = "starlog-pipeline-ss";

/// (file name stem, has ssnamenr) for the alerts of the simulator night,
/// from manifest.csv.
fn manifest_solar_system() -> HashMap<String, bool> {
    let text = std::fs::read_to_string(common::testdata_dir().join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let file_col = header.iter().position(|h| *h == "file").unwrap();
    let ss_col = header.iter().position(|h| *h == "ssnamenr").unwrap();
    let mut out = HashMap::new();
    for line in lines {
        // No quoted commas in these two columns' rows for the ZTF simulator files.
        let cols: Vec<&str> = line.split(',').collect();
        let file = cols[file_col];
        if file.starts_with("ztf/alerts/fink-alert-simulator/") {
            let stem = file
                .rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".avro")
                .to_string();
            out.insert(stem, !cols[ss_col].is_empty());
        }
    }
    out
}

async fn start() -> TestBroker {
    let node: serde_yaml::Value = serde_yaml::from_str(PIPELINE).unwrap();
    TestBroker::start_with(|c| c.pipelines = vec![node]).await
}

async fn produce(bootstrap: &str, files: &[std::path::PathBuf]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    for f in files {
        let key = f.file_stem().unwrap().to_string_lossy().into_owned();
        let value = std::fs::read(f).unwrap();
        p.send(
            FutureRecord::to("ztf-buffer").key(&key).payload(&value),
            Duration::from_secs(30),
        )
        .await
        .expect("acked");
    }
}

async fn wait_processed(broker: &TestBroker, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = broker.server().pipeline_status();
        if s[0].records_in >= n && s[0].lag == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "pipeline stalled: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the whole output topic: (source offset, key, value).
fn read_output(bootstrap: &str) -> Vec<(i64, String, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "output-check")
        .create()
        .unwrap();
    let (_, high) = c
        .fetch_watermarks("solar-system", 0, Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("solar-system", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < high && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let header = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == SOURCE_HEADER)
                        .and_then(|h| h.value.map(<[u8]>::to_vec))
                })
                .expect("source header");
            let (topic, _, offset) = parse_source_header(&header).unwrap();
            assert_eq!(topic, "ztf-buffer");
            out.push((
                offset,
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                m.payload().unwrap().to_vec(),
            ));
        }
    }
    assert_eq!(out.len() as i64, high, "read the whole output topic");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solar_system_pipeline_writes_exactly_the_associated_alerts() {
    let broker = start().await;
    let bs = broker.bootstrap();
    let files = common::alert_files("ztf/alerts/fink-alert-simulator");
    let expected = manifest_solar_system();
    assert_eq!(expected.len(), files.len());
    produce(&bs, &files).await;
    wait_processed(&broker, files.len() as u64).await;

    let out = read_output(&bs);
    let want: usize = expected.values().filter(|&&ss| ss).count();
    assert_eq!(out.len(), want, "one output per solar-system alert");
    // Decode every output against the broker's registry and check it is
    // the alert the manifest says is solar-system.
    let url = broker.registry_url();
    let mut schemas: BTreeMap<u32, apache_avro::Schema> = BTreeMap::new();
    let input_keys: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut seen = HashSet::new();
    for (source_offset, key, value) in &out {
        let stem = &input_keys[usize::try_from(*source_offset).unwrap()];
        assert_eq!(key, stem, "key is the alert id (files are named by candid)");
        assert!(expected[stem], "{stem} has no solar-system association");
        assert!(seen.insert(*source_offset), "{stem} written twice");
        assert_eq!(value[0], 0, "Confluent magic byte");
        let id = u32::from_be_bytes(value[1..5].try_into().unwrap());
        let schema = match schemas.get(&id) {
            Some(s) => s.clone(),
            None => {
                let body: serde_json::Value = reqwest_get(&format!("{url}/schemas/ids/{id}")).await;
                let s = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
                schemas.insert(id, s.clone());
                s
            }
        };
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap();
        let datum = reader
            .read_value(&mut &value[5..])
            .expect("decodes with the registered schema");
        let apache_avro::types::Value::Record(fields) = datum else {
            panic!("not a record")
        };
        let candid = fields
            .iter()
            .find(|(k, _)| k == "candidate")
            .and_then(|(_, v)| match v {
                apache_avro::types::Value::Record(c) => c
                    .iter()
                    .find(|(k, _)| k == "candid")
                    .map(|(_, v)| v.clone()),
                _ => None,
            })
            .expect("candidate.candid");
        assert_eq!(
            candid,
            apache_avro::types::Value::Long(stem.parse().unwrap())
        );
    }
    let status = &broker.server().pipeline_status()[0];
    assert_eq!(status.passed as usize, want);
    assert_eq!((status.passed + status.skipped) as usize, files.len());
    // The same counters on /metrics.
    let metrics = get_text(&format!("{url}/metrics")).await;
    for line in [
        format!("starlog_pipeline_passed_total{{pipeline=\"ss\",source=\"ztf-buffer\"}} {want}"),
        format!(
            "starlog_pipeline_records_in_total{{pipeline=\"ss\",source=\"ztf-buffer\"}} {}",
            files.len()
        ),
        "starlog_pipeline_lag{pipeline=\"ss\",source=\"ztf-buffer\"} 0".to_string(),
        format!(
            "starlog_partition_high_watermark{{topic=\"ztf-buffer\",partition=\"0\"}} {}",
            files.len()
        ),
        format!(
            "starlog_partition_high_watermark{{topic=\"solar-system\",partition=\"0\"}} {want}"
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    broker.stop().await;
}

async fn reqwest_get(url: &str) -> serde_json::Value {
    let (base, path) = split_url(url);
    common::http(base, "GET", path, None).await.1
}

async fn get_text(url: &str) -> String {
    let (base, path) = split_url(url);
    match common::http(base, "GET", path, None).await.1 {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn split_url(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("http://");
    let slash = rest.find('/').unwrap();
    (&url[..url.len() - rest.len() + slash], &rest[slash..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_crash_between_output_and_commit_writes_nothing_twice() {
    let files = common::alert_files("ztf/alerts/fink-alert-simulator");
    let (first, second) = files.split_at(files.len() / 2);
    let broker = start().await;
    let bs = broker.bootstrap();
    produce(&bs, first).await;
    wait_processed(&broker, first.len() as u64).await;
    // The position and output marks after the first half, as a crash right
    // after them would leave them.
    let meta = broker.server().broker().topics.meta().clone();
    let after_first: Vec<CommittedOffset> = meta.committed_offsets(GROUP);
    assert!(
        after_first.iter().any(|c| c.topic == "ztf-buffer"),
        "{after_first:?}"
    );
    produce(&bs, second).await;
    wait_processed(&broker, files.len() as u64).await;
    let before = read_output(&bs);
    let mut broker = broker;
    // Simulate the crash: outputs for the second half are durable, the
    // commit that covered them is lost.
    meta.commit_offsets(GROUP, &after_first).unwrap();
    broker.restart().await;
    // Let the pipeline replay the second half.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = broker.server().pipeline_status();
        if s[0].records_in >= second.len() as u64 && s[0].lag == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "replay stalled: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = read_output(&broker.bootstrap());
    assert_eq!(after.len(), before.len(), "the replay wrote nothing twice");
    let offsets: HashSet<i64> = after.iter().map(|o| o.0).collect();
    assert_eq!(offsets.len(), after.len());
    let want = manifest_solar_system().values().filter(|&&ss| ss).count();
    assert_eq!(after.len(), want, "and lost nothing");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_a_crash_before_the_first_commit_writes_nothing_twice() {
    let files = common::alert_files("ztf/alerts/fink-alert-simulator");
    let mut broker = start().await;
    let bs = broker.bootstrap();
    produce(&bs, &files).await;
    wait_processed(&broker, files.len() as u64).await;
    let before = read_output(&bs);
    let want = manifest_solar_system().values().filter(|&&ss| ss).count();
    assert_eq!(before.len(), want);
    // Simulate a crash before any commit: every output is durable, but
    // neither a position nor an output mark was recorded.
    let meta = broker.server().broker().topics.meta().clone();
    meta.delete_group(GROUP).unwrap();
    assert!(meta.committed_offsets(GROUP).is_empty());
    broker.restart().await;
    // The pipeline replays every input from the log start.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = broker.server().pipeline_status();
        if s[0].records_in >= files.len() as u64 && s[0].lag == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "replay stalled: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = read_output(&broker.bootstrap());
    let offsets: HashSet<i64> = after.iter().map(|o| o.0).collect();
    assert_eq!(offsets.len(), after.len(), "no output written twice");
    assert_eq!(after, before, "the replay wrote nothing");
    // The replay committed its position again.
    let meta = broker.server().broker().topics.meta().clone();
    assert!(meta
        .committed_offsets(GROUP)
        .iter()
        .any(|c| c.topic == "ztf-buffer" && c.offset == files.len() as i64));
    broker.stop().await;
}
