//! From a request frame to a response frame.
//!
//! The frame is checked before it is decoded: an unknown API key or an
//! unserved version closes the connection (as Kafka does), except ApiVersions,
//! which always answers so that a newer client can learn what we serve.
//! Decode errors close the connection with one log line; nothing here panics
//! on client bytes.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;

use crate::api_versions;
use crate::broker::Broker;
use crate::frame::{encode, encode_frame, EncodeError, Frame};
use crate::handlers;
use crate::peer::Peer;

/// Why a connection must be closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Too short to hold a request header.
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    /// An API key we do not know.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// A version of a known API that we do not serve.
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion {
        /// The API.
        key: ApiKey,
        /// The version asked for.
        version: i16,
    },
    /// The header or body did not decode.
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        key: ApiKey,
        /// The version.
        version: i16,
        /// The decoder's complaint.
        reason: String,
    },
    /// A cluster member that knows no controller (cut off from its peers,
    /// or not yet joined) answers no Metadata: closing the connection makes
    /// the client ask another broker instead of trusting a stale view.
    #[error("this broker is cut off from its cluster (no controller known); the client should ask another broker")]
    Fenced,
    /// Our own response failed to encode (a bug, reported).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// What the connection should do with a frame.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response frame (length prefix included).
    Respond(Frame),
    /// Send nothing (a Produce with acks=0).
    Silent,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A decoded request frame.
// The large variant is the common one and lives for one request, moved
// straight into its handler; boxing it would add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A request we serve, decoded.
    Request {
        /// The API.
        key: ApiKey,
        /// Its version.
        version: i16,
        /// The request header.
        header: RequestHeader,
        /// The request body.
        request: RequestKind,
    },
    /// ApiVersions at a version we do not serve: answer with our table at v0.
    ApiVersionsTooNew {
        /// To echo in the response.
        correlation_id: i32,
    },
}

