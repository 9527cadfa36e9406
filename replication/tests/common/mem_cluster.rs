//! An in-process cluster on a simulated network: real drivers and real partition logs on a temp
//! dir, no real time (a step is a tick), no real network (a seeded queue that can drop, delay,
//! duplicate and reorder frames, and cut links).
//!
//! It also holds the checker: a canonical copy of every batch a node ever exposed below its high
//! watermark, against which every node's log is compared.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use starlog_replication::{
    CrashPoint, Driver, DriverConfig, Envelope, GroupId, GroupSpec, NodeId, PersistMode, Proposal,
    Role, Transport,
};
use starlog_storage::LogConfig;

use super::batches::{read_range, StoredBatch};
use super::rng::Rng;

type Wire = Rc<RefCell<Vec<(NodeId, NodeId, Vec<Envelope>)>>>;

/// The transport of one simulated node: frames go into the shared wire.
#[derive(Debug)]
pub struct SimTransport {
    from: NodeId,
    wire: Wire,
}

impl Transport for SimTransport {
    fn send(&mut self, to: NodeId, envelopes: Vec<Envelope>) {
        self.wire.borrow_mut().push((self.from, to, envelopes));
    }
}

/// Network fault rates.
#[derive(Debug, Clone, Copy)]
pub struct NetFaults {
    /// Probability that a frame is lost.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Frames are delayed by 0..=max_delay steps (so they reorder).
    pub max_delay: u64,
}

impl NetFaults {
    pub const NONE: NetFaults = NetFaults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: 0,
    };
}

struct InFlight {
    at: u64,
    seq: u64,
    from: NodeId,
    to: NodeId,
    envelopes: Vec<Envelope>,
}

pub struct SimNode {
    pub id: NodeId,
    pub dir: PathBuf,
    pub driver: Option<Driver<SimTransport>>,
    /// High watermark last seen per group in this incarnation.
    pub last_hw: BTreeMap<GroupId, i64>,
    /// Offset up to which this node's log was compared with the canon, per group.
    pub verified: BTreeMap<GroupId, i64>,
}

/// An acknowledged proposal.
#[derive(Debug, Clone)]
pub struct Ack {
    pub group: GroupId,
    pub id: u64,
    pub base_offset: i64,
    pub batches: usize,
    pub records: usize,
}

pub struct Cluster {
    pub seed: u64,
    pub rng: Rng,
    pub step: u64,
    pub nodes: Vec<SimNode>,
    pub groups: Vec<GroupId>,
    pub net: NetFaults,
    pub log_config: LogConfig,
    wire: Wire,
    in_flight: Vec<InFlight>,
    seq: u64,
    /// Directed links that are cut.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub trace: Rc<RefCell<Vec<String>>>,
    leaders: BTreeMap<(GroupId, u64), NodeId>,
    /// Canonical committed batches per group, by base offset, and where they end.
    canon: BTreeMap<GroupId, (BTreeMap<i64, Bytes>, i64)>,
    /// Proposal ids seen in the canon, per group: id → base offset of its batch.
    seen_ids: BTreeMap<GroupId, BTreeMap<u64, i64>>,
    pub pending: Vec<(GroupId, u64, NodeId, usize, usize, Proposal)>,
    pub acked: Vec<Ack>,
    pub next_id: u64,
    /// Nodes that crash during the next step's turn (instead of completing it).
    pub crash_next: Vec<(NodeId, CrashPoint)>,
    /// Nodes that were not initial voters (they join through configuration changes).
    pub joining: BTreeSet<NodeId>,
    /// Share of node starts that sync their entries a turn late (`PersistMode::Deferred`, as
    /// the broker's background persistence does); the others sync within the turn.
    deferred_share: f64,
    _tmp: tempfile::TempDir,
}

/// The proposal id encoded at the start of every record value.
pub fn value_for(id: u64, record: usize, pad: usize) -> Vec<u8> {
    let mut v = format!("P{id:012}-r{record:03}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', pad));
    v
}

fn id_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(1..13)?).ok()?.parse().ok()
}

