//! Reads the subscribed topic names out of a "consumer" protocol member's
//! metadata (Kafka's ConsumerProtocolSubscription).
//!
//! Only OffsetDelete needs this: Kafka refuses to delete offsets of topics an
//! active consumer group subscribes to. Everything else in the coordinator
//! treats metadata as opaque. The metadata comes from clients, so this is a
//! small bounds-checked reader of just the leading fields (version, topic
//! array) rather than a full decoder that would trust array lengths.

/// Topic names subscribed to by a consumer-protocol member, or `None` when the
/// metadata is not a well-formed subscription.
///
/// Layout: `version: i16`, then `topics: [string]` (i32 count, each i16 length
/// and UTF-8 bytes); later fields (user data, owned partitions, ...) are
/// ignored, which keeps newer versions readable.
pub(super) fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata;
    let version = read_i16(&mut rest)?;
    if version < 0 {
        return None;
    }
    let count = usize::try_from(read_i32(&mut rest)?).ok()?;
    // Each topic takes at least its 2-byte length prefix: a count larger than
    // that allows is corrupt, and checking first bounds the allocation.
    if count > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(read_i16(&mut rest)?).ok()?;
        let bytes = take(&mut rest, len)?;
        topics.push(std::str::from_utf8(bytes).ok()?.to_owned());
    }
    Some(topics)
}

fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if rest.len() < len {
        return None;
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Some(head)
}

fn read_i16(rest: &mut &[u8]) -> Option<i16> {
    let bytes = take(rest, 2)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

fn read_i32(rest: &mut &[u8]) -> Option<i32> {
    let bytes = take(rest, 4)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
pub(super) mod tests {
    use super::subscribed_topics;

    /// Encodes a consumer subscription (version 0 layout plus `trailing` bytes).
    pub(crate) fn encode_subscription(topics: &[&str], trailing: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&i32::try_from(topics.len()).unwrap().to_be_bytes());
        for topic in topics {
            out.extend_from_slice(&i16::try_from(topic.len()).unwrap().to_be_bytes());
            out.extend_from_slice(topic.as_bytes());
        }
        out.extend_from_slice(trailing);
        out
    }

    #[test]
    fn reads_topics_and_ignores_later_fields() {
        let bytes = encode_subscription(&["alerts", "ztf-buffer"], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            subscribed_topics(&bytes),
            Some(vec!["alerts".to_owned(), "ztf-buffer".to_owned()])
        );
        assert_eq!(
            subscribed_topics(&encode_subscription(&[], &[])),
            Some(vec![])
        );
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        assert_eq!(subscribed_topics(&[]), None);
        assert_eq!(subscribed_topics(&[0]), None);
        // Negative version.
        assert_eq!(subscribed_topics(&[0xff, 0xff, 0, 0, 0, 0]), None);
        // Absurd topic count.
        assert_eq!(
            subscribed_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'a']),
            None
        );
        // Negative count.
        assert_eq!(subscribed_topics(&[0, 1, 0xff, 0xff, 0xff, 0xff]), None);
        // String length past the end.
        assert_eq!(subscribed_topics(&[0, 1, 0, 0, 0, 1, 0, 9, b'a']), None);
        // Negative string length.
        assert_eq!(subscribed_topics(&[0, 1, 0, 0, 0, 1, 0xff, 0xff]), None);
        // Invalid UTF-8.
        assert_eq!(subscribed_topics(&[0, 1, 0, 0, 0, 1, 0, 1, 0xc3]), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = subscribed_topics(&bytes);
        }
    }
}
