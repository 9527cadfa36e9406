//! Produce: validate, append as bytes, answer with offsets.
//!
//! Two stages: [`begin`] writes every partition's batches (concurrently
//! across partitions) and returns a [`Completion`] that waits for the flush
//! policy and builds the response. The connection pipelines completions, so
//! one producer's requests share fsyncs with each other as well as with
//! other connections'. `acks=0` gets no response at all, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use starlog_security::AclOperation;

use super::access::Access;
use crate::broker::Broker;
use crate::errors::append_error_code;
use crate::partition::{AppendError, Partition, Written};

fn partition_error(index: i32, code: ResponseError, message: String) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// The second half of a produce: waits for durability and builds the
/// response (`None` when `acks=0` asks for no response).
pub type Completion = futures::future::BoxFuture<'static, Option<ProduceResponse>>;

/// One partition after the write stage.
enum Stage {
    /// Refused before or during the write.
    Done(PartitionProduceResponse),
    /// Written; its durability is awaited in the completion.
    Written {
        partition: Arc<Partition>,
        written: Written,
        topic: String,
        index: i32,
    },
}

/// Writes every partition's batches now, in request order, and returns the
/// completion that waits for the flush policy. A connection can start its
/// next request while this one's fsync is under way; per-partition order is
/// kept because writes happen in the order requests are read.
///
/// A topic the principal may not Write answers TOPIC_AUTHORIZATION_FAILED
/// on each of its partitions, before its existence is looked at (as Kafka
/// does, so the answer does not tell whether it exists) and with nothing
/// appended.
pub async fn begin(broker: &Broker, req: ProduceRequest, access: &Access<'_>) -> Completion {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    // Transactions are not supported: a transactional produce is refused
    // whether or not the id's Write is allowed (only the message differs).
    let transactional = req.transactional_id.as_ref().map(|id| {
        if access.transactional_id(AclOperation::Write, id) {
            "transactions are not supported"
        } else {
            "not authorized to write with this transactional id"
        }
    });
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let name = topic_data.name.0.to_string();
        let writable = access.topic(AclOperation::Write, &name);
        let topic = if writable {
            broker.topics.get(&name)
        } else {
            None
        };
        let rule = topic.as_ref().and_then(|t| {
            t.configs
                .get(crate::schema_rule::UPSTREAM_REGISTRY_KEY)
                .cloned()
        });
        let writes = topic_data.partition_data.into_iter().map(|pd| {
            let index = pd.index;
            let records = pd.records.unwrap_or_default();
            let partition = topic
                .as_ref()
                .ok_or(ResponseError::UnknownTopicOrPartition)
                .and_then(|t| t.lookup(index).cloned());
            let name = name.clone();
            let rule = rule.clone();
            async move {
                if !valid_acks {
                    return Stage::Done(partition_error(
                        index,
                        ResponseError::InvalidRequiredAcks,
                        format!("acks={acks} is not one of -1, 0, 1"),
                    ));
                }
                if let Some(why) = transactional {
                    return Stage::Done(partition_error(
                        index,
                        ResponseError::TransactionalIdAuthorizationFailed,
                        why.to_string(),
                    ));
                }
                if !writable {
                    return Stage::Done(partition_error(
                        index,
                        ResponseError::TopicAuthorizationFailed,
                        format!("not authorized to write to {name}"),
                    ));
                }
                let partition = match partition {
                    Ok(p) => p,
                    Err(code) => {
                        let why = if code == ResponseError::NotLeaderOrFollower {
                            format!("{name}-{index} is not replicated on this broker; ask Metadata for its leader")
                        } else {
                            format!("{name}-{index} does not exist")
                        };
                        return Stage::Done(partition_error(index, code, why));
                    }
                };
                let records = match &rule {
                    Some(url) => match broker.schema_rule.as_ref() {
                        Some(r) => match r.apply(&name, url, records).await {
                            Ok(rewritten) => rewritten,
                            Err(e) => {
                                tracing::warn!(topic = %name, partition = index, error = %e, "schema id rule refused a batch");
                                return Stage::Done(partition_error(
                                    index,
                                    ResponseError::InvalidRecord,
                                    format!("{name}-{index}: schema id rule: {e}"),
                                ));
                            }
                        },
                        None => {
                            return Stage::Done(partition_error(
                                index,
                                ResponseError::InvalidRecord,
                                format!("{name}-{index}: the topic has a schema id rule but the local registry is disabled"),
                            ))
                        }
                    },
                    None => records,
                };
                match partition.write(records, 0).await {
                    Ok(written) => Stage::Written {
                        partition,
                        written,
                        topic: name,
                        index,
                    },
                    Err(e) => Stage::Done(refused(&e, &name, index)),
                }
            }
        });
        let stages = futures::future::join_all(writes).await;
        topics.push((topic_data.name, stages));
    }
    Box::pin(async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (name, stages) in topics {
            let partition_responses =
                futures::future::join_all(stages.into_iter().map(finish)).await;
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partition_responses),
            );
        }
        (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    })
}

async fn finish(stage: Stage) -> PartitionProduceResponse {
    let (partition, written, topic, index) = match stage {
        Stage::Done(r) => return r,
        Stage::Written {
            partition,
            written,
            topic,
            index,
        } => (partition, written, topic, index),
    };
    match partition.finish(written).await {
        Ok(appended) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(appended.log_start_offset),
        Err(e) => refused(&e, &topic, index),
    }
}

fn refused(e: &AppendError, topic: &str, index: i32) -> PartitionProduceResponse {
    let code = append_error_code(e);
    tracing::warn!(topic, partition = index, error = %e, "produce refused");
    partition_error(index, code, format!("{topic}-{index}: {e}"))
}
