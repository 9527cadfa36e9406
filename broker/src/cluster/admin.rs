//! Changes made through the metadata group from any broker: topic
//! creation, reassignment, membership (add and remove a broker), group
//! offsets and (for `security.rs`) users and ACLs, each forwarded to the metadata leader and awaited until this
//! broker has applied it; and what Metadata and the reassignment APIs read
//! back (leadership, moves in progress).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::config::PeerSettings;
use super::inbox::Input;
use super::metadata::{self, MetaCommand, METADATA_GROUP};
use super::node::{node_id, Cluster};
use super::view::Leadership;
use crate::control::{NewTopic, Reassignment};
use crate::topics::{validate_topic_name, Topic, TopicError, TopicRegistry};

/// How long CreateTopics waits for the metadata group to commit and apply.
const CREATE_WAIT: Duration = Duration::from_secs(15);

impl Cluster {
    /// Proposes an offset command and waits until this broker applied it.
    pub async fn propose_offsets(&self, cmd: MetaCommand, token: u64) -> Result<(), String> {
        self.propose_until(&cmd, || self.tokens.lock().contains(&token).then_some(()))
            .await
            .map_err(|e| e.to_string())
    }

    /// Forwards `cmd` to the metadata group and waits until `applied`
    /// finds its effect here (users and ACLs, `security.rs`).
    pub(super) async fn propose_until_applied<T>(
        &self,
        cmd: &MetaCommand,
        applied: impl Fn() -> Option<T>,
    ) -> Result<T, String> {
        self.propose_until(cmd, applied)
            .await
            .map_err(|e| e.to_string())
    }

