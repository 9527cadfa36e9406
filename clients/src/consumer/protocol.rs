//! The consumer protocol's opaque bytes inside JoinGroup and SyncGroup:
//! a member's subscription (topics, partitions it owns, generation) and the
//! leader's assignment, each prefixed by its int16 version as the Java
//! client writes them, so mixed groups understand each other.
//!
//! Encoding uses the codec crate's message types. Decoding is ours: these
//! bytes come from other members through the broker, and the codec
//! pre-allocates arrays from the count a message claims, so a garbled
//! count would allocate gigabytes. Our reader checks every count against
//! the bytes actually left.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTp;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::TopicPartition;

/// Subscription version we write (v2: owned partitions and generation).
pub const SUBSCRIPTION_VERSION: i16 = 2;
/// Assignment version we write.
pub const ASSIGNMENT_VERSION: i16 = 1;

/// A member's subscription, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics subscribed.
    pub topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocol).
    pub owned: Vec<TopicPartition>,
    /// Generation in which it owned them, -1 when unknown.
    pub generation: i32,
}

fn group(tps: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for tp in tps {
        match out.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => out.push((tp.topic.clone(), vec![tp.partition])),
        }
    }
    out
}

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_owned()))
}

/// Encodes a subscription.
pub fn encode_subscription(s: &Subscription) -> Bytes {
    let msg = ConsumerProtocolSubscription::default()
        .with_topics(
            s.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_owned_partitions(
            group(&s.owned)
                .into_iter()
                .map(|(t, ps)| OwnedTp::default().with_topic(name(&t)).with_partitions(ps))
                .collect(),
        )
        .with_generation_id(s.generation);
    encode_versioned(&msg, SUBSCRIPTION_VERSION)
}

/// Decodes a subscription of any version (fields of newer versions
/// than 3 are ignored, as the protocol allows).
pub fn decode_subscription(bytes: &Bytes) -> Result<Subscription, String> {
    let (version, body) = split_version(bytes)?;
    let mut r = Reader(body);
    let n = r.count(2)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string()?);
    }
    r.nullable_bytes()?;
    let owned = if version >= 1 {
        r.topic_partitions()?
    } else {
        Vec::new()
    };
    let generation = if version >= 2 { r.i32()? } else { -1 };
    Ok(Subscription {
        topics,
        owned,
        generation,
    })
}

/// Encodes an assignment.
pub fn encode_assignment(tps: &[TopicPartition]) -> Bytes {
    let msg = ConsumerProtocolAssignment::default().with_assigned_partitions(
        group(tps)
            .into_iter()
            .map(|(t, ps)| {
                AssignedTp::default()
                    .with_topic(name(&t))
                    .with_partitions(ps)
            })
            .collect(),
    );
    encode_versioned(&msg, ASSIGNMENT_VERSION)
}

/// Decodes an assignment of any version; empty bytes mean nothing assigned.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (_version, body) = split_version(bytes)?;
    Reader(body).topic_partitions()
}

/// A bounds-checked reader of the (non-flexible) consumer protocol.
struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<(), String> {
        if self.0.remaining() < n {
            Err(format!(
                "truncated {what}: {n} bytes needed, {} left",
                self.0.remaining()
            ))
        } else {
            Ok(())
        }
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.need(2, "int16")?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.need(4, "int32")?;
        Ok(self.0.get_i32())
    }
    /// An array count whose elements take at least `min_size` bytes each.
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| format!("negative array count {n}"))?;
        if n.saturating_mul(min_size) > self.0.remaining() {
            return Err(format!(
                "array of {n} claimed, {} bytes left",
                self.0.remaining()
            ));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| format!("null or negative string length {n}"))?;
        self.need(n, "string")?;
        let b = self.0.split_to(n);
        String::from_utf8(b.to_vec()).map_err(|e| format!("string: {e}"))
    }
    fn nullable_bytes(&mut self) -> Result<(), String> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(());
        }
        // Non-negative, checked above.
        let n = n as usize;
        self.need(n, "bytes")?;
        self.0.advance(n);
        Ok(())
    }
    fn topic_partitions(&mut self) -> Result<Vec<TopicPartition>, String> {
        let n = self.count(6)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let topic = self.string()?;
            let k = self.count(4)?;
            for _ in 0..k {
                out.push(TopicPartition::new(topic.clone(), self.i32()?));
            }
        }
        Ok(out)
    }
}

fn split_version(bytes: &Bytes) -> Result<(i16, Bytes), String> {
    if bytes.len() < 2 {
        return Err(format!("{} bytes, no version", bytes.len()));
    }
    let mut b = bytes.clone();
    let version = b.get_i16();
    if version < 0 {
        return Err(format!("negative version {version}"));
    }
    Ok((version, b))
}

fn encode_versioned<M: Encodable>(m: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Encoding our own well-formed message into a growable buffer only
    // fails for out-of-range versions, which are constants here.
    if m.encode(&mut buf, version).is_err() {
        buf.truncate(2);
    }
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 1),
            ],
            generation: 7,
        };
        assert_eq!(decode_subscription(&encode_subscription(&s)).unwrap(), s);
        let a = vec![TopicPartition::new("a", 1), TopicPartition::new("b", 0)];
        assert_eq!(decode_assignment(&encode_assignment(&a)).unwrap(), a);
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), vec![]);
    }

    #[test]
    fn garbage_is_an_error() {
        for junk in [&b"\x00"[..], b"\xff\xff\x00", b"\x00\x00\x7f\xff\xff\xff"] {
            assert!(
                decode_subscription(&Bytes::copy_from_slice(junk)).is_err(),
                "{junk:?}"
            );
        }
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x00\x00\x00\x00\x09")).is_err());
        assert!(decode_assignment(&Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff")).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let b = Bytes::from(b);
            let _ = decode_subscription(&b);
            let _ = decode_assignment(&b);
        }
    }
}
