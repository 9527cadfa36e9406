//! The thread that owns the Raft [`Driver`]: every partition group and the
//! metadata group of this broker, driven from one loop.
//!
//! Everything else talks to it through [`Input`] messages: peers' frames
//! (from the transport), proposals (from Produce), new groups (from the
//! metadata applier). After each turn it publishes every attached
//! partition's high watermark (the commit index, translated to an offset)
//! and, on ticks and role changes, the groups' statuses for Metadata,
//! `/metrics` and `starlog cluster status`.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use starlog_replication::{
    Driver, DriverConfig, GroupId, GroupStatus, NodeId, PersistMode, ReplicationError, Role,
};
use tokio::sync::oneshot;

use super::inbox::Input;
use super::metadata::{self, MetaCommand, METADATA_GROUP};
use super::transport::TcpTransport;
use super::view::{Announced, ClusterView, ISR_MAX_LAG_ENTRIES};
use crate::watermark::HighWatermark;

/// How often commit and applied indexes are checkpointed. Each checkpoint
/// is a durable state-file write per group (three fsyncs) on the driver
/// thread, and Raft does not need these indexes durable (a restarted node
/// learns the commit index from the leader), so it is rare.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);

/// Logs, on the leader, each change of a partition's in-sync replica set
/// with the lag of the replicas that left it.
fn log_isr_changes(statuses: &[GroupStatus], last: &mut HashMap<GroupId, Vec<NodeId>>) {
    for s in statuses.iter().filter(|s| s.role == Role::Leader) {
        let now = s.in_sync_replicas(ISR_MAX_LAG_ENTRIES);
        let before = last.insert(s.group, now.clone());
        if before.as_ref().is_some_and(|b| *b != now) {
            let lagging: Vec<(NodeId, u64)> = s
                .replicas
                .iter()
                .filter(|r| !now.contains(&r.node))
                .map(|r| (r.node, r.lag_entries))
                .collect();
            tracing::info!(topic = %s.topic, partition = s.partition, term = s.term, commit_index = s.commit_index, in_sync = ?now, out_of_sync_lag_entries = ?lagging, "in-sync replicas changed");
        }
    }
}

/// Ticks between membership reconciliations.
const RECONCILE_EVERY_TICKS: u64 = 5;

/// Moves every group this broker leads one step towards the replicas the
/// metadata log gives it (every member for the metadata group), and
/// connects to brokers that joined.
fn reconcile(driver: &mut Driver<TcpTransport>, view: &ClusterView) {
    let m = view.membership();
    if m.members.is_empty() {
        return;
    }
    let me = driver.node_id();
    for (id, addr) in &m.members {
        if *id != me {
            driver.transport_mut().ensure_peer(*id, addr);
        }
    }
    let members: Vec<NodeId> = m.members.iter().map(|(id, _)| *id).collect();
    let placement = view.placement();
    let groups: Vec<GroupId> = driver.groups().collect();
    for group in groups {
        let (target, removed) = if group == METADATA_GROUP {
            (members.clone(), m.removed.clone())
        } else {
            // A group the metadata log has not placed yet (this broker is
            // still replaying it) is left alone.
            let Some(target) = placement.targets.get(&group) else {
                continue;
            };
            let Some(status) = driver.status(group) else {
                continue;
            };
            let removed = status
                .voters
                .iter()
                .chain(&status.learners)
                .filter(|r| !target.contains(r))
                .chain(&m.removed)
                .copied()
                .collect();
            (target.clone(), removed)
        };
        match driver.reconcile_membership(group, &target, &removed) {
            Ok(Some(step)) => tracing::info!(%group, ?step, "membership change proposed"),
            Ok(None) => {}
            Err(e) => tracing::debug!(%group, error = %e, "membership change not proposed"),
        }
    }
}

/// How long a leader waits before announcing the same change again when
/// the metadata log does not show its last announcement.
const ANNOUNCE_RETRY: Duration = Duration::from_secs(2);

/// A leader announces changes of its replicas or in-sync replicas at most
/// this often (a new leader or term is announced at once).
const ANNOUNCE_MIN_GAP: Duration = Duration::from_secs(1);

