//! Which version of each API this client speaks, and the negotiation with a
//! broker's ApiVersions answer.
//!
//! Our range per API stops where the semantics we implement end (Fetch and
//! Metadata before topic ids replace names, OffsetFetch/FindCoordinator
//! before their batched forms). On connect we take, per API, the highest
//! version inside both our range and the broker's.

use std::collections::HashMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// `(api, min, max)` this client can use.
pub const CLIENT_RANGES: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    // v1 adds the pattern type (prefixed ACLs).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The ApiVersions version sent first; older brokers answer it with an
/// UNSUPPORTED_VERSION error in v0 layout, and we retry with v0.
pub const API_VERSIONS_FIRST: i16 = 3;

/// The version chosen per API for one connection.
#[derive(Debug, Clone, Default)]
pub struct Negotiated {
    chosen: HashMap<i16, i16>,
}

impl Negotiated {
    /// Intersects our ranges with the broker's answer.
    pub fn from_response(resp: &ApiVersionsResponse) -> Self {
        let mut chosen = HashMap::new();
        for (key, our_min, our_max) in CLIENT_RANGES {
            let k = *key as i16;
            if let Some(b) = resp.api_keys.iter().find(|b| b.api_key == k) {
                let hi = (*our_max).min(b.max_version);
                let lo = (*our_min).max(b.min_version);
                if lo <= hi {
                    chosen.insert(k, hi);
                }
            }
        }
        Self { chosen }
    }

    /// Every API at our maximum (before negotiation, for tests).
    pub fn client_max() -> Self {
        Self {
            chosen: CLIENT_RANGES
                .iter()
                .map(|(k, _, max)| (*k as i16, *max))
                .collect(),
        }
    }

    /// The version to use for `key`, or `None` when no common version exists.
    pub fn version(&self, key: i16) -> Option<i16> {
        self.chosen.get(&key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn resp(entries: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            entries
                .iter()
                .map(|(k, lo, hi)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*lo)
                        .with_max_version(*hi)
                })
                .collect(),
        )
    }

    #[test]
    fn picks_min_of_maxima_and_drops_disjoint_ranges() {
        let n = Negotiated::from_response(&resp(&[
            (ApiKey::Produce, 0, 11),
            (ApiKey::Fetch, 4, 6),
            (ApiKey::Metadata, 13, 13),
        ]));
        assert_eq!(n.version(ApiKey::Produce as i16), Some(9));
        assert_eq!(n.version(ApiKey::Fetch as i16), Some(6));
        assert_eq!(n.version(ApiKey::Metadata as i16), None, "disjoint");
        assert_eq!(n.version(ApiKey::JoinGroup as i16), None, "not offered");
    }

    #[test]
    fn our_ranges_are_inside_the_codec() {
        for (k, lo, hi) in CLIENT_RANGES {
            let v = k.valid_versions();
            assert!(v.min <= *lo && lo <= hi && *hi <= v.max, "{k:?}");
        }
    }
}
