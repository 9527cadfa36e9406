//! The topic registry: which topics exist, their partitions, their configs.
//!
//! Reads (every Produce and Fetch) take a short read lock to clone an
//! `Arc<Topic>`; changes build a new `Topic` and swap it in, and are made
//! durable in the metadata store before they become visible.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use starlog_storage::{
    log_config_from_topic_configs, LogConfig, MetaStore, PartitionLog, TopicMeta,
};

use crate::partition::Partition;

/// Longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic as served.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id (a UUID).
    pub id: [u8; 16],
    /// Partitions, indexed by partition number: `None` for a replicated
    /// partition whose replicas are on other brokers (cluster mode with a
    /// replication factor below the cluster size).
    pub partitions: Vec<Option<Arc<Partition>>>,
    /// Per-topic config overrides, as set by clients.
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    /// The partition with this index, if it exists and is hosted here.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.lookup(index).ok()
    }

    /// The partition with this index, or the Kafka error for a request that
    /// names it: UNKNOWN_TOPIC_OR_PARTITION when it does not exist,
    /// NOT_LEADER_OR_FOLLOWER when its replicas are on other brokers (the
    /// client refreshes its metadata and goes there).
    pub fn lookup(&self, index: i32) -> Result<&Arc<Partition>, ResponseError> {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        slot.as_ref().ok_or(ResponseError::NotLeaderOrFollower)
    }

    /// How many partitions the topic has (hosted here or not).
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The partitions hosted on this broker, with their indexes.
    pub fn hosted(&self) -> impl Iterator<Item = (i32, &Arc<Partition>)> + '_ {
        self.partitions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i32::try_from(i).ok()?, p.as_ref()?)))
    }
}

/// Why a topic operation failed, with the Kafka code to return.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TopicError {
    /// Kafka error to answer with.
    pub code: ResponseError,
    /// Human-readable reason (sent as the error message where the API has one).
    pub message: String,
}

impl TopicError {
    /// An error with this code and reason.
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |why: &str| {
        Err(TopicError::new(
            ResponseError::InvalidTopicException,
            format!("invalid topic name {name:?}: {why}"),
        ))
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid("longer than 249 characters");
    }
    if name.starts_with("__meta") {
        return invalid("the __meta prefix is reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// All topics of this broker.
#[derive(Debug)]
pub struct TopicRegistry {
    data_dir: PathBuf,
    base: LogConfig,
    meta: Arc<MetaStore>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises create/delete/alter so two admins cannot interleave.
    changes: Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn random_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

impl TopicRegistry {
    /// Opens every topic recorded in the metadata store.
    pub fn open(
        data_dir: &Path,
        base: LogConfig,
        meta: Arc<MetaStore>,
    ) -> Result<Self, TopicError> {
        let registry = Self {
            data_dir: data_dir.to_path_buf(),
            base,
            meta,
            topics: RwLock::new(HashMap::new()),
            changes: Mutex::new(()),
        };
        registry.remove_deleted_dirs();
        for meta in registry.meta.topics() {
            let topic = registry.open_topic(&meta, 0)?;
            registry.topics.write().insert(meta.name.clone(), topic);
        }
        Ok(registry)
    }

    fn remove_deleted_dirs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "deleted") {
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove deleted partition directory");
                }
            }
        }
    }

    fn log_config(&self, configs: &BTreeMap<String, String>) -> Result<LogConfig, TopicError> {
        log_config_from_topic_configs(&self.base, configs)
            .map_err(|e| TopicError::new(ResponseError::InvalidConfig, e.to_string()))
    }

