//! [`Proposal`]: the future a producer (acks=all) waits on.
//!
//! It resolves when the driver sees the proposal's last Raft index committed (by a quorum) and
//! durable on this node: to the Kafka base offset of its first batch if the committed entry is
//! the proposed one (same term), or to [`ReplicationError::Superseded`] if another leader's
//! entry was committed at that index, or as soon as an entry of a newer term is committed before
//! it (then it can never be committed). A leader that steps down answers its pending proposals
//! with `NotLeader` at once: their outcome is then unknown (a later leader may still commit
//! them), as in Kafka, where idempotent producers resolve such an ambiguous outcome by retrying
//! against the new leader.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::FutureExt as _;

use crate::error::ReplicationError;
use crate::ids::GroupId;

/// Outcome sent by the driver.
pub(crate) type Outcome = Result<i64, ReplicationError>;

/// A pending proposal; resolves to the Kafka base offset once committed.
#[derive(Debug)]
#[must_use = "a proposal reports whether the records were committed"]
pub struct Proposal {
    group: GroupId,
    rx: oneshot::Receiver<Outcome>,
}

impl Proposal {
    pub(crate) fn new(group: GroupId) -> (Self, oneshot::Sender<Outcome>) {
        let (tx, rx) = oneshot::channel();
        (Self { group, rx }, tx)
    }

    /// The outcome if it is known, without waiting (for synchronous callers and simulations).
    pub fn try_take(&mut self) -> Option<Outcome> {
        match self.rx.try_recv() {
            Ok(Some(r)) => Some(r),
            Ok(None) => None,
            Err(oneshot::Canceled) => Some(Err(ReplicationError::Abandoned { group: self.group })),
        }
    }
}

impl Future for Proposal {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let group = self.group;
        self.rx.poll_unpin(cx).map(|r| match r {
            Ok(outcome) => outcome,
            Err(oneshot::Canceled) => Err(ReplicationError::Abandoned { group }),
        })
    }
}
