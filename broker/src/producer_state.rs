//! Idempotent-producer bookkeeping for one partition.
//!
//! As Kafka does it: for each producer id the partition remembers the epoch
//! and the last five batches (first/last sequence and the offsets they got).
//! A retried batch that matches a remembered one is answered with its
//! original offsets as a success; a gap in sequence numbers is
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`; an older epoch is fenced.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::ResponseError;

use crate::batch::BatchIdentity;

/// Batches remembered per producer (Kafka's `max.in.flight` limit for idempotence).
pub const REMEMBERED_BATCHES: usize = 5;

/// Base offset of a batch recorded before its offset is known.
pub const PENDING_OFFSET: i64 = -1;

/// Producers remembered per partition before the least recently used is dropped.
pub const MAX_PRODUCERS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct RememberedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<RememberedBatch>,
    last_used: u64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already stored at this base offset.
    Duplicate {
        /// Offset the batch got the first time.
        base_offset: i64,
    },
    /// Refuse with this error.
    Reject(ResponseError),
}

/// The producer table of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    clock: u64,
    strict: bool,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// A table for a replicated partition: an unknown producer must start
    /// at sequence 0 (see [`ProducerStates::check`]).
    pub fn strict() -> Self {
        Self {
            strict: true,
            ..Self::default()
        }
    }

    /// Decides what to do with a batch from an idempotent producer.
    pub fn check(&self, b: &BatchIdentity) -> SequenceCheck {
        let Some(entry) = self.producers.get(&b.producer_id) else {
            // Unknown producer. A new one starts at sequence 0. On a
            // replicated partition any other first sequence means earlier
            // batches are not here (lost with a leader that never committed
            // them, or state aged out): appending would let the client infer
            // they were stored, so it is told, as Kafka does, and resets its
            // sequence. A single broker stays lenient (the mirror's
            // pass-through copies batches of upstream producers as they are).
            return if b.first_seq == 0 || !self.strict {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ResponseError::UnknownProducerId)
            };
        };
        if b.epoch < entry.epoch {
            return SequenceCheck::Reject(ResponseError::InvalidProducerEpoch);
        }
        if b.epoch > entry.epoch {
            return if b.first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|r| r.first_seq == b.first_seq && r.last_seq == b.last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if b.first_seq != next_seq(last.last_seq) => {
                SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch stored at `base_offset`.
    pub fn record(&mut self, b: &BatchIdentity, base_offset: i64) {
        self.clock += 1;
        let clock = self.clock;
        if !self.producers.contains_key(&b.producer_id) && self.producers.len() >= MAX_PRODUCERS {
            self.evict_oldest();
        }
        let entry = self.producers.entry(b.producer_id).or_default();
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        entry.last_used = clock;
        entry.batches.push_back(RememberedBatch {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((&pid, _)) = self.producers.iter().min_by_key(|(_, e)| e.last_used) {
            self.producers.remove(&pid);
        }
    }

    /// Sets the offset of a batch recorded before its offset was known (a
    /// replicated append is recorded when proposed, and gets its offset when
    /// committed; until then its base offset is [`PENDING_OFFSET`]).
    pub fn settle(&mut self, b: &BatchIdentity, base_offset: i64) {
        if let Some(entry) = self.producers.get_mut(&b.producer_id) {
            if entry.epoch == b.epoch {
                for r in entry.batches.iter_mut() {
                    if r.first_seq == b.first_seq && r.last_seq == b.last_seq {
                        r.base_offset = base_offset;
                    }
                }
            }
        }
    }

    /// Forgets everything (the log was truncated or deleted).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(epoch: i16, first: i32, last: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: 7,
            epoch,
            first_seq: first,
            last_seq: last,
            last_offset_delta: last - first,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(&id(0, 0, 9)), SequenceCheck::Append);
        s.record(&id(0, 0, 9), 100);
        assert_eq!(s.check(&id(0, 10, 19)), SequenceCheck::Append);
        s.record(&id(0, 10, 19), 110);
        assert_eq!(
            s.check(&id(0, 0, 9)),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            s.check(&id(0, 10, 19)),
            SequenceCheck::Duplicate { base_offset: 110 }
        );
    }

    #[test]
    fn gaps_are_out_of_order_and_old_epochs_fenced() {
        let mut s = ProducerStates::default();
        s.record(&id(3, 0, 4), 0);
        assert_eq!(
            s.check(&id(3, 6, 7)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            s.check(&id(2, 5, 6)),
            SequenceCheck::Reject(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(s.check(&id(4, 0, 1)), SequenceCheck::Append);
        assert_eq!(
            s.check(&id(4, 3, 4)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn an_unknown_producer_must_start_at_sequence_zero_on_a_replicated_partition() {
        let s = ProducerStates::strict();
        assert_eq!(s.check(&id(0, 0, 4)), SequenceCheck::Append);
        // Its first batch never arrived here (a leader lost it uncommitted):
        // appending the second would make the client take the first as stored.
        assert_eq!(
            s.check(&id(0, 5, 9)),
            SequenceCheck::Reject(ResponseError::UnknownProducerId)
        );
        // A single broker takes it (batches copied from upstream producers).
        assert_eq!(
            ProducerStates::default().check(&id(0, 5, 9)),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&id(0, i, i), i64::from(i));
        }
        // Batch 0 and 1 are forgotten: their retry is no longer a duplicate
        // and is out of order.
        assert_eq!(
            s.check(&id(0, 1, 1)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            s.check(&id(0, 2, 2)),
            SequenceCheck::Duplicate { base_offset: 2 }
        );
    }

    #[test]
    fn a_pending_batch_gets_its_offset_when_settled() {
        let mut s = ProducerStates::default();
        s.record(&id(0, 0, 9), PENDING_OFFSET);
        assert_eq!(
            s.check(&id(0, 0, 9)),
            SequenceCheck::Duplicate {
                base_offset: PENDING_OFFSET
            }
        );
        s.settle(&id(0, 0, 9), 42);
        assert_eq!(
            s.check(&id(0, 0, 9)),
            SequenceCheck::Duplicate { base_offset: 42 }
        );
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerStates::default();
        s.record(&id(0, i32::MAX - 1, i32::MAX), 0);
        assert_eq!(s.check(&id(0, 0, 3)), SequenceCheck::Append);
    }
}
