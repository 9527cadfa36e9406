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

use starlog_security::{AclOperation, ResourceType};

use super::access::Access;
use crate::broker::Broker;
use crate::control::NewTopic;
use crate::topics::Topic;

/// The brokers to advertise to a client of `listener`: this one, or every
/// member of its cluster, at their endpoints of that listener.
pub fn brokers(broker: &Broker, listener: &str) -> Vec<(BrokerId, StrBytes, i32)> {
    broker.control.brokers(listener)
}

/// The controller to advertise: the metadata group's leader in a cluster.
pub fn controller(broker: &Broker) -> BrokerId {
    broker.control.controller()
}

/// Handles a Metadata request.
///
/// Authorization as Kafka does it: listing every topic lists only those the
/// principal may Describe; a named topic it may not Describe answers
/// TOPIC_AUTHORIZATION_FAILED without saying whether it exists; creating a
/// missing topic on the way needs Create on the cluster or on the topic.
pub async fn handle(
    broker: &Broker,
    req: MetadataRequest,
    version: i16,
    access: &Access<'_>,
) -> MetadataResponse {
    let node = BrokerId(broker.node_id());
    let brokers = brokers(broker, &access.peer().listener)
        .into_iter()
        .map(|(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(id)
                .with_host(host)
                .with_port(port)
        })
        .collect();
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create =
        broker.config.topics.auto_create && (version < 4 || req.allow_auto_topic_creation);
    let with_topic_operations = version >= 8 && req.include_topic_authorized_operations;
    // The field exists in v8-v10 (DescribeCluster carries it later).
    let cluster_operations =
        (8..=10).contains(&version) && req.include_cluster_authorized_operations;
    let wanted: Option<Vec<(String, uuid::Uuid)>> = requested.map(|list| {
        list.into_iter()
            .map(|t| {
                (
                    t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                    t.topic_id,
                )
            })
            .collect()
    });
    // In a cluster, a partition whose leader just died is held back for a
    // moment: its followers elect a new one within a few ticks, and the
    // client then learns it now instead of at its next periodic refresh.
    let deadline = tokio::time::Instant::now() + broker.control.leader_wait();
    let topics = loop {
        let topics = topics_for(broker, wanted.as_deref(), auto_create, node, access).await;
        let leaderless = topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code == ResponseError::LeaderNotAvailable.code());
        if !leaderless || tokio::time::Instant::now() >= deadline {
            break topics;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let topics = if with_topic_operations {
        topics
            .into_iter()
            .map(|t| {
                if t.error_code != 0 {
                    return t;
                }
                let name = t.name.as_ref().map_or("", |n| n.0.as_str()).to_string();
                t.with_topic_authorized_operations(
                    access.authorized_operations(ResourceType::Topic, &name),
                )
            })
            .collect()
    } else {
        topics
    };
    let response = if cluster_operations {
        let ops = if access.cluster(AclOperation::Describe) {
            access.authorized_operations(ResourceType::Cluster, starlog_security::acl::CLUSTER_NAME)
        } else {
            0
        };
        MetadataResponse::default().with_cluster_authorized_operations(ops)
    } else {
        MetadataResponse::default()
    };
    response
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(
            broker.config.cluster_id.clone(),
        )))
        .with_controller_id(controller(broker))
        .with_topics(topics)
}

/// The topics part of a Metadata response: every topic the principal may
/// Describe, or those asked for.
async fn topics_for(
    broker: &Broker,
    wanted: Option<&[(String, uuid::Uuid)]>,
    auto_create: bool,
    node: BrokerId,
    access: &Access<'_>,
) -> Vec<MetadataResponseTopic> {
    match wanted {
        None => broker
            .topics
            .all()
            .iter()
            .filter(|t| access.allows_quietly(AclOperation::Describe, ResourceType::Topic, &t.name))
            .map(|t| describe(broker, t, node))
            .collect(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (name, id) in list {
                out.push(lookup(broker, name, id, auto_create, node, access).await);
            }
            out
        }
    }
}

async fn lookup(
    broker: &Broker,
    name: &str,
    id: &uuid::Uuid,
    auto_create: bool,
    node: BrokerId,
    access: &Access<'_>,
) -> MetadataResponseTopic {
    if name.is_empty() && !id.is_nil() {
        return match broker.topics.get_by_id(id.as_bytes()) {
            Some(t) if access.topic(AclOperation::Describe, &t.name) => describe(broker, &t, node),
            // A topic id is not secret; the name is withheld (an empty
            // string: the field is nullable only from v12).
            Some(_) => MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::default())))
                .with_topic_id(*id)
                .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            None => error_topic(name, ResponseError::UnknownTopicId),
        };
    }
    if !access.topic(AclOperation::Describe, name) {
        // Checked before existence: the answer does not say whether it exists.
        return error_topic(name, ResponseError::TopicAuthorizationFailed);
    }
    if let Some(t) = broker.topics.get(name) {
        return describe(broker, &t, node);
    }
    if !auto_create {
        return error_topic(name, ResponseError::UnknownTopicOrPartition);
    }
    if !access.cluster(AclOperation::Create) && !access.topic(AclOperation::Create, name) {
        return error_topic(name, ResponseError::TopicAuthorizationFailed);
    }
    let partitions = broker.config.topics.default_partitions;
    let max = broker.config.topics.max_partitions;
    let request = NewTopic {
        name,
        partitions,
        replication_factor: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        max_partitions: max,
    };
    let created = broker.control.create_topic(&broker.topics, request).await;
    match created {
        Ok(t) => describe(broker, &t, node),
        // Lost a race with another creator: describe the winner.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
            .topics
            .get(name)
            .map_or_else(|| error_topic(name, e.code), |t| describe(broker, &t, node)),
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

/// A topic's metadata: this broker leads an unreplicated partition; a
/// replicated one names its leader, epoch, replicas and in-sync replicas as
/// the broker's mode knows them, whether this broker hosts it or not.
pub fn describe(broker: &Broker, topic: &Arc<Topic>, node: BrokerId) -> MetadataResponseTopic {
    let ids = |v: &[i32]| -> Vec<BrokerId> { v.iter().map(|&n| BrokerId(n)).collect() };
    let partitions = (0..topic.partition_count())
        .map(|i| {
            let base = MetadataResponsePartition::default().with_partition_index(i);
            if topic.partition(i).is_some_and(|p| p.leads_alone()) {
                return base
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node]);
            }
            let Some(l) = broker.control.leadership(&topic.name, i) else {
                return base
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1);
            };
            let base = base
                .with_leader_epoch(l.epoch)
                .with_replica_nodes(ids(&l.replicas))
                .with_isr_nodes(ids(&l.isr));
            match l.leader {
                Some(leader) => base.with_leader_id(BrokerId(leader)),
                None => base
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1)),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(uuid::Uuid::from_bytes(topic.id))
        .with_partitions(partitions)
}
