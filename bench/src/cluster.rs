//! Starlog clusters started by the bench: N `starlog serve` processes on
//! loopback forming one Raft cluster.
//!
//! Every node gets three free loopback ports (Kafka, Raft, HTTP) and a
//! configuration file in a fresh temporary directory (removed with the
//! cluster); every broker replicates every partition, so an N-node cluster
//! measures replication factor N. A 1-node cluster (its peer list is itself)
//! goes through the same Raft code path as a 3-node one, which is what makes
//! "replication factor 1" a fair baseline for "replication factor 3".
//!
//! Each node is spawned directly (no shell), so the process id held is the
//! broker's; `kill9` sends SIGKILL to exactly that id, `stop` sends SIGTERM
//! to each id and waits (bounded) before SIGKILL, and `Drop` kills whatever
//! still runs, so an error anywhere leaves no process behind. Every wait has
//! a deadline.
//!
//! The cluster's state is read from each node's `GET /cluster/status`
//! (leader, term, commit index, high watermark, log end per partition).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::broker_http;
use crate::error::BenchError;
use crate::target::{BrokerTarget, RunningBroker};

/// Process ids of the nodes this process started and has not reaped, so
/// that a signal handler can kill them (`kill_all_nodes`) before exiting:
/// `Drop` does not run when the bench is interrupted.
static LIVE_NODES: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn register(pid: u32) {
    if let Ok(mut live) = LIVE_NODES.lock() {
        live.push(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE_NODES.lock() {
        live.retain(|&p| p != pid);
    }
}

/// SIGKILL to every node this process started and has not reaped (by
/// process id). For a signal handler; returns how many were signalled.
pub fn kill_all_nodes() -> usize {
    let pids = match LIVE_NODES.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return 0,
    };
    for pid in &pids {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
    pids.len()
}

/// Kills (SIGKILL) and reaps a child, forgetting its id.
fn kill_and_reap(child: &mut Child) -> std::io::Result<()> {
    let pid = child.id();
    let killed = child.kill();
    let waited = child.wait();
    unregister(pid);
    killed?;
    waited.map(|_| ())
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The target's name in reports (`rf1`, `rf3`).
    pub name: String,
    /// Number of brokers (= replication factor).
    pub nodes: usize,
    /// The `starlog` binary.
    pub starlog_bin: PathBuf,
    /// Where each cluster's temporary directory is made.
    pub data_root: PathBuf,
    /// How long a node may take to accept connections, and the cluster to
    /// elect a controller.
    pub ready_timeout: Duration,
    /// How long to wait after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Extra YAML lines for every node's configuration (top level).
    pub extra_yaml: String,
    /// `cluster.sync_data` of every node (false: rely on replication).
    pub sync_data: bool,
    /// `RUST_LOG` of every node.
    pub node_log: String,
    /// Where the nodes' logs go (`None`: the cluster's temporary directory, removed with it).
    pub node_log_dir: Option<PathBuf>,
}

impl ClusterSpec {
    /// `nodes` brokers from `starlog_bin`, data under `data_root`.
    pub fn new(
        name: impl Into<String>,
        nodes: usize,
        starlog_bin: impl Into<PathBuf>,
        data_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            nodes,
            starlog_bin: starlog_bin.into(),
            data_root: data_root.into(),
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
            extra_yaml: String::new(),
            sync_data: true,
            node_log: "warn".into(),
            node_log_dir: None,
        }
    }
}

/// One partition's Raft group as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i64,
    /// `leader`, `follower`, `candidate`, `pre-candidate`.
    pub role: String,
    /// The leader this node knows of.
    pub leader: Option<i64>,
    /// The node's current term.
    pub term: i64,
    /// Kafka high watermark (the commit index as an offset).
    pub high_watermark: Option<i64>,
    /// Kafka log end offset.
    pub log_end_offset: Option<i64>,
}

/// One node's status document, the parts the bench uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub node: i64,
    /// The controller it knows of.
    pub controller: Option<i64>,
    /// Its partition groups.
    pub groups: Vec<GroupView>,
}

