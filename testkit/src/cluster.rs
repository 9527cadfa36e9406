//! Starlog clusters of processes: N `starlog serve` processes on loopback
//! forming one Raft cluster — the one harness the cluster tests (through
//! `starlog/tests/common/cluster.rs`) and `starlog-bench cluster` share.
//!
//! Every node gets three free loopback ports (Kafka, Raft, HTTP) and a
//! configuration file in a fresh temporary directory (removed with the
//! cluster); every broker is a peer from the start. The binary is the
//! caller's: the tests pass `env!("CARGO_BIN_EXE_starlog")`, the bench its
//! `--starlog` path.
//!
//! Each node is spawned directly (no shell), so the process id held is the
//! broker's; [`SpawnedCluster::kill9`] sends SIGKILL to exactly that id,
//! [`SpawnedCluster::stop_all`] sends SIGTERM to each id and waits (bounded)
//! before SIGKILL, and `Drop` kills whatever still runs, so an error
//! anywhere leaves no process behind. Every wait has a deadline.
//!
//! The cluster's state is read from each node's `GET /cluster/status`, as
//! the typed [`ClusterStatus`].

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use starlog_broker::cluster::ClusterStatus;

/// Why a cluster could not be started, watched, asked or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A broker process could not be started, watched or stopped.
    #[error("broker process `{command}`: {reason}")]
    Process {
        /// The command line as run.
        command: String,
        /// What went wrong.
        reason: String,
    },
    /// A spawned broker never accepted a TCP connection.
    #[error("broker process `{command}` did not accept connections on {addr} within {waited:?}")]
    NotListening {
        /// The command line as run.
        command: String,
        /// The address tried.
        addr: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A request to a node's HTTP port failed.
    #[error("http://{addr}{path}: {reason}")]
    Http {
        /// The HTTP address.
        addr: String,
        /// The request's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

fn process_error(command: &str, reason: String) -> ClusterError {
    ClusterError::Process {
        command: command.to_string(),
        reason,
    }
}

/// Process ids of the nodes this process started and has not reaped, so
/// that a signal handler can kill them ([`kill_all_nodes`]) before exiting:
/// `Drop` does not run when the program is interrupted.
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
    /// The cluster's name (in reports and its temporary folder's name).
    pub name: String,
    /// Number of brokers.
    pub nodes: usize,
    /// The `starlog` binary.
    pub starlog_bin: PathBuf,
    /// Where the cluster's temporary directory is made (`None`: the
    /// system's temporary folder).
    pub data_root: Option<PathBuf>,
    /// How long a node may take to accept connections, and the cluster to
    /// elect a controller.
    pub ready_timeout: Duration,
    /// How long to wait after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// Extra YAML lines for every node's configuration (top level);
    /// `{node}` stands for the node's id (per-node certificate files).
    pub extra_yaml: String,
    /// Extra YAML lines inside every node's `cluster:` section (indented
    /// by two spaces); `{node}` stands for the node's id.
    pub cluster_yaml: String,
    /// `cluster.sync_data` of every node (`None`: the default).
    pub sync_data: Option<bool>,
    /// `cluster.fault_injection` of every node (`POST /cluster/fault`).
    pub fault_injection: bool,
    /// `RUST_LOG` of every node.
    pub node_log: String,
    /// Where the nodes' logs go (`None`: the cluster's temporary
    /// directory, removed with it).
    pub node_log_dir: Option<PathBuf>,
    /// The CA (PEM) of the nodes' HTTP listeners when they serve HTTPS
    /// (`http.tls` in `extra_yaml`): the harness then reaches `/cluster`
    /// over TLS, trusting it. `None`: plain HTTP.
    pub http_ca: Option<PathBuf>,
    /// The Kafka listener's settings besides its name and address (e.g.
    /// `security: SASL_PLAINTEXT, sasl_mechanisms: [SCRAM-SHA-512]`): the
    /// node then gets a `listeners:` list with one listener named
    /// `internal` on its Kafka port. `None`: `listen:` (plaintext).
    pub listener_yaml: Option<String>,
    /// Run on each node once its configuration is written, before it
    /// first starts (e.g. `starlog users set … --config nodeN.yaml`, the
    /// offline bootstrap of users and ACLs). Not run for joiners.
    pub before_first_start: Option<NodeHook>,
}

/// What a [`NodeHook`] runs: an error stops the cluster's start.
pub type NodeHookFn = dyn Fn(&Node) -> Result<(), String> + Send + Sync;

/// Something done to a node's files before it first starts.
#[derive(Clone)]
pub struct NodeHook(pub std::sync::Arc<NodeHookFn>);

impl std::fmt::Debug for NodeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeHook")
    }
}

