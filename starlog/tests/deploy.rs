//! `starlog deploy up` end to end, on the example site (examples/site.yaml,
//! with free ports): a 3-broker buffer filled by a test-data component, a
//! 2-instance processing node on it, a mirror into a 1-broker buffer whose
//! in-broker chain writes the solar-system alerts. The expected alerts come
//! out of the node and the chain; one broker and one node are killed with
//! SIGKILL and seen restarted by `deploy status`; messages acknowledged
//! while the broker was down are all there afterwards; `deploy down` stops
//! everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_starlog");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A base port with `n` consecutive free ports, below the ephemeral range
/// (so a client's local port cannot take a killed broker's port).
fn free_run(n: u16, avoid: &[(u16, u16)]) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut base = 12_000 + u16::try_from((nanos ^ std::process::id()) % 15_000).unwrap();
    loop {
        let clash = avoid.iter().any(|(b, len)| base < b + len && *b < base + n);
        let held: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if !clash && held.len() == usize::from(n) {
            return base;
        }
        base = if base > 30_000 { 12_000 } else { base + n + 7 };
    }
}

/// The example site with free ports and absolute paths, in `dir`.
fn site_file(dir: &Path) -> (PathBuf, HashMap<&'static str, u16>) {
    let mut taken = Vec::new();
    let mut ports = HashMap::new();
    for (name, n) in [
        ("alerts-kafka", 3),
        ("alerts-raft", 3),
        ("alerts-http", 3),
        ("edge-kafka", 1),
        ("edge-http", 1),
    ] {
        let base = free_run(n, &taken);
        taken.push((base, n));
        ports.insert(name, base);
    }
    let examples = repo().join("examples");
    let text = std::fs::read_to_string(examples.join("site.yaml"))
        .unwrap()
        .replace("kafka: 19092", &format!("kafka: {}", ports["alerts-kafka"]))
        .replace("raft: 19192", &format!("raft: {}", ports["alerts-raft"]))
        .replace("http: 18081", &format!("http: {}", ports["alerts-http"]))
        .replace("kafka: 19095", &format!("kafka: {}", ports["edge-kafka"]))
        .replace("http: 18085", &format!("http: {}", ports["edge-http"]))
        .replace(
            "file: pipelines/",
            &format!("file: {}/pipelines/", examples.display()),
        )
        .replace("../testdata/", &format!("{}/testdata/", repo().display()));
    for p in ["19092", "19192", "18081", "19095", "18085", "../testdata"] {
        assert!(
            !text.contains(&format!(" {p}")),
            "{p} left in the test site"
        );
    }
    let file = dir.join("site.yaml");
    std::fs::write(&file, text).unwrap();
    (file, ports)
}

fn deploy(args: &[&str], site: &Path, state: &Path) -> std::process::Output {
    Command::new(BIN)
        .arg("deploy")
        .args(args)
        .arg(site)
        .arg("--state")
        .arg(state)
        .output()
        .expect("run starlog deploy")
}

