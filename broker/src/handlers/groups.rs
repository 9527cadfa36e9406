//! The consumer-group APIs as the connection sees them: who may ask (the
//! ACLs, as Kafka checks them) and which broker coordinates, before the
//! group coordinator (`groups/`, which knows nothing of principals) runs.
//!
//! A refused group answers GROUP_AUTHORIZATION_FAILED and the coordinator
//! is not called; refused topics are taken out of the request before the
//! coordinator sees it (so nothing is committed or deleted for them) and
//! put back in the response, in request order, as TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    delete_groups_response::DeletableGroupResult, describe_groups_response::DescribedGroup,
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_security::acl::CLUSTER_NAME;
use starlog_security::{AclOperation, ResourceType};

use super::access::Access;
use crate::broker::Broker;
use crate::dispatch::Peer;

const GROUP_REFUSED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_REFUSED: i16 = ResponseError::TopicAuthorizationFailed.code();
/// NOT_COORDINATOR: the client looks the coordinator up again.
const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();

/// A request's items split by the ACLs, with their order kept so that the
/// answers go back in it.
struct Split<T> {
    /// Per item, in request order: allowed or not.
    order: Vec<bool>,
    permitted: Vec<T>,
    refused: Vec<T>,
}

impl<T> Split<T> {
    fn new(items: Vec<T>, allowed: impl Fn(&T) -> bool) -> Self {
        let mut split = Self {
            order: Vec::with_capacity(items.len()),
            permitted: Vec::new(),
            refused: Vec::new(),
        };
        for item in items {
            let ok = allowed(&item);
            split.order.push(ok);
            if ok {
                split.permitted.push(item);
            } else {
                split.refused.push(item);
            }
        }
        split
    }
}

/// The answers in request order: the coordinator's for the permitted
/// items, the refusals for the others.
fn in_order<A>(
    order: Vec<bool>,
    answered: impl IntoIterator<Item = A>,
    refused: impl IntoIterator<Item = A>,
) -> Vec<A> {
    let (mut answered, mut refused) = (answered.into_iter(), refused.into_iter());
    order
        .into_iter()
        .filter_map(|ok| if ok { answered.next() } else { refused.next() })
        .collect()
}

/// Whether this broker coordinates consumer groups: always when alone, the
/// controller in a cluster (the others send members to it; they find it
/// again with FindCoordinator).
fn coordinates(broker: &Broker) -> bool {
    broker.control.coordinates()
}

/// JoinGroup: Read on the group.
pub async fn join(
    broker: &Broker,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: &Peer,
    access: &Access<'_>,
) -> JoinGroupResponse {
    let refused = |code: i16| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(req.member_id.clone())
            // Nullable from v7; a plain (non-null) string before.
            .with_protocol_name((version < 7).then(StrBytes::default))
    };
    if !access.group(AclOperation::Read, &req.group_id) {
        return refused(GROUP_REFUSED);
    }
    if !coordinates(broker) {
        return refused(NOT_COORDINATOR);
    }
    broker
        .groups
        .join_group(req, version, client_id, &peer.host)
        .await
}

/// SyncGroup: Read on the group.
pub async fn sync(
    broker: &Broker,
    req: SyncGroupRequest,
    version: i16,
    access: &Access<'_>,
) -> SyncGroupResponse {
    if !access.group(AclOperation::Read, &req.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_REFUSED);
    }
    if !coordinates(broker) {
        return SyncGroupResponse::default().with_error_code(NOT_COORDINATOR);
    }
    broker.groups.sync_group(req, version).await
}

/// Heartbeat: Read on the group.
pub async fn heartbeat(
    broker: &Broker,
    req: HeartbeatRequest,
    version: i16,
    access: &Access<'_>,
) -> HeartbeatResponse {
    if !access.group(AclOperation::Read, &req.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_REFUSED);
    }
    if !coordinates(broker) {
        return HeartbeatResponse::default().with_error_code(NOT_COORDINATOR);
    }
    broker.groups.heartbeat(req, version).await
}

/// LeaveGroup: Read on the group.
pub async fn leave(
    broker: &Broker,
    req: LeaveGroupRequest,
    version: i16,
    access: &Access<'_>,
) -> LeaveGroupResponse {
    if !access.group(AclOperation::Read, &req.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_REFUSED);
    }
    if !coordinates(broker) {
        return LeaveGroupResponse::default().with_error_code(NOT_COORDINATOR);
    }
    broker.groups.leave_group(req, version).await
}

