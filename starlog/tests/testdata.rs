//! `starlog testdata` against a `starlog serve` process: each framing is
//! read back with librdkafka and decoded with apache-avro (the schemas from
//! the broker's registry, the static schema files, or the message key), and
//! compared with the alert files' records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::Schema;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const BIN: &str = env!("CARGO_BIN_EXE_starlog");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Broker {
    child: Child,
    kafka: u16,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = starlog_testkit::cluster::pick_ports(2).unwrap();
        let (kafka, http) = (ports[0], ports[1]);
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{kafka}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", kafka)).is_err()
            || TcpStream::connect(("127.0.0.1", http)).is_err()
        {
            assert!(Instant::now() < deadline, "the broker did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            kafka,
            http,
            _dir: dir,
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka)
    }

    fn registry(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(" 200 "), "{path}: {head}");
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `starlog testdata ARGS`; its summary line.
fn testdata(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("testdata")
        .args(args)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "starlog testdata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn read(bootstrap: &str, topic: &str, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "testdata-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    // Nothing more than expected.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        panic!("{topic}: an extra message at offset {}", m.offset());
    }
    out
}

/// The alert files of a folder: file stem → (bytes, writer schema, record).
fn files(dir: &str) -> BTreeMap<String, (Vec<u8>, Schema, Value)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(repo().join(dir)).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|e| e != "avro") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let reader = apache_avro::Reader::new(&bytes[..]).unwrap();
        let schema = reader.writer_schema().clone();
        let records: Vec<Value> = reader.map(Result::unwrap).collect();
        assert_eq!(records.len(), 1);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.insert(stem, (bytes, schema, records.into_iter().next().unwrap()));
    }
    out
}

fn decode(schema: &Schema, body: &[u8]) -> Value {
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .unwrap();
    let mut body = body;
    let v = reader.read_value(&mut body).unwrap();
    assert!(body.is_empty(), "bytes left after the record");
    v
}

const ZTF: &str = "testdata/ztf/alerts/kowalski/20231012";
const RUBIN: &str = "testdata/lsst/alerts/fink-broker-rubin/v9_0";

#[test]
fn ocf_framing_sends_each_file_as_it_is() {
    let broker = Broker::start();
    let dir = repo().join(ZTF);
    let summary = testdata(&[
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "ztf-ocf",
        "--files",
        dir.to_str().unwrap(),
        "--framing",
        "ocf",
    ]);
    let want = files(ZTF);
    assert!(
        summary.contains(&format!("sent {} messages", want.len())),
        "{summary}"
    );
    let got = read(&broker.bootstrap(), "ztf-ocf", want.len());
    assert_eq!(got.len(), want.len());
    for (key, value) in got {
        let stem = String::from_utf8(key).unwrap();
        assert_eq!(value, want[&stem].0, "{stem}: the file's bytes");
    }
}

#[test]
fn confluent_framing_registers_the_writer_schema() {
    let broker = Broker::start();
    let dir = repo().join(RUBIN);
    testdata(&[
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "rubin",
        "--files",
        dir.to_str().unwrap(),
        "--framing",
        "confluent",
        "--registry",
        &broker.registry(),
    ]);
    let want = files(RUBIN);
    let versions = broker.get("/subjects/rubin-value/versions");
    assert_eq!(
        versions,
        serde_json::json!([1]),
        "one schema under rubin-value"
    );
    let got = read(&broker.bootstrap(), "rubin", want.len());
    assert_eq!(got.len(), want.len());
    let mut schemas: HashMap<u32, Schema> = HashMap::new();
    for (key, value) in got {
        assert_eq!(value[0], 0, "magic byte");
        let id = u32::from_be_bytes(value[1..5].try_into().unwrap());
        let schema = schemas.entry(id).or_insert_with(|| {
            let doc = broker.get(&format!("/schemas/ids/{id}"));
            Schema::parse_str(doc["schema"].as_str().unwrap()).unwrap()
        });
        let stem = String::from_utf8(key).unwrap();
        let (_, writer, record) = &want[&stem];
        assert_eq!(schema.canonical_form(), writer.canonical_form(), "{stem}");
        assert_eq!(&decode(schema, &value[5..]), record, "{stem}");
    }
}

#[test]
fn schemaless_framing_uses_the_static_schema() {
    let broker = Broker::start();
    let dir = repo().join(ZTF);
    let schema_dir = repo().join("testdata/ztf/schema/4.01");
    let schema_files: Vec<PathBuf> = ["cutout", "candidate", "prv_candidate", "fp_hist", "alert"]
        .iter()
        .map(|f| schema_dir.join(format!("{f}.avsc")))
        .collect();
    let mut args: Vec<String> = [
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "ztf-bare",
        "--files",
        dir.to_str().unwrap(),
        "--framing",
        "schemaless",
        "--schema-name",
        "ztf.alert",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for f in &schema_files {
        args.push("--schema-file".into());
        args.push(f.display().to_string());
    }
    testdata(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The static schema, read independently: the alert schema with the
    // others inlined through the parser's named references.
    let texts: Vec<String> = schema_files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let parsed = Schema::parse_list(&texts).unwrap();
    let alert = parsed
        .iter()
        .find(|s| s.name().is_some_and(|n| n.fullname(None) == "ztf.alert"))
        .unwrap();
    let want = files(ZTF);
    let got = read(&broker.bootstrap(), "ztf-bare", want.len());
    assert_eq!(got.len(), want.len());
    for (key, value) in got {
        let stem = String::from_utf8(key).unwrap();
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(alert)
            .writer_schemata(parsed.iter().collect())
            .unwrap()
            .build()
            .unwrap();
        let decoded = reader.read_value(&mut &value[..]).unwrap();
        // The file's record resolved to the static schema.
        let (_, _, record) = &want[&stem];
        let expected = record
            .clone()
            .resolve_schemata(alert, parsed.iter().collect())
            .unwrap();
        assert_eq!(decoded, expected, "{stem}");
    }
}

#[test]
fn schema_key_framing_puts_the_writer_schema_in_the_key() {
    let broker = Broker::start();
    let dir = repo().join(ZTF);
    // A count beyond the files cycles over them, at a fixed rate.
    let want = files(ZTF);
    let count = want.len() + 6;
    let summary = testdata(&[
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        "fink",
        "--files",
        dir.to_str().unwrap(),
        "--framing",
        "schema-key",
        "--count",
        &count.to_string(),
        "--rate",
        "200",
    ]);
    assert!(
        summary.contains(&format!("sent {count} messages")),
        "{summary}"
    );
    let got = read(&broker.bootstrap(), "fink", count);
    assert_eq!(got.len(), count);
    let records: Vec<&Value> = want.values().map(|(_, _, r)| r).collect();
    let mut seen = vec![0usize; records.len()];
    for (key, value) in got {
        let schema = Schema::parse_str(std::str::from_utf8(&key).unwrap()).unwrap();
        let decoded = decode(&schema, &value);
        let i = records
            .iter()
            .position(|r| **r == decoded)
            .expect("a record of the files");
        seen[i] += 1;
    }
    assert!(seen.iter().all(|n| *n >= 1), "every file sent: {seen:?}");
    assert_eq!(seen.iter().sum::<usize>(), count);
}
