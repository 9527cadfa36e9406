//! CreateTopics, DeleteTopics, CreatePartitions and DeleteRecords.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::control::{AdminChange, NewTopic};
use crate::topic_configs;

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// Handles CreateTopics: each topic needs Create on the cluster or on
/// itself (TOPIC_AUTHORIZATION_FAILED otherwise, nothing created).
pub async fn create_topics(
    broker: &Broker,
    req: CreateTopicsRequest,
    access: &Access<'_>,
) -> CreateTopicsResponse {
    let cluster_create = access.cluster(AclOperation::Create);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default().with_name(t.name.clone());
        if !cluster_create && !access.topic(AclOperation::Create, &name) {
            results.push(
                base.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(msg(format!("not authorized to create topic {name}"))),
            );
            continue;
        }
        let partitions = if t.num_partitions == -1 {
            broker.config.topics.default_partitions
        } else {
            t.num_partitions
        };
        if let Err(e) = broker
            .control
            .check_replication_factor(&name, t.replication_factor)
        {
            results.push(
                base.with_error_code(e.code.code())
                    .with_error_message(msg(e.message)),
            );
            continue;
        }
        if !t.assignments.is_empty() {
            results.push(
                base.with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(msg(format!(
                        "topic {name}: manual replica assignment is not supported"
                    ))),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad = None;
        for c in t.configs {
            let key = c.name.to_string();
            let Some(value) = c.value.map(|v| v.to_string()) else {
                continue;
            };
            if let Err(e) = topic_configs::check(&key, &value) {
                bad = Some(e);
                break;
            }
            configs.insert(key, value);
        }
        if let Some(e) = bad {
            results.push(
                base.with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(msg(format!("topic {name}: {e}"))),
            );
            continue;
        }
        let max = broker.config.topics.max_partitions;
        let request = NewTopic {
            name: &name,
            partitions,
            replication_factor: t.replication_factor,
            configs,
            validate_only: req.validate_only,
            max_partitions: max,
        };
        let created = broker.control.create_topic(&broker.topics, request).await;
        let factor = broker.control.reported_replication_factor();
        match created {
            Ok(topic) => results.push(
                base.with_topic_id(uuid::Uuid::from_bytes(topic.id))
                    .with_num_partitions(partitions)
                    .with_replication_factor(factor),
            ),
            Err(e) => results.push(
                base.with_error_code(e.code.code())
                    .with_error_message(msg(e.message)),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Handles DeleteTopics (by name, or by id from v6): each topic needs
/// Delete on itself, checked before its existence; a topic named by id
/// whose Describe is refused is answered without its name.
pub fn delete_topics(
    broker: &Broker,
    req: DeleteTopicsRequest,
    access: &Access<'_>,
) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
    );
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let by_id = !matches!(&name, Some(n) if !n.is_empty());
            let name = match name {
                Some(n) if !n.is_empty() => Some(n),
                _ => broker
                    .topics
                    .get_by_id(id.as_bytes())
                    .map(|t| t.name.clone()),
            };
            let base = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
                .with_topic_id(id);
            let Some(name) = name else {
                return base
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_error_message(msg(format!("no topic with id {id}")));
            };
            if by_id && !access.topic(AclOperation::Describe, &name) {
                return base
                    .with_name(None)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code());
            }
            if !access.topic(AclOperation::Delete, &name) {
                return base
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(msg(format!("not authorized to delete topic {name}")));
            }
            if let Some((code, message)) = broker.control.refuses(AdminChange::DeleteTopics) {
                return base
                    .with_error_code(code.code())
                    .with_error_message(msg(message));
            }
            match broker.topics.delete(&name) {
                Ok(topic) => base.with_topic_id(uuid::Uuid::from_bytes(topic.id)),
                Err(e) => base
                    .with_error_code(e.code.code())
                    .with_error_message(msg(e.message)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions: each topic needs Alter on itself.
pub fn create_partitions(
    broker: &Broker,
    req: CreatePartitionsRequest,
    access: &Access<'_>,
) -> CreatePartitionsResponse {
    let max = broker.config.topics.max_partitions;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if !access.topic(AclOperation::Alter, &t.name.0) {
                return base
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(msg(format!(
                        "not authorized to alter topic {}",
                        t.name.0.as_str()
                    )));
            }
            if let Some((code, message)) = broker.control.refuses(AdminChange::AddPartitions) {
                return base
                    .with_error_code(code.code())
                    .with_error_message(msg(message));
            }
            if t.assignments.is_some() {
                return base
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(msg("manual replica assignment is not supported".into()));
            }
            match broker
                .topics
                .add_partitions(&t.name.0, t.count, req.validate_only, max)
            {
                Ok(()) => base,
                Err(e) => base
                    .with_error_code(e.code.code())
                    .with_error_message(msg(e.message)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Handles DeleteRecords: moves each partition's log start forward; each
/// topic needs Delete on itself.
pub async fn delete_records(
    broker: &Broker,
    req: DeleteRecordsRequest,
    access: &Access<'_>,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let deletable = access.topic(AclOperation::Delete, &t.name.0);
        let topic = broker.topics.get(&t.name.0);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if !deletable {
                partitions
                    .push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let Some(partition) = topic
                .as_ref()
                .and_then(|t| t.partition(p.partition_index))
                .cloned()
            else {
                partitions
                    .push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            if !partition.trims_locally() {
                partitions.push(base.with_error_code(ResponseError::InvalidRequest.code()));
                continue;
            }
            let hw = partition.high_watermark();
            // -1 means "up to the high watermark".
            let target = if p.offset == -1 { hw } else { p.offset };
            if target < 0 || target > hw {
                partitions.push(base.with_error_code(ResponseError::OffsetOutOfRange.code()));
                continue;
            }
            let log = std::sync::Arc::clone(partition.log());
            let result = tokio::task::spawn_blocking(move || {
                log.advance_start(target).map(|()| log.log_start_offset())
            })
            .await;
            match result {
                Ok(Ok(low)) => partitions.push(base.with_low_watermark(low)),
                Ok(Err(e)) => {
                    tracing::warn!(topic = %t.name.0, partition = p.partition_index, error = %e, "delete records failed");
                    partitions.push(base.with_error_code(ResponseError::KafkaStorageError.code()));
                }
                Err(_) => {
                    partitions.push(base.with_error_code(ResponseError::UnknownServerError.code()))
                }
            }
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
