//! How Raft messages leave a node: the [`Transport`] trait, and a frame codec for putting a
//! batch of messages on a byte stream.
//!
//! The driver hands the transport every message of a loop turn for one peer in a single call
//! (all groups together), so heartbeats and appends of many partitions to the same broker
//! travel in one frame. Delivery is best effort: Raft tolerates loss, duplication and
//! reordering, so a transport may drop a frame when a connection is down rather than queue
//! without bound. Incoming frames go to `Driver::receive`.

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::error::ReplicationError;
use crate::ids::{GroupId, NodeId};

/// One Raft message of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The group (partition) the message belongs to.
    pub group: GroupId,
    /// The raft-rs message (`from` and `to` are node ids).
    pub message: Message,
}

/// Sends messages to peers (TCP between brokers, or in memory in tests).
pub trait Transport {
    /// Sends `envelopes` (all for node `to`) best effort. Must not block on the network for
    /// long: the driver loop calls it.
    fn send(&mut self, to: NodeId, envelopes: Vec<Envelope>);
}

/// Largest number of envelopes [`decode_frame`] accepts in one frame.
pub const MAX_ENVELOPES_PER_FRAME: usize = 1 << 20;

/// Encodes envelopes as one frame: count (u32), then per envelope the group id (u64), the
/// message length (u32) and the protobuf-encoded message (big-endian integers).
pub fn encode_frame(envelopes: &[Envelope]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        &u32::try_from(envelopes.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    for e in envelopes {
        out.extend_from_slice(&e.group.0.to_be_bytes());
        // Encoding an in-memory message cannot fail.
        let bytes = e.message.write_to_bytes().unwrap_or_default();
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn frame_err(position: usize, reason: impl Into<String>) -> ReplicationError {
    ReplicationError::Frame {
        position,
        reason: reason.into(),
    }
}

fn take<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    n: usize,
    what: &str,
) -> Result<&'a [u8], ReplicationError> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| {
            frame_err(
                *pos,
                format!("{what}: need {n} bytes, {} left", buf.len() - *pos),
            )
        })?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn be_u32(buf: &[u8], pos: &mut usize, what: &str) -> Result<u32, ReplicationError> {
    let s = take(buf, pos, 4, what)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Decodes a frame written by [`encode_frame`]; any malformed input is an error naming the
/// byte position, never a panic.
pub fn decode_frame(buf: &[u8]) -> Result<Vec<Envelope>, ReplicationError> {
    let mut pos = 0;
    let count = be_u32(buf, &mut pos, "envelope count")? as usize;
    if count > MAX_ENVELOPES_PER_FRAME {
        return Err(frame_err(
            0,
            format!("{count} envelopes exceed the limit {MAX_ENVELOPES_PER_FRAME}"),
        ));
    }
    // Each envelope takes at least 12 bytes, so a lying count cannot make us allocate much.
    let mut out = Vec::with_capacity(count.min(buf.len() / 12));
    for _ in 0..count {
        let g = take(buf, &mut pos, 8, "group id")?;
        let mut id = [0u8; 8];
        id.copy_from_slice(g);
        let len = be_u32(buf, &mut pos, "message length")? as usize;
        let at = pos;
        let bytes = take(buf, &mut pos, len, "message")?;
        let message = Message::parse_from_bytes(bytes)
            .map_err(|e| frame_err(at, format!("raft message: {e}")))?;
        out.push(Envelope {
            group: GroupId(u64::from_be_bytes(id)),
            message,
        });
    }
    if pos != buf.len() {
        return Err(frame_err(
            pos,
            format!("{} trailing bytes", buf.len() - pos),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raft::eraftpb::{Entry, MessageType};

    fn sample() -> Vec<Envelope> {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 1;
        m.to = 2;
        m.term = 3;
        m.index = 4;
        let e = Entry {
            index: 5,
            term: 3,
            data: bytes::Bytes::from_static(b"batch bytes"),
            ..Entry::default()
        };
        m.entries = vec![e].into();
        let mut hb = Message::default();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.from = 1;
        hb.to = 2;
        vec![
            Envelope {
                group: GroupId(7),
                message: m,
            },
            Envelope {
                group: GroupId(u64::MAX),
                message: hb,
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        let frame = encode_frame(&sample());
        assert_eq!(decode_frame(&frame).unwrap(), sample());
        assert_eq!(decode_frame(&encode_frame(&[])).unwrap(), vec![]);
    }

    #[test]
    fn truncated_frames_and_trailing_bytes_are_errors() {
        let frame = encode_frame(&sample());
        for len in 0..frame.len() {
            assert!(
                matches!(
                    decode_frame(&frame[..len]),
                    Err(ReplicationError::Frame { .. })
                ),
                "truncation at {len} accepted"
            );
        }
        let mut long = frame.clone();
        long.push(1);
        let err = decode_frame(&long).unwrap_err().to_string();
        assert!(err.contains("trailing"), "{err}");
        let err = decode_frame(&[0xff, 0xff, 0xff, 0xff])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exceed"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn decoding_a_corrupted_frame_never_panics(flip in 0usize..64, bit in 0u8..8) {
            let mut frame = encode_frame(&sample());
            let i = flip % frame.len();
            frame[i] ^= 1 << bit;
            let _ = decode_frame(&frame);
        }
    }
}
