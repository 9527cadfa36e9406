//! Three `starlog` processes on loopback forming a Raft cluster, driven by
//! librdkafka (acks=all, idempotence) with real ZTF alerts as values:
//! `kill -9` of partition leaders during load, a leader cut off from its
//! peers (the inter-broker fault switch) and healed, and a `kill -9` of all
//! three. Afterwards every acknowledged message is present exactly once at
//! its acknowledged offset, each partition keeps the producer's order, and
//! all replicas hold byte-identical logs up to the high watermark.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use starlog_broker::cluster::cli::fetch_status;
use starlog_storage::{LogConfig, PartitionLog};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Node {
    id: i32,
    kafka: u16,
    raft: u16,
    http: u16,
    data: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

/// Three broker processes (see the module docs).
struct ProcCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl ProcCluster {
    fn start() -> Self {
        Self::start_with("")
    }

    /// Three nodes whose `cluster:` sections also hold `extra` (YAML lines
    /// indented by two spaces).
    fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let peers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (k, r, _))| {
                format!(
                    "    - {{ id: {}, host: 127.0.0.1, port: {k}, raft: 127.0.0.1:{r} }}\n",
                    i + 1
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (kafka, raft, http)) in ports.iter().enumerate() {
            let id = i32::try_from(i + 1).unwrap();
            let node = Node {
                id,
                kafka: *kafka,
                raft: *raft,
                http: *http,
                data: dir.path().join(format!("node{id}")),
                config: dir.path().join(format!("node{id}.yaml")),
                child: None,
            };
            write_config(&node, &peers, false, extra);
            nodes.push(node);
        }
        let mut c = Self { _dir: dir, nodes };
        for id in 1..=3 {
            c.spawn(id);
        }
        c.wait_for(Duration::from_secs(30), "a controller is elected", |c| {
            c.status(1).is_some_and(|s| s["controller"].is_i64())
        });
        c
    }

    /// Starts a fourth broker that joins the running cluster (it still has
    /// to be added with `starlog cluster add-broker`).
    fn spawn_joiner(&mut self) -> i32 {
        let id = i32::try_from(self.nodes.len() + 1).unwrap();
        let node = Node {
            id,
            kafka: free_port(),
            raft: free_port(),
            http: free_port(),
            data: self._dir.path().join(format!("node{id}")),
            config: self._dir.path().join(format!("node{id}.yaml")),
            child: None,
        };
        let mut peers: String = self.nodes.iter().map(peer_line).collect();
        peers.push_str(&peer_line(&node));
        write_config(&node, &peers, true, "");
        self.nodes.push(node);
        self.spawn(id);
        id
    }

    fn running(&self) -> usize {
        self.nodes.iter().filter(|n| n.child.is_some()).count()
    }

    fn node(&self, id: i32) -> &Node {
        &self.nodes[usize::try_from(id - 1).unwrap()]
    }

    fn spawn(&mut self, id: i32) {
        let node = &mut self.nodes[usize::try_from(id - 1).unwrap()];
        assert!(node.child.is_none(), "node {id} already runs");
        let log = std::fs::File::create(node.data.with_extension("log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_starlog"))
            .args(["serve", "--config"])
            .arg(&node.config)
            .env("RUST_LOG", "warn,starlog_broker=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn starlog");
        node.child = Some(child);
        let port = node.kafka;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {id} did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self, id: i32) {
        let node = &mut self.nodes[usize::try_from(id - 1).unwrap()];
        if let Some(mut child) = node.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("wait");
        }
    }

    /// SIGTERM every node and wait for a clean exit.
    fn stop_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let status = Command::new("kill")
                    .arg("-15")
                    .arg(child.id().to_string())
                    .status()
                    .expect("kill");
                assert!(status.success());
                let exit = child.wait().expect("wait");
                assert_eq!(exit.code(), Some(0), "node {} exits 0 on SIGTERM", node.id);
            }
        }
    }

    fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.kafka))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn status(&self, id: i32) -> Option<Value> {
        let node = self.node(id);
        node.child.as_ref()?;
        fetch_status(SocketAddr::from(([127, 0, 0, 1], node.http))).ok()
    }

    fn group<'a>(status: &'a Value, topic: &str, partition: i64) -> Option<&'a Value> {
        status["groups"]
            .as_array()?
            .iter()
            .find(|g| g["topic"] == topic && g["partition"] == partition)
    }

    /// The leader of a partition, as a live node that leads it reports.
    fn leader(&self, topic: &str, partition: i64) -> Option<i32> {
        self.nodes.iter().find_map(|n| {
            let s = self.status(n.id)?;
            let g = Self::group(&s, topic, partition)?;
            (g["role"] == "leader").then_some(n.id)
        })
    }

    fn wait_for(&self, limit: Duration, what: &str, mut ok: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node holds every partition of `topic` up to the
    /// same high watermark, equal to its log end (replicas caught up).
    fn wait_caught_up(&self, topic: &str, partitions: i64) {
        self.wait_for(Duration::from_secs(60), "replicas catch up", |c| {
            (0..partitions).all(|p| {
                let marks: Vec<(i64, i64)> = c
                    .nodes
                    .iter()
                    .filter_map(|n| {
                        let s = c.status(n.id)?;
                        let g = Self::group(&s, topic, p)?;
                        Some((g["high_watermark"].as_i64()?, g["log_end_offset"].as_i64()?))
                    })
                    .collect();
                marks.len() == c.running() && marks.iter().all(|m| *m == marks[0] && m.0 == m.1)
            })
        });
    }

    fn set_isolated(&self, id: i32, on: bool) {
        let body = format!("{{\"isolated\": {on}}}");
        let mut s = TcpStream::connect(("127.0.0.1", self.node(id).http)).expect("connect http");
        write!(
            s,
            "POST /cluster/fault HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
    }

    /// Each partition's bytes on `node` from offset 0 up to `hw`.
    fn log_bytes(&self, id: i32, topic: &str, partition: i32, hw: i64) -> Vec<u8> {
        self.log_bytes_from(id, topic, partition, 0, hw)
    }

    /// A partition's bytes on `node` from the batch holding `from` up to `hw`.
    fn log_bytes_from(&self, id: i32, topic: &str, partition: i32, from: i64, hw: i64) -> Vec<u8> {
        let dir = self.node(id).data.join(format!("{topic}-{partition}"));
        let log = PartitionLog::open(&dir, topic, partition, LogConfig::default())
            .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
        let mut out = Vec::new();
        let mut offset = from;
        while offset < hw {
            let read = log.read(offset, 8 << 20, hw).expect("read log");
            let mut advanced = false;
            for chunk in read.chunks {
                let mut batches = bytes::Bytes::clone(&chunk);
                let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut batches)
                    .expect("stored batches decode");
                for r in sets.iter().flat_map(|s| s.records.iter()) {
                    offset = offset.max(r.offset + 1);
                    advanced = true;
                }
                out.extend_from_slice(&chunk);
            }
            assert!(
                advanced,
                "node {id}: {topic}-{partition} does not advance at {offset}"
            );
        }
        out
    }
}

