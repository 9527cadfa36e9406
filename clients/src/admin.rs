//! The admin client: topics (create, delete, describe), configs (describe,
//! incremental alter), groups (list, describe, delete), log offsets, ACLs
//! (describe, create, delete) and users' SCRAM credentials (describe,
//! alter), in `starlog-security`'s terms.
//!
//! Topic, ACL and credential changes go to the controller; group calls to each group's
//! coordinator; ListGroups asks every broker and merges the answers.
//! Per-resource Kafka errors become typed errors naming the resource.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, CreateAclsRequest, DeleteAclsRequest,
    DescribeAclsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use starlog_security::{
    AclBinding, AclEntry, AclFilter, AclOperation, PatternType, Permission, Principal,
    ResourcePattern, ResourceType, ScramMechanism,
};

use crate::cluster::{Cluster, TopicInfo};
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::consumer::offsets;
use crate::consumer::protocol::decode_assignment;
use crate::error::{check, Result};
use crate::{ClientError, TopicPartition};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions (-1: broker default).
    pub partitions: i32,
    /// Replication factor (-1: broker default).
    pub replication_factor: i16,
    /// Topic configs.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `partitions` and the default replication.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }

    /// Adds a config.
    pub fn config(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.configs.push((k.into(), v.into()));
        self
    }
}

/// A resource whose configs are described or altered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic.
    Topic(String),
    /// A broker by id.
    Broker(i32),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            Self::Topic(t) => (2, t.clone()),
            Self::Broker(id) => (4, id.to_string()),
        }
    }
}

/// One config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Key.
    pub name: String,
    /// Value (None when sensitive or unset).
    pub value: Option<String>,
    /// Cannot be altered.
    pub read_only: bool,
    /// Kafka's config source code (1 topic, 4 static broker, 5 default...).
    pub source: i8,
}

/// A config change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// Set the key to the value.
    Set(String, String),
    /// Remove the override (back to the default).
    Delete(String),
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// State (empty when the broker does not say).
    pub state: String,
}

/// A group member as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Partitions assigned (decoded from the consumer protocol).
    pub assignment: Vec<TopicPartition>,
}

/// A group as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State (`Stable`, `Empty`, ...).
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A user's SCRAM credentials as DescribeUserScramCredentials lists them:
/// mechanisms and iteration counts, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredentials {
    /// The user name.
    pub user: String,
    /// Each mechanism the user has a credential for, with its iterations.
    pub credentials: Vec<(ScramMechanism, i32)>,
}

/// One change of AlterUserScramCredentials.
#[derive(Clone, PartialEq, Eq)]
pub enum ScramChange {
    /// Sets a user's credential for a mechanism from a password: the client
    /// picks a random salt and sends only the salted password, as Kafka's
    /// tools do.
    Upsert {
        /// The user name.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
        /// The password (never sent, never printed).
        password: String,
        /// PBKDF2 iterations.
        iterations: i32,
    },
    /// Removes a user's credential for a mechanism.
    Delete {
        /// The user name.
        user: String,
        /// The mechanism.
        mechanism: ScramMechanism,
    },
}

impl std::fmt::Debug for ScramChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upsert {
                user,
                mechanism,
                iterations,
                ..
            } => f
                .debug_struct("Upsert")
                .field("user", user)
                .field("mechanism", mechanism)
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            Self::Delete { user, mechanism } => f
                .debug_struct("Delete")
                .field("user", user)
                .field("mechanism", mechanism)
                .finish(),
        }
    }
}

