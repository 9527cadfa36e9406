//! Cluster metadata: the commands of the metadata Raft group and the state
//! every broker builds by applying them in log order.
//!
//! The metadata group's log is a partition log like any other: each command
//! is one record (JSON value) in one Kafka batch, so the same driver, the
//! same storage and the same high watermark serve it. Applying is
//! deterministic (the same commands in the same order give the same state on
//! every broker): group ids are handed out by a counter in the state, and a
//! second `CreateTopic` for a name that exists is ignored, so two brokers
//! racing to create a topic agree on the winner.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use starlog_replication::GroupId;
use starlog_storage::CommittedOffset;

use super::config::PeerSettings;

/// The metadata group (partition groups start at 1).
pub const METADATA_GROUP: GroupId = GroupId(0);

/// Directory name (under the data directory) and log topic of the metadata group.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MetaCommand {
    /// Create a topic with these replicas per partition (the first replica is
    /// the preferred leader).
    CreateTopic {
        /// Topic name.
        name: String,
        /// Topic id, as a UUID string.
        id: String,
        /// Replica node ids, one list per partition.
        replicas: Vec<Vec<i32>>,
        /// Topic config overrides.
        configs: BTreeMap<String, String>,
    },
    /// A broker joins: it is added to the metadata group and to every partition group.
    AddBroker {
        /// Its id and addresses.
        peer: PeerSettings,
    },
    /// A broker leaves: it is removed from every group (leadership moves off it first).
    RemoveBroker {
        /// Its id.
        id: i32,
    },
    /// A consumer group's committed offsets (every broker stores them, so
    /// they survive the loss of the coordinator).
    CommitOffsets {
        /// Group id.
        group: String,
        /// The offsets.
        offsets: Vec<CommittedOffset>,
        /// Names this command so its proposer can see it applied.
        token: u64,
    },
    /// Removes some committed offsets of a group.
    DeleteOffsets {
        /// Group id.
        group: String,
        /// (topic, partition) pairs.
        partitions: Vec<(String, i32)>,
        /// As above.
        token: u64,
    },
    /// Removes every committed offset of a group.
    DeleteGroup {
        /// Group id.
        group: String,
        /// As above.
        token: u64,
    },
}

impl MetaCommand {
    /// The token of an offset command (`None` for the others).
    pub fn token(&self) -> Option<u64> {
        match self {
            Self::CommitOffsets { token, .. }
            | Self::DeleteOffsets { token, .. }
            | Self::DeleteGroup { token, .. } => Some(*token),
            _ => None,
        }
    }
}

/// What applying a command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing (a repeated or refused command).
    None,
    /// A topic was created.
    Topic(String, TopicAssignment),
    /// The set of brokers changed.
    Membership,
}

/// A partition's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    /// Its Raft group.
    pub group: GroupId,
    /// Replica node ids, preferred leader first.
    pub replicas: Vec<i32>,
}

/// A topic as the metadata log defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAssignment {
    /// Topic id.
    pub id: [u8; 16],
    /// Partitions, by index.
    pub partitions: Vec<PartitionAssignment>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// The state every broker derives from the metadata log.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicAssignment>,
    /// Brokers: the configured peers, plus those added, minus those removed.
    pub brokers: BTreeMap<i32, PeerSettings>,
    /// Brokers removed (they never come back under the same id).
    pub removed: BTreeSet<i32>,
    next_group: u64,
}

impl ClusterState {
    /// The state before any command: the configured peers.
    pub fn new(peers: &[PeerSettings]) -> Self {
        Self {
            brokers: peers.iter().map(|p| (p.id, p.clone())).collect(),
            ..Self::default()
        }
    }

