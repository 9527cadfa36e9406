//! Records waiting to be sent, per partition.
//!
//! Each partition has one open batch that `send` appends to, and a queue of
//! sealed batches ordered by base sequence. A batch is sealed when it would
//! exceed `batch_size`, when its `linger` has passed, or on flush/close.
//! Sealing assigns the idempotent sequence numbers, so a sealed batch keeps
//! its identity through retries; only the front of the queue may be sent,
//! and at most `max_in_flight` per partition, which keeps order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::delivery::RecordMetadata;
use crate::error::{ClientError, Result};
use crate::partitioner::Sticky;
use crate::records::encode::PendingRecord;
use crate::TopicPartition;

pub(crate) type Delivery = oneshot::Sender<Result<RecordMetadata>>;

/// The batch being filled.
#[derive(Debug)]
pub(crate) struct OpenBatch {
    pub records: Vec<PendingRecord>,
    pub deliveries: Vec<Delivery>,
    pub bytes: usize,
    pub created: Instant,
}

/// A batch whose content and sequence are fixed.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub tp: TopicPartition,
    pub records: Vec<PendingRecord>,
    pub deliveries: Vec<Delivery>,
    /// Encoded on first send, then resent as is.
    pub encoded: Option<Bytes>,
    pub bytes: usize,
    pub base_sequence: i32,
    pub created: Instant,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub last_error: Option<ClientError>,
    /// A caller's whole batch sent as bytes (`Producer::send_batch`): one
    /// delivery, no records here, no sequence of ours.
    pub raw: Option<RawInfo>,
}

/// What a raw batch's delivery reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawInfo {
    /// The batch's max timestamp.
    pub timestamp: i64,
}

impl SealedBatch {
    /// Resolves every delivery future; returns how many.
    pub fn complete(self, base_offset: i64) -> usize {
        if let Some(raw) = self.raw {
            let n = self.deliveries.len();
            for d in self.deliveries {
                let _ = d.send(Ok(RecordMetadata {
                    topic: self.tp.topic.clone(),
                    partition: self.tp.partition,
                    offset: base_offset,
                    timestamp: raw.timestamp,
                }));
            }
            return n;
        }
        let n = self.records.len();
        for (i, (d, r)) in self.deliveries.into_iter().zip(&self.records).enumerate() {
            let offset = if base_offset >= 0 {
                base_offset + i as i64
            } else {
                -1
            };
            let _ = d.send(Ok(RecordMetadata {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
                offset,
                timestamp: r.timestamp,
            }));
        }
        n
    }

    /// Fails every delivery future; returns how many.
    pub fn fail(self, err: &ClientError) -> usize {
        let n = self.deliveries.len();
        for d in self.deliveries {
            let _ = d.send(Err(err.clone()));
        }
        n
    }
}

/// One partition's queue.
#[derive(Debug, Default)]
pub(crate) struct PartQueue {
    pub open: Option<OpenBatch>,
    pub sealed: VecDeque<SealedBatch>,
    pub in_flight: usize,
    pub next_sequence: i32,
    /// A raw batch is in flight: nothing else of this partition is sent
    /// until it resolves.
    pub raw_in_flight: bool,
    /// A raw batch failed with an unknown outcome: every batch of this
    /// partition queued or appended later fails with this error, so
    /// nothing can land after a batch that may be missing.
    pub poisoned: Option<ClientError>,
}

/// Everything the producer holds, under one lock (held briefly).
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    pub parts: HashMap<TopicPartition, PartQueue>,
    pub sticky: Sticky,
    /// Records accepted and not yet resolved.
    pub outstanding: usize,
    /// Active flush calls: while > 0, open batches are sealed at once.
    pub flushing: usize,
}

impl Accumulator {
    /// Appends a record; returns true when a batch was sealed (the sender
    /// should look now) or the record opened a new batch (a linger timer
    /// starts). A sealed batch moves the sticky partition on.
    pub fn append(
        &mut self,
        tp: TopicPartition,
        rec: PendingRecord,
        delivery: Delivery,
        batch_size: usize,
        idempotent: bool,
    ) -> bool {
        let size = rec.size_estimate();
        let q = self.parts.entry(tp.clone()).or_default();
        let mut wake = false;
        let mut sealed = false;
        if q.open.as_ref().is_some_and(|o| o.bytes + size > batch_size) {
            seal(q, &tp, idempotent);
            wake = true;
            sealed = true;
        }
        let open = q.open.get_or_insert_with(|| {
            wake = true;
            OpenBatch {
                records: Vec::new(),
                deliveries: Vec::new(),
                bytes: 0,
                created: Instant::now(),
            }
        });
        open.records.push(rec);
        open.deliveries.push(delivery);
        open.bytes += size;
        if open.bytes >= batch_size {
            seal(q, &tp, idempotent);
            wake = true;
            sealed = true;
        }
        self.outstanding += 1;
        if sealed {
            self.sticky.on_batch_closed(&tp.topic, tp.partition);
        }
        wake
    }

    /// Queues a caller's whole batch after everything already appended to
    /// `tp` (the open batch is sealed first, keeping order).
    pub fn append_raw(
        &mut self,
        tp: TopicPartition,
        bytes: Bytes,
        timestamp: i64,
        delivery: Delivery,
        idempotent: bool,
    ) {
        let q = self.parts.entry(tp.clone()).or_default();
        if q.open.is_some() {
            seal(q, &tp, idempotent);
            self.sticky.on_batch_closed(&tp.topic, tp.partition);
        }
        q.sealed.push_back(SealedBatch {
            tp,
            records: Vec::new(),
            deliveries: vec![delivery],
            bytes: bytes.len(),
            encoded: Some(bytes),
            base_sequence: -1,
            created: Instant::now(),
            attempts: 0,
            retry_at: None,
            last_error: None,
            raw: Some(RawInfo { timestamp }),
        });
        self.outstanding += 1;
    }

