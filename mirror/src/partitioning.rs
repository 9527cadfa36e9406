//! Choosing the target partition of a mirrored record.
//!
//! The target usually has a different partition count than the upstream
//! (re-partitioning to the local parallelism), and several upstream topics
//! merge into one target, so the upstream partition number means nothing
//! locally. The rule, in order:
//! 1. a record with a key goes where a Kafka producer would put it
//!    (murmur2 of the key, as the Java client and librdkafka's
//!    `murmur2_random` do), so keyed data keeps its per-key order;
//! 2. a keyless alert goes by a hash of its alert id (read cheaply from the
//!    body, see `alert_id`), so an alert always lands in the same partition;
//! 3. otherwise by a CRC-32C of the value bytes (hardware-accelerated, and
//!    deterministic: a re-mirrored record lands where it did before).

use starlog_clients::partitioner::{murmur2, partition_for_key, to_positive};

/// Why a partition was chosen (counted in the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Basis {
    /// murmur2 of the key.
    Key,
    /// Hash of the alert id.
    AlertId,
    /// CRC-32C of the value.
    ValueHash,
}

/// The target partition among `n` (n ≥ 1).
pub fn choose(
    key: Option<&[u8]>,
    alert_id: Option<i64>,
    value: Option<&[u8]>,
    n: i32,
) -> (i32, Basis) {
    let n = n.max(1);
    if let Some(k) = key {
        return (partition_for_key(k, n), Basis::Key);
    }
    if let Some(id) = alert_id {
        return (to_positive(murmur2(&id.to_be_bytes())) % n, Basis::AlertId);
    }
    let h = crc32c::crc32c(value.unwrap_or_default());
    // u32 % n fits in i32 since n is a positive i32.
    let p = i32::try_from(h % n.unsigned_abs()).unwrap_or(0);
    (p, Basis::ValueHash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_win_then_alert_ids_then_values() {
        let (p, b) = choose(Some(b"k"), Some(5), Some(b"v"), 8);
        assert_eq!((p, b), (partition_for_key(b"k", 8), Basis::Key));
        let (p1, b) = choose(None, Some(123_456_789), Some(b"v1"), 8);
        let (p2, _) = choose(None, Some(123_456_789), Some(b"v2"), 8);
        assert_eq!(b, Basis::AlertId);
        assert_eq!(p1, p2, "same alert id, same partition whatever the bytes");
        let (_, b) = choose(None, None, Some(b"v"), 8);
        assert_eq!(b, Basis::ValueHash);
        for n in [1, 3, 16] {
            for id in 0..200i64 {
                let (p, _) = choose(None, Some(id * 7919), None, n);
                assert!((0..n).contains(&p));
                let (p, _) = choose(None, None, Some(&id.to_le_bytes()), n);
                assert!((0..n).contains(&p));
            }
        }
    }

    #[test]
    fn alert_ids_spread_over_partitions() {
        let mut counts = [0usize; 4];
        for id in 0..4000i64 {
            let (p, _) = choose(None, Some(1_000_000_000 + id), None, 4);
            counts[usize::try_from(p).unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }
}