    /// Opens the partitions of `meta`, reusing none (from partition `first` on).
    fn open_partitions(
        &self,
        meta: &TopicMeta,
        first: i32,
    ) -> Result<Vec<Option<Arc<Partition>>>, TopicError> {
        let config = self.log_config(&meta.configs)?;
        (first..meta.partitions)
            .map(|p| {
                let dir = partition_dir(&self.data_dir, &meta.name, p);
                PartitionLog::open(&dir, &meta.name, p, config.clone())
                    .map(|log| Some(Arc::new(Partition::new(log))))
                    .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))
            })
            .collect()
    }

    fn open_topic(&self, meta: &TopicMeta, first: i32) -> Result<Arc<Topic>, TopicError> {
        Ok(Arc::new(Topic {
            name: meta.name.clone(),
            id: meta.id,
            partitions: self.open_partitions(meta, first)?,
            configs: meta.configs.clone(),
        }))
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with this id.
    pub fn get_by_id(&self, id: &[u8; 16]) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| &t.id == id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a topic; `validate_only` checks without creating.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        max_partitions: i32,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 || partitions > max_partitions {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic {name}: partition count {partitions} is outside 1..={max_partitions}"
                ),
            ));
        }
        self.log_config(&configs)?;
        let _guard = self.changes.lock();
        if self.topics.read().contains_key(name) {
            return Err(TopicError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: random_id(),
            partitions,
            configs,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: meta.name,
                id: meta.id,
                partitions: Vec::new(),
                configs: meta.configs,
            }));
        }
        let topic = self.open_topic(&meta, 0)?;
        self.meta
            .put_topic(meta)
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.changes.lock();
        let Some(topic) = self.get(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name} does not exist"),
            ));
        };
        // Rename first so a crash mid-way leaves a directory we know to remove.
        let mut renamed = Vec::new();
        for p in 0..topic.partition_count() {
            let dir = partition_dir(&self.data_dir, name, p);
            let gone = self.data_dir.join(format!(
                "{name}-{p}.{}.deleted",
                uuid::Uuid::from_bytes(topic.id).simple()
            ));
            match std::fs::rename(&dir, &gone) {
                Ok(()) => renamed.push(gone),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(TopicError::new(
                        ResponseError::KafkaStorageError,
                        format!("cannot delete {}: {e}", dir.display()),
                    ))
                }
            }
        }
        self.meta
            .delete_topic(name)
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        self.topics.write().remove(name);
        for dir in renamed {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove deleted partition directory");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        max_partitions: i32,
    ) -> Result<(), TopicError> {
        let _guard = self.changes.lock();
        let Some(topic) = self.get(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name} does not exist"),
            ));
        };
        let current = topic.partition_count();
        if count <= current || count > max_partitions {
            return Err(TopicError::new(
                ResponseError::InvalidPartitions,
                format!("topic {name} has {current} partitions; cannot change to {count} (max {max_partitions})"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: topic.id,
            partitions: count,
            configs: topic.configs.clone(),
        };
        let mut partitions = topic.partitions.clone();
        partitions.extend(self.open_partitions(&meta, current)?);
        self.meta
            .put_topic(meta)
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        self.topics.write().insert(
            name.to_string(),
            Arc::new(Topic {
                name: name.to_string(),
                id: topic.id,
                partitions,
                configs: topic.configs.clone(),
            }),
        );
        Ok(())
    }

    /// Replaces a topic's config overrides and applies them to its logs.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.changes.lock();
        let Some(topic) = self.get(name) else {
            return Err(TopicError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name} does not exist"),
            ));
        };
        let config = self.log_config(&configs)?;
        if validate_only {
            return Ok(());
        }
        self.meta
            .put_topic(TopicMeta {
                name: name.to_string(),
                id: topic.id,
                partitions: topic.partition_count(),
                configs: configs.clone(),
            })
            .map_err(|e| TopicError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        for (_, p) in topic.hosted() {
            p.log().set_config(config.clone());
        }
        self.topics.write().insert(
            name.to_string(),
            Arc::new(Topic {
                name: name.to_string(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                configs,
            }),
        );
        Ok(())
    }

    /// The effective log config of a topic (defaults plus overrides).
    pub fn effective_config(&self, topic: &Topic) -> LogConfig {
        self.log_config(&topic.configs)
            .unwrap_or_else(|_| self.base.clone())
    }

    /// Checks topic config overrides and gives the log config they make.
    pub fn log_config_for(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, TopicError> {
        self.log_config(configs)
    }

    /// Serves a topic whose partitions are Raft groups (cluster mode): its
    /// definition lives in the cluster metadata log, not in the metadata
    /// store.
    pub fn insert_replicated(&self, topic: Arc<Topic>) {
        let _guard = self.changes.lock();
        self.topics.write().insert(topic.name.clone(), topic);
    }

    /// The metadata store (for group offsets).
    pub fn meta(&self) -> &Arc<MetaStore> {
        &self.meta
    }
}