impl NodeStatus {
    /// Parses `GET /cluster/status`'s JSON.
    pub fn parse(body: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        let node = v["node"]
            .as_i64()
            .ok_or_else(|| "no numeric `node`".to_string())?;
        let groups = v["groups"]
            .as_array()
            .ok_or_else(|| "no `groups` array".to_string())?
            .iter()
            .filter_map(|g| {
                Some(GroupView {
                    topic: g["topic"].as_str()?.to_string(),
                    partition: g["partition"].as_i64()?,
                    role: g["role"].as_str().unwrap_or("unknown").to_string(),
                    leader: g["leader"].as_i64().filter(|&l| l > 0),
                    term: g["term"].as_i64().unwrap_or(0),
                    high_watermark: g["high_watermark"].as_i64(),
                    log_end_offset: g["log_end_offset"].as_i64(),
                })
            })
            .collect();
        Ok(Self {
            node,
            controller: v["controller"].as_i64().filter(|&c| c > 0),
            groups,
        })
    }

    /// The group of `topic`/`partition`, if the node has it.
    pub fn group(&self, topic: &str, partition: i64) -> Option<&GroupView> {
        self.groups
            .iter()
            .find(|g| g.topic == topic && g.partition == partition)
    }
}

/// One node's ports and process.
#[derive(Debug)]
struct Node {
    id: i32,
    kafka: u16,
    http: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running cluster (see the module docs).
#[derive(Debug)]
pub struct SpawnedCluster {
    spec: ClusterSpec,
    nodes: Vec<Node>,
    /// Removed (with every node's data) when the cluster is dropped.
    dir: tempfile::TempDir,
}

fn process_error(command: &str, reason: String) -> BenchError {
    BenchError::Process {
        command: command.to_string(),
        reason,
    }
}

impl SpawnedCluster {
    /// Writes the configurations, starts every node, and waits until each
    /// accepts Kafka connections and knows a controller.
    pub fn start(spec: ClusterSpec) -> Result<Self, BenchError> {
        let what = format!(
            "{} serve (cluster {})",
            spec.starlog_bin.display(),
            spec.name
        );
        if spec.nodes == 0 {
            return Err(process_error(
                &what,
                "a cluster needs at least one node".into(),
            ));
        }
        if !spec.starlog_bin.is_file() {
            return Err(process_error(
                &what,
                format!(
                    "{} not found: build it with `cargo build --release -p starlog`",
                    spec.starlog_bin.display()
                ),
            ));
        }
        std::fs::create_dir_all(&spec.data_root).map_err(|e| {
            process_error(&what, format!("creating {}: {e}", spec.data_root.display()))
        })?;
        if let Some(logs) = &spec.node_log_dir {
            std::fs::create_dir_all(logs)
                .map_err(|e| process_error(&what, format!("creating {}: {e}", logs.display())))?;
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", spec.name))
            .tempdir_in(&spec.data_root)
            .map_err(|e| process_error(&what, format!("temporary directory: {e}")))?;
        let picked = pick_ports(3 * spec.nodes)
            .map_err(|e| process_error(&what, format!("no free ports: {e}")))?;
        let ports: Vec<(u16, u16, u16)> =
            picked.chunks_exact(3).map(|c| (c[0], c[1], c[2])).collect();
        let peers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (kafka, raft, _))| {
                format!(
                    "    - {{ id: {}, host: 127.0.0.1, port: {kafka}, raft: 127.0.0.1:{raft} }}\n",
                    i + 1
                )
            })
            .collect();
        let mut nodes = Vec::with_capacity(spec.nodes);
        for (i, &(kafka, _, http)) in ports.iter().enumerate() {
            let id = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let data = dir.path().join(format!("node{id}"));
            let config = dir.path().join(format!("node{id}.yaml"));
            let text = format!(
                "# Written by starlog-bench: node {id} of a {n}-node cluster.\n\
                 node_id: {id}\nlisten: 127.0.0.1:{kafka}\ndata_dir: {data}\n\
                 schema_registry: {{ listen: 127.0.0.1:{http} }}\n{extra}\
                 cluster:\n  fault_injection: false\n  sync_data: {sync}\n  peers:\n{peers}",
                n = spec.nodes,
                sync = spec.sync_data,
                data = data.display(),
                extra = spec.extra_yaml,
            );
            std::fs::write(&config, text)
                .map_err(|e| process_error(&what, format!("writing {}: {e}", config.display())))?;
            nodes.push(Node {
                id,
                kafka,
                http,
                config,
                log: match &spec.node_log_dir {
                    Some(logs) => logs.join(format!(
                        "{}-node{id}.log",
                        dir.path()
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    )),
                    None => dir.path().join(format!("node{id}.log")),
                },
                child: None,
            });
        }
        let mut cluster = Self { spec, nodes, dir };
        for id in 1..=cluster.nodes.len() {
            cluster.spawn(i32::try_from(id).unwrap_or(i32::MAX))?;
        }
        let limit = cluster.spec.ready_timeout;
        cluster.wait_until(limit, "every node knows a controller", |c| {
            c.nodes
                .iter()
                .all(|n| c.status(n.id).is_ok_and(|s| s.controller.is_some()))
        })?;
        Ok(cluster)
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The node ids, 1..=N.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&self, id: i32) -> Result<&Node, BenchError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| process_error(&self.describe_all(), format!("no node {id}")))
    }

    fn node_mut(&mut self, id: i32) -> Result<&mut Node, BenchError> {
        let all = self.describe_all();
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| process_error(&all, format!("no node {id}")))
    }

    fn command_of(&self, node: &Node) -> String {
        format!(
            "{} serve --config {}",
            self.spec.starlog_bin.display(),
            relative(&node.config).display()
        )
    }

    fn describe_all(&self) -> String {
        format!(
            "{} x `{} serve --config nodeN.yaml` (cluster {})",
            self.nodes.len(),
            self.spec.starlog_bin.display(),
            self.spec.name
        )
    }

    /// Starts node `id` (again) and waits until it accepts Kafka connections.
    pub fn spawn(&mut self, id: i32) -> Result<(), BenchError> {
        let ready = self.spec.ready_timeout;
        let bin = self.spec.starlog_bin.clone();
        let node = self.node(id)?;
        let command = self.command_of(node);
        if node.child.is_some() {
            return Err(process_error(&command, "already running".into()));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| process_error(&command, format!("{}: {e}", node.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| process_error(&command, format!("{}: {e}", node.log.display())))?;
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", &self.spec.node_log)
            // Errors stay short enough for the quoted log tail.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| process_error(&command, format!("spawning: {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], node.kafka));
        let log_path = node.log.clone();
        register(child.id());
        self.node_mut(id)?.child = Some(child);
        let deadline = Instant::now() + ready;
        loop {
            let node = self.node_mut(id)?;
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                if let Some(c) = node.child.take() {
                    unregister(c.id());
                }
                return Err(process_error(
                    &command,
                    format!(
                        "exited ({status}) before accepting connections; its output ends with:\n{}",
                        log_tail(&log_path, 2000)
                    ),
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::NotListening {
                    command,
                    addr: addr.to_string(),
                    waited: ready,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of node `id` (SIGKILL to its process id), reaped. Returns
    /// the instant the process was gone.
    pub fn kill9(&mut self, id: i32) -> Result<Instant, BenchError> {
        let node = self.node_mut(id)?;
        let Some(mut child) = node.child.take() else {
            return Err(process_error(
                &format!("node {id}"),
                "kill -9 of a node that is not running".into(),
            ));
        };
        // Child::kill is SIGKILL to this child's pid.
        kill_and_reap(&mut child)
            .map_err(|e| process_error(&format!("node {id}"), format!("kill -9: {e}")))?;
        Ok(Instant::now())
    }

    /// `host:port,...` of every node.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.kafka))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s HTTP address.
    pub fn http_addr(&self, id: i32) -> Option<String> {
        self.node(id).ok().map(|n| format!("127.0.0.1:{}", n.http))
    }

    /// Process ids of the running nodes.
    pub fn pids(&self) -> Vec<(i32, u32)> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(|c| (n.id, c.id())))
            .collect()
    }

    /// Whether node `id` runs.
    pub fn is_running(&self, id: i32) -> bool {
        self.node(id).is_ok_and(|n| n.child.is_some())
    }

    /// Node `id`'s status (an error if it does not run or answer).
    pub fn status(&self, id: i32) -> Result<NodeStatus, BenchError> {
        let node = self.node(id)?;
        let addr = format!("127.0.0.1:{}", node.http);
        if node.child.is_none() {
            return Err(BenchError::Metrics {
                addr,
                path: "/cluster/status".into(),
                reason: format!("node {id} is not running"),
            });
        }
        let body = broker_http::request(
            &addr,
            "GET",
            "/cluster/status",
            None,
            Duration::from_secs(2),
        )?;
        NodeStatus::parse(&body).map_err(|reason| BenchError::Metrics {
            addr,
            path: "/cluster/status".into(),
            reason,
        })
    }

    /// The node leading `topic`/`partition` and its term: a running node
    /// that reports itself leader (the highest term if two do).
    pub fn leader_of(&self, topic: &str, partition: i64) -> Option<(i32, i64)> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let s = self.status(n.id).ok()?;
                let g = s.group(topic, partition)?;
                (g.role == "leader").then_some((n.id, g.term))
            })
            .max_by_key(|&(_, term)| term)
    }

    /// True when every node runs and reports `topic`/`partition` with one
    /// leader, and one high watermark equal to every log end (replicas
    /// caught up).
    pub fn caught_up(&self, topic: &str, partition: i64) -> bool {
        let views: Vec<GroupView> = self
            .nodes
            .iter()
            .filter_map(|n| self.status(n.id).ok()?.group(topic, partition).cloned())
            .collect();
        views.len() == self.nodes.len()
            && views.iter().filter(|g| g.role == "leader").count() == 1
            && views.iter().all(|g| {
                g.high_watermark.is_some()
                    && g.high_watermark == views[0].high_watermark
                    && g.log_end_offset == g.high_watermark
            })
    }

    /// Polls `ok` every 100 ms until it holds or `limit` passes.
    pub fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut ok: impl FnMut(&Self) -> bool,
    ) -> Result<(), BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            if ok(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(process_error(
                    &self.describe_all(),
                    format!(
                        "timed out after {limit:?} waiting until {what}; node 1's output ends with:\n{}",
                        self.nodes
                            .first()
                            .map(|n| log_tail(&n.log, 1500))
                            .unwrap_or_default()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to every running node, then a bounded wait for each, then
    /// SIGKILL. An error if a node had died by itself (its log tail quoted).
    pub fn stop(mut self) -> Result<(), BenchError> {
        let mut died = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    unregister(child.id());
                    died.push(format!(
                        "node {} had exited ({status}); its output ends with:\n{}",
                        node.id,
                        log_tail(&node.log, 1500)
                    ));
                    node.child = None;
                    continue;
                }
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
        }
        let deadline = Instant::now() + self.spec.stop_timeout;
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        unregister(child.id());
                        break;
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!(node = node.id, "no exit after SIGTERM: killing");
                        let _ = kill_and_reap(&mut child);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if died.is_empty() {
            Ok(())
        } else {
            Err(process_error(&self.describe_all(), died.join("\n")))
        }
    }

    /// The folder holding the nodes' data, configurations and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SpawnedCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = kill_and_reap(&mut child);
            }
        }
    }
}

