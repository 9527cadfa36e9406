//! Where a mirrored record came from, carried in its own headers.
//!
//! Every record the mirror writes (to a target topic or to the dead-letter
//! topic) carries the upstream topic, partition and offset in the same
//! headers the processors' dead-letter path uses. That makes the local log
//! self-describing: after a crash the mirror reads the tail of each target
//! partition written since its last checkpoint and knows exactly which
//! upstream records are already there (see `recovery`), and an operator
//! can trace any local record back upstream.

use bytes::Bytes;
use starlog_clients::Header;
use starlog_processors::dead_letter::{OFFSET_HEADER, PARTITION_HEADER, TOPIC_HEADER};

/// An upstream record's coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    /// Upstream topic.
    pub topic: String,
    /// Upstream partition.
    pub partition: i32,
    /// Upstream offset.
    pub offset: i64,
}

impl Source {
    /// The three headers naming this source.
    pub fn headers(&self) -> [Header; 3] {
        [
            Header::new(TOPIC_HEADER, Bytes::from(self.topic.clone())),
            Header::new(PARTITION_HEADER, Bytes::from(self.partition.to_string())),
            Header::new(OFFSET_HEADER, Bytes::from(self.offset.to_string())),
        ]
    }

    /// The source named by a record's headers; `None` when any of the
    /// three is missing or malformed (a record the mirror did not write).
    pub fn from_headers(headers: &[Header]) -> Option<Self> {
        let get = |k: &str| {
            headers
                .iter()
                .rev()
                .find(|h| h.key == k)
                .and_then(|h| h.value.as_ref())
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        Some(Self {
            topic: get(TOPIC_HEADER)?.to_owned(),
            partition: get(PARTITION_HEADER)?.parse().ok()?,
            offset: get(OFFSET_HEADER)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_foreign_records_have_no_source() {
        let s = Source {
            topic: "ztf_20191123_programid1".into(),
            partition: 3,
            offset: 1_234_567,
        };
        assert_eq!(Source::from_headers(&s.headers()), Some(s.clone()));
        let mut h = s.headers().to_vec();
        h.remove(1);
        assert_eq!(Source::from_headers(&h), None);
        let mut h = s.headers().to_vec();
        h[2] = Header::new(OFFSET_HEADER, "twelve");
        assert_eq!(Source::from_headers(&h), None);
        assert_eq!(Source::from_headers(&[]), None);
    }
}
