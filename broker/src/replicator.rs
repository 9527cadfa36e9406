//! How a replicated [`Partition`](crate::partition::Partition) reaches its
//! replication group: the partition's produce and list-offsets paths ask
//! through this handle, never through the cluster's internals.
//!
//! The cluster implements it over its Raft driver loop
//! (`cluster::hosting`); tests implement it with a fake.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use starlog_replication::ReplicationError;

/// The base offset of a committed proposal, or why it was not committed.
pub type Committed = BoxFuture<'static, Result<i64, ReplicationError>>;

/// The driver's answer to a proposal: accepted (then [`Committed`] resolves
/// once a quorum has the batches), refused, or no answer at all.
pub struct Accepted(BoxFuture<'static, Result<Result<Committed, ReplicationError>, DriverGone>>);

impl Accepted {
    /// Wraps the future of the driver's answer.
    pub fn new(
        answer: impl Future<Output = Result<Result<Committed, ReplicationError>, DriverGone>>
            + Send
            + 'static,
    ) -> Self {
        Self(Box::pin(answer))
    }
}

impl Future for Accepted {
    type Output = Result<Result<Committed, ReplicationError>, DriverGone>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accepted(..)")
    }
}

/// The replication driver stopped before it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the raft driver stopped")]
pub struct DriverGone;

/// One partition's replication group, as its served partition sees it.
pub trait Replicator: Send + Sync + std::fmt::Debug + 'static {
    /// This broker's term when it leads the group; `None` when it does not.
    fn leader_term(&self) -> Option<u64>;

    /// Proposes record batches, if this broker still leads in `term` (the
    /// term the caller's producer checks were made in). `Err` when the
    /// driver cannot be reached at all.
    fn propose(&self, records: Bytes, term: u64) -> Result<Accepted, DriverGone>;

    /// Longest a produce waits for a quorum.
    fn commit_wait(&self) -> Duration;

    /// Retention: trims the group's log before the batch holding `offset`
    /// (log and index translation together, never behind the group's back).
    fn compact(&self, offset: i64);
}
