//! Broker processes on loopback forming a Raft cluster, for the cluster
//! tests: the test kit's process-cluster harness (`starlog_testkit::cluster`,
//! also what `starlog-bench cluster` runs) driven with this crate's binary,
//! with assertions instead of errors; librdkafka producers (acks=all,
//! idempotence) with real ZTF alerts as values; and the checks every
//! cluster test ends with (every acknowledged message exactly once,
//! producer order per partition, byte-identical replicas).
//!
//! Included with `#[path]` by the cluster test binaries only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use starlog_storage::{LogConfig, PartitionLog};
pub use starlog_testkit::cluster::Node;
use starlog_testkit::cluster::{ClusterSpec, SpawnedCluster};
pub use starlog_testkit::{ClusterStatus, GroupState};

/// Three broker processes of this crate's `starlog` binary, with fault
/// injection on (see the module docs).
pub struct ProcCluster {
    pub cluster: SpawnedCluster,
}

impl ProcCluster {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Three nodes whose `cluster:` sections also hold `extra` (YAML lines
    /// indented by two spaces).
    pub fn start_with(extra: &str) -> Self {
        Self::start_spec(|spec| spec.cluster_yaml = extra.to_string())
    }

    /// Three nodes, with `tweak` applied to the spec (TLS files, HTTPS:
    /// `{node}` in its YAML stands for the node's id).
    pub fn start_spec(tweak: impl FnOnce(&mut ClusterSpec)) -> Self {
        let mut spec = ClusterSpec::new("cluster-test", 3, env!("CARGO_BIN_EXE_starlog"));
        spec.ready_timeout = Duration::from_secs(30);
        spec.fault_injection = true;
        spec.extra_yaml = "log: { retention_check_interval_ms: 200 }\n".into();
        spec.node_log = "warn,starlog_broker=info".into();
        tweak(&mut spec);
        let cluster = SpawnedCluster::start(spec).unwrap_or_else(|e| panic!("{e}"));
        Self { cluster }
    }

    /// `--ca FILE` when the nodes serve HTTPS (the spec's `http_ca`).
    pub fn http_flags(&self) -> Vec<String> {
        match &self.cluster.spec().http_ca {
            Some(ca) => vec!["--ca".into(), ca.display().to_string()],
            None => Vec::new(),
        }
    }

    /// Starts a fourth broker that joins the running cluster (it still has
    /// to be added with `starlog cluster add-broker`).
    pub fn spawn_joiner(&mut self) -> i32 {
        self.cluster
            .spawn_joiner()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn running(&self) -> usize {
        self.cluster.running()
    }

    pub fn nodes(&self) -> &[Node] {
        self.cluster.nodes()
    }

    pub fn node(&self, id: i32) -> &Node {
        self.cluster.node(id).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn spawn(&mut self, id: i32) {
        self.cluster.spawn(id).unwrap_or_else(|e| panic!("{e}"));
    }

    /// kill -9 of node `id` when it runs.
    pub fn kill9(&mut self, id: i32) {
        if self.cluster.is_running(id) {
            self.cluster.kill9(id).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// kill -9 of every running node, then starts them all again.
    pub fn kill9_and_restart_all(&mut self) {
        let ids: Vec<i32> = self
            .nodes()
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect();
        for &id in &ids {
            self.kill9(id);
        }
        for &id in &ids {
            self.spawn(id);
        }
    }

    /// Starts a broker that joins the running cluster and adds it with
    /// `starlog cluster add-broker` through node 1; returns its id.
    pub fn add_broker(&mut self) -> i32 {
        let id = self.spawn_joiner();
        let n = self.node(id);
        let peer = format!("{id}=127.0.0.1:{}/127.0.0.1:{}", n.kafka, n.raft);
        let http = self.http1();
        let mut args = vec!["cluster", "add-broker", "--http", &http, "--peer", &peer];
        let flags = self.http_flags();
        args.extend(flags.iter().map(String::as_str));
        run_cli(&args);
        id
    }

    /// `starlog cluster reassign` through node 1 (`replicas` as `2,3,4`).
    pub fn reassign(&self, topic: &str, partition: i32, replicas: &str) {
        let partition = partition.to_string();
        let http = self.http1();
        let mut args = vec![
            "cluster",
            "reassign",
            "--http",
            &http,
            "--topic",
            topic,
            "--partition",
            &partition,
            "--replicas",
            replicas,
        ];
        let flags = self.http_flags();
        args.extend(flags.iter().map(String::as_str));
        run_cli(&args);
    }

    /// Node 1's HTTP address.
    pub fn http1(&self) -> String {
        format!("127.0.0.1:{}", self.node(1).http)
    }

    /// Metadata (for `topic`, or every topic) from node `id` alone.
    pub fn metadata(&self, id: i32, topic: Option<&str>) -> rdkafka::metadata::Metadata {
        let md: BaseConsumer = ClientConfig::new()
            .set(
                "bootstrap.servers",
                format!("127.0.0.1:{}", self.node(id).kafka),
            )
            .create()
            .expect("client");
        md.fetch_metadata(topic, Duration::from_secs(10))
            .expect("metadata")
    }

    /// SIGTERM every node and wait for a clean exit.
    pub fn stop_all(&mut self) {
        let exits = self.cluster.stop_all().unwrap_or_else(|e| panic!("{e}"));
        for (id, exit) in exits {
            assert_eq!(exit.code(), Some(0), "node {id} exits 0 on SIGTERM");
        }
    }

    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap()
    }

    pub fn status(&self, id: i32) -> Option<ClusterStatus> {
        self.cluster.status(id).ok()
    }

    pub fn group<'a>(
        status: &'a ClusterStatus,
        topic: &str,
        partition: i64,
    ) -> Option<&'a GroupState> {
        status.group(topic, i32::try_from(partition).ok()?)
    }

    /// The leader of a partition, as a live node that leads it reports.
    pub fn leader(&self, topic: &str, partition: i64) -> Option<i32> {
        self.nodes().iter().find_map(|n| {
            let s = self.status(n.id)?;
            let g = Self::group(&s, topic, partition)?;
            (g.role == "leader").then_some(n.id)
        })
    }

    pub fn wait_for(&self, limit: Duration, what: &str, mut ok: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every node holds every partition of `topic` up to the
    /// same high watermark, equal to its log end (replicas caught up).
    pub fn wait_caught_up(&self, topic: &str, partitions: i64) {
        let running: Vec<i32> = self
            .nodes()
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect();
        for p in 0..partitions {
            self.wait_caught_up_on(topic, p, &running);
        }
    }

    /// Waits until exactly the nodes `ids` (of those running) hold
    /// `topic`-`partition`, all up to the same high watermark, equal to its
    /// log end.
    pub fn wait_caught_up_on(&self, topic: &str, partition: i64, ids: &[i32]) {
        let what = format!("{topic}-{partition} is caught up on exactly {ids:?}");
        self.wait_for(Duration::from_secs(60), &what, |c| {
            let marks: Vec<(i32, i64, i64)> = c
                .nodes()
                .iter()
                .filter_map(|n| {
                    let s = c.status(n.id)?;
                    let g = Self::group(&s, topic, partition)?;
                    Some((n.id, g.high_watermark, g.log_end_offset))
                })
                .collect();
            let hosts: Vec<i32> = marks.iter().map(|m| m.0).collect();
            let mut want = ids.to_vec();
            want.sort_unstable();
            hosts == want && marks.iter().all(|m| (m.1, m.2) == (marks[0].1, marks[0].1))
        });
    }

    pub fn set_isolated(&self, id: i32, on: bool) {
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
    pub fn log_bytes(&self, id: i32, topic: &str, partition: i32, hw: i64) -> Vec<u8> {
        self.log_bytes_from(id, topic, partition, 0, hw)
    }

    /// A partition's bytes on `node` from the batch holding `from` up to `hw`.
    pub fn log_bytes_from(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
        from: i64,
        hw: i64,
    ) -> Vec<u8> {
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

pub fn alerts() -> Vec<Vec<u8>> {
    crate::common::alert_files("ztf/alerts/fink-alert-simulator")
        .iter()
        .take(50)
        .map(|p| std::fs::read(p).expect("read alert"))
        .collect()
}

pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    create_topic_with(bootstrap, name, partitions, &[]).await;
}

pub async fn create_topic_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    try_create_topic(bootstrap, name, partitions, 3, configs)
        .await
        .expect("topic created");
}

/// CreateTopics through librdkafka's admin client with `factor` replicas.
pub async fn try_create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    factor: i32,
    configs: &[(&str, &str)],
) -> Result<(), rdkafka::types::RDKafkaErrorCode> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(factor));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin.create_topics([&topic], &opts).await.expect("create");
    for r in results {
        r.map_err(|(_, code)| code)?;
    }
    Ok(())
}

pub fn producer(bootstrap: &str) -> FutureProducer {
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
pub type Acked = (usize, i32, i64);

/// Sends `range` (keys are the indexes) and returns what was acknowledged
/// and how many deliveries failed.
pub async fn produce(
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

pub type Delivery = Result<
    rdkafka::producer::future_producer::OwnedDeliveryResult,
    futures::channel::oneshot::Canceled,
>;

pub fn settle(i: usize, r: Delivery, acked: &mut Vec<Acked>, failed: &mut usize) {
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
pub fn read_topic(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, usize)> {
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
pub fn check_exactly_once(acked: &[Acked], stored: &[(i32, i64, usize)]) {
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
pub fn check_identical_replicas(c: &mut ProcCluster, topic: &str, hws: &[i64]) {
    check_identical_on(c, topic, hws, &[1, 2, 3]);
}

/// Stops the cluster and compares the replicas on `ids` up to `hws`.
pub fn check_identical_on(c: &mut ProcCluster, topic: &str, hws: &[i64], ids: &[i32]) {
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

pub fn high_watermarks(c: &ProcCluster, topic: &str, partitions: i64) -> Vec<i64> {
    let s = c.status(1).expect("status");
    (0..partitions)
        .map(|p| {
            ProcCluster::group(&s, topic, p)
                .expect("group")
                .high_watermark
        })
        .collect()
}

pub fn run_cli(args: &[&str]) -> String {
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
pub fn voters_are(c: &ProcCluster, id: i32, voters: &[i64]) -> bool {
    c.status(id).is_some_and(|s| {
        !s.groups.is_empty()
            && s.groups.iter().all(|g| {
                g.voters
                    .iter()
                    .map(|&v| i64::try_from(v).unwrap_or(-1))
                    .eq(voters.iter().copied())
            })
    })
}

pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    answer
}

pub fn http_post(port: u16, path: &str, body: &str) -> String {
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
