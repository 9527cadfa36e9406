//! Pass-through: upstream batches copied into the target as bytes.
//!
//! With `partitioning: preserve` a rule keeps every record in its upstream
//! partition number, so an upstream batch whose values need no schema-id
//! change can go to the target unchanged: the producer sends it as is
//! (`Producer::send_batch`) and the broker only sets the base offset and
//! the partition leader epoch, which lie outside the CRC. No record is
//! decoded for the write, no provenance header is added.
//!
//! Exactly once without headers: the records of a pass-through batch do not
//! say where they came from, so after a crash the mirror recognises them by
//! their bytes. At start-up the local tails above the checkpoint's covered
//! offsets are read back (`recovery`); a batch without provenance headers
//! is a pass-through batch of the previous run, remembered here by its
//! [`Fingerprint`] (length, CRC, and a 64-bit hash of everything the CRC
//! covers). Before an upstream batch is written again, it is looked up
//! among the remembered batches of its target partition: a match means it
//! is already there, and the records count as present. The lookup for one
//! upstream partition only moves forward through the tail (its batches
//! landed in its order), so byte-identical batches of different upstream
//! partitions are told apart by position; two batches that are identical
//! in every byte the CRC covers are interchangeable anyway.
//!
//! Why the tail is exactly a prefix of what was sent: every record of an
//! upstream partition goes to the same target partition, the producer keeps
//! each partition's order, and a pass-through batch is sent alone (nothing
//! else of that partition in flight) and ends everything after it when its
//! outcome is unknown. So for each upstream partition, the target holds a
//! prefix of what the killed run sent for it after the checkpoint; once one
//! of its batches is not found, none after it can be there and its lookup
//! ends. Remembered batches nobody can claim any more (every upstream
//! partition that writes to that target has ended its lookup, or is past
//! the upstream end it had at start-up) are released with a warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use bytes::{Bytes, BytesMut};
use starlog_clients::TopicPartition;
use starlog_wire::{patch_producer, recompute_crc, BatchHeader, CRC_START};
use tracing::warn;

/// Identifies a batch by what the CRC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    len: usize,
    crc: u32,
    hash: u64,
}

/// The fingerprint of a whole batch (base offset field first).
pub fn fingerprint(batch: &[u8]) -> Option<Fingerprint> {
    let h = BatchHeader::read(batch).ok()?;
    let covered = batch.get(CRC_START..)?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    covered.hash(&mut hasher);
    Some(Fingerprint {
        len: batch.len(),
        crc: h.crc,
        hash: hasher.finish(),
    })
}

/// Why a batch's header rules out copying it as bytes.
pub fn header_refusal(h: &BatchHeader) -> Option<&'static str> {
    if h.magic != starlog_wire::MAGIC_V2 {
        return Some("not a v2 batch");
    }
    if h.is_control() {
        return Some("control batch");
    }
    if h.is_transactional() {
        return Some("transactional batch");
    }
    if h.is_log_append_time() {
        return Some("log-append-time batch");
    }
    None
}

/// The bytes to send for an upstream batch: unchanged when it carries no
/// producer id; otherwise a copy with the producer id, epoch and base
/// sequence cleared and the CRC recomputed (the upstream producer's
/// sequences mean nothing to the local broker, and several upstream topics
/// written by one producer would collide in a merged target).
pub fn outgoing(batch: &Bytes) -> Option<Bytes> {
    let h = BatchHeader::read(batch).ok()?;
    if h.producer_id < 0 && h.base_sequence < 0 {
        return Some(batch.clone());
    }
    let mut out = BytesMut::from(&batch[..]);
    patch_producer(&mut out, -1, -1, -1).ok()?;
    recompute_crc(&mut out).ok()?;
    Some(out.freeze())
}

/// A pass-through batch of a previous run found in a local tail.
#[derive(Debug, Clone)]
struct TailBatch {
    offset: i64,
    records: i64,
    fingerprint: Fingerprint,
    claimed: bool,
}

/// The remembered pass-through batches of one target partition.
#[derive(Debug, Default)]
struct Tail {
    batches: Vec<TailBatch>,
    /// Upstream partitions that may still claim a batch here, with how far
    /// their lookup got and the upstream end they had at start-up.
    sources: HashMap<TopicPartition, (usize, i64)>,
}

/// Pass-through batches found at recovery, not yet claimed.
#[derive(Debug, Default)]
pub struct Tails {
    tails: BTreeMap<TopicPartition, Tail>,
}

impl Tails {
    /// Remembers a pass-through batch found at `offset` of `target`.
    pub fn add(&mut self, target: TopicPartition, offset: i64, records: i64, fp: Fingerprint) {
        self.tails
            .entry(target)
            .or_default()
            .batches
            .push(TailBatch {
                offset,
                records,
                fingerprint: fp,
                claimed: false,
            });
    }

    /// Target partitions with remembered batches.
    pub fn targets(&self) -> Vec<TopicPartition> {
        self.tails.keys().cloned().collect()
    }

    /// `source` may have written to `target` before the crash; its upstream
    /// ended at `end` at start-up.
    pub fn add_source(&mut self, target: &TopicPartition, source: TopicPartition, end: i64) {
        if let Some(t) = self.tails.get_mut(target) {
            t.sources.insert(source, (0, end));
        }
    }

    /// Whether `target` still has batches to claim.
    pub fn pending(&self, target: &TopicPartition) -> bool {
        self.tails.contains_key(target)
    }