fn status(site: &Path, state: &Path) -> Json {
    let out = deploy(&["status", "--json"], site, state);
    assert!(
        out.status.success(),
        "deploy status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn process<'a>(status: &'a Json, name: &str) -> &'a Json {
    status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no process {name} in {status:#}"))
}

/// Waits for `cond` on the status, printing it and the supervisor's output
/// on failure.
fn wait_status(
    site: &Path,
    state: &Path,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Json) -> bool,
) -> Json {
    let deadline = Instant::now() + limit;
    loop {
        if state.join("status.json").exists() {
            let s = status(site, state);
            if cond(&s) {
                return s;
            }
            if Instant::now() > deadline {
                let text = deploy(&["status", "--lines", "8"], site, state);
                panic!(
                    "{what}: not within {limit:?}; status:\n{}",
                    String::from_utf8_lossy(&text.stdout)
                );
            }
        } else {
            assert!(Instant::now() < deadline, "{what}: no status file");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every message of `topic` (all partitions, from the start) until `done`
/// says enough or `limit` passes.
fn read_all(
    bootstrap: &str,
    topic: &str,
    limit: Duration,
    done: impl Fn(&[(Option<Vec<u8>>, Vec<u8>)]) -> bool,
) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "deploy-test-reader")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap();
    // A broker that has not applied the topic's creation yet answers it
    // without partitions: ask again until it has them.
    let metadata_deadline = Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let n = md.topics()[0].partitions().len();
        if n > 0 {
            break n;
        }
        assert!(
            Instant::now() < metadata_deadline,
            "{topic} has no partitions after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, i32::try_from(p).unwrap(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

/// The alert files the site's test data sends, by candid.
fn alerts() -> Vec<(PathBuf, Value)> {
    let dir = repo().join("testdata/ztf/alerts/kowalski/20231012");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "avro"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let v = apache_avro::Reader::new(&bytes[..])
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            (f, v)
        })
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = v else {
        panic!("not a record")
    };
    let found = &fields.iter().find(|(n, _)| n == name).unwrap().1;
    match found {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(f64::from(*f)),
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(f64::from(*i)),
        Value::Long(l) => Some(*l as f64),
        _ => None,
    }
}

fn candid(v: &Value) -> i64 {
    match field(v, "candid") {
        Value::Long(l) => *l,
        other => panic!("candid {other:?}"),
    }
}

/// What the chains should write, computed from the files' fields:
/// (bright-transients, solar-system-bright, solar-system) candids.
fn expected() -> (BTreeSet<i64>, BTreeSet<i64>, BTreeSet<i64>) {
    let mut bright = BTreeSet::new();
    let mut sso = BTreeSet::new();
    let mut sso_all = BTreeSet::new();
    for (_, v) in alerts() {
        let c = field(&v, "candidate");
        let is_sso = match field(c, "ssnamenr") {
            Value::String(s) => !s.trim().is_empty() && !s.trim().eq_ignore_ascii_case("null"),
            _ => false,
        };
        let mag = num(field(c, "magpsf")).unwrap();
        let drb = num(field(c, "drb"));
        let previous = match field(&v, "prv_candidates") {
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if is_sso {
            sso_all.insert(candid(&v));
        }
        if is_sso && mag < 19.5 && drb.is_some_and(|d| d > 0.5) {
            sso.insert(candid(&v));
        }
        if !is_sso && mag < 18.0 && drb.is_some_and(|d| d > 0.9) && previous >= 2 {
            bright.insert(candid(&v));
        }
    }
    (bright, sso, sso_all)
}

/// GET on a loopback HTTP port; the body.
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{path}: {head}"
    );
    body.to_owned()
}

/// The candids of Confluent-framed Avro values, schemas from the registry.
fn confluent_candids(port: u16, values: &[(Option<Vec<u8>>, Vec<u8>)]) -> Vec<i64> {
    let mut schemas: HashMap<u32, apache_avro::Schema> = HashMap::new();
    values
        .iter()
        .map(|(_, v)| {
            assert_eq!(v[0], 0, "not Confluent framing");
            let id = u32::from_be_bytes(v[1..5].try_into().unwrap());
            let schema = schemas.entry(id).or_insert_with(|| {
                let doc: Json =
                    serde_json::from_str(&http_get(port, &format!("/schemas/ids/{id}"))).unwrap();
                apache_avro::Schema::parse_str(doc["schema"].as_str().unwrap()).unwrap()
            });
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
                .build()
                .unwrap();
            let value = reader.read_value(&mut &v[5..]).unwrap();
            candid(&value)
        })
        .collect()
}

fn json_candids(values: &[(Option<Vec<u8>>, Vec<u8>)]) -> Vec<i64> {
    values
        .iter()
        .map(|(_, v)| {
            let doc: Json = serde_json::from_slice(v).unwrap();
            doc["candid"]
                .as_i64()
                .unwrap_or_else(|| panic!("no candid in {doc}"))
        })
        .collect()
}

fn kill9(pid: u64) {
    let ok = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -9 {pid}");
}

struct Up {
    child: Child,
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // Whatever happened, the supervisor stops its processes on SIGTERM.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_site_runs_survives_kill9_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (site, ports) = site_file(dir.path());
    let state = dir.path().join("state");

    let check = Command::new(BIN)
        .args(["deploy", "check"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let supervisor_log = std::fs::File::create(dir.path().join("supervisor.log")).unwrap();
    let child = Command::new(BIN)
        .args(["deploy", "up", "--stop-timeout", "15", "--log", "info"])
        .arg(&site)
        .arg("--state")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(supervisor_log.try_clone().unwrap())
        .stderr(supervisor_log)
        .spawn()
        .unwrap();
    let mut up = Up { child };

    // Up: every process running, the test data sent.
    wait_status(
        &site,
        &state,
        "site running, test data sent",
        Duration::from_secs(120),
        |s| {
            s["state"] == "running"
                && process(s, "ztf-samples-0")["state"] == "done"
                && s["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["kind"] != "testdata")
                    .all(|p| p["state"] == "running")
        },
    );
    assert!(
        up.child.try_wait().unwrap().is_none(),
        "the supervisor exited"
    );

    let alerts_bootstrap: String = (0..3)
        .map(|i| format!("127.0.0.1:{}", ports["alerts-kafka"] + i))
        .collect::<Vec<_>>()
        .join(",");
    let edge_bootstrap = format!("127.0.0.1:{}", ports["edge-kafka"]);
    let (bright, sso, sso_all) = expected();
    assert!(
        !bright.is_empty() && !sso.is_empty(),
        "the sample has alerts for both chains"
    );
    let files = alerts();

    // The buffer holds the 24 alerts; the node and the in-broker chain
    // (behind the mirror) wrote exactly the expected ones.
    let buffered = read_all(
        &alerts_bootstrap,
        "ztf-buffer",
        Duration::from_secs(60),
        |m| m.len() >= files.len(),
    );
    assert_eq!(
        buffered.len(),
        files.len(),
        "ztf-buffer on the 3-broker buffer"
    );
    let sent: BTreeSet<Vec<u8>> = files
        .iter()
        .map(|(f, _)| std::fs::read(f).unwrap())
        .collect();
    let got: BTreeSet<Vec<u8>> = buffered.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(got, sent, "ztf-buffer holds the alert files byte for byte");

    let node_out = read_all(
        &alerts_bootstrap,
        "bright-transients",
        Duration::from_secs(60),
        |m| json_candids(m).into_iter().collect::<BTreeSet<_>>() == bright,
    );
    assert_eq!(
        json_candids(&node_out).into_iter().collect::<BTreeSet<_>>(),
        bright,
        "the processing node's output"
    );
    // The in-broker chain of the 3-broker buffer (a group member in each
    // broker) writes every solar-system alert.
    let cluster_chain = read_all(
        &alerts_bootstrap,
        "solar-system",
        Duration::from_secs(90),
        |m| json_candids(m).into_iter().collect::<BTreeSet<_>>() == sso_all,
    );
    assert_eq!(
        json_candids(&cluster_chain)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sso_all,
        "the cluster's in-broker chain's output"
    );
    let chain_out = read_all(
        &edge_bootstrap,
        "solar-system-bright",
        Duration::from_secs(60),
        |m| m.len() >= sso.len(),
    );
    assert_eq!(
        confluent_candids(ports["edge-http"], &chain_out)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sso,
        "the in-broker chain's output"
    );

    // SIGKILL one broker and one node.
    let before = status(&site, &state);
    let broker_pid = process(&before, "alerts-1")["pid"].as_u64().unwrap();
    let node_pid = process(&before, "bright-0")["pid"].as_u64().unwrap();
    kill9(broker_pid);
    kill9(node_pid);

    // Acknowledged while the broker is down or restarting: the alerts again.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &alerts_bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    let mut acked = Vec::new();
    for (i, (f, _)) in files.iter().enumerate() {
        let value = std::fs::read(f).unwrap();
        let key = format!("second-{i}");
        let r = producer
            .send(
                FutureRecord::to("ztf-buffer").key(&key).payload(&value),
                Duration::from_secs(60),
            )
            .await;
        if r.is_ok() {
            acked.push((key, value));
        }
    }
    assert!(
        !acked.is_empty(),
        "nothing acknowledged with one broker of three down"
    );

    // Both restarted by the supervisor, seen in `deploy status`.
    let after = wait_status(
        &site,
        &state,
        "broker and node restarted",
        Duration::from_secs(90),
        |s| {
            ["alerts-1", "bright-0"].iter().all(|n| {
                let p = process(s, n);
                p["state"] == "running"
                    && p["restarts"].as_u64() >= Some(1)
                    && p["pid"].as_u64().is_some()
            })
        },
    );
    assert_ne!(
        process(&after, "alerts-1")["pid"].as_u64().unwrap(),
        broker_pid
    );
    assert_ne!(
        process(&after, "bright-0")["pid"].as_u64().unwrap(),
        node_pid
    );
    assert!(
        process(&after, "alerts-1")["last_exit"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{after:#}"
    );
    let text = deploy(&["status", "--lines", "2"], &site, &state);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("alerts-1") && text.contains("    | "),
        "status with log lines:\n{text}"
    );

    // Nothing acknowledged is lost: the first 24 and every acknowledged one.
    let want = files.len() + acked.len();
    let all = read_all(
        &alerts_bootstrap,
        "ztf-buffer",
        Duration::from_secs(60),
        |m| m.len() >= want,
    );
    let keys: BTreeSet<Vec<u8>> = all.iter().filter_map(|(k, _)| k.clone()).collect();
    for (key, value) in &acked {
        assert!(keys.contains(key.as_bytes()), "acknowledged {key} lost");
        assert!(all
            .iter()
            .any(|(k, v)| k.as_deref() == Some(key.as_bytes()) && v == value));
    }
    assert_eq!(all.len(), want, "ztf-buffer after the kill");
    // The node keeps writing exactly the expected alerts (the second
    // copies have the same candids). The killed member's partitions wait
    // for its session to expire (45 s, the consumer's default) before the
    // group hands them to the restarted one.
    let node_out = read_all(
        &alerts_bootstrap,
        "bright-transients",
        Duration::from_secs(120),
        |m| m.len() >= 2 * bright.len(),
    );
    assert_eq!(
        json_candids(&node_out).into_iter().collect::<BTreeSet<_>>(),
        bright
    );
    assert!(
        node_out.len() >= 2 * bright.len(),
        "the node processed the second copies"
    );

    // The cluster's in-broker chain processed the second copies too, across
    // the broker's kill (at least once: a member that died may have written
    // some outputs again after its partitions moved).
    let cluster_chain = read_all(
        &alerts_bootstrap,
        "solar-system",
        Duration::from_secs(120),
        |m| m.len() >= 2 * sso_all.len(),
    );
    assert_eq!(
        json_candids(&cluster_chain)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sso_all
    );
    assert!(
        cluster_chain.len() >= 2 * sso_all.len(),
        "the cluster's chain processed the second copies"
    );

    // The mirror copied every message of the buffer once, across the
    // upstream broker's kill, and the in-broker chain behind it processed
    // the second copies too.
    let mirrored = read_all(
        &edge_bootstrap,
        "ztf-buffer",
        Duration::from_secs(90),
        |m| m.len() >= want,
    );
    assert_eq!(mirrored.len(), want, "edge's ztf-buffer (mirrored once)");
    let chain_out = read_all(
        &edge_bootstrap,
        "solar-system-bright",
        Duration::from_secs(60),
        |m| m.len() >= 2 * sso.len(),
    );
    assert_eq!(
        confluent_candids(ports["edge-http"], &chain_out)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sso
    );
    assert!(
        chain_out.len() >= 2 * sso.len(),
        "the chain processed the second copies"
    );

    // Down: everything stops, the supervisor exits cleanly.
    let down = deploy(&["down"], &site, &state);
    assert!(
        down.status.success(),
        "down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    let exit = up.child.wait().unwrap();
    assert!(exit.success(), "supervisor exit: {exit}");
    let last = status(&site, &state);
    assert_eq!(last["state"], "stopped");
    for p in last["processes"].as_array().unwrap() {
        assert!(p["pid"].is_null(), "{p}");
        assert!(p["state"] == "stopped" || p["state"] == "done", "{p}");
    }

    // Up again on the same run folder: the data was kept (the test data
    // runs once more, so the buffer ends with one more copy of the files).
    let supervisor_log = std::fs::File::options()
        .append(true)
        .open(dir.path().join("supervisor.log"))
        .unwrap();
    let child = Command::new(BIN)
        .args(["deploy", "up", "--stop-timeout", "15"])
        .arg(&site)
        .arg("--state")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(supervisor_log.try_clone().unwrap())
        .stderr(supervisor_log)
        .spawn()
        .unwrap();
    let mut again = Up { child };
    wait_status(
        &site,
        &state,
        "site up again",
        Duration::from_secs(120),
        |s| s["state"] == "running" && process(s, "ztf-samples-0")["state"] == "done",
    );
    let kept = read_all(
        &alerts_bootstrap,
        "ztf-buffer",
        Duration::from_secs(60),
        |m| m.len() >= want + files.len(),
    );
    assert_eq!(
        kept.len(),
        want + files.len(),
        "ztf-buffer after down and up"
    );
    for (key, _) in &acked {
        assert!(
            kept.iter()
                .any(|(k, _)| k.as_deref() == Some(key.as_bytes())),
            "{key} kept"
        );
    }
    let down = deploy(&["down"], &site, &state);
    assert!(
        down.status.success(),
        "down: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(again.child.wait().unwrap().success());
}

#[test]
fn check_names_the_fault_with_its_yaml_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("examples/site.yaml"))
        .unwrap()
        .replace(
            "file: pipelines/",
            &format!("file: {}/examples/pipelines/", repo().display()),
        )
        .replace("../testdata/", &format!("{}/testdata/", repo().display()))
        .replace("class: ", "class: X")
        .replace(
            "{ name: ztf-buffer, partitions: 2 }",
            "{ name: ztf-buffer, partitions: 2, replication: 2 }",
        );
    let site = dir.path().join("bad.yaml");
    std::fs::write(&site, text).unwrap();
    let out = Command::new(BIN)
        .args(["deploy", "check"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "components[1].topics[0].replication: replication 2 is above the buffer's 1 instance"
        ),
        "{err}"
    );
    // An unknown processor class in a pipeline (here inline), with its path.
    let text = std::fs::read_to_string(repo().join("examples/site.yaml"))
        .unwrap()
        .replace("../testdata/", &format!("{}/testdata/", repo().display()))
        .replace(
            "pipeline: { file: pipelines/bright-transients.yaml }",
            "pipeline: { source: { topic: ztf-buffer }, processors: [ { class: NoSuchFilter } ] }",
        )
        .replace(
            "file: pipelines/",
            &format!("file: {}/examples/pipelines/", repo().display()),
        );
    std::fs::write(&site, text).unwrap();
    let out = Command::new(BIN)
        .args(["deploy", "check"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "components[3].pipeline.processors[0].class: unknown processor class \"NoSuchFilter\""
        ),
        "{err}"
    );
}