/// `n` distinct loopback ports that were free a moment ago, below the
/// kernel's ephemeral range when it leaves room (so a client connection's
/// local port cannot take a killed node's port before it restarts). All are
/// held open until every one is chosen, so none is picked twice.
fn pick_ports(n: usize) -> Result<Vec<u16>, std::io::Error> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low);
    let mut held = Vec::with_capacity(n);
    if high > low + 1000 {
        // A start that differs between invocations and processes.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let span = u32::from(high - low);
        let start = (nanos ^ std::process::id().wrapping_mul(2_654_435_761)) % span;
        for i in 0..span {
            if held.len() == n {
                break;
            }
            let port = low + u16::try_from((start + i) % span).unwrap_or(0);
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                held.push(l);
            }
        }
    }
    while held.len() < n {
        held.push(std::net::TcpListener::bind(("127.0.0.1", 0))?);
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// `path` relative to the working directory when inside it (reports name no
/// machine-specific absolute path).
fn relative(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd).unwrap_or(path).to_path_buf()
}

/// The last `max` bytes of a file, as text.
fn log_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[from..]).trim().to_string()
}

/// A `BrokerTarget` that starts a fresh cluster per run (for `compare::alternate`).
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    spec: ClusterSpec,
}

impl ClusterTarget {
    /// Fresh clusters from `spec`.
    pub fn new(spec: ClusterSpec) -> Self {
        Self { spec }
    }
}