fn peer_line(n: &Node) -> String {
    format!(
        "    - {{ id: {}, host: 127.0.0.1, port: {}, raft: 127.0.0.1:{} }}\n",
        n.id, n.kafka, n.raft
    )
}

fn write_config(node: &Node, peers: &str, join: bool, extra: &str) {
    std::fs::write(
        &node.config,
        format!(
            "node_id: {}\nlisten: 127.0.0.1:{}\ndata_dir: {}\n\
             schema_registry: {{ listen: 127.0.0.1:{} }}\n\
             log: {{ retention_check_interval_ms: 200 }}\n\
             cluster:\n  fault_injection: true\n  join: {join}\n{extra}  peers:\n{peers}",
            node.id,
            node.kafka,
            node.data.display(),
            node.http
        ),
    )
    .expect("write config");
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn alerts() -> Vec<Vec<u8>> {
    common::alert_files("ztf/alerts/fink-alert-simulator")
        .iter()
        .take(50)
        .map(|p| std::fs::read(p).expect("read alert"))
        .collect()
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]).await;
}

async fn create_topic_with(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin.create_topics([&topic], &opts).await.expect("create");
    for r in results {
        r.expect("topic created");
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("producer")
}

/// An acknowledged message: key index, partition, offset.
type Acked = (usize, i32, i64);

/// Sends `range` (keys are the indexes) and returns what was acknowledged
/// and how many deliveries failed.
async fn produce(
    p: &FutureProducer,
    topic: &str,
    range: std::ops::Range<usize>,
    values: &[Vec<u8>],
) -> (Vec<Acked>, usize) {
    let mut acked = Vec::new();
    let mut failed = 0;
    let mut pending = std::collections::VecDeque::new();
    for i in range {
        let key = i.to_string();
        let value = &values[i % values.len()];
        let f = p
            .send_result(FutureRecord::to(topic).key(&key).payload(value))
            .map_err(|(e, _)| e)
            .expect("queued");
        pending.push_back((i, f));
        // Bound what is in flight so a failover does not queue everything.
        if pending.len() >= 200 {
            let (i, f) = pending.pop_front().unwrap();
            settle(i, f.await, &mut acked, &mut failed);
        }
    }
    while let Some((i, f)) = pending.pop_front() {
        settle(i, f.await, &mut acked, &mut failed);
    }
    (acked, failed)
}

type Delivery = Result<
    rdkafka::producer::future_producer::OwnedDeliveryResult,
    futures::channel::oneshot::Canceled,
>;

fn settle(i: usize, r: Delivery, acked: &mut Vec<Acked>, failed: &mut usize) {
    match r {
        Ok(Ok(d)) => acked.push((i, d.partition, d.offset)),
        Ok(Err((e, _))) => {
            eprintln!("message {i} failed: {e}");
            *failed += 1;
        }
        Err(_) => *failed += 1,
    }
}

/// Every record of `topic` as (partition, offset, key index), read with
/// librdkafka from the current leaders up to each high watermark.
fn read_topic(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, usize)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cluster-check")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(20))
            .expect("watermarks");
        ends.insert(p, high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, o)| *o < ends[p]) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not finish: {next:?} of {ends:?}"
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key: usize = std::str::from_utf8(m.key().expect("key"))
                    .unwrap()
                    .parse()
                    .unwrap();
                next.insert(m.partition(), m.offset() + 1);
                out.push((m.partition(), m.offset(), key));
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    out
}