/// OffsetCommit: Read on the group, then Read on each topic.
pub async fn offset_commit(
    broker: &Broker,
    mut req: OffsetCommitRequest,
    version: i16,
    access: &Access<'_>,
) -> OffsetCommitResponse {
    let every_partition = |req: &OffsetCommitRequest, code: i16| {
        OffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    commit_topic(
                        &t.name,
                        t.partitions.iter().map(|p| p.partition_index),
                        code,
                    )
                })
                .collect(),
        )
    };
    if !access.group(AclOperation::Read, &req.group_id) {
        return every_partition(&req, GROUP_REFUSED);
    }
    let topics = std::mem::take(&mut req.topics);
    let Split {
        order: allowed,
        permitted,
        refused,
    } = Split::new(topics, |t| access.topic(AclOperation::Read, &t.name));
    req.topics = permitted;
    let answered = if req.topics.is_empty() {
        Vec::new()
    } else {
        broker.groups.offset_commit(req, version).await.topics
    }
    .into_iter();
    let refused = refused.into_iter().map(|t| {
        commit_topic(
            &t.name,
            t.partitions.iter().map(|p| p.partition_index),
            TOPIC_REFUSED,
        )
    });
    let topics = in_order(allowed, answered, refused);
    OffsetCommitResponse::default().with_topics(topics)
}