/// Checks and decodes one request frame (without its length prefix).
/// Never panics on any input; this is the function the fuzz target drives.
pub fn parse_frame(mut frame: Bytes) -> Result<Parsed, Refusal> {
    if frame.len() < 8 {
        return Err(Refusal::Short(frame.len()));
    }
    let raw_key = be_i16(&frame, 0);
    let version = be_i16(&frame, 2);
    let correlation_id = be_i32(&frame, 4);
    let key = ApiKey::try_from(raw_key).map_err(|()| Refusal::UnknownApi(raw_key))?;
    if !api_versions::is_supported(key, version) {
        if key == ApiKey::ApiVersions {
            return Ok(Parsed::ApiVersionsTooNew { correlation_id });
        }
        return Err(Refusal::UnsupportedVersion { key, version });
    }
    let malformed = |reason: String| Refusal::Malformed {
        key,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e:#}")))?;
    let request =
        RequestKind::decode(key, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Parsed::Request {
        key,
        version,
        header,
        request,
    })
}

/// A request whose response is still being completed (a produce waiting
/// for its flush policy); resolved in request order by the connection.
pub type Pending = futures::future::BoxFuture<'static, Result<Outcome, Refusal>>;

/// Handles one request frame (without its length prefix).
///
/// Everything that must happen in request order (decoding, every API's
/// effects, a produce's writes) happens before this returns; the returned
/// future only waits (for a produce's durability) and encodes.
pub async fn handle_frame(broker: &Broker, frame: Bytes, peer: &Peer) -> Result<Pending, Refusal> {
    let (key, version, header, request) = match parse_frame(frame)? {
        Parsed::Request {
            key,
            version,
            header,
            request,
        } => (key, version, header, request),
        Parsed::ApiVersionsTooNew { correlation_id } => {
            // Answer at v0 with the error and our table, so the client retries lower.
            let response = handlers::cluster::api_versions(Some(ResponseError::UnsupportedVersion));
            let done = encode(
                ResponseKind::ApiVersions(response),
                ApiKey::ApiVersions,
                0,
                correlation_id,
            )
            .map(|b| Outcome::Respond(b.into()))
            .map_err(Refusal::from);
            return Ok(Box::pin(std::future::ready(done)));
        }
    };
    tracing::trace!(?key, version, ?request, "request");
    let correlation_id = header.correlation_id;
    if let RequestKind::Produce(r) = request {
        let access = handlers::access::Access::new(broker, peer);
        let completion = handlers::produce::begin(broker, r, &access).await;
        return Ok(Box::pin(async move {
            match completion.await {
                Some(r) => encode(ResponseKind::Produce(r), key, version, correlation_id)
                    .map(|b| Outcome::Respond(b.into()))
                    .map_err(Refusal::from),
                None => Ok(Outcome::Silent),
            }
        }));
    }
    let client_id = header
        .client_id
        .as_ref()
        .map_or_else(String::new, |c| c.to_string());
    let response = route(broker, request, key, version, &client_id, peer).await?;
    let done = match response {
        Some(r) => encode_frame(r, key, version, correlation_id)
            .map(Outcome::Respond)
            .map_err(Refusal::from),
        None => Ok(Outcome::Silent),
    };
    Ok(Box::pin(std::future::ready(done)))
}

/// How long a Metadata request from a broker out of touch with its peers
/// waits for that to change before the connection is closed.
const CONTROLLER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn route(
    broker: &Broker,
    request: RequestKind,
    key: ApiKey,
    version: i16,
    client_id: &str,
    peer: &Peer,
) -> Result<Option<ResponseKind>, Refusal> {
    use handlers::{
        acls, cluster, configs, fetch, groups, list_offsets, metadata, reassign, topics_admin,
        users,
    };
    // A broker cut off from its peers (no controller known, no frame heard
    // lately) may hold a stale view of the leaders: it closes the connection
    // so the client asks another broker. One that still hears its peers
    // answers at once, also during a controller election: partition
    // failover does not wait for the controller, and a closed connection
    // would cost the client a growing reconnect backoff.
    if matches!(request, RequestKind::Metadata(_))
        && !broker.control.wait_in_touch(CONTROLLER_WAIT).await
    {
        return Err(Refusal::Fenced);
    }
    // What the principal may do, one snapshot of the ACLs for the request:
    // every handler below checks it before it acts.
    let access = &handlers::access::Access::new(broker, peer);
    Ok(Some(match request {
        RequestKind::Fetch(r) => {
            ResponseKind::Fetch(fetch::handle(broker, r, version, access).await)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version, access).await)
        }
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(metadata::handle(broker, r, version, access).await)
        }
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(cluster::api_versions(None)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(topics_admin::create_topics(broker, r, access).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(topics_admin::delete_topics(broker, r, access))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(topics_admin::create_partitions(broker, r, access))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(topics_admin::delete_records(broker, r, access).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, r, access))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter(broker, r, access))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r, access))
        }
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassign::alter(broker, r, access).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassign::list(broker, r, access))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe_cluster(broker, r, access))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(cluster::find_coordinator(broker, r, version, access))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(cluster::init_producer_id(broker, r, access))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join(broker, r, version, client_id, peer, access).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync(broker, r, version, access).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(broker, r, version, access).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave(broker, r, version, access).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, r, version, access).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, r, version, access).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, r, version, access).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list(broker, r, version, access).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(broker, r, version, access).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete(broker, r, version, access).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe(broker, r, access))
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create(broker, r, access).await)
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete(broker, r, access).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(users::describe(broker, r, access))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(users::alter(broker, r, access).await)
        }
        // `is_supported` admits only the APIs above; refuse rather than hang.
        _ => return Err(Refusal::UnsupportedVersion { key, version }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Arbitrary bytes after a valid API key and version never panic the
        /// decoder: they decode or are refused.
        #[test]
        fn arbitrary_frames_never_panic(
            key in prop::sample::select(crate::api_versions::SUPPORTED.to_vec()),
            version_pick in 0u8..=255,
            correlation in any::<i32>(),
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let span = i32::from(key.max - key.min) + 1;
            let version = key.min + i16::try_from(i32::from(version_pick) % span).unwrap_or(0);
            let mut frame = Vec::with_capacity(body.len() + 8);
            frame.extend_from_slice(&(key.key as i16).to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&correlation.to_be_bytes());
            frame.extend_from_slice(&body);
            let _ = parse_frame(Bytes::from(frame));
        }

        #[test]
        fn completely_random_frames_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_frame(Bytes::from(body));
        }
    }
}