    /// Adds a broker to the cluster (from any member) and waits until this
    /// broker has applied it; the leaders then add it to every group.
    pub async fn add_broker(&self, peer: PeerSettings) -> Result<(), String> {
        let id = peer.id;
        if id < 1 {
            return Err(format!("{id} is not a node id (at least 1)"));
        }
        if self.state.lock().removed.contains(&id) {
            return Err(format!(
                "broker {id} was removed; a new broker needs a new id"
            ));
        }
        self.propose_until(&MetaCommand::AddBroker { peer }, || {
            self.state.lock().brokers.contains_key(&id).then_some(())
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Removes a broker from the cluster; the leaders then remove it from
    /// every group (moving leadership off it first).
    pub async fn remove_broker(&self, id: i32) -> Result<(), String> {
        let (known, left) = {
            let s = self.state.lock();
            (s.brokers.contains_key(&id), s.brokers.len())
        };
        if !known {
            return Err(format!("broker {id} is not a member"));
        }
        if left <= 1 {
            return Err("the last broker cannot be removed".into());
        }
        self.propose_until(&MetaCommand::RemoveBroker { id }, || {
            self.state.lock().removed.contains(&id).then_some(())
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Forwards `cmd` to the metadata group and waits (bounded) until
    /// `applied` finds its effect in what this broker has applied.
    async fn propose_until<T>(
        &self,
        cmd: &MetaCommand,
        applied: impl Fn() -> Option<T>,
    ) -> Result<T, ProposeError> {
        let records = metadata::encode(cmd).map_err(ProposeError::Unavailable)?;
        let mut changes = self.applied.subscribe();
        let (reply, rx) = oneshot::channel();
        let stopped = || ProposeError::Unavailable("the raft driver stopped".into());
        self.inbox
            .send(Input::Forward {
                group: METADATA_GROUP,
                records,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| ProposeError::Unavailable(e.to_string()))?;
        tokio::time::timeout(CREATE_WAIT, async {
            loop {
                if let Some(found) = applied() {
                    return Some(found);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or(ProposeError::Timeout)
    }

    /// Describes a replicated partition for Metadata: the leader and term
    /// this broker knows best (its own group's, or the last announced), the
    /// replicas and the in-sync replicas.
    pub fn leadership(&self, topic: &str, index: i32) -> Option<Leadership> {
        let (group, target) = {
            let s = self.state.lock();
            let p = s
                .topics
                .get(topic)?
                .partitions
                .get(usize::try_from(index).ok()?)?;
            (p.group, p.replicas.iter().map(|&r| node_id(r)).collect())
        };
        let mut l = Leadership::of(
            self.view.status(group).as_ref(),
            self.view.announced(group).as_ref(),
            target,
        );
        // A leader this broker cannot connect to (killed, typically) is not
        // named: the client keeps asking until the new one is elected,
        // instead of waiting for its next periodic refresh.
        if l.leader.is_some_and(|n| self.faults.unreachable(n)) {
            l.leader = None;
        }
        Some(l)
    }

    /// The replicas a reassignment asks for, checked against what this
    /// broker has applied (`None`: the replicas the group has now).
    pub(super) fn check_reassignment(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<&[i32]>,
    ) -> Result<Vec<i32>, TopicError> {
        let s = self.state.lock();
        let t = s.topics.get(topic).ok_or_else(|| {
            TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {topic} does not exist"),
            )
        })?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or_else(|| {
                TopicError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic} has no partition {partition}"),
                )
            })?;
        let replicas = match replicas {
            Some(r) => r.to_vec(),
            None => {
                let current = s.leaders.get(&p.group).map(|l| l.replicas.clone());
                match current {
                    Some(c) if sorted(&c) != sorted(&p.replicas) => c,
                    _ => {
                        return Err(TopicError::new(
                            ResponseError::NoReassignmentInProgress,
                            format!("{topic}-{partition} is not moving"),
                        ))
                    }
                }
            }
        };
        s.check_replicas(&replicas).map_err(|e| {
            TopicError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("{topic}-{partition}: {e}"),
            )
        })?;
        Ok(replicas)
    }

    /// Moves a partition's replicas (from any broker): waits until this
    /// broker has applied the new placement; the replicas move afterwards.
    /// `None` cancels a move in progress: the partition keeps the replicas
    /// its group has now.
    pub async fn reassign(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<Vec<i32>>,
    ) -> Result<(), TopicError> {
        // A broker or topic created through another broker a moment ago may
        // not be applied here yet: look again as the metadata log advances.
        let mut changes = self.applied.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let replicas = loop {
            match self.check_reassignment(topic, partition, replicas.as_deref()) {
                Ok(r) => break r,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
                }
            }
        };
        let cmd = MetaCommand::Reassign {
            topic: topic.to_string(),
            partition,
            replicas: replicas.clone(),
        };
        self.propose_until(&cmd, || {
            let s = self.state.lock();
            let p = s
                .topics
                .get(topic)?
                .partitions
                .get(usize::try_from(partition).ok()?)?;
            (p.replicas == replicas).then_some(())
        })
        .await
        .map_err(|e| {
            let code = match e {
                ProposeError::Unavailable(_) => ResponseError::NotController,
                ProposeError::Timeout => ResponseError::RequestTimedOut,
            };
            TopicError::new(code, format!("{topic}-{partition}: {e}"))
        })
    }

    /// Every partition whose replicas are moving: (topic, partition, the
    /// replicas it has now, the replicas to have).
    pub fn reassignments(&self) -> Vec<Reassignment> {
        let s = self.state.lock();
        let mut out = Vec::new();
        for (name, t) in &s.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let now = s
                    .leaders
                    .get(&p.group)
                    .map_or_else(|| p.initial.clone(), |l| l.replicas.clone());
                if sorted(&now) != sorted(&p.replicas) {
                    out.push(Reassignment {
                        topic: name.clone(),
                        partition: i32::try_from(i).unwrap_or(i32::MAX),
                        current: now,
                        target: p.replicas.clone(),
                    });
                }
            }
        }
        out
    }

    /// Creates a topic through the metadata group (from any broker) and
    /// waits until it is open here.
    pub async fn create_topic(
        &self,
        topics: &TopicRegistry,
        request: NewTopic<'_>,
    ) -> Result<Arc<Topic>, TopicError> {
        let NewTopic {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
            max_partitions,
        } = request;
        validate_topic_name(name)?;
        let n = self.state.lock().brokers.len();
        if partitions < 1 || partitions > max_partitions {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic {name}: partition count {partitions} is outside 1..={max_partitions}"
                ),
            ));
        }
        let factor = match replication_factor {
            -1 => self.settings.default_replication_factor.min(n),
            f => match usize::try_from(f) {
                Ok(f) if (1..=n).contains(&f) => f,
                _ => {
                    return Err(TopicError::new(
                        ResponseError::InvalidReplicationFactor,
                        format!("topic {name}: replication factor {replication_factor} is outside 1..={n} (the cluster has {n} brokers), or -1 for the default"),
                    ))
                }
            },
        };
        topics.log_config_for(&configs)?;
        if let Some(t) = topics.get(name) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {} already exists", t.name),
            ));
        }
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                id: [0; 16],
                partitions: Vec::new(),
                configs,
            }));
        }
        let replicas = self
            .state
            .lock()
            .place(usize::try_from(partitions).unwrap_or(0), factor);
        let id = uuid::Uuid::new_v4();
        let cmd = MetaCommand::CreateTopic {
            name: name.to_string(),
            id: id.to_string(),
            replicas,
            configs,
        };
        let found = self.propose_until(&cmd, || topics.get(name)).await;
        match found {
            Ok(t) if t.id == *id.as_bytes() => Ok(t),
            Ok(t) => Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!(
                    "topic {} was created concurrently by another request",
                    t.name
                ),
            )),
            Err(ProposeError::Unavailable(why)) => Err(TopicError::new(
                ResponseError::NotController,
                format!(
                    "topic {name}: the cluster metadata group cannot take it now ({why}); retry"
                ),
            )),
            Err(ProposeError::Timeout) => Err(TopicError::new(
                ResponseError::RequestTimedOut,
                format!(
                    "topic {name}: not committed by the cluster within {} s",
                    CREATE_WAIT.as_secs()
                ),
            )),
        }
    }
}

/// Why a command forwarded to the metadata group did not take effect here.
#[derive(Debug, thiserror::Error)]
enum ProposeError {
    /// The group could not take it (no leader known, driver stopped, bad command).
    #[error("the metadata group cannot take it now ({0}); retry")]
    Unavailable(String),
    /// Accepted, but not applied here in time.
    #[error("not committed within {} s; retry", CREATE_WAIT.as_secs())]
    Timeout,
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}
