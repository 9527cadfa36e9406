//! Metadata: brokers, topics and partition leaders (auto-creating topics
//! when allowed, as Kafka's `auto.create.topics.enable` does).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::topics::Topic;

/// Handles a Metadata request.
pub fn handle(broker: &Broker, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(broker.node_id());
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(broker.advertised_host.clone())
        .with_port(broker.advertised_port)];
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create =
        broker.config.topics.auto_create && (version < 4 || req.allow_auto_topic_creation);
    let topics = match requested {
        None => broker
            .topics
            .all()
            .iter()
            .map(|t| describe(t, node))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|t| {
                let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
                lookup(broker, &name, &t.topic_id, auto_create, node)
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(
            broker.config.cluster_id.clone(),
        )))
        .with_controller_id(node)
        .with_topics(topics)
}

fn lookup(
    broker: &Broker,
    name: &str,
    id: &uuid::Uuid,
    auto_create: bool,
    node: BrokerId,
) -> MetadataResponseTopic {
    if name.is_empty() && !id.is_nil() {
        return match broker.topics.get_by_id(id.as_bytes()) {
            Some(t) => describe(&t, node),
            None => error_topic(name, ResponseError::UnknownTopicId),
        };
    }
    if let Some(t) = broker.topics.get(name) {
        return describe(&t, node);
    }
    if !auto_create {
        return error_topic(name, ResponseError::UnknownTopicOrPartition);
    }
    let partitions = broker.config.topics.default_partitions;
    let max = broker.config.topics.max_partitions;
    match broker
        .topics
        .create(name, partitions, BTreeMap::new(), false, max)
    {
        Ok(t) => describe(&t, node),
        // Lost a race with another creator: describe the winner.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
            .topics
            .get(name)
            .map_or_else(|| error_topic(name, e.code), |t| describe(&t, node)),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-create refused");
            error_topic(name, e.code)
        }
    }
}

fn error_topic(name: &str, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_error_code(code.code())
}

/// A topic's metadata with this broker leading every partition.
pub fn describe(topic: &Arc<Topic>, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions.len())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(i).unwrap_or(i32::MAX))
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(uuid::Uuid::from_bytes(topic.id))
        .with_partitions(partitions)
}