impl ClusterSpec {
    /// `nodes` brokers from `starlog_bin`, in the system's temporary folder.
    pub fn new(name: impl Into<String>, nodes: usize, starlog_bin: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            nodes,
            starlog_bin: starlog_bin.into(),
            data_root: None,
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
            extra_yaml: String::new(),
            cluster_yaml: String::new(),
            sync_data: None,
            fault_injection: false,
            node_log: "warn".into(),
            node_log_dir: None,
            http_ca: None,
            listener_yaml: None,
            before_first_start: None,
        }
    }
}

/// One node's ports, files and process.
#[derive(Debug)]
pub struct Node {
    /// Broker id (1..=N in start order).
    pub id: i32,
    /// Kafka port.
    pub kafka: u16,
    /// Raft port.
    pub raft: u16,
    /// HTTP port (`/metrics`, `/cluster/*`).
    pub http: u16,
    /// Its data directory.
    pub data: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Whether its process runs (as far as this harness knows).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its peer line in a `cluster.peers` list.
    pub fn peer_line(&self) -> String {
        format!(
            "    - {{ id: {}, host: 127.0.0.1, port: {}, raft: 127.0.0.1:{} }}\n",
            self.id, self.kafka, self.raft
        )
    }
}

/// A running cluster (see the module docs).
#[derive(Debug)]
pub struct SpawnedCluster {
    spec: ClusterSpec,
    nodes: Vec<Node>,
    /// Removed (with every node's data) when the cluster is dropped.
    dir: tempfile::TempDir,
}

impl SpawnedCluster {
    /// Writes the configurations, starts every node, and waits until each
    /// accepts Kafka connections and knows a controller.
    pub fn start(spec: ClusterSpec) -> Result<Self, ClusterError> {
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
        let mut builder = tempfile::Builder::new();
        let prefix = format!("{}-", spec.name);
        builder.prefix(&prefix);
        let dir = match &spec.data_root {
            Some(root) => {
                std::fs::create_dir_all(root).map_err(|e| {
                    process_error(&what, format!("creating {}: {e}", root.display()))
                })?;
                builder.tempdir_in(root)
            }
            None => builder.tempdir(),
        }
        .map_err(|e| process_error(&what, format!("temporary directory: {e}")))?;
        if let Some(logs) = &spec.node_log_dir {
            std::fs::create_dir_all(logs)
                .map_err(|e| process_error(&what, format!("creating {}: {e}", logs.display())))?;
        }
        let picked = pick_ports(3 * spec.nodes)
            .map_err(|e| process_error(&what, format!("no free ports: {e}")))?;
        let mut cluster = Self {
            spec,
            nodes: Vec::new(),
            dir,
        };
        for (i, c) in picked.chunks_exact(3).enumerate() {
            let id = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let node = cluster.new_node(id, (c[0], c[1], c[2]));
            cluster.nodes.push(node);
        }
        let peers: String = cluster.nodes.iter().map(Node::peer_line).collect();
        for node in &cluster.nodes {
            cluster.write_config(node, &peers, false)?;
            if let Some(hook) = &cluster.spec.before_first_start {
                (hook.0)(node).map_err(|e| {
                    process_error(
                        &cluster.command_of(node),
                        format!("before its first start: {e}"),
                    )
                })?;
            }
        }
        for id in cluster.ids() {
            cluster.spawn(id)?;
        }
        let limit = cluster.spec.ready_timeout;
        cluster.wait_until(limit, "every node knows a controller", |c| {
            c.nodes
                .iter()
                .all(|n| c.status(n.id).is_ok_and(|s| s.controller.is_some()))
        })?;
        Ok(cluster)
    }

    fn new_node(&self, id: i32, (kafka, raft, http): (u16, u16, u16)) -> Node {
        let dir = self.dir.path();
        Node {
            id,
            kafka,
            raft,
            http,
            data: dir.join(format!("node{id}")),
            config: dir.join(format!("node{id}.yaml")),
            log: match &self.spec.node_log_dir {
                Some(logs) => logs.join(format!(
                    "{}-node{id}.log",
                    dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )),
                None => dir.join(format!("node{id}.log")),
            },
            child: None,
        }
    }

