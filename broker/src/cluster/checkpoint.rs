//! Metadata checkpoints: the controller proposes the state as of an
//! earlier offset once enough records follow the last one; a broker whose
//! log starts at a checkpoint's offset loads it (see ARCHITECTURE.md's
//! invariants: the metadata log is trimmed only before a committed
//! checkpoint).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use starlog_storage::CommittedOffset;
use tokio::sync::{oneshot, watch};

use super::applier::read_commands;
use super::inbox::Input;
use super::metadata::{self, ClusterState, MetaCommand, METADATA_GROUP};
use super::node::Cluster;
use crate::partition::Partition;
use crate::topics::TopicRegistry;

impl Cluster {
    /// On the controller, proposes a checkpoint of the state as of `next`
    /// once the log holds `ClusterSettings::metadata_checkpoint_records`
    /// records after the last one (at most one proposal per 10 s).
    pub(super) fn maybe_checkpoint(&self, topics: &TopicRegistry, next: i64) {
        if self.view.leader_term(METADATA_GROUP).is_none() {
            return;
        }
        {
            let mut c = self.checkpoints.lock();
            let due = next - c.0 >= self.settings.metadata_checkpoint_records;
            let recent = c.1.is_some_and(|at| at.elapsed() < Duration::from_secs(10));
            if !due || recent {
                return;
            }
            c.1 = Some(std::time::Instant::now());
        }
        let store = topics.meta();
        let offsets = store
            .groups()
            .into_iter()
            .map(|g| {
                let o = store.committed_offsets(&g);
                (g, o)
            })
            .collect();
        let cmd = MetaCommand::Checkpoint {
            as_of: next,
            state: self.state.lock().image(),
            offsets,
        };
        let records = match metadata::encode(&cmd) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a cluster metadata checkpoint");
                return;
            }
        };
        let (reply, _) = oneshot::channel();
        let _ = self.inbox.send(Input::Forward {
            group: METADATA_GROUP,
            records,
            reply,
        });
        tracing::info!(as_of = next, "cluster metadata checkpoint proposed");
    }

    /// Reads the metadata log from `start` until it finds the checkpoint as
    /// of `start`, and replaces this broker's state and group offsets with
    /// it. False when shutting down first.
    pub(super) async fn load_checkpoint(
        &self,
        topics: &TopicRegistry,
        meta: &Partition,
        start: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut hw = meta.subscribe();
        let mut pos = start;
        loop {
            while pos < meta.high_watermark() {
                let before = pos;
                for (offset, cmd) in read_commands(meta, pos).await {
                    pos = pos.max(offset + 1);
                    let Ok(MetaCommand::Checkpoint {
                        as_of,
                        state,
                        offsets,
                    }) = cmd
                    else {
                        continue;
                    };
                    if as_of != start {
                        continue;
                    }
                    match ClusterState::from_image(&state) {
                        Ok(s) => {
                            self.install(topics, s, offsets, as_of).await;
                            return true;
                        }
                        Err(e) => {
                            tracing::error!(offset, error = %e, "unreadable cluster metadata checkpoint")
                        }
                    }
                }
                if pos == before {
                    break;
                }
            }
            tracing::warn!(
                start,
                "the cluster metadata log starts at {start}; waiting for its checkpoint"
            );
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return false,
            }
        }
    }

    /// Replaces the state and every group's committed offsets with a checkpoint's.
    pub(super) async fn install(
        &self,
        topics: &TopicRegistry,
        state: ClusterState,
        offsets: BTreeMap<String, Vec<CommittedOffset>>,
        as_of: i64,
    ) {
        *self.state.lock() = state;
        self.security.changed();
        self.checkpoints.lock().0 = as_of;
        let store = Arc::clone(topics.meta());
        let written = tokio::task::spawn_blocking(move || {
            for g in store.groups() {
                if !offsets.contains_key(&g) {
                    store
                        .delete_group(&g)
                        .map_err(|e| format!("group {g}: {e}"))?;
                }
            }
            for (g, list) in &offsets {
                store
                    .delete_group(g)
                    .map_err(|e| format!("group {g}: {e}"))?;
                store
                    .commit_offsets(g, list)
                    .map_err(|e| format!("group {g}: {e}"))?;
            }
            Ok::<_, String>(offsets.len())
        })
        .await;
        match written {
            Ok(Ok(groups)) => {
                tracing::info!(as_of, groups, "cluster metadata loaded from its checkpoint")
            }
            Ok(Err(e)) => {
                tracing::error!(as_of, error = %e, "cannot store the checkpoint's group offsets")
            }
            Err(e) => tracing::error!(error = %e, "checkpoint offset task failed"),
        }
        self.publish_membership();
    }
}