    /// Finds the batch of `source` with this fingerprint in `target`'s
    /// tail: its target offset, if found.
    pub fn claim(
        &mut self,
        source: &TopicPartition,
        target: &TopicPartition,
        fp: &Fingerprint,
    ) -> Option<i64> {
        let t = self.tails.get_mut(target)?;
        let (cursor, _) = t.sources.get(source).copied()?;
        let i = t.batches[cursor..]
            .iter()
            .position(|b| !b.claimed && b.fingerprint == *fp)?
            + cursor;
        t.batches[i].claimed = true;
        let offset = t.batches[i].offset;
        if let Some(s) = t.sources.get_mut(source) {
            s.0 = i + 1;
        }
        self.release_if_done(target);
        Some(offset)
    }

    /// `source` can claim nothing more in `target` (one of its batches was
    /// not there).
    pub fn source_done(&mut self, source: &TopicPartition, target: &TopicPartition) {
        if let Some(t) = self.tails.get_mut(target) {
            t.sources.remove(source);
        }
        self.release_if_done(target);
    }

    /// Ends the lookup of every source whose position reached the upstream
    /// end it had at start-up.
    pub fn sources_at(&mut self, positions: &BTreeMap<TopicPartition, i64>) {
        let targets = self.targets();
        for target in targets {
            if let Some(t) = self.tails.get_mut(&target) {
                t.sources
                    .retain(|s, (_, end)| positions.get(s).is_none_or(|p| p < end));
            }
            self.release_if_done(&target);
        }
    }

    fn release_if_done(&mut self, target: &TopicPartition) {
        let Some(t) = self.tails.get(target) else {
            return;
        };
        let all_claimed = t.batches.iter().all(|b| b.claimed);
        if !all_claimed && !t.sources.is_empty() {
            return;
        }
        let left: Vec<&TailBatch> = t.batches.iter().filter(|b| !b.claimed).collect();
        if !left.is_empty() {
            warn!(
                target = %target,
                batches = left.len(),
                records = left.iter().map(|b| b.records).sum::<i64>(),
                first_offset = left[0].offset,
                "local batches written after the last checkpoint match no upstream batch (written by something else?); they stay, the mirror no longer looks for them"
            );
        }
        self.tails.remove(target);
    }

    /// The lowest unclaimed target offset per target partition: the
    /// checkpoint's covered offset may not pass it.
    pub fn low_marks(&self) -> BTreeMap<TopicPartition, i64> {
        self.tails
            .iter()
            .filter_map(|(tp, t)| {
                t.batches
                    .iter()
                    .filter(|b| !b.claimed)
                    .map(|b| b.offset)
                    .min()
                    .map(|o| (tp.clone(), o))
            })
            .collect()
    }

    /// Upstream partitions that still look up batches somewhere.
    pub fn live_sources(&self) -> HashSet<TopicPartition> {
        self.tails
            .values()
            .flat_map(|t| t.sources.keys().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starlog_clients::records::encode::{encode_batch, BatchMeta, PendingRecord};
    use starlog_clients::Compression;

    fn batch(meta: BatchMeta, v: &'static [u8]) -> Bytes {
        let r = PendingRecord {
            key: None,
            value: Some(Bytes::from_static(v)),
            headers: vec![],
            timestamp: 1_000,
        };
        encode_batch(&[r], Compression::None, meta).unwrap()
    }

    #[test]
    fn batches_without_producer_id_go_unchanged_others_are_cleared() {
        let plain = batch(BatchMeta::plain(), b"abc");
        assert_eq!(outgoing(&plain).unwrap(), plain);
        let idem = batch(
            BatchMeta {
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 42,
            },
            b"abc",
        );
        let out = outgoing(&idem).unwrap();
        let h = BatchHeader::read(&out).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (-1, -1, -1)
        );
        starlog_wire::verify_crc(&out).unwrap();
        assert_eq!(out, plain, "same records, cleared ids: the plain batch");
        assert_eq!(fingerprint(&out), fingerprint(&plain));
        assert_ne!(
            fingerprint(&plain),
            fingerprint(&batch(BatchMeta::plain(), b"abd"))
        );
    }

    #[test]
    fn lookups_move_forward_per_source_and_release_when_done() {
        let t = TopicPartition::new("buf", 0);
        let (a, b) = (TopicPartition::new("d1", 0), TopicPartition::new("d2", 0));
        let fp = |n: u64| Fingerprint {
            len: 10,
            crc: 1,
            hash: n,
        };
        let mut tails = Tails::default();
        // Tail: X(b) Y(a) X(a) — X is byte-identical in both sources.
        tails.add(t.clone(), 100, 2, fp(1));
        tails.add(t.clone(), 102, 2, fp(2));
        tails.add(t.clone(), 104, 2, fp(1));
        tails.add_source(&t, a.clone(), 50);
        tails.add_source(&t, b.clone(), 50);
        assert_eq!(tails.low_marks()[&t], 100);
        assert_eq!(tails.claim(&a, &t, &fp(2)), Some(102));
        assert_eq!(tails.claim(&a, &t, &fp(1)), Some(104), "after a's cursor");
        assert_eq!(tails.claim(&b, &t, &fp(1)), Some(100));
        assert!(!tails.pending(&t), "all claimed");
        // Unclaimable batches are released once every source is done.
        tails.add(t.clone(), 200, 1, fp(9));
        tails.add_source(&t, a.clone(), 50);
        tails.add_source(&t, b.clone(), 60);
        assert_eq!(tails.claim(&a, &t, &fp(3)), None);
        tails.source_done(&a, &t);
        assert!(tails.pending(&t));
        tails.sources_at(&[(b.clone(), 60)].into_iter().collect());
        assert!(!tails.pending(&t));
        assert!(tails.low_marks().is_empty());
    }
}