    fn write_config(&self, node: &Node, peers: &str, join: bool) -> Result<(), ClusterError> {
        let spec = &self.spec;
        let sync = spec
            .sync_data
            .map(|s| format!("  sync_data: {s}\n"))
            .unwrap_or_default();
        let listen = match &spec.listener_yaml {
            None => format!("listen: 127.0.0.1:{}\n", node.kafka),
            Some(extra) => format!(
                "listeners:\n  - {{ name: internal, listen: 127.0.0.1:{}, {} }}\n",
                node.kafka,
                extra.replace("{node}", &node.id.to_string())
            ),
        };
        let text = format!(
            "# Written by the Starlog test kit: node {id} of cluster {name}.\n\
             node_id: {id}\n{listen}data_dir: {data}\n\
             schema_registry: {{ listen: 127.0.0.1:{http} }}\n{extra}\
             cluster:\n  fault_injection: {faults}\n  join: {join}\n{sync}{cluster_extra}  peers:\n{peers}",
            id = node.id,
            name = spec.name,
            http = node.http,
            data = node.data.display(),
            extra = spec.extra_yaml.replace("{node}", &node.id.to_string()),
            faults = spec.fault_injection,
            cluster_extra = spec.cluster_yaml.replace("{node}", &node.id.to_string()),
        );
        std::fs::write(&node.config, text).map_err(|e| {
            process_error(
                &self.command_of(node),
                format!("writing {}: {e}", node.config.display()),
            )
        })
    }