fn record_of(value: &[u8]) -> Option<usize> {
    std::str::from_utf8(value.get(15..18)?).ok()?.parse().ok()
}

impl Cluster {
    /// `n` nodes with `groups` partitions each, all voters of every group.
    pub fn new(seed: u64, n: u64, groups: u64, net: NetFaults) -> Self {
        Self::with_options(seed, n, groups, net, Self::small_segments(), 0.0)
    }

    /// Like [`Cluster::new`], with about half the node starts syncing a turn late
    /// (`PersistMode::Deferred`): acknowledgements, commits and crashes across turn boundaries.
    pub fn mixed_persistence(seed: u64, n: u64, groups: u64, net: NetFaults) -> Self {
        Self::with_options(seed, n, groups, net, Self::small_segments(), 0.5)
    }

    fn small_segments() -> LogConfig {
        LogConfig {
            segment_bytes: 16 * 1024,
            retention_ms: None,
            index_interval_bytes: 512,
            ..LogConfig::default()
        }
    }

    /// Like [`Cluster::new`] with a given partition log configuration.
    pub fn with_config(
        seed: u64,
        n: u64,
        groups: u64,
        net: NetFaults,
        log_config: LogConfig,
    ) -> Self {
        Self::with_options(seed, n, groups, net, log_config, 0.0)
    }

    fn with_options(
        seed: u64,
        n: u64,
        groups: u64,
        net: NetFaults,
        log_config: LogConfig,
        deferred_share: f64,
    ) -> Self {
        if std::env::var_os("STARLOG_SIM_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_env("STARLOG_SIM_LOG"))
                .with_test_writer()
                .try_init();
        }
        let tmp = match std::env::var_os("STARLOG_SIM_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let wire: Wire = Rc::new(RefCell::new(Vec::new()));
        let mut c = Cluster {
            seed,
            rng: Rng::new(seed),
            step: 0,
            nodes: Vec::new(),
            groups: (1..=groups).map(GroupId).collect(),
            net,
            log_config,
            wire,
            in_flight: Vec::new(),
            seq: 0,
            cut: BTreeSet::new(),
            trace: Rc::new(RefCell::new(Vec::new())),
            leaders: BTreeMap::new(),
            canon: BTreeMap::new(),
            seen_ids: BTreeMap::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            next_id: 1,
            crash_next: Vec::new(),
            joining: BTreeSet::new(),
            deferred_share,
            _tmp: tmp,
        };
        for id in 1..=n {
            let dir = c._tmp.path().join(format!("node-{id}"));
            c.nodes.push(SimNode {
                id,
                dir,
                driver: None,
                last_hw: BTreeMap::new(),
                verified: BTreeMap::new(),
            });
        }
        for id in 1..=n {
            c.start(id);
        }
        c
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[(id - 1) as usize]
    }

    pub fn driver(&self, id: NodeId) -> Option<&Driver<SimTransport>> {
        self.node(id).driver.as_ref()
    }

    pub fn driver_mut(&mut self, id: NodeId) -> Option<&mut Driver<SimTransport>> {
        self.node_mut(id).driver.as_mut()
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).driver.is_some()
    }

    pub fn note(&mut self, event: impl Into<String>) {
        let line = format!("step {}: {}", self.step, event.into());
        if std::env::var_os("STARLOG_SIM_TRACE").is_some() {
            eprintln!("{line}");
        }
        self.trace.borrow_mut().push(line);
    }

    pub fn partition_dir(&self, node: NodeId, group: GroupId) -> PathBuf {
        self.node(node).dir.join(format!("topic-{}", group.0))
    }