    /// Seals open batches whose linger passed (all when flushing or
    /// `force`); returns the partitions sealed and the next linger deadline.
    pub fn seal_due(
        &mut self,
        now: Instant,
        linger: Duration,
        idempotent: bool,
        force: bool,
    ) -> (Vec<TopicPartition>, Option<Instant>) {
        let all = force || self.flushing > 0;
        let mut sealed = Vec::new();
        let mut next: Option<Instant> = None;
        for (tp, q) in &mut self.parts {
            if let Some(o) = &q.open {
                let due = o.created + linger;
                if all || due <= now {
                    seal(q, tp, idempotent);
                    self.sticky.on_batch_closed(&tp.topic, tp.partition);
                    sealed.push(tp.clone());
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        (sealed, next)
    }
}

pub(crate) fn seal(q: &mut PartQueue, tp: &TopicPartition, idempotent: bool) {
    let Some(o) = q.open.take() else { return };
    // Batches hold far fewer than 2^31 records.
    let n = o.records.len() as i32;
    let base_sequence = if idempotent {
        let s = q.next_sequence;
        q.next_sequence = q.next_sequence.wrapping_add(n) & i32::MAX;
        s
    } else {
        -1
    };
    q.sealed.push_back(SealedBatch {
        tp: tp.clone(),
        records: o.records,
        deliveries: o.deliveries,
        encoded: None,
        bytes: o.bytes,
        base_sequence,
        created: o.created,
        attempts: 0,
        retry_at: None,
        last_error: None,
        raw: None,
    });
}

/// Puts a batch back for a retry, keeping the queue ordered by sequence.
/// A raw batch is only ever sent alone, so it goes back to the front; a
/// batch of ours goes before any raw batch (which was queued after it).
pub(crate) fn requeue(q: &mut PartQueue, batch: SealedBatch, idempotent: bool) {
    if !idempotent || batch.raw.is_some() {
        q.sealed.push_front(batch);
        return;
    }
    let pos = q
        .sealed
        .iter()
        .position(|b| b.raw.is_some() || seq_before(batch.base_sequence, b.base_sequence))
        .unwrap_or(q.sealed.len());
    q.sealed.insert(pos, batch);
}

/// `a` comes before `b` in sequence order (sequences wrap at 2^31).
fn seq_before(a: i32, b: i32) -> bool {
    let d = b.wrapping_sub(a) & i32::MAX;
    d != 0 && d < (1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> PendingRecord {
        PendingRecord {
            key: None,
            value: Some(Bytes::from(vec![0u8; n])),
            headers: vec![],
            timestamp: 0,
        }
    }

    #[test]
    fn batches_seal_at_batch_size_with_consecutive_sequences() {
        let mut a = Accumulator::default();
        let tp = TopicPartition::new("t", 0);
        for _ in 0..10 {
            let (tx, _rx) = oneshot::channel();
            a.append(tp.clone(), rec(100), tx, 300, true);
        }
        let q = &a.parts[&tp];
        // 140 bytes each by estimate: two fit in 300, the third seals.
        assert_eq!(q.sealed.len(), 4);
        let seqs: Vec<i32> = q.sealed.iter().map(|b| b.base_sequence).collect();
        assert_eq!(seqs, vec![0, 2, 4, 6]);
        assert_eq!(q.open.as_ref().map(|o| o.records.len()), Some(2));
        assert_eq!(q.next_sequence, 8, "the open batch has no sequence yet");
        assert_eq!(a.outstanding, 10);
    }

    #[test]
    fn linger_and_flush_seal_open_batches() {
        let mut a = Accumulator::default();
        let tp = TopicPartition::new("t", 1);
        let (tx, _rx) = oneshot::channel();
        a.append(tp.clone(), rec(10), tx, 1 << 20, false);
        let now = Instant::now();
        let (sealed, next) = a.seal_due(now, Duration::from_secs(60), false, false);
        assert!(sealed.is_empty());
        assert!(next.is_some());
        a.flushing = 1;
        let (sealed, _) = a.seal_due(now, Duration::from_secs(60), false, false);
        assert_eq!(sealed, vec![tp.clone()]);
        assert_eq!(a.parts[&tp].sealed[0].base_sequence, -1);
    }

    #[test]
    fn requeue_keeps_sequence_order() {
        let mut q = PartQueue::default();
        let tp = TopicPartition::new("t", 0);
        let mk = |s| SealedBatch {
            tp: tp.clone(),
            records: vec![],
            deliveries: vec![],
            encoded: None,
            bytes: 0,
            base_sequence: s,
            created: Instant::now(),
            attempts: 0,
            retry_at: None,
            last_error: None,
            raw: None,
        };
        q.sealed.push_back(mk(20));
        q.sealed.push_back(mk(30));
        requeue(&mut q, mk(10), true);
        requeue(&mut q, mk(25), true);
        let s: Vec<i32> = q.sealed.iter().map(|b| b.base_sequence).collect();
        assert_eq!(s, vec![10, 20, 25, 30]);
        assert!(seq_before(i32::MAX - 1, 3), "wraps");
    }
}