    /// Starts one more broker that joins the running cluster (`cluster.join`,
    /// the current members and itself as peers); it still has to be added
    /// (`starlog cluster add-broker`). Returns its id.
    pub fn spawn_joiner(&mut self) -> Result<i32, ClusterError> {
        let id = i32::try_from(self.nodes.len() + 1).unwrap_or(i32::MAX);
        let ports = pick_ports(3)
            .map_err(|e| process_error(&format!("node {id}"), format!("no free ports: {e}")))?;
        let node = self.new_node(id, (ports[0], ports[1], ports[2]));
        let mut peers: String = self.nodes.iter().map(Node::peer_line).collect();
        peers.push_str(&node.peer_line());
        self.write_config(&node, &peers, true)?;
        self.nodes.push(node);
        self.spawn(id)?;
        Ok(id)
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The node ids, 1..=N.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Every node, running or not.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `id`.
    pub fn node(&self, id: i32) -> Result<&Node, ClusterError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| process_error(&self.describe_all(), format!("no node {id}")))
    }

    fn node_mut(&mut self, id: i32) -> Result<&mut Node, ClusterError> {
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

    /// The cluster in one line, for error messages.
    pub fn describe_all(&self) -> String {
        format!(
            "{} x `{} serve --config nodeN.yaml` (cluster {})",
            self.nodes.len(),
            self.spec.starlog_bin.display(),
            self.spec.name
        )
    }

    /// Starts node `id` (again) and waits until it accepts Kafka connections.
    pub fn spawn(&mut self, id: i32) -> Result<(), ClusterError> {
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
                return Err(ClusterError::NotListening {
                    command: format!(
                        "{command} (its output ends with:\n{})",
                        log_tail(&log_path, 2000)
                    ),
                    addr: addr.to_string(),
                    waited: ready,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of node `id` (SIGKILL to its process id), reaped. Returns
    /// the instant the process was gone.
    pub fn kill9(&mut self, id: i32) -> Result<Instant, ClusterError> {
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
        self.node(id).is_ok_and(Node::is_running)
    }

    /// How many nodes run.
    pub fn running(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_running()).count()
    }

    /// Node `id`'s status (an error if it does not run or answer).
    pub fn status(&self, id: i32) -> Result<ClusterStatus, ClusterError> {
        let node = self.node(id)?;
        let addr = format!("127.0.0.1:{}", node.http);
        let fail = |reason: String| ClusterError::Http {
            addr: addr.clone(),
            path: "/cluster/status".into(),
            reason,
        };
        if node.child.is_none() {
            return Err(fail(format!("node {id} is not running")));
        }
        let body = get(
            node.http,
            self.spec.http_ca.as_deref(),
            "/cluster/status",
            Duration::from_secs(2),
        )
        .map_err(fail)?;
        serde_json::from_str(&body).map_err(|e| fail(format!("not a status document: {e}")))
    }

    /// The node leading `topic`/`partition` and its term: a running node
    /// that reports itself leader (the highest term if two do).
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<(i32, u64)> {
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
    pub fn caught_up(&self, topic: &str, partition: i32) -> bool {
        let views: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| self.status(n.id).ok()?.group(topic, partition).cloned())
            .collect();
        views.len() == self.nodes.len()
            && views.iter().filter(|g| g.role == "leader").count() == 1
            && views.iter().all(|g| {
                g.high_watermark == views[0].high_watermark && g.log_end_offset == g.high_watermark
            })
    }

    /// Polls `ok` every 100 ms until it holds or `limit` passes.
    pub fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut ok: impl FnMut(&Self) -> bool,
    ) -> Result<(), ClusterError> {
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
    /// SIGKILL. Returns how each node that was running exited; an error if
    /// a node had died by itself (its log tail quoted) or had to be killed.
    pub fn stop_all(&mut self) -> Result<Vec<(i32, ExitStatus)>, ClusterError> {
        let mut problems = Vec::new();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    unregister(child.id());
                    problems.push(format!(
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
        let mut exits = Vec::new();
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        unregister(child.id());
                        exits.push((node.id, status));
                        break;
                    }
                    if Instant::now() >= deadline {
                        problems.push(format!(
                            "node {} did not exit after SIGTERM: killed",
                            node.id
                        ));
                        let _ = kill_and_reap(&mut child);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if problems.is_empty() {
            Ok(exits)
        } else {
            Err(process_error(&self.describe_all(), problems.join("\n")))
        }
    }

    /// [`SpawnedCluster::stop_all`], consuming the cluster.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.stop_all().map(|_| ())
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

/// A GET on 127.0.0.1:`port` (HTTP/1.0; HTTPS trusting `ca` when given):
/// the body of a 200 answer.
fn get(port: u16, ca: Option<&Path>, path: &str, timeout: Duration) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut raw = Vec::new();
    match ca {
        None => {
            let mut s = s;
            s.write_all(request.as_bytes())
                .map_err(|e| format!("sending the request: {e}"))?;
            s.take(16 << 20)
                .read_to_end(&mut raw)
                .map_err(|e| format!("reading the response: {e}"))?;
        }
        Some(ca) => {
            let config = starlog_security::tls::client_config(
                &starlog_security::tls::ClientTlsSettings {
                    ca: ca.to_path_buf(),
                    cert: None,
                    key: None,
                },
                Path::new("."),
            )
            .map_err(|e| e.to_string())?;
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
            let mut tls = rustls::StreamOwned::new(conn, s);
            tls.write_all(request.as_bytes())
                .and_then(|()| tls.flush())
                .map_err(|e| format!("sending the request: {e}"))?;
            match tls.take(16 << 20).read_to_end(&mut raw) {
                Ok(_) => {}
                // HTTP/1.0: the server may close without close_notify.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(format!("reading the response: {e}")),
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "response has no header/body separator".to_string())?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered `{status}`"));
    }
    Ok(body.to_string())
}

/// `n` distinct loopback ports that were free a moment ago, below the
/// kernel's ephemeral range when it leaves room (so a client connection's
/// local port cannot take a killed node's port before it restarts). All are
/// held open until every one is chosen, so none is picked twice.
pub fn pick_ports(n: usize) -> Result<Vec<u16>, std::io::Error> {
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
pub fn log_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[from..]).trim().to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_bindable() {
        let ports = pick_ports(9).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 9);
        assert!(ports
            .iter()
            .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()));
    }

    #[test]
    fn a_missing_binary_is_an_error_not_a_hang() {
        let spec = ClusterSpec::new("missing", 3, "no/such/starlog");
        let e = SpawnedCluster::start(spec).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    #[test]
    fn status_documents_parse_with_fields_missing() {
        let body = r#"{"node":2,"controller":1,"groups":[
            {"topic":"t","partition":0,"role":"leader","leader":2,"term":3,"high_watermark":10,"log_end_offset":10},
            {"topic":"t","partition":1,"role":"follower","leader":0,"term":3}]}"#;
        let s: ClusterStatus = serde_json::from_str(body).unwrap();
        assert_eq!(s.node, 2);
        assert_eq!(s.controller, Some(1));
        assert_eq!(s.group("t", 0).map(|g| g.high_watermark), Some(10));
        assert_eq!(s.group("t", 1).and_then(|g| g.known_leader()), None);
        assert!(serde_json::from_str::<ClusterStatus>("not json").is_err());
        assert!(
            serde_json::from_str::<ClusterStatus>("{}").is_err(),
            "a document without `node` is not a status"
        );
    }
}