/// Every acknowledged message exactly once at its acknowledged offset, no
/// key twice, and each partition in the producer's order.
fn check_exactly_once(acked: &[Acked], stored: &[(i32, i64, usize)]) {
    let mut by_key: HashMap<usize, Vec<(i32, i64)>> = HashMap::new();
    for &(p, o, k) in stored {
        by_key.entry(k).or_default().push((p, o));
    }
    for (k, places) in &by_key {
        assert_eq!(
            places.len(),
            1,
            "message {k} is stored more than once: {places:?}"
        );
    }
    for &(k, p, o) in acked {
        assert_eq!(
            by_key.get(&k).map(Vec::as_slice),
            Some(&[(p, o)][..]),
            "acknowledged message {k} at {p}/{o}"
        );
    }
    let mut per_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for &(p, o, k) in stored {
        per_partition.entry(p).or_default().push((o, k));
    }
    for (p, mut records) in per_partition {
        records.sort_unstable();
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p} is not in the producer's order"
        );
    }
}

/// Stops the cluster and compares every replica's bytes up to `hws`.
fn check_identical_replicas(c: &mut ProcCluster, topic: &str, hws: &[i64]) {
    check_identical_on(c, topic, hws, &[1, 2, 3]);
}

/// Stops the cluster and compares the replicas on `ids` up to `hws`.
fn check_identical_on(c: &mut ProcCluster, topic: &str, hws: &[i64], ids: &[i32]) {
    c.stop_all();
    for (p, &hw) in hws.iter().enumerate() {
        let p = i32::try_from(p).unwrap();
        let first = c.log_bytes(ids[0], topic, p, hw);
        assert!(!first.is_empty() || hw == 0);
        for &id in &ids[1..] {
            let other = c.log_bytes(id, topic, p, hw);
            assert!(
                other == first,
                "{topic}-{p}: node {id} differs from node {} below the high watermark {hw} ({} vs {} bytes)",
                ids[0],
                other.len(),
                first.len()
            );
        }
    }
}

