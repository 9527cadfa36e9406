//! AlterPartitionReassignments and ListPartitionReassignments: Kafka's
//! admin API for moving partition replicas between brokers (what
//! `kafka-reassign-partitions.sh` and admin clients send). A broker of a
//! cluster takes them from any client and records the move in the cluster
//! metadata log; the partition's Raft group carries it out.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;

/// Handles AlterPartitionReassignments (Alter on the cluster, else
/// CLUSTER_AUTHORIZATION_FAILED and nothing moves).
pub async fn alter(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
    access: &Access<'_>,
) -> AlterPartitionReassignmentsResponse {
    if !access.cluster(AclOperation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "not authorized to alter the cluster",
            )));
    }
    if let Err(why) = broker.control.check_reassignments() {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_static_str(why)));
    }
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let replicas: Option<Vec<i32>> = p.replicas.map(|r| r.iter().map(|b| b.0).collect());
            let outcome = broker
                .control
                .reassign(
                    &name,
                    p.partition_index,
                    replicas,
                    req.allow_replication_factor_change,
                )
                .await;
            let base =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match outcome {
                Ok(()) => base,
                Err((code, message)) => {
                    tracing::info!(topic = %name, partition = p.partition_index, error = %message, "reassignment refused");
                    base.with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                }
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(responses)
}

/// Handles ListPartitionReassignments: the partitions whose replicas are
/// moving (all of them, or those asked for); Describe on the cluster.
pub fn list(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
    access: &Access<'_>,
) -> ListPartitionReassignmentsResponse {
    if !access.cluster(AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "not authorized to describe the cluster",
            )));
    }
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let mut topics: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in broker.control.reassignments() {
        let asked = wanted
            .as_ref()
            .is_none_or(|w| w.get(&r.topic).is_some_and(|ps| ps.contains(&r.partition)));
        if !asked {
            continue;
        }
        let ids = |v: Vec<i32>| -> Vec<BrokerId> { v.into_iter().map(BrokerId).collect() };
        let adding: Vec<i32> = r
            .target
            .iter()
            .filter(|b| !r.current.contains(b))
            .copied()
            .collect();
        let removing: Vec<i32> = r
            .current
            .iter()
            .filter(|b| !r.target.contains(b))
            .copied()
            .collect();
        let mut all = r.target.clone();
        all.extend(removing.iter().copied());
        topics.entry(r.topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(r.partition)
                .with_replicas(ids(all))
                .with_adding_replicas(ids(adding))
                .with_removing_replicas(ids(removing)),
        );
    }
    ListPartitionReassignmentsResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
