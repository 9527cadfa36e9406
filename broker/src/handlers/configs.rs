//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics
//! (and a read-only view of the broker's own settings).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::control::AdminChange;
use crate::topic_configs;

/// Resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// Config source: a topic-level override.
const SOURCE_TOPIC: i8 = 1;
/// Config source: the broker's static configuration.
const SOURCE_STATIC_BROKER: i8 = 4;
/// Config source: a default.
const SOURCE_DEFAULT: i8 = 5;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn entry(
    name: String,
    value: String,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_config_source(source)
        .with_read_only(read_only)
}

/// Whether `op` (DescribeConfigs or AlterConfigs) on a config resource is
/// allowed: a topic's on the topic, a broker's on the cluster. The refusal's
/// error is Kafka's for the resource type. Other types are not refused here
/// (the handlers answer them INVALID_REQUEST).
fn config_access(
    access: &Access<'_>,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), (ResponseError, String)> {
    match resource_type {
        RESOURCE_TOPIC if !access.topic(op, name) => Err((
            ResponseError::TopicAuthorizationFailed,
            format!("not authorized to {op} topic {name}"),
        )),
        RESOURCE_BROKER if !access.cluster(op) => Err((
            ResponseError::ClusterAuthorizationFailed,
            format!("not authorized to {op} the cluster"),
        )),
        _ => Ok(()),
    }
}

/// Handles DescribeConfigs (DescribeConfigs on the topic, or on the cluster
/// for a broker's).
pub fn describe(
    broker: &Broker,
    req: DescribeConfigsRequest,
    access: &Access<'_>,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            if let Err((code, message)) = config_access(
                access,
                AclOperation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            ) {
                return DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name)
                    .with_error_code(code.code())
                    .with_error_message(Some(s(message)));
            }
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .map(|k| k.into_iter().map(|k| k.to_string()).collect());
            let wanted = |k: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = broker.topics.get(&r.resource_name) else {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(s(format!(
                                "topic {} does not exist",
                                &*r.resource_name
                            ))));
                    };
                    let effective = broker.topics.effective_config(&topic);
                    let configs = topic_configs::describe(&effective, &topic.configs)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, is_override)| {
                            let source = if is_override {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            };
                            entry(k, v, source, false)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                RESOURCE_BROKER => {
                    let c = &broker.config;
                    let configs = [
                        ("broker.id", c.node_id.to_string()),
                        (
                            "auto.create.topics.enable",
                            c.topics.auto_create.to_string(),
                        ),
                        ("num.partitions", c.topics.default_partitions.to_string()),
                        ("log.retention.ms", c.log.retention_ms.to_string()),
                        ("log.retention.bytes", c.log.retention_bytes.to_string()),
                        ("log.segment.bytes", c.log.segment_bytes.to_string()),
                        ("message.max.bytes", c.log.max_message_bytes.to_string()),
                        (
                            "socket.request.max.bytes",
                            c.limits.max_request_bytes.to_string(),
                        ),
                    ]
                    .into_iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, v)| entry(k.to_string(), v, SOURCE_STATIC_BROKER, true))
                    .collect();
                    base.with_configs(configs)
                }
                other => base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(s(format!("resource type {other} is not supported")))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies a change to a topic's override map, once AlterConfigs on it is
/// allowed.
fn apply(
    broker: &Broker,
    access: &Access<'_>,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    config_access(access, AclOperation::AlterConfigs, resource_type, name)?;
    if resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!("only topic configs can be altered (resource type {resource_type})"),
        ));
    }
    let Some(topic) = broker.topics.get(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        ));
    };
    if let Some(refusal) = broker
        .control
        .refuses(AdminChange::AlterConfigs { topic: name })
    {
        return Err(refusal);
    }
    let mut configs = topic.configs.clone();
    change(&mut configs)
        .and_then(|()| topic_configs::check_all(&configs))
        .map_err(|e| (ResponseError::InvalidConfig, format!("topic {name}: {e}")))?;
    broker
        .topics
        .set_configs(name, configs, validate_only)
        .map_err(|e| (e.code, e.message))
}

/// The (error code, message) pair of an outcome.
fn outcome(result: Result<(), (ResponseError, String)>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(s(m))),
    }
}

/// Handles AlterConfigs (replaces the whole override set).
pub fn alter(
    broker: &Broker,
    req: AlterConfigsRequest,
    access: &Access<'_>,
) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let (error_code, message) = outcome(apply(
                broker,
                access,
                r.resource_type,
                &name,
                |configs| {
                    configs.clear();
                    for c in r.configs {
                        if let Some(v) = c.value {
                            configs.insert(c.name.to_string(), v.to_string());
                        }
                    }
                    Ok(())
                },
                req.validate_only,
            ));
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(error_code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Handles IncrementalAlterConfigs (SET and DELETE; APPEND/SUBTRACT apply to
/// list-valued configs, which Starlog topics do not have).
pub fn incremental_alter(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
    access: &Access<'_>,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let (error_code, message) = outcome(apply(
                broker,
                access,
                r.resource_type,
                &name,
                |configs| {
                    for c in r.configs {
                        let key = c.name.to_string();
                        match (c.config_operation, c.value) {
                            (OP_SET, Some(v)) => {
                                configs.insert(key, v.to_string());
                            }
                            (OP_DELETE, _) => {
                                configs.remove(&key);
                            }
                            (op, _) => {
                                return Err(format!(
                                    "operation {op} on {key} is not supported (SET with a value, or DELETE)"
                                ))
                            }
                        }
                    }
                    Ok(())
                },
                req.validate_only,
            ));
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(error_code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
