//! Which partition groups this broker hosts: it opens the groups the
//! metadata log places here (a served [`Partition`] over each, proposing
//! through a [`RaftReplica`]) and closes and deletes those whose group let
//! it go.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use starlog_replication::{GroupId, GroupSpec, NodeId, ReplicationError};
use starlog_storage::{FlushPolicy, LogConfig};
use tokio::sync::oneshot;

use super::inbox::{Inbox, Input};
use super::node::{node_id, Cluster};
use super::view::ClusterView;
use crate::partition::Partition;
use crate::replicator::{Accepted, Committed, DriverGone, Replicator};
use crate::topics::{Topic, TopicRegistry};
use crate::watermark::HighWatermark;

/// How a hosted partition reaches its Raft group through the driver loop.
#[derive(Debug, Clone)]
pub(super) struct RaftReplica {
    group: GroupId,
    inbox: Inbox,
    view: Arc<ClusterView>,
    commit_wait: Duration,
}

impl Replicator for RaftReplica {
    fn leader_term(&self) -> Option<u64> {
        self.view.leader_term(self.group)
    }

    fn propose(&self, records: Bytes, term: u64) -> Result<Accepted, DriverGone> {
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send(Input::Propose {
                group: self.group,
                records,
                term,
                reply,
            })
            .map_err(|_| DriverGone)?;
        Ok(Accepted::new(async move {
            let answer = rx.await.map_err(|_| DriverGone)?;
            Ok(answer.map(|proposal| Box::pin(proposal) as Committed))
        }))
    }

    fn commit_wait(&self) -> Duration {
        self.commit_wait
    }

    fn compact(&self, offset: i64) {
        let _ = self.inbox.send(Input::Compact {
            group: self.group,
            offset,
        });
    }
}

impl Cluster {
    /// Opens a Raft group on this broker and the served partition over it.
    pub(super) async fn open_group(
        &self,
        group: GroupId,
        topic: &str,
        partition: i32,
        log_config: LogConfig,
        voters: Vec<NodeId>,
        campaign: bool,
    ) -> Result<Arc<Partition>, ReplicationError> {
        let spec = GroupSpec {
            group,
            dir: self.data_dir.join(format!("{topic}-{partition}")),
            topic: topic.to_string(),
            partition,
            log_config: LogConfig {
                // The driver syncs once per turn; the log itself never waits.
                flush: FlushPolicy::Never,
                ..log_config
            },
            bootstrap_voters: voters,
        };
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send(Input::AddGroup {
                spec,
                campaign,
                reply,
            })
            .map_err(|_| ReplicationError::Abandoned { group })?;
        let (log, hw) = rx
            .await
            .map_err(|_| ReplicationError::Abandoned { group })??;
        let high_watermark = HighWatermark::new(hw);
        let partition = Arc::new(Partition::replicated(
            log,
            high_watermark.clone(),
            Arc::new(RaftReplica {
                group,
                inbox: self.inbox.clone(),
                view: Arc::clone(&self.view),
                commit_wait: Duration::from_millis(self.settings.max_commit_wait_ms),
            }),
        ));
        self.inbox
            .send(Input::Attach {
                group,
                high_watermark,
            })
            .map_err(|_| ReplicationError::Abandoned { group })?;
        Ok(partition)
    }

    /// Opens the groups of partitions placed on this broker and closes
    /// (and deletes) those it no longer replicates once their group has let
    /// it go; serves every topic of the metadata log, hosted here or not.
    pub(super) async fn reconcile_hosting(&self, topics: &TopicRegistry) {
        let assignments = self.state.lock().topics.clone();
        for (name, assignment) in assignments {
            let current = topics.get(&name);
            let mut slots = current
                .as_ref()
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            slots.resize(assignment.partitions.len(), None);
            let mut changed = current.is_none();
            let log_config = match topics.log_config_for(&assignment.configs) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(topic = %name, error = %e, "cannot open replicated topic");
                    continue;
                }
            };
            for (index, (slot, p)) in slots.iter_mut().zip(&assignment.partitions).enumerate() {
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                let wanted = p.replicas.contains(&self.node);
                match (slot.is_some(), wanted) {
                    (false, true) => {
                        // Every broker opens a group with its first voters (a
                        // broker placed on it later among them or not); the
                        // log replays later changes, and the leader adds it.
                        let voters = p.initial.iter().map(|&r| node_id(r)).collect();
                        let preferred = p.initial.first() == Some(&self.node);
                        let opened = self
                            .open_group(
                                p.group,
                                &name,
                                index,
                                log_config.clone(),
                                voters,
                                preferred,
                            )
                            .await;
                        match opened {
                            Ok(partition) => {
                                *slot = Some(partition);
                                changed = true;
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, error = %e, "cannot open replicated partition")
                            }
                        }
                    }
                    (true, false) if self.released(p.group) => {
                        match self.close_group(p.group, &name, index).await {
                            Ok(()) => {
                                *slot = None;
                                changed = true;
                                tracing::info!(topic = %name, partition = index, "replica moved off this broker; its copy is deleted");
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = index, error = %e, "cannot close a partition moved off this broker")
                            }
                        }
                    }
                    _ => {}
                }
            }
            if changed {
                topics.insert_replicated(Arc::new(Topic {
                    name: name.clone(),
                    id: assignment.id,
                    partitions: slots,
                    configs: assignment.configs.clone(),
                }));
            }
        }
    }

    /// Whether `group` no longer counts this broker among its replicas: its
    /// own copy of the configuration says so, or the leader announced one
    /// without it (a replica removed before it saw its removal).
    pub(super) fn released(&self, group: GroupId) -> bool {
        let me = node_id(self.node);
        let local = self.view.status(group);
        if let Some(s) = &local {
            if !s.voters.contains(&me) && !s.learners.contains(&me) {
                return true;
            }
        }
        let term = local.map_or(0, |s| s.term);
        self.view
            .announced(group)
            .is_some_and(|a| a.term >= term && !a.replicas.contains(&me))
    }

    /// Closes a group this broker no longer replicates and deletes its directory.
    pub(super) async fn close_group(
        &self,
        group: GroupId,
        topic: &str,
        partition: i32,
    ) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.inbox
            .send(Input::RemoveGroup { group, reply })
            .map_err(|_| "the raft driver stopped".to_string())?;
        rx.await
            .map_err(|_| "the raft driver stopped".to_string())?
            .map_err(|e| e.to_string())?;
        let dir = self.data_dir.join(format!("{topic}-{partition}"));
        let gone = self
            .data_dir
            .join(format!("{topic}-{partition}.{group}.moved"));
        tokio::task::spawn_blocking(move || {
            std::fs::rename(&dir, &gone)
                .and_then(|()| std::fs::remove_dir_all(&gone))
                .map_err(|e| format!("cannot delete {}: {e}", dir.display()))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