/// Announces, in the metadata log, each partition group this broker leads
/// whose leader, term, replicas or in-sync replicas differ from what the
/// log says, so brokers that do not host the partition can name its leader.
fn announce(
    driver: &mut Driver<TcpTransport>,
    statuses: &[GroupStatus],
    view: &ClusterView,
    sent: &mut HashMap<GroupId, (Announced, Instant)>,
) {
    sent.retain(|g, _| statuses.iter().any(|s| s.group == *g));
    let placement = view.placement();
    let ids =
        |v: &[NodeId]| -> Vec<i32> { v.iter().filter_map(|&n| i32::try_from(n).ok()).collect() };
    for s in statuses {
        if s.group == METADATA_GROUP || s.role != Role::Leader || s.failed.is_some() {
            continue;
        }
        let mut replicas: Vec<NodeId> = s.voters.iter().chain(&s.learners).copied().collect();
        replicas.sort_unstable();
        let now = Announced {
            leader: s.node,
            term: s.term,
            replicas,
            isr: s.in_sync_replicas(ISR_MAX_LAG_ENTRIES),
        };
        if placement.announced.get(&s.group) == Some(&now) {
            continue;
        }
        if let Some((last, at)) = sent.get(&s.group) {
            let same_leader = last.leader == now.leader && last.term == now.term;
            let wait = if *last == now {
                ANNOUNCE_RETRY
            } else if same_leader {
                ANNOUNCE_MIN_GAP
            } else {
                Duration::ZERO
            };
            if at.elapsed() < wait {
                continue;
            }
        }
        let cmd = MetaCommand::Leader {
            group: s.group.0,
            leader: i32::try_from(now.leader).unwrap_or(-1),
            term: now.term,
            replicas: ids(&now.replicas),
            isr: ids(&now.isr),
        };
        let proposed = metadata::encode(&cmd).and_then(|records| {
            driver
                .propose_or_forward(METADATA_GROUP, records)
                .map_err(|e| e.to_string())
        });
        match proposed {
            Ok(()) => {
                sent.insert(s.group, (now, Instant::now()));
            }
            Err(e) => {
                tracing::debug!(group = %s.group, error = %e, "leader announcement not proposed")
            }
        }
    }
}

/// Lets the groups led by a peer that just became unreachable (its listener
/// refuses connections: killed) elect a new leader without waiting out the
/// election timeout.
fn suspect_gone_leaders(driver: &mut Driver<TcpTransport>, known: &mut Vec<NodeId>) {
    let now = driver.transport_mut().unreachable_peers();
    for &peer in now.iter().filter(|p| !known.contains(p)) {
        let groups = driver.suspect_leader(peer);
        if groups > 0 {
            tracing::info!(
                peer,
                groups,
                "peer unreachable: its groups elect a new leader now"
            );
        }
    }
    *known = now;
}
/// Longest wait for inputs while a background sync is under way.
const PERSIST_POLL: Duration = Duration::from_millis(5);

/// Inputs handled per turn at most, so ticks keep their pace under load.
const MAX_INPUTS_PER_TURN: usize = 4096;