    /// Starts (or restarts) node `id` from its directory.
    pub fn start(&mut self, id: NodeId) {
        assert!(!self.is_up(id));
        let voters: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|n| !self.joining.contains(n))
            .collect();
        let mut config = DriverConfig::new(id);
        config.election_tick = 10;
        config.heartbeat_tick = 2;
        config.max_election_tick = Some(11);
        config.track_synced_lengths = true;
        // Half the nodes sync a turn's entries at the start of their next turn, as the broker's
        // background persistence does (acknowledgements and commits across turn boundaries).
        if self.deferred_share > 0.0 && self.rng.chance(self.deferred_share) {
            config.persist = PersistMode::Deferred;
            self.note(format!("node {id} syncs a turn late"));
        }
        let mut driver = Driver::new(
            config,
            SimTransport {
                from: id,
                wire: Rc::clone(&self.wire),
            },
        );
        for &g in &self.groups.clone() {
            driver
                .add_group(GroupSpec {
                    group: g,
                    dir: self.partition_dir(id, g),
                    topic: format!("topic-{}", g.0),
                    partition: 0,
                    log_config: self.log_config.clone(),
                    bootstrap_voters: voters.clone(),
                })
                .unwrap_or_else(|e| panic!("node {id} failed to open {g}: {e}"));
        }
        let node = self.node_mut(id);
        node.driver = Some(driver);
        node.last_hw.clear();
        // Re-verify the whole log after a restart: a crash must not have lost exposed data.
        node.verified.clear();
    }

    /// Crashes node `id` in the middle of a turn and cuts every segment file at a random byte
    /// past what was synced (a torn write of unsynced data).
    pub fn crash(&mut self, id: NodeId, at: CrashPoint) {
        let driver = self.node_mut(id).driver.take().expect("node is up");
        let synced = driver.crash(at);
        let mut cuts = Vec::new();
        for (g, lens) in synced {
            let dir = self.partition_dir(id, g);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "log") {
                    continue;
                }
                let len = std::fs::metadata(&path).unwrap().len();
                let durable = lens.get(&path).copied().unwrap_or(0).min(len);
                if len > durable {
                    let cut = durable + self.rng.below(len - durable + 1);
                    if cut < len {
                        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                        f.set_len(cut).unwrap();
                        cuts.push(format!(
                            "{}:{} {len}->{cut}",
                            g.0,
                            path.file_name().unwrap().to_string_lossy()
                        ));
                    }
                }
            }
        }
        self.note(format!("crash node {id} at {at:?}; torn tails {cuts:?}"));
    }

    /// Cuts both directions between every node of `a` and every node of `b`.
    pub fn split(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
        self.note(format!("network split {a:?} | {b:?}"));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.note("network healed");
    }

    /// The node that believes it leads `group` with the highest term, if any.
    pub fn leader(&self, group: GroupId) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|n| n.driver.as_ref())
            .filter_map(|d| d.status(group))
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.node)
    }

    /// Proposes `batches` batches of `records` records each through node `via`.
    pub fn propose(&mut self, group: GroupId, via: NodeId, batches: usize, records: usize) {
        let pad = self.rng.below(600) as usize;
        let bodies = vec![vec![b'.'; pad]; batches * records];
        self.propose_values(group, via, batches, records, &bodies);
    }

    /// Proposes `bodies` (`batches * records` of them) as record values, each prefixed with the
    /// proposal id and record number; returns the proposal id.
    pub fn propose_values(
        &mut self,
        group: GroupId,
        via: NodeId,
        batches: usize,
        records: usize,
        bodies: &[Vec<u8>],
    ) -> u64 {
        assert_eq!(bodies.len(), batches * records);
        let id = self.next_id;
        self.next_id += 1;
        let mut payload = Vec::new();
        for b in 0..batches {
            let values: Vec<Vec<u8>> = (0..records)
                .map(|r| {
                    let k = b * records + r;
                    let mut v = value_for(id, k, 0);
                    v.extend_from_slice(&bodies[k]);
                    v
                })
                .collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            payload.extend(super::batches::batch(self.step as i64, &refs));
        }
        let Some(driver) = self.driver_mut(via) else {
            return id;
        };
        match driver.propose(group, Bytes::from(payload)) {
            Ok(p) => {
                self.note(format!("propose {group} id {id} via node {via}: accepted"));
                self.pending.push((group, id, via, batches, records, p));
            }
            Err(e) => self.note(format!("propose {group} id {id} via node {via}: {e}")),
        }
        id
    }

    /// Adds node `id` (the next id), started with the current voters of every group (itself
    /// not among them): it joins when a leader adds it with a configuration change.
    pub fn add_joining_node(&mut self) -> NodeId {
        let id = self.nodes.len() as u64 + 1;
        let dir = self._tmp.path().join(format!("node-{id}"));
        self.nodes.push(SimNode {
            id,
            dir,
            driver: None,
            last_hw: BTreeMap::new(),
            verified: BTreeMap::new(),
        });
        self.joining.insert(id);
        self.start(id);
        id
    }

    /// Canonical committed batches of `group` (base offset → bytes).
    pub fn canon(&self, group: GroupId) -> BTreeMap<i64, Bytes> {
        self.canon
            .get(&group)
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }

    /// One step: deliver due frames, tick (each node with probability `tick_p`), run a turn on
    /// every live node (or crash it in the middle of its turn if it is in `crash_next`), route what they sent, collect proposal outcomes, check invariants.
    pub fn step(&mut self, tick_p: f64) {
        self.step += 1;
        let now = self.step;
        let mut due = Vec::new();
        let mut later = Vec::new();
        for f in self.in_flight.drain(..) {
            if f.at <= now {
                due.push(f);
            } else {
                later.push(f);
            }
        }
        self.in_flight = later;
        due.sort_by_key(|f| (f.at, f.seq));
        for f in due {
            if self.cut.contains(&(f.from, f.to)) {
                continue;
            }
            if let Some(d) = self.driver_mut(f.to) {
                d.receive(f.envelopes);
            }
        }
        for id in self.node_ids() {
            if self.is_up(id) && self.rng.chance(tick_p) {
                self.driver_mut(id).unwrap().tick();
            }
        }
        let crashes = std::mem::take(&mut self.crash_next);
        for id in self.node_ids() {
            if let Some(&(_, at)) = crashes.iter().find(|(n, _)| *n == id) {
                if self.is_up(id) {
                    self.crash(id, at);
                }
            } else if let Some(d) = self.driver_mut(id) {
                d.run_turn();
            }
            self.route();
        }
        self.collect_outcomes();
        self.check();
    }

    fn route(&mut self) {
        let sent: Vec<_> = self.wire.borrow_mut().drain(..).collect();
        for (from, to, envelopes) in sent {
            if self.cut.contains(&(from, to)) || self.rng.chance(self.net.drop) {
                continue;
            }
            let copies = if self.rng.chance(self.net.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if self.net.max_delay == 0 {
                    0
                } else {
                    self.rng.below(self.net.max_delay + 1)
                };
                self.seq += 1;
                self.in_flight.push(InFlight {
                    // Delivered at the start of a later step at the earliest.
                    at: self.step + 1 + delay,
                    seq: self.seq,
                    from,
                    to,
                    envelopes: envelopes.clone(),
                });
            }
        }
    }

    fn collect_outcomes(&mut self) {
        let mut still = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        for (group, id, via, batches, records, mut p) in pending {
            match p.try_take() {
                None => still.push((group, id, via, batches, records, p)),
                Some(Ok(base_offset)) => {
                    self.note(format!("ack {group} id {id} at offset {base_offset}"));
                    self.acked.push(Ack {
                        group,
                        id,
                        base_offset,
                        batches,
                        records,
                    });
                }
                Some(Err(e)) => self.note(format!("proposal {group} id {id} failed: {e}")),
            }
        }
        self.pending = still;
    }

    fn fail(&self, what: String) -> ! {
        let trace = self.trace.borrow();
        let tail: Vec<&String> = trace.iter().rev().take(80).rev().collect();
        let mut msg = String::new();
        let _ = writeln!(
            msg,
            "simulation invariant violated (seed {}, step {}): {what}",
            self.seed, self.step
        );
        let _ = writeln!(
            msg,
            "replay: STARLOG_SIM_SEED={} STARLOG_SIM_TRACE=1 cargo test -p starlog-replication --test simulation -- --nocapture",
            self.seed
        );
        let _ = writeln!(msg, "last {} events of {}:", tail.len(), trace.len());
        for l in tail {
            let _ = writeln!(msg, "  {l}");
        }
        panic!("{msg}");
    }

    /// Invariants that must hold after every step.
    pub fn check(&mut self) {
        for id in self.node_ids() {
            let Some(d) = self.driver(id) else { continue };
            let statuses = d.statuses();
            for s in statuses {
                if let Some(f) = &s.failed {
                    self.fail(format!("node {id} {} failed: {f}", s.group));
                }
                if s.role == Role::Leader {
                    match self.leaders.insert((s.group, s.term), id) {
                        Some(other) if other != id => self.fail(format!(
                            "two leaders in term {} of {}: nodes {other} and {id}",
                            s.term, s.group
                        )),
                        _ => {}
                    }
                }
                let prev = self.node(id).last_hw.get(&s.group).copied();
                if prev.is_some_and(|p| s.high_watermark < p) {
                    self.fail(format!(
                        "high watermark of {} on node {id} went back from {prev:?} to {}",
                        s.group, s.high_watermark
                    ));
                }
                if s.high_watermark > s.log_end_offset {
                    self.fail(format!(
                        "high watermark {} of {} on node {id} is past the log end {}",
                        s.high_watermark, s.group, s.log_end_offset
                    ));
                }
                self.node_mut(id).last_hw.insert(s.group, s.high_watermark);
                self.verify_exposed(id, s.group, s.high_watermark);
            }
        }
        for a in self.acked.clone() {
            if let Some(&at) = self.seen_ids.get(&a.group).and_then(|m| m.get(&a.id)) {
                if at != a.base_offset {
                    self.fail(format!(
                        "{} id {} acknowledged at offset {} but committed at {at}",
                        a.group, a.id, a.base_offset
                    ));
                }
            }
        }
    }

    /// Compares what node `id` exposes below its high watermark with the canon (extending it).
    fn verify_exposed(&mut self, id: NodeId, group: GroupId, hw: i64) {
        let log = self.driver(id).unwrap().log(group).unwrap();
        let from = self
            .node(id)
            .verified
            .get(&group)
            .copied()
            .unwrap_or_else(|| log.log_start_offset());
        if from >= hw {
            return;
        }
        let batches = read_range(&log, from, hw);
        let mut upto = from;
        for b in batches {
            self.absorb(id, group, &b);
            upto = b.base_offset + b.values.len() as i64;
        }
        if upto < hw {
            self.fail(format!(
                "node {id} {group}: high watermark {hw} but its log only has batches up to {upto}"
            ));
        }
        self.node_mut(id).verified.insert(group, upto);
    }

    fn absorb(&mut self, id: NodeId, group: GroupId, b: &StoredBatch) {
        let (canon, end) = self
            .canon
            .entry(group)
            .or_insert_with(|| (BTreeMap::new(), 0));
        if let Some(known) = canon.get(&b.base_offset) {
            if known != &b.bytes {
                let msg = format!(
                    "node {id} {group}: batch at offset {} differs from the committed one (epoch {} here)",
                    b.base_offset, b.leader_epoch
                );
                self.fail(msg);
            }
            return;
        }
        if b.base_offset != *end {
            let msg = format!(
                "node {id} {group}: exposes a batch at offset {} but committed batches end at {end}",
                b.base_offset
            );
            self.fail(msg);
        }
        *end = b.base_offset + b.values.len() as i64;
        canon.insert(b.base_offset, b.bytes.clone());
        let Some(first) = b.values.first().and_then(|v| id_of(v)) else {
            self.fail(format!(
                "node {id} {group}: batch at {} has no proposal id",
                b.base_offset
            ));
        };
        // A proposal of several batches has the same id in each: record its first batch only.
        let seen = self.seen_ids.entry(group).or_default();
        if b.values.first().and_then(|v| record_of(v)) == Some(0) {
            if let Some(prev) = seen.insert(first, b.base_offset) {
                let msg = format!(
                    "{group}: proposal id {first} committed twice, at offsets {prev} and {}",
                    b.base_offset
                );
                self.fail(msg);
            }
        }
    }

    /// Heals the network, restarts every node and runs fault-free steps until every node of
    /// every group agrees on the leader, the commit and the high watermark; then checks that
    /// every acknowledged proposal is committed exactly once on every node.
    pub fn converge_and_verify(&mut self, max_steps: u64) {
        self.heal();
        self.net = NetFaults::NONE;
        for id in self.node_ids() {
            if !self.is_up(id) {
                self.note(format!("restart node {id} (final)"));
                self.start(id);
            }
        }
        let mut converged = false;
        for _ in 0..max_steps {
            // Ticks stay random: with the fixed election timeout, nodes ticking in lock-step
            // would split every vote forever.
            self.step(0.8);
            if self.is_converged() && self.pending.is_empty() {
                converged = true;
                break;
            }
        }
        if !converged {
            let st: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| n.driver.as_ref())
                .flat_map(|d| d.statuses())
                .map(|s| {
                    format!(
                        "n{} {} {:?} term {} commit {} last {} hw {} leader {:?}",
                        s.node,
                        s.group,
                        s.role,
                        s.term,
                        s.commit_index,
                        s.last_index,
                        s.high_watermark,
                        s.leader
                    )
                })
                .collect();
            self.fail(format!(
                "no convergence within {max_steps} fault-free steps ({} proposals pending): {st:#?}",
                self.pending.len()
            ));
        }
        // Full comparison of every node's log below the high watermark.
        for id in self.node_ids() {
            self.node_mut(id).verified.clear();
        }
        self.check();
        for a in self.acked.clone() {
            let at = self
                .seen_ids
                .get(&a.group)
                .and_then(|m| m.get(&a.id))
                .copied();
            if at != Some(a.base_offset) {
                self.fail(format!(
                    "{} id {} acknowledged at offset {} is committed at {at:?}",
                    a.group, a.id, a.base_offset
                ));
            }
            let leader = self.leader(a.group).unwrap();
            let members = self.driver(leader).unwrap().status(a.group).unwrap();
            for id in self.node_ids() {
                if !members.voters.contains(&id) && !members.learners.contains(&id) {
                    continue; // removed from the group
                }
                let hw = self.driver(id).unwrap().high_watermark(a.group).unwrap();
                if hw <= a.base_offset {
                    self.fail(format!(
                        "node {id} {}: high watermark {hw} does not cover acknowledged id {} at {}",
                        a.group, a.id, a.base_offset
                    ));
                }
            }
        }
        // Each acknowledged multi-batch proposal has all its batches, in order, consecutively.
        for a in self.acked.clone() {
            let (canon, _) = &self.canon[&a.group];
            let ids: Vec<(u64, usize)> = canon
                .range(a.base_offset..)
                .take(a.batches)
                .map(|(_, bytes)| {
                    let b = &super::batches::split(bytes)[0];
                    let v = &b.values[0];
                    (id_of(v).unwrap(), record_of(v).unwrap())
                })
                .collect();
            let ok = ids.len() == a.batches
                && ids
                    .iter()
                    .enumerate()
                    .all(|(i, &(pid, r))| pid == a.id && r == i * a.records);
            if !ok {
                self.fail(format!(
                    "{} id {}: its {} batches are not all committed consecutively: {ids:?}",
                    a.group, a.id, a.batches
                ));
            }
        }
    }

    fn is_converged(&self) -> bool {
        if self.nodes.iter().any(|n| n.driver.is_none()) {
            return false;
        }
        self.groups.iter().all(|&g| {
            let st: Vec<_> = self
                .nodes
                .iter()
                .map(|n| n.driver.as_ref().unwrap().status(g).unwrap())
                .collect();
            let leader = st.iter().find(|s| s.role == Role::Leader);
            leader.is_some_and(|l| {
                // Nodes removed from the group no longer follow it.
                st.iter()
                    .filter(|s| l.voters.contains(&s.node) || l.learners.contains(&s.node))
                    .all(|s| {
                        s.leader == Some(l.node)
                            && s.term == l.term
                            && s.commit_index == l.last_index
                            && s.high_watermark == l.high_watermark
                            && s.persisted_index == l.last_index
                    })
            })
        })
    }

    pub fn dir(&self) -> &Path {
        self._tmp.path()
    }
}
