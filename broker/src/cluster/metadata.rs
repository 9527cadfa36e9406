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
//!
//! Users and ACLs live here too (`Security`, `SecurityBootstrap`): each
//! security command carries the format version of what it holds, and a
//! broker that finds a version newer than it reads refuses the command (an
//! error in its log, the state unchanged) instead of misreading it, so
//! every broker of one build derives the same state.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use starlog_replication::GroupId;
use starlog_security::{ChangeOutcome, SecurityChange, SecurityState, SECURITY_FORMAT_VERSION};
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
    /// Moves a partition's replicas: the group's leader adds the new ones
    /// (as learners until they catch up), then removes the old ones, which
    /// drop their copy once out of the group.
    Reassign {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The replicas to end with, preferred leader first.
        replicas: Vec<i32>,
    },
    /// A partition group's leader announces itself (for the brokers that do
    /// not host the partition and answer Metadata for it).
    Leader {
        /// The partition group.
        group: u64,
        /// The leader's node id.
        leader: i32,
        /// Its term (the leader epoch).
        term: u64,
        /// Voters and learners of the group's configuration.
        replicas: Vec<i32>,
        /// The in-sync replicas.
        isr: Vec<i32>,
    },
    /// A broker joins: it is added to the metadata group; partitions move
    /// onto it by reassignment.
    AddBroker {
        /// Its id and addresses.
        peer: PeerSettings,
    },
    /// A broker leaves: each partition it replicates gets another broker in
    /// its place (the one with the fewest replicas), and it is removed from
    /// every group (leadership moves off it first).
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
    /// A change to the users or ACLs (`starlog-security`'s
    /// `SecurityChange`, kept as JSON until its version is checked).
    Security {
        /// The format version `change` was written with
        /// ([`SECURITY_FORMAT_VERSION`]); a newer one is refused.
        version: u32,
        /// The change.
        change: serde_json::Value,
        /// Names this command so its proposer can see it applied.
        token: u64,
    },
    /// Users and ACLs written into a broker's `__meta/security.json` before
    /// the cluster first started: its users are taken only if the cluster
    /// has never had a user, its ACLs only if it has never had an ACL (so a
    /// second proposal, or a restart with the file still there, changes
    /// nothing).
    SecurityBootstrap {
        /// The format version `state` was written with.
        version: u32,
        /// The file's `SecurityState`.
        state: serde_json::Value,
    },
    /// The whole state as of offset `as_of` (everything before it applied),
    /// with every group's committed offsets: the log before `as_of` can then
    /// be trimmed, and a broker whose log starts at `as_of` loads this first.
    /// A broker that has applied the log from further back ignores it.
    Checkpoint {
        /// The first offset not reflected in the image.
        as_of: i64,
        /// The state.
        state: ClusterImage,
        /// Committed offsets, by consumer group.
        offsets: BTreeMap<String, Vec<CommittedOffset>>,
    },
}

/// [`ClusterState`] as plain data (group ids as numbers), for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// Topics: name, id (UUID string), configs, and per partition
    /// (group, replicas, initial replicas).
    pub topics: Vec<TopicImage>,
    /// Members.
    pub brokers: Vec<PeerSettings>,
    /// Removed brokers.
    pub removed: Vec<i32>,
    /// Announced leaders, by group.
    pub leaders: Vec<(u64, LeaderAndIsr)>,
    /// The last group id handed out.
    pub next_group: u64,
    /// Users and ACLs (absent from checkpoints written before they were
    /// replicated: empty).
    #[serde(default)]
    pub security: SecurityState,
    /// Whether the cluster ever had a user / an ACL.
    #[serde(default)]
    pub security_seen: SecuritySeen,
}

/// Whether the cluster ever had a user / an ACL: a bootstrap file's users
/// (ACLs) are taken only while it has not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySeen {
    /// A user was set at some point.
    pub users: bool,
    /// An ACL was created at some point.
    pub acls: bool,
}

