//! The mirror's checkpoint, stored as consumer-group offsets on the LOCAL
//! broker.
//!
//! A checkpoint says two things at once, and must say them atomically:
//! - for each upstream partition, the next upstream offset to read (every
//!   record below it is in the local log or was deliberately skipped);
//! - for each local partition the mirror writes, a target offset below
//!   which every mirrored record is covered by those upstream positions.
//!   Records at or above it may be newer; after a crash they are found by
//!   reading from there (`recovery`).
//!
//! Both go into ONE OffsetCommit of the group `starlog-mirror.<name>`: the
//! committed offset of each local partition is its covered offset, and the
//! upstream positions travel in the commit metadata, as text chunks spread
//! over those partitions (the broker bounds metadata per partition). An
//! OffsetCommit is stored in one atomic write, so a `kill -9` leaves the
//! previous checkpoint or this one, never a mix. Each chunk carries the
//! checkpoint's sequence number and its index, so chunks left on
//! partitions from an older layout are recognised and ignored.
//!
//! Operators see the positions with any Kafka tool that describes groups.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_clients::cluster::Cluster;
use starlog_clients::{ClientError, TopicPartition};

/// Metadata bytes per partition we allow ourselves (the broker's default
/// limit is 4096).
pub const CHUNK_BYTES: usize = 3800;

const MAGIC: &str = "starlog-mirror/1";

/// A checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Increases with every checkpoint written.
    pub seq: u64,
    /// Next upstream offset per upstream partition.
    pub upstream: BTreeMap<TopicPartition, i64>,
    /// Covered offset per local partition written.
    pub targets: BTreeMap<TopicPartition, i64>,
}

/// What the checkpoint's commit holds per local partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The local partition.
    pub tp: TopicPartition,
    /// Its covered offset.
    pub offset: i64,
    /// The metadata text.
    pub metadata: String,
}

/// Splits a checkpoint into commit entries. Fails when the upstream
/// positions do not fit the metadata of the local partitions.
pub fn encode(cp: &Checkpoint) -> Result<Vec<Entry>, String> {
    let n = cp.targets.len();
    if n == 0 {
        return Err("no local partition to store the checkpoint on".into());
    }
    let lines: Vec<String> = cp
        .upstream
        .iter()
        .map(|(tp, o)| format!("{} {} {o}\n", tp.topic, tp.partition))
        .collect();
    let mut chunks: Vec<String> = vec![String::new()];
    for line in lines {
        let cur = chunks.last().map_or(0, String::len);
        if cur + line.len() > CHUNK_BYTES - 64 {
            chunks.push(String::new());
        }
        if let Some(c) = chunks.last_mut() {
            c.push_str(&line);
        }
    }
    if chunks.len() > n {
        return Err(format!(
            "{} upstream positions need {} metadata chunks but only {n} local partitions are written",
            cp.upstream.len(),
            chunks.len()
        ));
    }
    chunks.resize(n, String::new());
    Ok(cp
        .targets
        .iter()
        .zip(chunks)
        .enumerate()
        .map(|(i, ((tp, offset), body))| Entry {
            tp: tp.clone(),
            offset: *offset,
            metadata: format!("{MAGIC} seq={} chunk={i}/{n}\n{body}", cp.seq),
        })
        .collect())
}

