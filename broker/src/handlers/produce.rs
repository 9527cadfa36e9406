//! Produce: validate, append as bytes, answer with offsets.
//!
//! Partitions of one request are appended concurrently, so their fsyncs
//! overlap (and coalesce with other connections' in the storage group
//! commit). `acks=0` gets no response at all, as Kafka does.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::errors::append_error_code;

fn partition_error(index: i32, code: ResponseError, message: String) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// Handles a Produce request; `None` when `acks=0` asks for no response.
pub async fn handle(broker: &Broker, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let mut topics = Vec::with_capacity(req.topic_data.len());
    let valid_acks = matches!(acks, -1..=1);
    let transactional = req.transactional_id.is_some();
    for topic_data in req.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = broker.topics.get(&name);
        let mut pending = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let index = pd.index;
            let records = pd.records.unwrap_or_default();
            let partition = topic.as_ref().and_then(|t| t.partition(index)).cloned();
            let name = name.clone();
            pending.push(async move {
                if !valid_acks {
                    return partition_error(
                        index,
                        ResponseError::InvalidRequiredAcks,
                        format!("acks={acks} is not one of -1, 0, 1"),
                    );
                }
                if transactional {
                    return partition_error(
                        index,
                        ResponseError::TransactionalIdAuthorizationFailed,
                        "transactions are not supported".to_string(),
                    );
                }
                let Some(partition) = partition else {
                    return partition_error(
                        index,
                        ResponseError::UnknownTopicOrPartition,
                        format!("{name}-{index} does not exist"),
                    );
                };
                append_one(&partition, records, &name, index).await
            });
        }
        let partition_responses = futures::future::join_all(pending).await;
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(topics))
}

async fn append_one(
    partition: &crate::partition::Partition,
    records: Bytes,
    topic: &str,
    index: i32,
) -> PartitionProduceResponse {
    match partition.append(records, 0).await {
        Ok(appended) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(appended.base_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(appended.log_start_offset),
        Err(e) => {
            let code = append_error_code(&e);
            tracing::warn!(topic, partition = index, error = %e, "produce refused");
            partition_error(index, code, format!("{topic}-{index}: {e}"))
        }
    }
}
