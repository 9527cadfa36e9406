//! The Java client's default partitioner, so keyed records land on the same
//! partition whichever client produced them.
//!
//! Keyed records: `toPositive(murmur2(key)) % partitions`, with Kafka's
//! murmur2 variant (seed `0x9747b28c`, signed 32-bit arithmetic, tail bytes
//! mixed in the order 2, 1, 0). Records without a key stick to one
//! partition until the batch being filled for it is closed, then move on
//! (KIP-480's sticky partitioner), which keeps batches full at low rates.

use std::collections::HashMap;

/// Kafka's murmur2 of `data`, as Java's `Utils.murmur2` returns it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes lengths as int; keys over 2 GiB cannot be produced anyway.
    let len = data.len() as u32;
    let mut h: u32 = SEED ^ len;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit.
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % partitions
}

/// Sticky choice for records without a key, per topic.
#[derive(Debug, Default)]
pub struct Sticky {
    current: HashMap<String, i32>,
    previous: HashMap<String, i32>,
    rng: u64,
}

impl Sticky {
    /// The sticky partition of `topic`, choosing one among `available`
    /// (partitions with a leader; all of `0..partitions` when empty).
    pub fn partition(&mut self, topic: &str, partitions: i32, available: &[i32]) -> i32 {
        if let Some(p) = self.current.get(topic) {
            if *p < partitions && (available.is_empty() || available.contains(p)) {
                return *p;
            }
        }
        let avoid = self.previous.get(topic).copied();
        let p = self.pick(partitions, available, avoid);
        self.current.insert(topic.to_owned(), p);
        p
    }

    /// A batch of `topic`/`partition` was closed: if it was the sticky one,
    /// the next record picks another partition (a different one when the
    /// topic has several).
    pub fn on_batch_closed(&mut self, topic: &str, partition: i32) {
        if self.current.get(topic) == Some(&partition) {
            self.current.remove(topic);
            self.previous.insert(topic.to_owned(), partition);
        }
    }

    fn pick(&mut self, partitions: i32, available: &[i32], avoid: Option<i32>) -> i32 {
        let all: Vec<i32>;
        let candidates: &[i32] = if available.is_empty() {
            all = (0..partitions.max(1)).collect();
            &all
        } else {
            available
        };
        let filtered: Vec<i32> = candidates
            .iter()
            .copied()
            .filter(|p| Some(*p) != avoid)
            .collect();
        let pool = if filtered.is_empty() {
            candidates
        } else {
            &filtered
        };
        let i = (self.next_random() % pool.len() as u64) as usize;
        pool[i]
    }

    fn next_random(&mut self) -> u64 {
        if self.rng == 0 {
            let mut seed = [0u8; 8];
            // A fixed seed is fine when the OS has no randomness: any
            // partition is a valid sticky choice.
            let _ = getrandom::fill(&mut seed);
            self.rng = u64::from_le_bytes(seed) | 1;
        }
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of Kafka's `UtilsTest.testMurmur2` and librdkafka's
    /// `rdmurmur2.c` unit test (both Java-compatible).
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
            (b"kafka", -798_503_068),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), *want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        // toPositive(-973932308) = 1173551340; % 10 = 0
        assert_eq!(partition_for_key(b"21", 10), 1_173_551_340 % 10);
        for n in 1..20 {
            let p = partition_for_key(b"foobar", n);
            assert!((0..n).contains(&p));
        }
    }

    #[test]
    fn sticky_stays_then_moves_on_batch_close() {
        let mut s = Sticky::default();
        let p = s.partition("t", 4, &[]);
        for _ in 0..10 {
            assert_eq!(s.partition("t", 4, &[]), p);
        }
        s.on_batch_closed("t", p);
        let q = s.partition("t", 4, &[]);
        assert_ne!(p, q, "moves to another partition");
        // Closing a batch of a non-sticky partition changes nothing.
        s.on_batch_closed("t", (q + 1) % 4);
        assert_eq!(s.partition("t", 4, &[]), q);
        // Only available partitions are chosen.
        let mut s = Sticky::default();
        for _ in 0..20 {
            let p = s.partition("u", 8, &[3, 5]);
            assert!(p == 3 || p == 5);
            s.on_batch_closed("u", p);
        }
        // One partition: it stays.
        let mut s = Sticky::default();
        assert_eq!(s.partition("v", 1, &[]), 0);
        s.on_batch_closed("v", 0);
        assert_eq!(s.partition("v", 1, &[]), 0);
    }
}