/// Rebuilds the newest complete checkpoint from committed entries (which
/// may include foreign or stale ones). `Ok(None)`: nothing was ever
/// checkpointed.
pub fn decode(entries: &[Entry]) -> Result<Option<Checkpoint>, String> {
    let mut parsed: Vec<(u64, usize, usize, &Entry, &str)> = Vec::new();
    for e in entries {
        let Some((head, body)) = e.metadata.split_once('\n') else {
            continue;
        };
        let mut words = head.split(' ');
        if words.next() != Some(MAGIC) {
            continue;
        }
        let seq = words
            .next()
            .and_then(|w| w.strip_prefix("seq="))
            .and_then(|w| w.parse::<u64>().ok());
        let chunk = words
            .next()
            .and_then(|w| w.strip_prefix("chunk="))
            .and_then(|w| w.split_once('/'))
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
        let (Some(seq), Some((i, n))) = (seq, chunk) else {
            return Err(format!("unreadable checkpoint header {head:?} on {}", e.tp));
        };
        parsed.push((seq, i, n, e, body));
    }
    let Some(seq) = parsed.iter().map(|p| p.0).max() else {
        return Ok(None);
    };
    let newest: Vec<_> = parsed.into_iter().filter(|p| p.0 == seq).collect();
    let n = newest[0].2;
    let mut seen = vec![false; n];
    let mut cp = Checkpoint {
        seq,
        ..Checkpoint::default()
    };
    for (_, i, n2, e, body) in &newest {
        if *n2 != n || *i >= n || seen[*i] {
            return Err(format!(
                "checkpoint {seq}: inconsistent chunk {i}/{n2} on {}",
                e.tp
            ));
        }
        seen[*i] = true;
        cp.targets.insert(e.tp.clone(), e.offset);
        for line in body.lines().filter(|l| !l.is_empty()) {
            let mut w = line.split(' ');
            let parsed = (|| {
                let t = w.next()?;
                let p = w.next()?.parse::<i32>().ok()?;
                let o = w.next()?.parse::<i64>().ok()?;
                w.next().is_none().then(|| (t.to_owned(), p, o))
            })();
            let Some((t, p, o)) = parsed else {
                return Err(format!("checkpoint {seq}: bad line {line:?} on {}", e.tp));
            };
            cp.upstream.insert(TopicPartition::new(t, p), o);
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("checkpoint {seq}: chunk {missing}/{n} is missing"));
    }
    Ok(Some(cp))
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

/// Writes `entries` in one OffsetCommit (retrying retriable errors a few
/// times).
pub async fn commit(
    cluster: &Arc<Cluster>,
    group: &str,
    entries: &[Entry],
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_topic.entry(&e.tp.topic).or_default().push(e);
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, es)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(name(t))
                        .with_partitions(
                            es.into_iter()
                                .map(|e| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(e.tp.partition)
                                        .with_committed_offset(e.offset)
                                        .with_committed_metadata(Some(StrBytes::from_string(
                                            e.metadata.clone(),
                                        )))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let mut last = None;
    for attempt in 0..6u32 {
        if attempt > 0 {
            cluster.backoff().await;
        }
        let res = async {
            let conn = cluster.coordinator(group).await?;
            let resp = conn.call(&req).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    if let Some(error) = ResponseError::try_from_code(p.error_code) {
                        return Err(ClientError::Broker {
                            context: format!(
                                "checkpoint commit of {}/{} for group {group}",
                                t.name.0, p.partition_index
                            ),
                            error,
                        });
                    }
                }
            }
            Ok(())
        }
        .await;
        match res {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retriable() => {
                cluster.forget_coordinator(group);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::Group {
        group: group.to_owned(),
        reason: "checkpoint commit failed".into(),
    }))
}

/// Every committed entry of `group` (all topics).
pub async fn fetch(cluster: &Arc<Cluster>, group: &str) -> Result<Vec<Entry>, ClientError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(None);
    let mut last = None;
    for attempt in 0..6u32 {
        if attempt > 0 {
            cluster.backoff().await;
        }
        let res = async {
            let conn = cluster.coordinator(group).await?;
            let resp = conn.call(&req).await?;
            if let Some(error) = ResponseError::try_from_code(resp.error_code) {
                return Err(ClientError::Broker {
                    context: format!("checkpoint fetch for group {group}"),
                    error,
                });
            }
            let mut out = Vec::new();
            for t in &resp.topics {
                for p in &t.partitions {
                    if p.committed_offset < 0 {
                        continue;
                    }
                    out.push(Entry {
                        tp: TopicPartition::new(t.name.0.to_string(), p.partition_index),
                        offset: p.committed_offset,
                        metadata: p
                            .metadata
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                    });
                }
            }
            Ok(out)
        }
        .await;
        match res {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retriable() => {
                cluster.forget_coordinator(group);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::Group {
        group: group.to_owned(),
        reason: "checkpoint fetch failed".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(seq: u64, ups: usize, targets: usize) -> Checkpoint {
        Checkpoint {
            seq,
            upstream: (0..ups)
                .map(|i| {
                    (
                        TopicPartition::new(format!("ztf_2019112{}_programid1", i % 10), i as i32),
                        i as i64 * 1000,
                    )
                })
                .collect(),
            targets: (0..targets)
                .map(|i| (TopicPartition::new("ztf-buffer", i as i32), i as i64 * 7))
                .collect(),
        }
    }

    #[test]
    fn round_trips_across_chunks() {
        for (ups, targets) in [(0, 1), (3, 1), (3, 4), (250, 4)] {
            let c = cp(9, ups, targets);
            let entries = encode(&c).unwrap();
            assert_eq!(entries.len(), targets);
            assert!(entries.iter().all(|e| e.metadata.len() <= CHUNK_BYTES));
            assert_eq!(decode(&entries).unwrap(), Some(c));
        }
    }

    #[test]
    fn too_many_positions_for_the_partitions_is_an_error() {
        assert!(encode(&cp(1, 1000, 2)).is_err());
        assert!(encode(&cp(1, 1, 0)).is_err());
    }

    #[test]
    fn the_newest_complete_checkpoint_wins_and_foreign_entries_are_ignored() {
        let old = encode(&cp(3, 5, 4)).unwrap();
        let new = encode(&cp(4, 6, 2)).unwrap();
        let mut all: Vec<Entry> = old[2..].to_vec();
        all.extend(new.clone());
        all.push(Entry {
            tp: TopicPartition::new("other", 0),
            offset: 5,
            metadata: "something else".into(),
        });
        assert_eq!(decode(&all).unwrap(), Some(cp(4, 6, 2)));
        assert_eq!(decode(&[]).unwrap(), None);
        // A missing chunk of the newest checkpoint cannot be trusted.
        assert!(decode(&new[..1]).is_err());
        let mut bad = new.clone();
        bad[0].metadata = format!("{MAGIC} seq=4 chunk=0/2\nztf 0 notanumber\n");
        assert!(decode(&bad).is_err());
        bad[0].metadata = format!("{MAGIC} seq=x\n");
        assert!(decode(&bad).is_err());
    }
}
