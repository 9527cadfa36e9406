//! The metadata applier: reads the committed metadata log in order and
//! applies every command to this broker's `ClusterState`, the group
//! offsets in its metadata store, and what it hands the driver loop
//! (membership, placement); after each catch-up it reconciles which
//! partition groups this broker hosts (`hosting`) and may propose a
//! checkpoint (`checkpoint`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::inbox::Input;
use super::metadata::{self, Change, MetaCommand, METADATA_GROUP};
use super::node::{node_id, Cluster};
use super::view::{Announced, Membership, Placement};
use crate::partition::Partition;
use crate::topics::TopicRegistry;

/// Offset-command tokens remembered after they are applied.
const RECENT_TOKENS: usize = 4096;

/// How often the applier checks whether groups moved off this broker can close.
const HOSTING_EVERY: Duration = Duration::from_millis(500);

impl Cluster {
    /// Reads the committed metadata log from the start and applies every
    /// command, then follows its high watermark. Each time it has caught
    /// up, and every [`HOSTING_EVERY`], it opens and closes this broker's
    /// partition groups to match the placement.
    pub(super) async fn apply_loop(
        self: Arc<Self>,
        topics: Arc<TopicRegistry>,
        meta: Arc<Partition>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut hw = meta.subscribe();
        let mut next = 0;
        let mut every = tokio::time::interval(HOSTING_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The log starts after what this broker applied (a fresh start on
            // a trimmed log, or a snapshot installed underneath): load the
            // checkpoint the log now starts at.
            let start = meta.log().log_start_offset();
            if next < start {
                if !self
                    .load_checkpoint(&topics, &meta, start, &mut shutdown)
                    .await
                {
                    return;
                }
                next = start;
            }
            while next < meta.high_watermark() {
                let before = next;
                for (offset, cmd) in read_commands(&meta, next).await {
                    next = next.max(offset + 1);
                    match cmd {
                        Ok(cmd) => self.apply(&topics, &cmd).await,
                        Err(e) => {
                            tracing::error!(offset, error = %e, "undecodable cluster metadata command skipped")
                        }
                    }
                }
                if next == before {
                    tracing::error!(
                        offset = next,
                        "cluster metadata log does not advance; waiting for more"
                    );
                    break;
                }
            }
            self.publish_placement();
            self.reconcile_hosting(&topics).await;
            self.applied.send_replace(u64::try_from(next).unwrap_or(0));
            self.maybe_checkpoint(&topics, next);
            self.maybe_bootstrap_security();
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return },
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    pub(super) async fn apply(&self, topics: &TopicRegistry, cmd: &MetaCommand) {
        if let Some(token) = cmd.token() {
            self.apply_offsets(topics, cmd).await;
            let mut tokens = self.tokens.lock();
            tokens.push_back(token);
            while tokens.len() > RECENT_TOKENS {
                tokens.pop_front();
            }
            return;
        }
        if let MetaCommand::Checkpoint { as_of, .. } = cmd {
            // Committed and applied here: the log before it can go.
            self.checkpoints.lock().0 = *as_of;
            let _ = self.inbox.send(Input::Compact {
                group: METADATA_GROUP,
                offset: *as_of,
            });
            tracing::info!(
                as_of,
                "cluster metadata checkpoint applied; trimming the log before it"
            );
            return;
        }
        let change = self.state.lock().apply(cmd);
        match change {
            Change::None => {}
            Change::Membership => {
                self.publish_membership();
                let ids: Vec<i32> = self.brokers().iter().map(|b| b.id).collect();
                tracing::info!(brokers = ?ids, "cluster membership changed");
            }
            Change::Topic(name, assignment) => {
                let replicas: Vec<&Vec<i32>> =
                    assignment.partitions.iter().map(|p| &p.replicas).collect();
                tracing::info!(topic = %name, ?replicas, "replicated topic created");
            }
            Change::Placement => tracing::info!("partition replicas reassigned"),
            Change::Leader => {}
            Change::Security { token, outcome } => {
                match &outcome {
                    Ok(_) => self.security.changed(),
                    Err(e) => tracing::error!(error = %e, "security command refused"),
                }
                self.security.record(token, outcome);
            }
            Change::SecurityBootstrap(Ok((users, acls))) => {
                self.security.changed();
                tracing::info!(
                    users,
                    acls,
                    "bootstrap users and ACLs applied (taken only by a cluster that never had any)"
                );
            }
            Change::SecurityBootstrap(Err(e)) => {
                tracing::error!(error = %e, "security bootstrap command refused")
            }
        }
    }

    /// Writes an offset command into this broker's metadata store.
    pub(super) async fn apply_offsets(&self, topics: &TopicRegistry, cmd: &MetaCommand) {
        let meta = Arc::clone(topics.meta());
        let cmd = cmd.clone();
        let written = tokio::task::spawn_blocking(move || match &cmd {
            MetaCommand::CommitOffsets { group, offsets, .. } => meta
                .commit_offsets(group, offsets)
                .map_err(|e| format!("group {group}: {e}")),
            MetaCommand::DeleteOffsets {
                group, partitions, ..
            } => meta
                .delete_offsets(group, partitions)
                .map_err(|e| format!("group {group}: {e}")),
            MetaCommand::DeleteGroup { group, .. } => meta
                .delete_group(group)
                .map_err(|e| format!("group {group}: {e}")),
            _ => Ok(()),
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot store replicated group offsets"),
            Err(e) => tracing::error!(error = %e, "offset store task failed"),
        }
    }

    /// Hands the membership to the driver loop (it reconciles every group).
    pub(super) fn publish_membership(&self) {
        let state = self.state.lock();
        self.view.set_membership(Membership {
            members: state
                .brokers
                .values()
                .map(|p| (node_id(p.id), p.raft.clone()))
                .collect(),
            removed: state.removed.iter().map(|&id| node_id(id)).collect(),
        });
    }

    /// Hands the driver loop where every group's replicas belong and the
    /// leaders announced so far.
    pub(super) fn publish_placement(&self) {
        let state = self.state.lock();
        let targets = state
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.group, p.replicas.iter().map(|&r| node_id(r)).collect()))
            .collect();
        let announced = state
            .leaders
            .iter()
            .map(|(&g, l)| {
                let ids = |v: &[i32]| v.iter().map(|&r| node_id(r)).collect();
                let a = Announced {
                    leader: node_id(l.leader),
                    term: l.term,
                    replicas: ids(&l.replicas),
                    isr: ids(&l.isr),
                };
                (g, a)
            })
            .collect();
        self.view.set_placement(Placement { targets, announced });
    }
}

/// The committed metadata commands from `from` on (up to 1 MiB of them);
/// an unreadable log is retried, an unreadable batch logged and skipped.
pub(super) async fn read_commands(meta: &Partition, from: i64) -> Vec<metadata::Decoded> {
    let read = loop {
        match meta.read(from, 1 << 20).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::error!(offset = from, error = %e, "cannot read the cluster metadata log; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut out = Vec::new();
    for chunk in read.chunks {
        match metadata::decode(chunk) {
            Ok(c) => out.extend(c),
            Err(e) => {
                tracing::error!(offset = from, error = %e, "unreadable batch in the cluster metadata log")
            }
        }
    }
    out
}