fn high_watermarks(c: &ProcCluster, topic: &str, partitions: i64) -> Vec<i64> {
    let s = c.status(1).expect("status");
    (0..partitions)
        .map(|p| {
            ProcCluster::group(&s, topic, p).expect("group")["high_watermark"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_survive_repeated_leader_kills_during_load() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "kills", 3).await;
    let values = alerts();
    let p = producer(&bs);
    let total = 1_500;
    let load = {
        let values = values.clone();
        let p = p.clone();
        tokio::spawn(async move { produce(&p, "kills", 0..total, &values).await })
    };
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        c.wait_for(Duration::from_secs(30), "partition 0 has a leader", |c| {
            c.leader("kills", 0).is_some()
        });
        let leader = c.leader("kills", 0).expect("partition 0 has a leader");
        eprintln!("round {round}: kill -9 node {leader}");
        c.kill9(leader);
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        c.spawn(leader);
    }
    let (acked, failed) = load.await.expect("producer task");
    p.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        failed, 0,
        "idempotent retries deliver everything within the timeout"
    );
    assert_eq!(acked.len(), total);
    c.wait_caught_up("kills", 3);
    let stored = read_topic(&bs, "kills", 3);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), total);
    let hws = high_watermarks(&c, "kills", 3);
    check_identical_replicas(&mut c, "kills", &hws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_peers_is_replaced_and_catches_up_after_healing() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "cut", 1).await;
    let values = alerts();
    let p = producer(&bs);
    let (mut acked, failed) = produce(&p, "cut", 0..300, &values).await;
    assert_eq!(failed, 0);
    c.wait_for(Duration::from_secs(30), "a leader", |c| {
        c.leader("cut", 0).is_some()
    });
    let old = c.leader("cut", 0).expect("leader");
    c.set_isolated(old, true);
    c.wait_for(Duration::from_secs(20), "another node leads", |c| {
        c.nodes.iter().filter(|n| n.id != old).any(|n| {
            c.status(n.id).is_some_and(|s| {
                ProcCluster::group(&s, "cut", 0).is_some_and(|g| g["role"] == "leader")
            })
        })
    });
    let (more, failed) = produce(&p, "cut", 300..600, &values).await;
    assert_eq!(failed, 0, "the producer fails over to the new leader");
    acked.extend(more);
    // The cut-off node cannot have committed anything on its own.
    let s = c.status(old).expect("status of the isolated node");
    let g = ProcCluster::group(&s, "cut", 0).unwrap();
    assert_ne!(
        g["role"], "leader",
        "an isolated leader steps down (check quorum)"
    );
    // Knowing no controller, it answers no Metadata: the connection closes,
    // so a client asks another broker instead of trusting a stale view.
    c.wait_for(
        Duration::from_secs(20),
        "the cut-off node knows no controller",
        |c| c.status(old).is_some_and(|s| s["controller"].is_null()),
    );
    assert!(metadata_is_refused(c.node(old).kafka).await);
    c.set_isolated(old, false);
    c.wait_caught_up("cut", 1);
    c.wait_for(
        Duration::from_secs(20),
        "the healed node knows the controller",
        |c| c.status(old).is_some_and(|s| s["controller"].is_i64()),
    );
    assert!(
        !metadata_is_refused(c.node(old).kafka).await,
        "healed: Metadata is answered again"
    );
    let stored = read_topic(&bs, "cut", 1);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), 600);
    let hws = high_watermarks(&c, "cut", 1);
    check_identical_replicas(&mut c, "cut", &hws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_all_three_keeps_every_acknowledged_message() {
    kill_all_three(ProcCluster::start()).await;
}

/// With `sync_data: false` acknowledged records are in the OS's page cache
/// on a quorum, which a process crash does not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relying_on_replication_without_fdatasync_survives_kill_9_of_all_three() {
    kill_all_three(ProcCluster::start_with("  sync_data: false\n")).await;
}

async fn kill_all_three(mut c: ProcCluster) {
    let bs = c.bootstrap();
    create_topic(&bs, "all-down", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let (mut acked, failed) = produce(&p, "all-down", 0..400, &values).await;
    assert_eq!(failed, 0);
    for id in 1..=3 {
        c.kill9(id);
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    let (more, failed) = produce(&p, "all-down", 400..500, &values).await;
    assert_eq!(failed, 0, "the restarted cluster takes new messages");
    acked.extend(more);
    c.wait_caught_up("all-down", 2);
    let stored = read_topic(&bs, "all-down", 2);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), 500);
    let hws = high_watermarks(&c, "all-down", 2);
    check_identical_replicas(&mut c, "all-down", &hws);
}

