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

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused invariant fails the request as a storage fault, which
    /// clients retry elsewhere, never as a client error.
    #[test]
    fn a_violated_invariant_is_a_storage_error() {
        let e = AppendError::Invariant {
            invariant: "the high watermark never passes the log end",
            partition: "t-0".into(),
            offset: 9,
            detail: "high watermark 9, log end 3".into(),
        };
        assert_eq!(append_error_code(&e), ResponseError::KafkaStorageError);
    }
}