    /// Applies one command.
    pub fn apply(&mut self, cmd: &MetaCommand) -> Change {
        match cmd {
            // Offsets live in each broker's metadata store, not in this state.
            MetaCommand::CommitOffsets { .. }
            | MetaCommand::DeleteOffsets { .. }
            | MetaCommand::DeleteGroup { .. } => Change::None,
            MetaCommand::AddBroker { peer } => {
                if self.removed.contains(&peer.id) || self.brokers.get(&peer.id) == Some(peer) {
                    return Change::None;
                }
                self.brokers.insert(peer.id, peer.clone());
                Change::Membership
            }
            MetaCommand::RemoveBroker { id } => {
                if !self.removed.insert(*id) {
                    return Change::None;
                }
                self.brokers.remove(id);
                Change::Membership
            }
            MetaCommand::CreateTopic {
                name,
                id,
                replicas,
                configs,
            } => {
                if self.topics.contains_key(name) || replicas.is_empty() {
                    return Change::None;
                }
                let Ok(id) = uuid::Uuid::parse_str(id) else {
                    return Change::None;
                };
                let id = id.into_bytes();
                let partitions = replicas
                    .iter()
                    .map(|r| {
                        self.next_group += 1;
                        PartitionAssignment {
                            group: GroupId(self.next_group),
                            replicas: r.clone(),
                        }
                    })
                    .collect();
                let topic = TopicAssignment {
                    id,
                    partitions,
                    configs: configs.clone(),
                };
                self.topics.insert(name.clone(), topic.clone());
                Change::Topic(name.clone(), topic)
            }
        }
    }
}

/// Encodes a command as one record batch.
pub fn encode(cmd: &MetaCommand) -> Result<Bytes, String> {
    let value = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: crate::broker::now_ms(),
        key: None,
        value: Some(Bytes::from(value)),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// One record of the metadata log: its offset and its command, or why it is unreadable.
pub type Decoded = (i64, Result<MetaCommand, String>);

/// Decodes the commands in `bytes` (whole batches read from the metadata
/// log): `(offset, command or why it is unreadable)` per record.
pub fn decode(bytes: Bytes) -> Result<Vec<Decoded>, String> {
    let mut buf = bytes;
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| e.to_string())?;
    Ok(sets
        .iter()
        .flat_map(|s| s.records.iter())
        .map(|r| {
            let cmd = r
                .value
                .as_ref()
                .ok_or_else(|| "record without a value".to_string())
                .and_then(|v| serde_json::from_slice(v).map_err(|e| e.to_string()));
            (r.offset, cmd)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, n: usize) -> MetaCommand {
        MetaCommand::CreateTopic {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            replicas: vec![vec![1, 2, 3]; n],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn commands_round_trip_through_a_batch() {
        let cmd = create("alerts", 3);
        let decoded = decode(encode(&cmd).unwrap()).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].1.as_ref().unwrap(), &cmd);
    }

    #[test]
    fn applying_is_deterministic_and_the_first_create_wins() {
        let cmds = [create("a", 2), create("b", 1), create("a", 5)];
        let mut x = ClusterState::default();
        let mut y = ClusterState::default();
        for c in &cmds {
            x.apply(c);
            y.apply(c);
        }
        assert_eq!(x.topics, y.topics);
        let peer = PeerSettings {
            id: 4,
            host: "h".into(),
            port: 1,
            raft: "127.0.0.1:2".parse().unwrap(),
        };
        assert_eq!(
            x.apply(&MetaCommand::AddBroker { peer: peer.clone() }),
            Change::Membership
        );
        assert_eq!(x.apply(&MetaCommand::AddBroker { peer }), Change::None);
        assert_eq!(
            x.apply(&MetaCommand::RemoveBroker { id: 4 }),
            Change::Membership
        );
        assert!(x.brokers.is_empty() && x.removed.contains(&4));
        assert_eq!(x.topics["a"].partitions.len(), 2);
        let groups: Vec<u64> = ["a", "b"]
            .iter()
            .flat_map(|t| x.topics[*t].partitions.iter().map(|p| p.group.0))
            .collect();
        assert_eq!(groups, vec![1, 2, 3]);
    }

    #[test]
    fn garbage_values_are_reported_not_applied() {
        assert!(decode(Bytes::from_static(b"not a batch")).is_err());
    }
}
