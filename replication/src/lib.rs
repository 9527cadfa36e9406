//! Starlog replication: every partition is a Raft group (tikv's `raft` crate, the etcd
//! algorithm) whose Raft log *is* the partition log.
//!
//! * A Raft data entry is one Kafka record batch, appended to the [`PartitionLog`] as produced,
//!   with the Raft term in the batch's partition-leader-epoch field. Control entries (a new
//!   leader's empty entry, configuration changes) occupy Raft indexes but no Kafka offset: they
//!   live in a small Raft state file beside the segments, and the [`OffsetTranslator`] maps Raft
//!   indexes to Kafka offsets, so consumers see dense offsets and never a control entry.
//! * [`PartitionStore`] implements `raft::Storage` on top of that, with the write ordering that
//!   makes any crash recoverable (see `log_store`).
//! * [`Driver`] drives many groups from one loop: one sync per dirty partition per turn (group
//!   commit), messages coalesced per peer, [`Proposal`] futures that resolve to the Kafka base
//!   offset once a quorum has the batch, the high watermark published from the commit index,
//!   and a [`GroupStatus`] per partition. It talks to peers through a [`Transport`].
//!
//! Snapshots carry no state, only the window start: a follower behind the leader's retention
//! point restarts its log there (see `log_store`). The TCP transport, the cluster-metadata group
//! and the broker wiring live in the broker crate (`starlog_broker::cluster`).
//!
//! Storage API this crate would like (today worked around, see `log_store`): an append that
//! reports the written file range so the crash simulation needs no directory listing.
//!
//! [`PartitionLog`]: starlog_storage::PartitionLog

mod driver;
mod error;
mod ids;
mod log_store;
mod metrics;
mod proposal;
mod raft_logger;
mod state_file;
mod status;
mod translator;
mod transport;

pub use driver::{
    CrashPoint, Driver, DriverConfig, GroupSpec, MembershipStep, PersistMode, TurnStats, Waker,
};
pub use error::ReplicationError;
pub use ids::{GroupId, NodeId};
pub use log_store::{is_control, PartitionStore, StoreOptions, SyncJob};
pub use metrics::{DriverMetrics, Histogram, HistogramSnapshot, BUCKET_BOUNDS_US};
pub use proposal::Proposal;
pub use raft_logger::TracingDrain;
pub use state_file::{PersistedState, STATE_FILE_NAME};
pub use status::{GroupStatus, ReplicaState, ReplicaStatus, Role};
pub use translator::{
    BatchSpan, ControlEntry, EntryLocation, OffsetTranslator, Rebuild, TranslatorError,
};
pub use transport::{decode_frame, encode_frame, Envelope, Transport, MAX_ENVELOPES_PER_FRAME};

/// raft-rs message and configuration types used in this crate's API.
pub use raft::eraftpb;
