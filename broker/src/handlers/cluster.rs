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

use starlog_security::{AclOperation, ResourceType};

use super::access::Access;
use crate::api_versions::SUPPORTED;
use crate::broker::Broker;

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

/// Handles DescribeCluster. As in Kafka, anyone may ask (the brokers are
/// what Metadata tells anyone too); `cluster_authorized_operations`, when
/// asked for, needs Describe on the cluster (0 otherwise).
pub fn describe_cluster(
    broker: &Broker,
    req: DescribeClusterRequest,
    access: &Access<'_>,
) -> DescribeClusterResponse {
    let operations = if !req.include_cluster_authorized_operations {
        i32::MIN
    } else if access.cluster(AclOperation::Describe) {
        access.authorized_operations(ResourceType::Cluster, starlog_security::acl::CLUSTER_NAME)
    } else {
        0
    };
    let brokers = super::metadata::brokers(broker, &access.peer().listener)
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
        .with_cluster_authorized_operations(operations)
        .with_brokers(brokers)
}

/// The group coordinator: this broker, or in a cluster the controller (the
/// metadata group's leader), so every member of a group meets on one broker.
fn coordinator(broker: &Broker, listener: &str) -> Option<(BrokerId, StrBytes, i32)> {
    broker.control.coordinator(listener)
}

/// Coordinator key type for transactions (groups are 0).
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Why a coordinator key gets no coordinator: Describe on the group (or
/// the transactional id) refused, or transactions (not supported).
fn refusal(access: &Access<'_>, key_type: i8, key: &str) -> Option<ResponseError> {
    if key_type == KEY_TYPE_TRANSACTION {
        return Some(if access.transactional_id(AclOperation::Describe, key) {
            ResponseError::CoordinatorNotAvailable
        } else {
            ResponseError::TransactionalIdAuthorizationFailed
        });
    }
    (!access.group(AclOperation::Describe, key)).then_some(ResponseError::GroupAuthorizationFailed)
}

/// Handles FindCoordinator: this broker coordinates every group.
pub fn find_coordinator(
    broker: &Broker,
    req: FindCoordinatorRequest,
    version: i16,
    access: &Access<'_>,
) -> FindCoordinatorResponse {
    let found = coordinator(broker, &access.peer().listener);
    // A coordinator without an endpoint on this client's listener.
    let no_endpoint = found
        .is_none()
        .then_some(ResponseError::CoordinatorNotAvailable);
    let (node, host, port) = found.unwrap_or((BrokerId(-1), StrBytes::default(), -1));
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let refused = refusal(access, req.key_type, &key).or(no_endpoint);
                let c = Coordinator::default().with_key(key);
                match refused {
                    Some(code) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code.code()),
                    None => c.with_node_id(node).with_host(host.clone()).with_port(port),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if let Some(code) = refusal(access, req.key_type, &req.key).or(no_endpoint) {
        return FindCoordinatorResponse::default()
            .with_error_code(code.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
}

/// Handles InitProducerId for idempotent (non-transactional) producers:
/// IdempotentWrite on the cluster or Write on some topic, else
/// CLUSTER_AUTHORIZATION_FAILED (Kafka's rule). Transactional ids are
/// refused (transactions are not supported).
pub fn init_producer_id(
    broker: &Broker,
    req: InitProducerIdRequest,
    access: &Access<'_>,
) -> InitProducerIdResponse {
    if req.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if !access.cluster(AclOperation::IdempotentWrite)
        && !access.any_of_type(AclOperation::Write, ResourceType::Topic)
    {
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
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