/// Runs the loop until [`Input::Shutdown`] or until every sender is gone.
pub(super) fn run(
    config: DriverConfig,
    transport: TcpTransport,
    inputs: Receiver<Input>,
    view: Arc<ClusterView>,
    tick: Duration,
) {
    let metrics = transport.driver_metrics();
    let waker = transport.waker();
    // Syncs run on a persistence thread: the loop keeps taking follower acknowledgements and
    // proposals (and a leader keeps replicating) while the disk works.
    let config = DriverConfig {
        persist: PersistMode::Background,
        ..config
    };
    let mut driver = Driver::new(config, transport);
    driver.set_metrics(Arc::clone(&metrics));
    driver.set_persist_waker(waker);
    let mut partitions: HashMap<GroupId, HighWatermark> = HashMap::new();
    let mut next_tick = Instant::now() + tick;
    let mut next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
    let mut stop = None;
    let mut ticks = 0u64;
    let mut isr: HashMap<GroupId, Vec<NodeId>> = HashMap::new();
    let mut announced = HashMap::new();
    let mut unreachable: Vec<NodeId> = Vec::new();
    while stop.is_none() {
        let mut wait = next_tick.saturating_duration_since(Instant::now());
        if driver.persisting() {
            // The persistence thread wakes the loop when a sync completes; this bound only
            // covers a wake-up lost before the listener registered the inbox.
            wait = wait.min(PERSIST_POLL);
        }
        let mut handled = 0;
        let received = match inputs.recv_timeout(wait) {
            Ok(input) => {
                let at = Instant::now();
                stop = handle(&mut driver, &mut partitions, input);
                handled += 1;
                Some(at)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for _ in 0..MAX_INPUTS_PER_TURN {
            if stop.is_some() {
                break;
            }
            match inputs.try_recv() {
                Ok(input) => {
                    stop = handle(&mut driver, &mut partitions, input);
                    handled += 1;
                }
                Err(_) => break,
            }
        }
        if let Some(at) = received {
            metrics.inputs_phase.observe(at.elapsed());
            metrics
                .inputs
                .fetch_add(handled, std::sync::atomic::Ordering::Relaxed);
        }
        let now = Instant::now();
        let ticked = now >= next_tick;
        if ticked {
            driver.tick();
            next_tick = now + tick;
            ticks += 1;
            suspect_gone_leaders(&mut driver, &mut unreachable);
            if ticks.is_multiple_of(RECONCILE_EVERY_TICKS) {
                reconcile(&mut driver, &view);
            }
        }
        let stats = driver.run_turn();
        for (group, high_watermark) in &partitions {
            if let Some(hw) = driver.high_watermark(*group) {
                high_watermark.publish(hw);
            }
        }
        if ticked || stats.groups_ready > 0 {
            let statuses = driver.statuses();
            log_isr_changes(&statuses, &mut isr);
            announce(&mut driver, &statuses, &view, &mut announced);
            view.publish(statuses);
        }
        if now >= next_checkpoint {
            driver.checkpoint();
            next_checkpoint = now + CHECKPOINT_EVERY;
        }
    }
    if let Err(e) = driver.shutdown() {
        tracing::error!(error = %e, "raft groups did not close cleanly");
    }
    view.publish(Vec::new());
    tracing::info!("raft driver stopped");
    if let Some(reply) = stop {
        let _ = reply.send(());
    }
}

fn handle(
    driver: &mut Driver<TcpTransport>,
    partitions: &mut HashMap<GroupId, HighWatermark>,
    input: Input,
) -> Option<oneshot::Sender<()>> {
    match input {
        Input::Envelopes(envelopes) => driver.receive(envelopes),
        Input::Propose {
            group,
            records,
            term,
            reply,
        } => {
            let result = match driver.leader_term(group) {
                Some(t) if t == term => driver.propose(group, records),
                _ => Err(ReplicationError::NotLeader {
                    group,
                    leader: driver.status(group).and_then(|s| s.leader),
                }),
            };
            let _ = reply.send(result);
        }
        Input::Forward {
            group,
            records,
            reply,
        } => {
            let _ = reply.send(driver.propose_or_forward(group, records));
        }
        Input::AddGroup {
            spec,
            campaign,
            reply,
        } => {
            let group = spec.group;
            let result = driver.add_group(spec).and_then(|()| {
                let fresh = driver.status(group).is_some_and(|s| s.term == 0);
                if campaign && fresh {
                    driver.campaign(group)?;
                }
                let log = driver
                    .log(group)
                    .ok_or(ReplicationError::UnknownGroup { group })?;
                Ok((log, driver.high_watermark(group).unwrap_or(0)))
            });
            let _ = reply.send(result);
        }
        Input::Attach {
            group,
            high_watermark,
        } => {
            partitions.insert(group, high_watermark);
        }
        Input::Compact { group, offset } => {
            if let Err(e) = driver.compact(group, offset) {
                tracing::warn!(%group, offset, error = %e, "retention of a replicated partition failed");
            }
        }
        Input::RemoveGroup { group, reply } => {
            partitions.remove(&group);
            let _ = reply.send(driver.remove_group(group));
        }
        Input::Shutdown { reply } => return Some(reply),
    }
    None
}
