//! [`MetaStore`]: durable topics, per-topic configs and consumer-group committed offsets.
//!
//! The whole state is small, so it is kept in memory and persisted as one JSON document with
//! write-new + fsync + rename + fsync-dir on every mutation: after `kill -9` (or power loss) at
//! any point the file holds either the state before or after the call, never a mix, and a call
//! that returned is durable. Mutations are serialised by one mutex; readers clone from memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::fsutil::{remove_if_exists, tmp_path, write_atomic};

/// A topic as the broker knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic UUID.
    pub id: [u8; 16],
    /// Number of partitions.
    pub partitions: i32,
    /// Topic-level config overrides (Kafka keys).
    pub configs: BTreeMap<String, String>,
}

/// One committed offset of a consumer group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the group will consume.
    pub offset: i64,
    /// Leader epoch of the committed record, or -1.
    pub leader_epoch: i32,
    /// Client-supplied metadata.
    pub metadata: Option<String>,
    /// When the commit happened (ms since the epoch).
    pub commit_timestamp_ms: i64,
}

/// On-disk document (format version 1).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    version: u32,
    topics: BTreeMap<String, TopicMeta>,
    groups: BTreeMap<String, Vec<CommittedOffset>>,
}

const FILE_NAME: &str = "meta.json";
const FORMAT_VERSION: u32 = 1;

/// Durable metadata store. Every mutating call is durable when it returns.
#[derive(Debug)]
pub struct MetaStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl MetaStore {
    /// Opens (creating if needed) the store in `dir` (`<data_dir>/__meta`).
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create dir", dir, e))?;
        let path = dir.join(FILE_NAME);
        // A leftover temp file is an interrupted write whose rename never happened.
        remove_if_exists(&tmp_path(&path))?;
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|source| {
                    StorageError::MetaEncoding {
                        path: path.clone(),
                        source,
                    }
                })?;
                if state.version != FORMAT_VERSION {
                    return Err(StorageError::Corrupt {
                        path,
                        position: 0,
                        reason: format!("unsupported metadata format version {}", state.version),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                version: FORMAT_VERSION,
                ..State::default()
            },
            Err(e) => return Err(StorageError::io("read", &path, e)),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    /// Applies `change` to a copy of the state, persists it, then publishes it in memory.
    fn mutate(&self, change: impl FnOnce(&mut State)) -> Result<(), StorageError> {
        let mut guard = self.state.lock();
        let mut next = guard.clone();
        change(&mut next);
        let bytes = serde_json::to_vec(&next).map_err(|source| StorageError::MetaEncoding {
            path: self.path.clone(),
            source,
        })?;
        write_atomic(&self.path, &bytes)?;
        *guard = next;
        Ok(())
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<TopicMeta> {
        self.state.lock().topics.values().cloned().collect()
    }

    /// One topic.
    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.state.lock().topics.get(name).cloned()
    }

    /// Inserts or replaces a topic.
    pub fn put_topic(&self, topic: TopicMeta) -> Result<(), StorageError> {
        self.mutate(|s| {
            s.topics.insert(topic.name.clone(), topic);
        })
    }

    /// Deletes a topic and every group's committed offsets for it.
    pub fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        self.mutate(|s| {
            s.topics.remove(name);
            for offsets in s.groups.values_mut() {
                offsets.retain(|o| o.topic != name);
            }
            s.groups.retain(|_, offsets| !offsets.is_empty());
        })
    }

    /// Records committed offsets of `group` (replacing earlier commits of the same partitions).
    pub fn commit_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
    ) -> Result<(), StorageError> {
        if offsets.is_empty() {
            return Ok(());
        }
        self.mutate(|s| {
            let list = s.groups.entry(group.to_owned()).or_default();
            for o in offsets {
                match list
                    .iter_mut()
                    .find(|c| c.topic == o.topic && c.partition == o.partition)
                {
                    Some(c) => *c = o.clone(),
                    None => list.push(o.clone()),
                }
            }
            list.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        })
    }

    /// Committed offsets of `group`, sorted by topic and partition.
    pub fn committed_offsets(&self, group: &str) -> Vec<CommittedOffset> {
        self.state
            .lock()
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.state.lock().groups.keys().cloned().collect()
    }

    /// Deletes the committed offsets of the given `(topic, partition)`s of `group`.
    pub fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), StorageError> {
        self.mutate(|s| {
            if let Some(list) = s.groups.get_mut(group) {
                list.retain(|o| {
                    !partitions
                        .iter()
                        .any(|(t, p)| *t == o.topic && *p == o.partition)
                });
                if list.is_empty() {
                    s.groups.remove(group);
                }
            }
        })
    }

    /// Deletes all committed offsets of `group`.
    pub fn delete_group(&self, group: &str) -> Result<(), StorageError> {
        self.mutate(|s| {
            s.groups.remove(group);
        })
    }
}