/// One topic of a [`ClusterImage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Name.
    pub name: String,
    /// Topic id as a UUID string.
    pub id: String,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Per partition: (group, replicas, initial replicas).
    pub partitions: Vec<(u64, Vec<i32>, Vec<i32>)>,
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

    /// A `Security` command for `change`, in this build's format version.
    pub fn security(change: &SecurityChange, token: u64) -> Result<Self, String> {
        Ok(Self::Security {
            version: SECURITY_FORMAT_VERSION,
            change: serde_json::to_value(change).map_err(|e| e.to_string())?,
            token,
        })
    }

    /// A `SecurityBootstrap` command for a bootstrap file's state.
    pub fn security_bootstrap(state: &SecurityState) -> Result<Self, String> {
        Ok(Self::SecurityBootstrap {
            version: SECURITY_FORMAT_VERSION,
            state: serde_json::to_value(state).map_err(|e| e.to_string())?,
        })
    }
}

/// Reads a security command's payload once its version is one this build
/// knows.
fn read_versioned<T: serde::de::DeserializeOwned>(
    what: &str,
    version: u32,
    value: &serde_json::Value,
) -> Result<T, String> {
    if version > SECURITY_FORMAT_VERSION {
        return Err(format!(
            "{what} has format version {version}, newer than this Starlog reads \
             ({SECURITY_FORMAT_VERSION}): not applied; upgrade this broker"
        ));
    }
    T::deserialize(value)
        .map_err(|e| format!("{what} (format version {version}) is unreadable: {e}"))
}

/// What applying a command changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing (a repeated or refused command).
    None,
    /// A topic was created.
    Topic(String, TopicAssignment),
    /// The set of brokers changed (and with it, maybe, partitions' replicas).
    Membership,
    /// A partition's replicas changed.
    Placement,
    /// A partition group announced its leader.
    Leader,
    /// Users or ACLs: what the change did, or why it was refused (a newer
    /// format version, an unreadable change).
    Security {
        /// The command's token.
        token: u64,
        /// What it did, or why not.
        outcome: Result<ChangeOutcome, String>,
    },
    /// A bootstrap file's users and ACLs: how many of each were taken, or
    /// why the command was refused.
    SecurityBootstrap(Result<(usize, usize), String>),
}

/// A partition's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAssignment {
    /// Its Raft group.
    pub group: GroupId,
    /// Replica node ids to have, preferred leader first.
    pub replicas: Vec<i32>,
    /// The replicas it was created with: every broker opens the group with
    /// these as the first voters, and replays later changes from the log.
    pub initial: Vec<i32>,
}

