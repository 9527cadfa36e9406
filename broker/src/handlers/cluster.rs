//! Small cluster-level APIs: ApiVersions, DescribeCluster, FindCoordinator,
//! InitProducerId (SaslHandshake and SaslAuthenticate are the
//! connection's: `session.rs`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::api_versions::SUPPORTED;
use crate::broker::Broker;
use crate::dispatch::Peer;

/// The ApiVersions response; `error` is set when the client asked for a
/// version we do not serve (the response is then encoded at v0).
pub fn api_versions(error: Option<ResponseError>) -> ApiVersionsResponse {
    let keys = SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_api_keys(keys)
}

/// Handles DescribeCluster.
pub fn describe_cluster(
    broker: &Broker,
    _req: DescribeClusterRequest,
    peer: &Peer,
) -> DescribeClusterResponse {
    let brokers = super::metadata::brokers(broker, &peer.listener)
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(id)
                .with_host(host)
                .with_port(port)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.config.cluster_id.clone()))
        .with_controller_id(super::metadata::controller(broker))
        .with_brokers(brokers)
}

/// The group coordinator: this broker, or in a cluster the controller (the
/// metadata group's leader), so every member of a group meets on one broker.
fn coordinator(broker: &Broker, listener: &str) -> Option<(BrokerId, StrBytes, i32)> {
    broker.control.coordinator(listener)
}

/// Coordinator key type for transactions (groups are 0).
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator: this broker coordinates every group.
pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    peer: &Peer,
) -> FindCoordinatorResponse {
    let found = coordinator(broker, &peer.listener);
    let unsupported = req.key_type == KEY_TYPE_TRANSACTION || found.is_none();
    let (node, host, port) = found.unwrap_or((BrokerId(-1), StrBytes::default(), -1));
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                if unsupported {
                    c.with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                } else {
                    c.with_node_id(node).with_host(host.clone()).with_port(port)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if unsupported {
        return FindCoordinatorResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
}

/// Handles InitProducerId for idempotent (non-transactional) producers.
pub fn init_producer_id(broker: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // A producer bumping its own epoch (KIP-360) keeps its id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX {
        return InitProducerIdResponse::default()
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(broker.allocate_producer_id()))
        .with_producer_epoch(0)
}