/// Sends a Metadata request and reports whether the broker closed the
/// connection instead of answering.
async fn metadata_is_refused(port: u16) -> bool {
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut client = common::RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let version = 1;
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fenced-check")))
        .encode(&mut body, ApiKey::Metadata.request_header_version(version))
        .expect("header encodes");
    MetadataRequest::default()
        .encode(&mut body, version)
        .expect("request encodes");
    client.send_frame(&body).await;
    client.read_frame().await.is_none()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_status_and_metrics_agree_on_one_leader_per_partition() {
    let mut c = ProcCluster::start();
    // Created through node 3 alone: it is forwarded to the metadata leader.
    let third = format!("127.0.0.1:{}", c.node(3).kafka);
    create_topic(&third, "observed", 3).await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&c.bootstrap()), "observed", 0..30, &values).await;
    assert_eq!((acked.len(), failed), (30, 0));
    c.wait_caught_up("observed", 3);
    c.wait_for(Duration::from_secs(30), "leaders", |c| {
        (0..3).all(|p| c.leader("observed", p).is_some())
    });
    let leaders: Vec<i32> = (0..3)
        .map(|p| c.leader("observed", p).expect("leader"))
        .collect();
    // Every broker's Metadata names the same leaders and all three replicas.
    for n in &c.nodes {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", format!("127.0.0.1:{}", n.kafka))
            .create()
            .expect("client");
        let md = consumer
            .fetch_metadata(Some("observed"), Duration::from_secs(10))
            .expect("metadata");
        assert_eq!(md.brokers().len(), 3);
        let t = &md.topics()[0];
        for p in t.partitions() {
            let i = usize::try_from(p.id()).unwrap();
            assert_eq!(p.leader(), leaders[i], "node {} on partition {i}", n.id);
            let mut replicas = p.replicas().to_vec();
            replicas.sort_unstable();
            assert_eq!(replicas, vec![1, 2, 3]);
            assert!(p.isr().contains(&leaders[i]));
        }
    }
    // /metrics: exactly one broker reports itself leader of each partition,
    // and the term is the same everywhere.
    for p in 0..3 {
        let row = format!("starlog_raft_leader{{topic=\"observed\",partition=\"{p}\"}} 1");
        let claiming: Vec<i32> = c
            .nodes
            .iter()
            .filter(|n| http_get(n.http, "/metrics").contains(&row))
            .map(|n| n.id)
            .collect();
        assert_eq!(claiming, vec![leaders[usize::try_from(p).unwrap()]]);
    }
    let page = http_get(c.node(leaders[0]).http, "/metrics");
    assert!(
        page.contains(
            "starlog_raft_replica_lag_records{topic=\"observed\",partition=\"0\",replica=\"1\"} 0"
        ),
        "{page}"
    );
    // `starlog cluster status` prints the same view.
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["cluster", "status", "--http"])
        .arg(format!("127.0.0.1:{}", c.node(leaders[0]).http))
        .output()
        .expect("run starlog cluster status");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("observed") && l.split_whitespace().nth(1) == Some("0"))
        .unwrap_or_else(|| panic!("no row for observed-0 in\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "leader", "{row}");
    assert_eq!(cols[3], leaders[0].to_string(), "{row}");
    c.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_replicas_and_a_later_broker_starts_from_a_snapshot() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic_with(
        &bs,
        "trimmed",
        1,
        &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
    )
    .await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&bs), "trimmed", 0..150, &values).await;
    assert_eq!((acked.len(), failed), (150, 0));
    c.wait_caught_up("trimmed", 1);
    // Every replica trims its own log through its Raft group.
    c.wait_for(Duration::from_secs(30), "every replica trims", |c| {
        c.nodes.iter().all(|n| {
            c.status(n.id).is_some_and(|s| {
                ProcCluster::group(&s, "trimmed", 0)
                    .is_some_and(|g| g["log_start_offset"].as_i64().unwrap_or(0) > 0)
            })
        })
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .expect("client");
    let (low, high) = consumer
        .fetch_watermarks("trimmed", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert!(low > 0 && high == 150, "low {low} high {high}");
    // What remains reads back from the new start, still in order.
    let stored = read_topic(&bs, "trimmed", 1);
    assert_eq!(stored.len(), usize::try_from(high - low).unwrap());
    assert_eq!(stored[0].1, low);
    check_exactly_once(
        &acked
            .iter()
            .copied()
            .filter(|a| a.2 >= low)
            .collect::<Vec<_>>(),
        &stored,
    );
    // A broker added now cannot replay the trimmed entries: it gets a
    // snapshot (the window start) and replicates from there.
    let four = c.spawn_joiner();
    let n4 = c.node(four);
    let peer = format!("{four}=127.0.0.1:{}/127.0.0.1:{}", n4.kafka, n4.raft);
    let http1 = format!("127.0.0.1:{}", c.node(1).http);
    run_cli(&["cluster", "add-broker", "--http", &http1, "--peer", &peer]);
    c.wait_caught_up("trimmed", 1);
    let s4 = c.status(four).expect("status of the new broker");
    let g4 = ProcCluster::group(&s4, "trimmed", 0).unwrap().clone();
    let start = g4["log_start_offset"].as_i64().unwrap();
    assert!(start > 0, "{g4}");
    assert_eq!(g4["high_watermark"].as_i64(), Some(150));
    c.stop_all();
    assert_eq!(
        c.log_bytes_from(four, "trimmed", 0, start, 150),
        c.log_bytes_from(1, "trimmed", 0, start, 150),
        "the new replica matches the others from its start on"
    );
}

fn run_cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(args)
        .output()
        .expect("run starlog");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "starlog {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Whether every group on node `id` has exactly `voters` as its voters.
fn voters_are(c: &ProcCluster, id: i32, voters: &[i64]) -> bool {
    c.status(id).is_some_and(|s| {
        s["groups"].as_array().is_some_and(|gs| {
            !gs.is_empty()
                && gs.iter().all(|g| {
                    g["voters"].as_array().is_some_and(|v| {
                        v.iter()
                            .filter_map(Value::as_i64)
                            .eq(voters.iter().copied())
                    })
                })
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_is_added_and_another_removed_under_load_without_downtime() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "elastic", 2).await;
    let values = alerts();
    let p = producer(&bs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Steady load for the whole reconfiguration: chunks of 50 alerts.
    let load = {
        let (p, values, stop) = (p.clone(), values.clone(), std::sync::Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failed = 0;
            let mut next = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && next < 20_000 {
                let (a, f) = produce(&p, "elastic", next..next + 50, &values).await;
                acked.extend(a);
                failed += f;
                next += 50;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (acked, failed, next)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Add broker 4: it joins the metadata group and every partition group.
    let four = c.spawn_joiner();
    let n4 = c.node(four);
    let peer = format!("{four}=127.0.0.1:{}/127.0.0.1:{}", n4.kafka, n4.raft);
    let http1 = format!("127.0.0.1:{}", c.node(1).http);
    run_cli(&["cluster", "add-broker", "--http", &http1, "--peer", &peer]);
    c.wait_for(
        Duration::from_secs(60),
        "broker 4 replicates every group",
        |c| (1..=4).all(|id| voters_are(c, id, &[1, 2, 3, 4])),
    );
    c.wait_caught_up("elastic", 2);
    // Remove broker 2 (leadership moves off it first), then stop it.
    run_cli(&["cluster", "remove-broker", "--http", &http1, "--id", "2"]);
    c.wait_for(
        Duration::from_secs(60),
        "broker 2 leaves every group",
        |c| [1, 3, 4].iter().all(|&id| voters_are(c, id, &[1, 3, 4])),
    );
    c.kill9(2);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, failed, sent) = load.await.expect("load task");
    assert_eq!(failed, 0, "no produce failed while brokers came and went");
    assert_eq!(acked.len(), sent);
    c.wait_caught_up("elastic", 2);
    let md: BaseConsumer = ClientConfig::new()
        .set(
            "bootstrap.servers",
            format!("127.0.0.1:{}", c.node(4).kafka),
        )
        .create()
        .expect("client");
    let meta = md
        .fetch_metadata(Some("elastic"), Duration::from_secs(10))
        .expect("metadata");
    let mut brokers: Vec<i32> = meta.brokers().iter().map(|b| b.id()).collect();
    brokers.sort_unstable();
    assert_eq!(brokers, vec![1, 3, 4]);
    drop(md);
    let stored = read_topic(&bs, "elastic", 2);
    check_exactly_once(&acked, &stored);
    assert_eq!(stored.len(), sent);
    let hws = high_watermarks(&c, "elastic", 2);
    check_identical_on(&mut c, "elastic", &hws, &[1, 3, 4]);
}

/// Consumes with group `group` until `n` messages arrived (or fails after
/// 60 s); returns their offsets. Commits synchronously at the end.
fn consume_in_group(bootstrap: &str, topic: &str, group: &str, n: usize) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut offsets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while offsets.len() < n {
        assert!(
            Instant::now() < deadline,
            "group {group} got only {} of {n}",
            offsets.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            offsets.push(m.offset());
        }
    }
    c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    c.unsubscribe();
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_the_coordinator() {
    let mut c = ProcCluster::start();
    let bs = c.bootstrap();
    create_topic(&bs, "grp", 1).await;
    let values = alerts();
    let (acked, failed) = produce(&producer(&bs), "grp", 0..100, &values).await;
    assert_eq!((acked.len(), failed), (100, 0));
    let first = {
        let bs = bs.clone();
        tokio::task::spawn_blocking(move || consume_in_group(&bs, "grp", "survivors", 60))
            .await
            .unwrap()
    };
    assert_eq!(first, (0..60).collect::<Vec<i64>>());
    // The coordinator is the controller: kill it.
    let controller = i32::try_from(c.status(1).unwrap()["controller"].as_i64().unwrap()).unwrap();
    c.kill9(controller);
    let live: Vec<i32> = (1..=3).filter(|&id| id != controller).collect();
    c.wait_for(Duration::from_secs(30), "a new controller", |c| {
        c.status(live[0]).is_some_and(|s| {
            s["controller"]
                .as_i64()
                .is_some_and(|id| id != i64::from(controller))
        })
    });
    let live_bs = live
        .iter()
        .map(|&id| format!("127.0.0.1:{}", c.node(id).kafka))
        .collect::<Vec<_>>()
        .join(",");
    let rest =
        tokio::task::spawn_blocking(move || consume_in_group(&live_bs, "grp", "survivors", 40))
            .await
            .unwrap();
    assert_eq!(
        rest,
        (60..100).collect::<Vec<i64>>(),
        "resumed at the committed offset"
    );
}

fn http_post(port: u16, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_peers_and_bad_admin_requests_are_refused_and_change_nothing() {
    let mut c = ProcCluster::start();
    // Garbage on node 1's inter-broker port: an absurd frame length, then a
    // frame of the right length whose content is not a frame.
    let raft = c.node(1).raft;
    let mut s = TcpStream::connect(("127.0.0.1", raft)).expect("connect raft port");
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .expect("write");
    let mut buf = [0u8; 1];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "the broker closes the connection"
    );
    let mut s = TcpStream::connect(("127.0.0.1", raft)).expect("connect raft port");
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef])
        .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "the broker closes the connection"
    );
    // Bad admin requests get a 4xx naming what is wrong.
    let http = c.node(1).http;
    let answer = http_post(http, "/cluster/fault", r#"{"isolate": 1}"#);
    assert!(
        answer.contains(" 400 ") && answer.contains("isolated"),
        "{answer}"
    );
    let answer = http_post(http, "/cluster/brokers", "not json");
    assert!(
        answer.contains(" 400 ") && answer.contains("raft"),
        "{answer}"
    );
    let answer = http_post(http, "/cluster/brokers/remove", r#"{"id": 9}"#);
    assert!(
        answer.contains(" 409 ") && answer.contains("not a member"),
        "{answer}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_starlog"))
        .args(["cluster", "add-broker", "--http"])
        .arg(format!("127.0.0.1:{http}"))
        .args(["--peer", "4=nowhere"])
        .output()
        .expect("run starlog");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--peer \"4=nowhere\""));
    // The cluster is unchanged and still works.
    let s1 = c.status(1).expect("status");
    assert_eq!(s1["peers"].as_array().map(Vec::len), Some(3));
    assert_eq!(s1["isolated"], false);
    let bs = c.bootstrap();
    create_topic(&bs, "after-garbage", 1).await;
    let (acked, failed) = produce(&producer(&bs), "after-garbage", 0..20, &alerts()).await;
    assert_eq!((acked.len(), failed), (20, 0));
    c.stop_all();
}