fn commit_topic(
    name: &kafka_protocol::messages::TopicName,
    partitions: impl Iterator<Item = i32>,
    code: i16,
) -> OffsetCommitResponseTopic {
    OffsetCommitResponseTopic::default()
        .with_name(name.clone())
        .with_partitions(
            partitions
                .map(|i| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(i)
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// OffsetFetch: Describe on each group; topics the principal may not
/// Describe are refused when named and left out when all are asked for.
pub async fn offset_fetch(
    broker: &Broker,
    mut req: OffsetFetchRequest,
    version: i16,
    access: &Access<'_>,
) -> OffsetFetchResponse {
    if version >= 8 {
        return offset_fetch_groups(broker, req, version, access).await;
    }
    if !access.group(AclOperation::Describe, &req.group_id) {
        if version >= 2 {
            return OffsetFetchResponse::default().with_error_code(GROUP_REFUSED);
        }
        // v1 has no top-level error: report it on every requested partition.
        let topics = req
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| fetch_topic_v1(t.name, t.partition_indexes, GROUP_REFUSED))
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let Some(topics) = req.topics.take() else {
        let mut response = broker.groups.offset_fetch(req, version).await;
        response.topics.retain(|t| {
            access.allows_quietly(AclOperation::Describe, ResourceType::Topic, &t.name)
        });
        return response;
    };
    let Split {
        order: allowed,
        permitted,
        refused,
    } = Split::new(topics, |t| access.topic(AclOperation::Describe, &t.name));
    req.topics = Some(permitted);
    let mut response = broker.groups.offset_fetch(req, version).await;
    if response.error_code != 0 {
        return response;
    }
    let answered = std::mem::take(&mut response.topics).into_iter();
    let refused = refused
        .into_iter()
        .map(|t| fetch_topic_v1(t.name, t.partition_indexes, TOPIC_REFUSED));
    response.topics = in_order(allowed, answered, refused);
    response
}

fn fetch_topic_v1(
    name: kafka_protocol::messages::TopicName,
    partitions: Vec<i32>,
    code: i16,
) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(name)
        .with_partitions(
            partitions
                .into_iter()
                .map(|i| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(i)
                        .with_committed_offset(-1)
                        .with_metadata(Some(StrBytes::default()))
                        .with_error_code(code)
                })
                .collect(),
        )
}

/// OffsetFetch v8+: several groups in one request.
async fn offset_fetch_groups(
    broker: &Broker,
    mut req: OffsetFetchRequest,
    version: i16,
    access: &Access<'_>,
) -> OffsetFetchResponse {
    /// What becomes of one requested group.
    enum Plan {
        Refused(OffsetFetchResponseGroup),
        /// Asked of the coordinator; the named topics refused, by position.
        Asked {
            all: bool,
            allowed: Vec<bool>,
            refused: Vec<OffsetFetchResponseTopics>,
        },
    }
    let mut plans = Vec::with_capacity(req.groups.len());
    let mut asked = Vec::with_capacity(req.groups.len());
    for mut g in std::mem::take(&mut req.groups) {
        if !access.group(AclOperation::Describe, &g.group_id) {
            plans.push(Plan::Refused(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(GROUP_REFUSED),
            ));
            continue;
        }
        let plan = match g.topics.take() {
            None => Plan::Asked {
                all: true,
                allowed: Vec::new(),
                refused: Vec::new(),
            },
            Some(topics) => {
                let Split {
                    order: allowed,
                    permitted,
                    refused,
                } = Split::new(topics, |t| access.topic(AclOperation::Describe, &t.name));
                g.topics = Some(permitted);
                let refused = refused
                    .into_iter()
                    .map(|t| {
                        OffsetFetchResponseTopics::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partition_indexes
                                    .into_iter()
                                    .map(|i| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(i)
                                            .with_committed_offset(-1)
                                            .with_metadata(Some(StrBytes::default()))
                                            .with_error_code(TOPIC_REFUSED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                Plan::Asked {
                    all: false,
                    allowed,
                    refused,
                }
            }
        };
        plans.push(plan);
        asked.push(g);
    }
    let answers = if asked.is_empty() {
        Vec::new()
    } else {
        req.groups = asked;
        broker.groups.offset_fetch(req, version).await.groups
    };
    let mut answers = answers.into_iter();
    let groups = plans
        .into_iter()
        .filter_map(|plan| match plan {
            Plan::Refused(g) => Some(g),
            Plan::Asked {
                all,
                allowed,
                refused,
            } => {
                let mut g = answers.next()?;
                if all {
                    g.topics.retain(|t| {
                        access.allows_quietly(AclOperation::Describe, ResourceType::Topic, &t.name)
                    });
                } else if g.error_code == 0 {
                    let answered = std::mem::take(&mut g.topics).into_iter();
                    let refused = refused.into_iter();
                    g.topics = in_order(allowed, answered, refused);
                }
                Some(g)
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// OffsetDelete: Delete on the group, then Read on each topic.
pub async fn offset_delete(
    broker: &Broker,
    mut req: OffsetDeleteRequest,
    version: i16,
    access: &Access<'_>,
) -> OffsetDeleteResponse {
    if !access.group(AclOperation::Delete, &req.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_REFUSED);
    }
    let topics = std::mem::take(&mut req.topics);
    let Split {
        order: allowed,
        permitted,
        refused,
    } = Split::new(topics, |t| access.topic(AclOperation::Read, &t.name));
    req.topics = permitted;
    let mut response = broker.groups.offset_delete(req, version).await;
    if response.error_code != 0 {
        return response;
    }
    let answered = std::mem::take(&mut response.topics).into_iter();
    let refused = refused.into_iter().map(|t| {
        OffsetDeleteResponseTopic::default()
            .with_name(t.name)
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(TOPIC_REFUSED)
                    })
                    .collect(),
            )
    });
    response.topics = in_order(allowed, answered, refused);
    response
}

/// ListGroups: every group with Describe on the cluster, else only the
/// groups the principal may Describe.
pub async fn list(
    broker: &Broker,
    req: ListGroupsRequest,
    version: i16,
    access: &Access<'_>,
) -> ListGroupsResponse {
    let mut response = broker.groups.list_groups(req, version).await;
    if !access.allows_quietly(AclOperation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        response.groups.retain(|g| {
            access.allows_quietly(AclOperation::Describe, ResourceType::Group, &g.group_id)
        });
    }
    response
}

/// DescribeGroups: Describe on each group; `authorized_operations`, when
/// asked for, are the principal's.
pub async fn describe(
    broker: &Broker,
    mut req: DescribeGroupsRequest,
    version: i16,
    access: &Access<'_>,
) -> DescribeGroupsResponse {
    let with_operations = version >= 3 && req.include_authorized_operations;
    let groups = std::mem::take(&mut req.groups);
    let Split {
        order: allowed,
        permitted,
        refused,
    } = Split::new(groups, |g| access.group(AclOperation::Describe, g));
    req.groups = permitted;
    let answered = if req.groups.is_empty() {
        Vec::new()
    } else {
        broker.groups.describe_groups(req, version).await.groups
    }
    .into_iter()
    .map(|mut g| {
        if with_operations && g.error_code == 0 {
            g.authorized_operations =
                access.authorized_operations(ResourceType::Group, &g.group_id);
        }
        g
    });
    let refused = refused.into_iter().map(|id| {
        DescribedGroup::default()
            .with_group_id(id)
            .with_error_code(GROUP_REFUSED)
            .with_error_message(
                (version >= 6)
                    .then(|| StrBytes::from_static_str("not authorized to describe this group")),
            )
    });
    let groups = in_order(allowed, answered, refused);
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: Delete on each group.
pub async fn delete(
    broker: &Broker,
    mut req: DeleteGroupsRequest,
    version: i16,
    access: &Access<'_>,
) -> DeleteGroupsResponse {
    let groups = std::mem::take(&mut req.groups_names);
    let Split {
        order: allowed,
        permitted,
        refused,
    } = Split::new(groups, |g| access.group(AclOperation::Delete, g));
    req.groups_names = permitted;
    let answered = if req.groups_names.is_empty() {
        Vec::new()
    } else {
        broker.groups.delete_groups(req, version).await.results
    }
    .into_iter();
    let refused = refused.into_iter().map(|id| {
        DeletableGroupResult::default()
            .with_group_id(id)
            .with_error_code(GROUP_REFUSED)
    });
    let results = in_order(allowed, answered, refused);
    DeleteGroupsResponse::default().with_results(results)
}
