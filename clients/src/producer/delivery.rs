//! What a send resolves to: where the record was written, or why it failed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{ClientError, Result};

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset; -1 with `acks = 0` or when the broker did not say.
    pub offset: i64,
    /// The record's create time.
    pub timestamp: i64,
}

/// Resolves when the record is acknowledged or has failed for good.
#[derive(Debug)]
pub struct DeliveryFuture {
    pub(super) rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed("producer"))))
    }
}
