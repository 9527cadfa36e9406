//! Mapping internal failures to the Kafka error codes clients act on.

use kafka_protocol::ResponseError;
use starlog_storage::StorageError;

use crate::partition::AppendError;

/// The Kafka error code for a storage failure.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::InvalidBatch { .. } | StorageError::EmptyRecords { .. } => {
            ResponseError::CorruptMessage
        }
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        _ => ResponseError::KafkaStorageError,
    }
}

/// The Kafka error code for a failed produce or read on one partition.
pub fn append_error_code(e: &AppendError) -> ResponseError {
    match e {
        AppendError::Storage(s) => storage_error_code(s),
        AppendError::Sequence(code) => *code,
        AppendError::Malformed(_) => ResponseError::CorruptMessage,
        AppendError::DurabilityTimeout { .. } => ResponseError::RequestTimedOut,
        AppendError::Replication { code, .. } => *code,
        AppendError::Invariant { .. } => ResponseError::KafkaStorageError,
        AppendError::Task(_) => ResponseError::UnknownServerError,
    }
}
