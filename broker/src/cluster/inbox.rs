//! What the driver loop is asked to do, and the channel that carries it
//! (from the transport, the served partitions, the applier and admin).

use std::sync::mpsc::Sender;
use std::sync::Arc;

use bytes::Bytes;
use starlog_replication::{Envelope, GroupId, GroupSpec, Proposal, ReplicationError};
use starlog_storage::PartitionLog;
use tokio::sync::oneshot;

use crate::watermark::HighWatermark;

/// Where the driver loop's inputs go.
pub(crate) type Inbox = Sender<Input>;

/// A reply channel.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ReplicationError>>;

/// What the driver loop is asked to do.
#[derive(Debug)]
pub(crate) enum Input {
    /// Raft messages from a peer.
    Envelopes(Vec<Envelope>),
    /// Propose batches on the leader, if it still leads in `term`.
    Propose {
        /// The partition group.
        group: GroupId,
        /// One or more record batches.
        records: Bytes,
        /// The term the caller's producer checks were made in.
        term: u64,
        /// The proposal, or why it was refused.
        reply: Reply<Proposal>,
    },
    /// Propose from any replica (forwarded to the leader); the outcome is read from the log.
    Forward {
        /// The group (the metadata group).
        group: GroupId,
        /// One record batch.
        records: Bytes,
        /// Accepted for forwarding, or refused.
        reply: Reply<()>,
    },
    /// Open a partition's Raft group here.
    AddGroup {
        /// The group and its directory.
        spec: GroupSpec,
        /// Campaign at once when the group is new (preferred leader).
        campaign: bool,
        /// Its log and current high watermark.
        reply: Reply<(Arc<PartitionLog>, i64)>,
    },
    /// Start publishing this group's high watermark (its commit index as
    /// an offset) into `high_watermark`, the served partition's.
    Attach {
        /// The group.
        group: GroupId,
        /// The served partition's high watermark.
        high_watermark: HighWatermark,
    },
    /// Retention: trim `group`'s log before the batch holding `offset`.
    Compact {
        /// The group.
        group: GroupId,
        /// The first offset to keep.
        offset: i64,
    },
    /// Close a group this broker no longer replicates and stop publishing
    /// into its partition (the caller deletes the directory).
    RemoveGroup {
        /// The group.
        group: GroupId,
        /// Answered once closed.
        reply: Reply<()>,
    },
    /// Sync and close every group, then stop.
    Shutdown {
        /// Answered once closed.
        reply: oneshot::Sender<()>,
    },
}