/// The admin client.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// An admin client for a cluster.
    pub fn new(config: ClientConfig) -> Result<Self> {
        Ok(Self {
            cluster: Cluster::new(config)?,
        })
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    async fn controller(&self) -> Result<Connection> {
        if self.cluster.controller().is_none() {
            self.cluster.refresh(&[], false).await?;
        }
        match self.cluster.controller() {
            Some(id) => self.cluster.connection_to(id).await,
            None => self.cluster.any_connection().await,
        }
    }

    /// Creates topics; fails on the first topic the broker refused.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        let timeout = i32::try_from(self.cluster.request_timeout().as_millis()).unwrap_or(i32::MAX);
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(timeout)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(s(&t.name)))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(s(k))
                                            .with_value(Some(s(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = self.controller().await?.call(&req).await?;
        for r in &resp.topics {
            check(r.error_code, || {
                format!(
                    "create topic {}{}",
                    r.name.0,
                    r.error_message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })?;
            self.cluster.invalidate(r.name.0.as_str());
        }
        Ok(())
    }

    /// Deletes topics.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let timeout = i32::try_from(self.cluster.request_timeout().as_millis()).unwrap_or(i32::MAX);
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(timeout)
            .with_topic_names(names.iter().map(|n| TopicName(s(n))).collect());
        let resp = self.controller().await?.call(&req).await?;
        for r in &resp.responses {
            let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            check(r.error_code, || format!("delete topic {name}"))?;
            self.cluster.invalidate(&name);
        }
        Ok(())
    }

    /// Describes topics (partitions, leaders, replicas).
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicInfo>> {
        let mut out = Vec::new();
        for n in names {
            self.cluster.invalidate(n);
            out.push(self.cluster.topic(n, false).await?);
        }
        Ok(out)
    }

    /// Names of every topic.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let resp = self.cluster.refresh(&[], false).await?;
        let mut v: Vec<String> = resp
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Describes the configs of a resource (all keys when `keys` is empty).
    pub async fn describe_configs(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<Vec<ConfigEntry>> {
        let (rt, rn) = resource.wire();
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(rt)
                .with_resource_name(s(&rn))
                .with_configuration_keys(
                    (!keys.is_empty()).then(|| keys.iter().map(|k| s(k)).collect()),
                ),
        ]);
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.connection_to(*id).await?,
            ConfigResource::Topic(_) => self.cluster.any_connection().await?,
        };
        let resp = conn.call(&req).await?;
        let mut out = Vec::new();
        for r in &resp.results {
            check(r.error_code, || {
                format!(
                    "describe configs of {resource:?}{}",
                    r.error_message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })?;
            out.extend(r.configs.iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                read_only: c.read_only,
                source: c.config_source,
            }));
        }
        Ok(out)
    }

    /// Changes configs of a resource (IncrementalAlterConfigs).
    pub async fn alter_configs(&self, resource: &ConfigResource, ops: &[AlterOp]) -> Result<()> {
        let (rt, rn) = resource.wire();
        let configs = ops
            .iter()
            .map(|op| match op {
                AlterOp::Set(k, v) => AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(0)
                    .with_value(Some(s(v))),
                AlterOp::Delete(k) => AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(1),
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(rt)
                .with_resource_name(s(&rn))
                .with_configs(configs),
        ]);
        let conn = match resource {
            ConfigResource::Broker(id) => self.cluster.connection_to(*id).await?,
            ConfigResource::Topic(_) => self.controller().await?,
        };
        let resp = conn.call(&req).await?;
        for r in &resp.responses {
            check(r.error_code, || {
                format!(
                    "alter configs of {resource:?}{}",
                    r.error_message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })?;
        }
        Ok(())
    }

    /// Every group on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.cluster.refresh(&[], false).await?;
        let mut out: Vec<GroupListing> = Vec::new();
        for id in self.cluster.brokers().keys() {
            let conn = self.cluster.connection_to(*id).await?;
            let resp = conn.call(&ListGroupsRequest::default()).await?;
            check(resp.error_code, || format!("ListGroups on broker {id}"))?;
            for g in resp.groups {
                if !out.iter().any(|x| x.group_id == g.group_id.0.as_str()) {
                    out.push(GroupListing {
                        group_id: g.group_id.0.to_string(),
                        protocol_type: g.protocol_type.to_string(),
                        state: g.group_state.to_string(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes groups (state, members, assignments).
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::new();
        for g in groups {
            let conn = self.cluster.coordinator(g).await?;
            let resp = conn
                .call(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s(g))]))
                .await?;
            for d in resp.groups {
                check(d.error_code, || format!("describe group {}", d.group_id.0))?;
                out.push(GroupDescription {
                    group_id: d.group_id.0.to_string(),
                    state: d.group_state.to_string(),
                    protocol_type: d.protocol_type.to_string(),
                    protocol: d.protocol_data.to_string(),
                    members: d
                        .members
                        .iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: decode_assignment(&m.member_assignment).unwrap_or_default(),
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }

    /// Deletes (empty) groups.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<()> {
        for g in groups {
            let conn = self.cluster.coordinator(g).await?;
            let resp = conn
                .call(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]))
                .await?;
            for r in &resp.results {
                check(r.error_code, || format!("delete group {}", r.group_id.0))?;
            }
        }
        Ok(())
    }

    /// Log offsets at a time (`offsets::EARLIEST`, `offsets::LATEST` or ms).
    pub async fn list_offsets(
        &self,
        requests: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, i64>> {
        offsets::list_offsets(&self.cluster, requests).await
    }

    /// A group's committed offsets.
    pub async fn group_offsets(
        &self,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        offsets::fetch_committed(&self.cluster, group, tps).await
    }
}

/// ACLs and users' SCRAM credentials.
impl Admin {
    /// The ACLs `filter` selects.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(filter.name.as_deref().map(s))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(filter.principal.as_ref().map(|p| s(&p.to_string())))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let conn = self.controller().await?;
        let resp = conn.call(&req).await?;
        check(resp.error_code, || {
            format!("describe ACLs{}", message(resp.error_message.as_ref()))
        })?;
        let garbage = |reason: String| ClientError::Garbage {
            addr: conn.addr().to_owned(),
            api: ApiKey::DescribeAcls,
            reason,
        };
        let mut out = Vec::new();
        for r in &resp.resources {
            let pattern = ResourcePattern {
                resource_type: ResourceType::from_code(r.resource_type)
                    .map_err(|e| garbage(e.to_string()))?,
                name: r.resource_name.to_string(),
                pattern_type: PatternType::from_code(r.pattern_type)
                    .map_err(|e| garbage(e.to_string()))?,
            };
            for a in &r.acls {
                let entry = entry(&a.principal, &a.host, a.operation, a.permission_type)
                    .map_err(garbage)?;
                out.push(AclBinding {
                    pattern: pattern.clone(),
                    entry,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates ACLs; fails on the first one the broker refused, naming it.
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        let req = CreateAclsRequest::default().with_creations(
            acls.iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(a.pattern.resource_type.code())
                        .with_resource_name(s(&a.pattern.name))
                        .with_resource_pattern_type(a.pattern.pattern_type.code())
                        .with_principal(s(&a.entry.principal.to_string()))
                        .with_host(s(&a.entry.host))
                        .with_operation(a.entry.operation.code())
                        .with_permission_type(a.entry.permission.code())
                })
                .collect(),
        );
        let resp = self.controller().await?.call(&req).await?;
        for (r, acl) in resp.results.iter().zip(acls) {
            check(r.error_code, || {
                format!("create ACL `{acl}`{}", message(r.error_message.as_ref()))
            })?;
        }
        Ok(())
    }

    /// Deletes the ACLs each filter selects: what each deleted.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(f.name.as_deref().map(s))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(f.principal.as_ref().map(|p| s(&p.to_string())))
                        .with_host_filter(f.host.as_deref().map(s))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let conn = self.controller().await?;
        let resp = conn.call(&req).await?;
        let garbage = |reason: String| ClientError::Garbage {
            addr: conn.addr().to_owned(),
            api: ApiKey::DeleteAcls,
            reason,
        };
        let mut out = Vec::new();
        for r in &resp.filter_results {
            check(r.error_code, || {
                format!("delete ACLs{}", message(r.error_message.as_ref()))
            })?;
            let mut deleted = Vec::new();
            for m in &r.matching_acls {
                check(m.error_code, || {
                    format!(
                        "delete ACL on {}{}",
                        m.resource_name,
                        message(m.error_message.as_ref())
                    )
                })?;
                deleted.push(AclBinding {
                    pattern: ResourcePattern {
                        resource_type: ResourceType::from_code(m.resource_type)
                            .map_err(|e| garbage(e.to_string()))?,
                        name: m.resource_name.to_string(),
                        pattern_type: PatternType::from_code(m.pattern_type)
                            .map_err(|e| garbage(e.to_string()))?,
                    },
                    entry: entry(&m.principal, &m.host, m.operation, m.permission_type)
                        .map_err(garbage)?,
                });
            }
            out.push(deleted);
        }
        Ok(out)
    }

    /// The SCRAM credentials of `users` (`None`: every user). A named user
    /// without credentials is an error naming the user.
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<Vec<UserScramCredentials>> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|n| UserName::default().with_name(s(n)))
                .collect()
        }));
        let conn = self.controller().await?;
        let resp = conn.call(&req).await?;
        check(resp.error_code, || {
            format!(
                "describe SCRAM credentials{}",
                message(resp.error_message.as_ref())
            )
        })?;
        let mut out = Vec::new();
        for r in &resp.results {
            check(r.error_code, || {
                format!(
                    "describe SCRAM credentials of user {}{}",
                    r.user,
                    message(r.error_message.as_ref())
                )
            })?;
            let mut credentials = Vec::new();
            for c in &r.credential_infos {
                let mechanism =
                    ScramMechanism::from_code(c.mechanism).map_err(|e| ClientError::Garbage {
                        addr: conn.addr().to_owned(),
                        api: ApiKey::DescribeUserScramCredentials,
                        reason: format!("user {}: {e}", r.user),
                    })?;
                credentials.push((mechanism, c.iterations));
            }
            credentials.sort();
            out.push(UserScramCredentials {
                user: r.user.to_string(),
                credentials,
            });
        }
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    /// Sets and removes users' SCRAM credentials; fails on the first user
    /// the broker refused, naming the user.
    pub async fn alter_user_scram_credentials(&self, changes: &[ScramChange]) -> Result<()> {
        let mut req = AlterUserScramCredentialsRequest::default();
        for c in changes {
            match c {
                ScramChange::Upsert {
                    user,
                    mechanism,
                    password,
                    iterations,
                } => {
                    if password.is_empty() {
                        return Err(ClientError::Config(format!("user {user}: empty password")));
                    }
                    let rounds = u32::try_from(*iterations).map_err(|_| {
                        ClientError::Config(format!(
                            "user {user}: iteration count {iterations} is negative"
                        ))
                    })?;
                    let mut salt = vec![0u8; 32];
                    getrandom::fill(&mut salt).map_err(|e| ClientError::Encode {
                        what: format!("a salt for user {user}"),
                        reason: e.to_string(),
                    })?;
                    let salted = mechanism.salted_password(password.as_bytes(), &salt, rounds);
                    req.upsertions.push(
                        ScramCredentialUpsertion::default()
                            .with_name(s(user))
                            .with_mechanism(mechanism.code())
                            .with_iterations(*iterations)
                            .with_salt(salt.into())
                            .with_salted_password(salted.into()),
                    );
                }
                ScramChange::Delete { user, mechanism } => req.deletions.push(
                    ScramCredentialDeletion::default()
                        .with_name(s(user))
                        .with_mechanism(mechanism.code()),
                ),
            }
        }
        let resp = self.controller().await?.call(&req).await?;
        for r in &resp.results {
            check(r.error_code, || {
                format!(
                    "alter SCRAM credentials of user {}{}",
                    r.user,
                    message(r.error_message.as_ref())
                )
            })?;
        }
        Ok(())
    }
}

/// ` (message)` when the broker sent one.
fn message(m: Option<&StrBytes>) -> String {
    m.filter(|m| !m.is_empty())
        .map(|m| format!(" ({m})"))
        .unwrap_or_default()
}

/// An ACL entry from its wire fields.
fn entry(
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> std::result::Result<AclEntry, String> {
    Ok(AclEntry {
        principal: Principal::parse(principal).map_err(|e| e.to_string())?,
        host: host.to_string(),
        operation: AclOperation::from_code(operation).map_err(|e| e.to_string())?,
        permission: Permission::from_code(permission).map_err(|e| e.to_string())?,
    })
}

impl From<&str> for ConfigResource {
    fn from(topic: &str) -> Self {
        Self::Topic(topic.to_owned())
    }
}