impl BrokerTarget for ClusterTarget {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn start(&mut self) -> Result<Box<dyn RunningBroker>, BenchError> {
        Ok(Box::new(RunningCluster(SpawnedCluster::start(
            self.spec.clone(),
        )?)))
    }
}

/// A started cluster serving one run.
#[derive(Debug)]
pub struct RunningCluster(pub SpawnedCluster);

impl RunningCluster {
    /// The cluster.
    pub fn cluster(&self) -> &SpawnedCluster {
        &self.0
    }
}

impl RunningCluster {
    /// How `cluster` was started, for reports.
    pub fn describe_cluster(cluster: &SpawnedCluster) -> String {
        let n = cluster.nodes.len();
        format!(
            "{n} x `{} serve --config nodeN.yaml` ({n}-node Raft cluster, replication factor {n})",
            cluster.spec.starlog_bin.display(),
        )
    }
}

impl RunningBroker for RunningCluster {
    fn bootstrap(&self) -> String {
        self.0.bootstrap()
    }

    /// Node 1's process (the run's `broker CPU` column); the whole
    /// cluster's CPU is sampled separately (`ClusterUsage`).
    fn pid(&self) -> Option<u32> {
        self.0.pids().first().map(|&(_, pid)| pid)
    }

    fn http_addr(&self) -> Option<String> {
        self.0.http_addr(1)
    }

