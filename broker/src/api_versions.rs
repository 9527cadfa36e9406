//! The ApiVersions table Starlog advertises.
//!
//! We own this table instead of advertising the codec crate's ranges: clients
//! decide features from it. librdkafka enables a feature when our range
//! *intersects* the range its feature map asks for (older releases ask for
//! exact versions such as `Produce 3..3` for message format v2 or
//! `Produce 7..7` for zstd), so a minimum raised past those silently disables
//! compression, idempotence or the group APIs. The maxima stop at the last
//! version whose semantics we implement (Fetch 12 and Metadata 12 use topic
//! names; 13+ switch to topic ids).

use kafka_protocol::messages::ApiKey;

/// One advertised range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supported {
    /// The API.
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
}

const fn s(key: ApiKey, min: i16, max: i16) -> Supported {
    Supported { key, min, max }
}

/// Every API Starlog serves, with its version range.
pub const SUPPORTED: &[Supported] = &[
    s(ApiKey::Produce, 3, 9),
    s(ApiKey::Fetch, 4, 12),
    s(ApiKey::ListOffsets, 1, 6),
    s(ApiKey::Metadata, 0, 12),
    s(ApiKey::OffsetCommit, 2, 8),
    s(ApiKey::OffsetFetch, 1, 8),
    s(ApiKey::FindCoordinator, 0, 4),
    s(ApiKey::JoinGroup, 0, 9),
    s(ApiKey::Heartbeat, 0, 4),
    s(ApiKey::LeaveGroup, 0, 5),
    s(ApiKey::SyncGroup, 0, 5),
    s(ApiKey::DescribeGroups, 0, 5),
    s(ApiKey::ListGroups, 0, 4),
    s(ApiKey::SaslHandshake, 0, 1),
    s(ApiKey::SaslAuthenticate, 0, 2),
    s(ApiKey::ApiVersions, 0, 3),
    s(ApiKey::CreateTopics, 2, 7),
    s(ApiKey::DeleteTopics, 1, 6),
    s(ApiKey::DeleteRecords, 0, 2),
    s(ApiKey::InitProducerId, 0, 4),
    s(ApiKey::DescribeConfigs, 1, 4),
    s(ApiKey::AlterConfigs, 0, 2),
    s(ApiKey::CreatePartitions, 0, 3),
    s(ApiKey::DeleteGroups, 0, 2),
    s(ApiKey::IncrementalAlterConfigs, 0, 1),
    s(ApiKey::OffsetDelete, 0, 0),
    s(ApiKey::DescribeCluster, 0, 1),
    s(ApiKey::AlterPartitionReassignments, 0, 1),
    s(ApiKey::ListPartitionReassignments, 0, 0),
    // The ACL and user admin APIs, at the versions kafka-protocol decodes
    // (librdkafka's and kafka-python's admin clients send v1 of the ACL APIs).
    s(ApiKey::DescribeAcls, 1, 3),
    s(ApiKey::CreateAcls, 1, 3),
    s(ApiKey::DeleteAcls, 1, 3),
    s(ApiKey::DescribeUserScramCredentials, 0, 0),
    s(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The advertised range of `key`, if served.
pub fn range(key: ApiKey) -> Option<Supported> {
    SUPPORTED.iter().copied().find(|s| s.key == key)
}

/// Whether `version` of `key` is served.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    range(key).is_some_and(|r| (r.min..=r.max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feature requirements of librdkafka's feature map, as (feature, api,
    /// min, max). Both the exact ranges of older releases (the one behind
    /// Debian's kcat) and the open ranges of newer ones are listed; each must
    /// intersect what we advertise.
    const LIBRDKAFKA_FEATURES: &[(&str, ApiKey, i16, i16)] = &[
        ("MsgVer2", ApiKey::Produce, 3, 3),
        ("MsgVer2", ApiKey::Fetch, 4, 4),
        ("ApiVersion", ApiKey::ApiVersions, 0, 0),
        ("BrokerGroupCoordinator", ApiKey::FindCoordinator, 0, 0),
        ("BrokerBalancedConsumer", ApiKey::FindCoordinator, 0, 0),
        ("BrokerBalancedConsumer", ApiKey::OffsetCommit, 1, 2),
        ("BrokerBalancedConsumer", ApiKey::OffsetFetch, 1, 1),
        ("BrokerBalancedConsumer", ApiKey::JoinGroup, 0, 0),
        ("BrokerBalancedConsumer", ApiKey::SyncGroup, 0, 0),
        ("BrokerBalancedConsumer", ApiKey::Heartbeat, 0, 0),
        ("BrokerBalancedConsumer", ApiKey::LeaveGroup, 0, 0),
        ("SaslHandshake", ApiKey::SaslHandshake, 0, 0),
        ("LZ4", ApiKey::FindCoordinator, 0, 0),
        ("OffsetTime", ApiKey::ListOffsets, 1, 1),
        ("IdempotentProducer", ApiKey::InitProducerId, 0, 0),
        ("ZSTD", ApiKey::Produce, 7, 7),
        ("ZSTD", ApiKey::Fetch, 10, 10),
        ("SaslAuthReq", ApiKey::SaslHandshake, 1, 1),
    ];

    #[test]
    fn every_librdkafka_feature_we_need_is_enabled() {
        for &(feature, key, min, max) in LIBRDKAFKA_FEATURES {
            let r = range(key).unwrap_or_else(|| panic!("{feature}: {key:?} not served"));
            assert!(
                min <= r.max && r.min <= max,
                "{feature}: {key:?} {min}..{max} does not intersect {}..{}",
                r.min,
                r.max
            );
        }
    }

    #[test]
    fn table_stays_inside_the_codec_ranges() {
        for s in SUPPORTED {
            let codec = s.key.valid_versions();
            assert!(
                codec.min <= s.min && s.max <= codec.max && s.min <= s.max,
                "{:?}",
                s.key
            );
        }
    }
}
