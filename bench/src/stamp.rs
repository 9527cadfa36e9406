//! The two record headers the bench stamps on every message.
//!
//! `starlog-bench-seq` numbers the message (0, 1, 2, ... per run) so each
//! consumer group can prove it saw every acknowledged message exactly once
//! and check the value against the payload that number selects.
//! `starlog-bench-sent-ns` is the moment the message was *due* to be sent
//! (nanoseconds after the run's start): the consumer subtracts it from its
//! own clock for the end-to-end latency. Producer and consumers live in the
//! same process and share one monotonic start instant, so no wall-clock
//! skew enters the figure. Headers keep the value untouched, so the alert
//! bytes on the wire are exactly the file's.

use crate::error::BenchError;

/// Header holding the message's sequence number (8 bytes, big-endian).
pub const SEQ_HEADER: &str = "starlog-bench-seq";
/// Header holding the due send time, ns after the run start (8 bytes, big-endian).
pub const SENT_HEADER: &str = "starlog-bench-sent-ns";

/// What the bench stamps on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number within the run.
    pub seq: u64,
    /// Due send time, nanoseconds after the run's start instant.
    pub sent_ns: u64,
}

/// Where a consumed record sits, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

impl Stamp {
    /// The header values, big-endian.
    pub fn encode(&self) -> ([u8; 8], [u8; 8]) {
        (self.seq.to_be_bytes(), self.sent_ns.to_be_bytes())
    }

    /// Reads a stamp from the two header values of a consumed record.
    pub fn decode(
        seq: Option<&[u8]>,
        sent: Option<&[u8]>,
        at: Location<'_>,
    ) -> Result<Self, BenchError> {
        Ok(Self {
            seq: read_u64(seq, SEQ_HEADER, at)?,
            sent_ns: read_u64(sent, SENT_HEADER, at)?,
        })
    }
}

fn read_u64(
    value: Option<&[u8]>,
    header: &'static str,
    at: Location<'_>,
) -> Result<u64, BenchError> {
    let bad = |problem: String| BenchError::BadHeader {
        topic: at.topic.to_string(),
        partition: at.partition,
        offset: at.offset,
        header,
        problem,
    };
    let bytes = value.ok_or_else(|| bad("is missing".to_string()))?;
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| bad(format!("has {} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Location<'static> = Location {
        topic: "alerts",
        partition: 3,
        offset: 42,
    };

    #[test]
    fn round_trip() {
        let s = Stamp {
            seq: 123_456_789_012,
            sent_ns: u64::MAX - 1,
        };
        let (a, b) = s.encode();
        assert_eq!(Stamp::decode(Some(&a), Some(&b), AT).unwrap(), s);
    }

    #[test]
    fn missing_header_names_the_record() {
        let (a, _) = Stamp { seq: 1, sent_ns: 2 }.encode();
        let err = Stamp::decode(Some(&a), None, AT).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("topic alerts partition 3 offset 42"),
            "{text}"
        );
        assert!(
            text.contains(SENT_HEADER) && text.contains("missing"),
            "{text}"
        );
    }

    #[test]
    fn wrong_length_is_refused() {
        let err = Stamp::decode(Some(&[1, 2, 3]), Some(&[0; 8]), AT).unwrap_err();
        match err {
            BenchError::BadHeader {
                header, problem, ..
            } => {
                assert_eq!(header, SEQ_HEADER);
                assert!(problem.contains("3 bytes"), "{problem}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