    fn describe(&self) -> String {
        Self::describe_cluster(&self.0)
    }

    fn stop(self: Box<Self>) -> Result<(), BenchError> {
        self.0.stop()
    }
}

/// CPU and memory of every node of a cluster over one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterUsage {
    /// CPU seconds of all nodes together.
    pub cpu_seconds: f64,
    /// Per node: (id, CPU seconds, peak RSS bytes).
    pub nodes: Vec<(i32, f64, u64)>,
}

/// Samples every running node's `/proc` figures.
pub fn sample_nodes(cluster: &SpawnedCluster) -> Vec<(i32, crate::proc_stats::ProcSample)> {
    let ticks = crate::proc_stats::clock_ticks();
    cluster
        .pids()
        .into_iter()
        .filter_map(|(id, pid)| Some((id, crate::proc_stats::sample(pid, ticks).ok()?)))
        .collect()
}

/// The usage between two `sample_nodes`.
pub fn usage_between(
    before: &[(i32, crate::proc_stats::ProcSample)],
    after: &[(i32, crate::proc_stats::ProcSample)],
) -> ClusterUsage {
    let nodes: Vec<(i32, f64, u64)> = after
        .iter()
        .filter_map(|(id, a)| {
            let b = before.iter().find(|(i, _)| i == id)?;
            Some((
                *id,
                (a.cpu_seconds - b.1.cpu_seconds).max(0.0),
                a.peak_rss_bytes,
            ))
        })
        .collect();
    ClusterUsage {
        cpu_seconds: nodes.iter().map(|n| n.1).sum(),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_documents_parse() {
        let body = r#"{"node":2,"controller":1,"isolated":false,"peers":[],
            "groups":[{"group":7,"topic":"t","partition":0,"role":"leader","leader":2,"term":3,
            "commit_index":10,"high_watermark":8,"log_end_offset":8,"replicas":[]},
            {"topic":"t","partition":1,"role":"follower","leader":0,"term":3}]}"#;
        let s = NodeStatus::parse(body).unwrap();
        assert_eq!(s.node, 2);
        assert_eq!(s.controller, Some(1));
        let g = s.group("t", 0).unwrap();
        assert_eq!((g.role.as_str(), g.leader, g.term), ("leader", Some(2), 3));
        assert_eq!((g.high_watermark, g.log_end_offset), (Some(8), Some(8)));
        assert_eq!(s.group("t", 1).unwrap().leader, None);
        assert!(s.group("t", 2).is_none());
        assert!(NodeStatus::parse("{}").is_err());
        assert!(NodeStatus::parse("not json").is_err());
    }
}