/// A partition group's leader as it last announced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderAndIsr {
    /// Leader node id.
    pub leader: i32,
    /// Its term.
    pub term: u64,
    /// Voters and learners.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
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
    /// Each partition group's last announced leader.
    pub leaders: BTreeMap<GroupId, LeaderAndIsr>,
    /// Users and ACLs.
    pub security: SecurityState,
    /// Whether the cluster ever had a user / an ACL.
    pub security_seen: SecuritySeen,
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
            // A checkpoint only matters to a broker that starts reading at it.
            MetaCommand::CommitOffsets { .. }
            | MetaCommand::DeleteOffsets { .. }
            | MetaCommand::DeleteGroup { .. }
            | MetaCommand::Checkpoint { .. } => Change::None,
            MetaCommand::Security {
                version,
                change,
                token,
            } => {
                let outcome = read_versioned::<SecurityChange>("security change", *version, change)
                    .map(|change| {
                        let outcome = self.security.apply(&change);
                        self.note_security();
                        outcome
                    });
                Change::Security {
                    token: *token,
                    outcome,
                }
            }
            MetaCommand::SecurityBootstrap { version, state } => Change::SecurityBootstrap(
                read_versioned::<SecurityState>("security bootstrap", *version, state)
                    .and_then(|file| self.bootstrap_security(file)),
            ),
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
                self.replace_replica(*id);
                Change::Membership
            }
            MetaCommand::Reassign {
                topic,
                partition,
                replicas,
            } => {
                if self.check_replicas(replicas).is_err() {
                    return Change::None;
                }
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?))
                else {
                    return Change::None;
                };
                if p.replicas == *replicas {
                    return Change::None;
                }
                p.replicas.clone_from(replicas);
                Change::Placement
            }
            MetaCommand::Leader {
                group,
                leader,
                term,
                replicas,
                isr,
            } => {
                let group = GroupId(*group);
                if self.leaders.get(&group).is_some_and(|l| l.term > *term) {
                    return Change::None;
                }
                self.leaders.insert(
                    group,
                    LeaderAndIsr {
                        leader: *leader,
                        term: *term,
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                    },
                );
                Change::Leader
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
                            initial: r.clone(),
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

impl ClusterState {
    /// Notes that users or ACLs exist (a bootstrap file's are then no
    /// longer taken).
    fn note_security(&mut self) {
        self.security_seen.users |= !self.security.users.is_empty();
        self.security_seen.acls |= !self.security.acls.is_empty();
    }

    /// Takes a bootstrap file's users if the cluster never had a user, and
    /// its ACLs if it never had an ACL: how many of each it took.
    fn bootstrap_security(&mut self, file: SecurityState) -> Result<(usize, usize), String> {
        if file.version > SECURITY_FORMAT_VERSION {
            return Err(format!(
                "security bootstrap state has format version {}, newer than this Starlog reads \
                 ({SECURITY_FORMAT_VERSION}): not applied; upgrade this broker",
                file.version
            ));
        }
        let mut taken = (0, 0);
        if !self.security_seen.users && self.security.users.is_empty() {
            for (user, creds) in &file.users {
                for credential in creds.values() {
                    self.security.apply(&SecurityChange::SetCredential {
                        user: user.clone(),
                        credential: credential.clone(),
                    });
                }
            }
            taken.0 = file.users.len();
        }
        if !self.security_seen.acls && self.security.acls.is_empty() && !file.acls.is_empty() {
            // Invalid ACLs are dropped here, as CreateAcls refuses them.
            if let ChangeOutcome::Created(results) = self
                .security
                .apply(&SecurityChange::CreateAcls { acls: file.acls })
            {
                taken.1 = results.iter().filter(|r| matches!(r, Ok(true))).count();
            }
        }
        self.note_security();
        Ok(taken)
    }

    /// The state as plain data.
    pub fn image(&self) -> ClusterImage {
        ClusterImage {
            topics: self
                .topics
                .iter()
                .map(|(name, t)| TopicImage {
                    name: name.clone(),
                    id: uuid::Uuid::from_bytes(t.id).to_string(),
                    configs: t.configs.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| (p.group.0, p.replicas.clone(), p.initial.clone()))
                        .collect(),
                })
                .collect(),
            brokers: self.brokers.values().cloned().collect(),
            removed: self.removed.iter().copied().collect(),
            leaders: self.leaders.iter().map(|(g, l)| (g.0, l.clone())).collect(),
            next_group: self.next_group,
            security: self.security.clone(),
            security_seen: self.security_seen,
        }
    }

    /// The state an image describes; an unreadable topic id is an error
    /// naming the topic.
    pub fn from_image(image: &ClusterImage) -> Result<Self, String> {
        if image.security.version > SECURITY_FORMAT_VERSION {
            return Err(format!(
                "its users and ACLs have format version {}, newer than this Starlog reads ({SECURITY_FORMAT_VERSION}); upgrade this broker",
                image.security.version
            ));
        }
        let mut topics = BTreeMap::new();
        for t in &image.topics {
            let id = uuid::Uuid::parse_str(&t.id)
                .map_err(|e| format!("topic {}: id {:?}: {e}", t.name, t.id))?;
            let partitions = t
                .partitions
                .iter()
                .map(|(g, replicas, initial)| PartitionAssignment {
                    group: GroupId(*g),
                    replicas: replicas.clone(),
                    initial: initial.clone(),
                })
                .collect();
            topics.insert(
                t.name.clone(),
                TopicAssignment {
                    id: id.into_bytes(),
                    partitions,
                    configs: t.configs.clone(),
                },
            );
        }
        Ok(Self {
            topics,
            brokers: image.brokers.iter().map(|p| (p.id, p.clone())).collect(),
            removed: image.removed.iter().copied().collect(),
            leaders: image
                .leaders
                .iter()
                .map(|(g, l)| (GroupId(*g), l.clone()))
                .collect(),
            security: image.security.clone(),
            security_seen: image.security_seen,
            next_group: image.next_group,
        })
    }

    /// Checks a replica list: not empty, no repeats, every id a member.
    pub fn check_replicas(&self, replicas: &[i32]) -> Result<(), String> {
        if replicas.is_empty() {
            return Err("a partition needs at least one replica".into());
        }
        let unique: BTreeSet<i32> = replicas.iter().copied().collect();
        if unique.len() != replicas.len() {
            return Err(format!("replicas {replicas:?} name a broker twice"));
        }
        match replicas.iter().find(|r| !self.brokers.contains_key(r)) {
            Some(r) => Err(format!("broker {r} is not a member of the cluster")),
            None => Ok(()),
        }
    }

    /// How many partition replicas each member holds (by target).
    pub fn load(&self) -> BTreeMap<i32, usize> {
        let mut load: BTreeMap<i32, usize> = self.brokers.keys().map(|&id| (id, 0)).collect();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            for r in &p.replicas {
                if let Some(n) = load.get_mut(r) {
                    *n += 1;
                }
            }
        }
        load
    }

    /// Replicas for `count` new partitions with `factor` replicas each:
    /// consecutive brokers by id, starting after the brokers that hold the
    /// fewest replicas, so topics spread their partitions and leaders.
    pub fn place(&self, count: usize, factor: usize) -> Vec<Vec<i32>> {
        let ids: Vec<i32> = self.brokers.keys().copied().collect();
        let n = ids.len();
        if n == 0 {
            return Vec::new();
        }
        let load = self.load();
        let start = (0..n)
            .min_by_key(|&i| (load.get(&ids[i]).copied().unwrap_or(0), i))
            .unwrap_or(0);
        (0..count)
            .map(|p| {
                (0..factor.min(n))
                    .map(|i| ids[(start + p + i) % n])
                    .collect()
            })
            .collect()
    }

    /// Puts another member in place of `gone` in every partition that has
    /// it: the member with the fewest replicas that the partition does not
    /// have yet (lowest id on ties), or none when every member has it.
    fn replace_replica(&mut self, gone: i32) {
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let count = self.topics.get(&name).map_or(0, |t| t.partitions.len());
            for i in 0..count {
                let load = self.load();
                let Some(p) = self
                    .topics
                    .get_mut(&name)
                    .and_then(|t| t.partitions.get_mut(i))
                else {
                    continue;
                };
                let Some(at) = p.replicas.iter().position(|&r| r == gone) else {
                    continue;
                };
                let spare = load
                    .iter()
                    .filter(|(id, _)| !p.replicas.contains(id))
                    .min_by_key(|(id, n)| (**n, **id))
                    .map(|(id, _)| *id);
                match spare {
                    Some(id) => p.replicas[at] = id,
                    None => {
                        p.replicas.remove(at);
                    }
                }
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
        timestamp: crate::clock::now_ms(),
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
            listeners: Vec::new(),
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

    fn peer(id: i32) -> PeerSettings {
        PeerSettings {
            id,
            host: "h".into(),
            port: 1,
            raft: "127.0.0.1:2".parse().unwrap(),
            listeners: Vec::new(),
        }
    }

    fn cluster_of(n: i32) -> ClusterState {
        ClusterState::new(&(1..=n).map(peer).collect::<Vec<_>>())
    }

    #[test]
    fn placement_spreads_replicas_and_preferred_leaders_over_the_brokers() {
        let mut s = cluster_of(3);
        let replicas = s.place(3, 2);
        assert_eq!(replicas, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
        s.apply(&MetaCommand::CreateTopic {
            name: "a".into(),
            id: uuid::Uuid::new_v4().to_string(),
            replicas,
            configs: BTreeMap::new(),
        });
        assert_eq!(
            s.load().values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        // The next topic starts on the least loaded broker; the factor is
        // capped at the cluster size.
        assert_eq!(s.place(1, 5), vec![vec![1, 2, 3]]);
    }

    #[test]
    fn reassignment_is_checked_and_removal_replaces_the_broker_with_the_least_loaded() {
        let mut s = cluster_of(4);
        let create = MetaCommand::CreateTopic {
            name: "a".into(),
            id: uuid::Uuid::new_v4().to_string(),
            replicas: vec![vec![1, 2], vec![2, 3], vec![1, 3]],
            configs: BTreeMap::new(),
        };
        s.apply(&create);
        let reassign = |replicas: Vec<i32>| MetaCommand::Reassign {
            topic: "a".into(),
            partition: 0,
            replicas,
        };
        assert_eq!(
            s.apply(&reassign(vec![2, 9])),
            Change::None,
            "9 is no member"
        );
        assert_eq!(
            s.apply(&reassign(vec![2, 2])),
            Change::None,
            "a broker twice"
        );
        assert_eq!(s.apply(&reassign(vec![])), Change::None);
        assert!(s.check_replicas(&[2, 9]).unwrap_err().contains("broker 9"));
        assert_eq!(s.apply(&reassign(vec![4, 2])), Change::Placement);
        assert_eq!(s.apply(&reassign(vec![4, 2])), Change::None, "no change");
        let a = &s.topics["a"].partitions[0];
        assert_eq!(
            (a.replicas.clone(), a.initial.clone()),
            (vec![4, 2], vec![1, 2])
        );
        // Broker 3 leaves: partitions 1 and 2 get the least loaded broker
        // they lack (4 holds one replica, 1 holds one).
        assert_eq!(
            s.apply(&MetaCommand::RemoveBroker { id: 3 }),
            Change::Membership
        );
        let now: Vec<Vec<i32>> = s.topics["a"]
            .partitions
            .iter()
            .map(|p| p.replicas.clone())
            .collect();
        assert_eq!(now, vec![vec![4, 2], vec![2, 1], vec![1, 4]]);
        assert!(now.iter().flatten().all(|&r| r != 3));
    }

    #[test]
    fn an_older_leader_announcement_never_replaces_a_newer_one() {
        let mut s = cluster_of(3);
        let leader = |leader, term| MetaCommand::Leader {
            group: 7,
            leader,
            term,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
        };
        assert_eq!(s.apply(&leader(2, 5)), Change::Leader);
        assert_eq!(s.apply(&leader(1, 4)), Change::None);
        assert_eq!(s.leaders[&GroupId(7)].leader, 2);
        assert_eq!(s.apply(&leader(3, 6)), Change::Leader);
        assert_eq!(s.leaders[&GroupId(7)].term, 6);
    }

    #[test]
    fn a_checkpoint_image_gives_back_the_same_state() {
        let mut s = cluster_of(3);
        s.apply(&create("a", 2));
        s.apply(&MetaCommand::Reassign {
            topic: "a".into(),
            partition: 1,
            replicas: vec![3, 1],
        });
        s.apply(&MetaCommand::Leader {
            group: 2,
            leader: 3,
            term: 4,
            replicas: vec![1, 3],
            isr: vec![3],
        });
        s.apply(&MetaCommand::RemoveBroker { id: 2 });
        let image = s.image();
        let back = ClusterState::from_image(&image).unwrap();
        assert_eq!(back.image(), image);
        assert_eq!(back.topics, s.topics);
        assert_eq!(back.leaders, s.leaders);
        assert_eq!(
            (back.removed.clone(), back.next_group),
            (s.removed.clone(), 2)
        );
        // A checkpoint record round-trips and changes nothing when applied.
        let cmd = MetaCommand::Checkpoint {
            as_of: 9,
            state: image,
            offsets: BTreeMap::new(),
        };
        let decoded = decode(encode(&cmd).unwrap()).unwrap();
        assert_eq!(decoded[0].1.as_ref().unwrap(), &cmd);
        assert_eq!(s.apply(&cmd), Change::None);
        // An image with a bad topic id is refused, naming the topic.
        let mut bad = s.image();
        bad.topics[0].id = "nope".into();
        assert!(ClusterState::from_image(&bad)
            .unwrap_err()
            .contains("topic a"));
    }

    #[test]
    fn garbage_values_are_reported_not_applied() {
        assert!(decode(Bytes::from_static(b"not a batch")).is_err());
    }
}
