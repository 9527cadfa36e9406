//! The classic consumer-group coordinator (Kafka's GroupCoordinator).
//!
//! Consumers that share a group id split a topic's partitions among
//! themselves. The coordinator runs the membership protocol for them —
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup — and stores their committed
//! positions (OffsetCommit / OffsetFetch / OffsetDelete) through a
//! [`GroupBackend`]; it also answers the admin APIs ListGroups, DescribeGroups
//! and DeleteGroups. It is protocol-agnostic: the group leader (a client)
//! computes the partition assignment with whatever assignor the group agreed
//! on, the coordinator only picks a protocol every member supports and relays
//! metadata and assignments as opaque bytes.
//!
//! Every handler takes the decoded `kafka-protocol` request and its API version
//! and returns the response to encode at that version; handlers never panic on
//! client input, they answer with a Kafka error code. Membership is in memory
//! (clients rejoin after a broker restart); committed offsets are durable in the
//! backend before an OffsetCommit is answered.
//!
//! Module map:
//! - `coordinator`: the shared [`GroupCoordinator`] and common helpers;
//! - `registry`, `driver`: the table of groups (one mutex each) and each
//!   group's timer task; `timers`: what happens when deadlines pass;
//! - `group`, `member`, `state`, `rebalance`, `protocol`: the group state
//!   machine and assignor selection;
//! - one module per API: `join`, `sync`, `heartbeat`, `leave`,
//!   `offset_commit`, `offset_fetch`, `offset_delete`, `list_groups`,
//!   `describe_groups`, `delete_groups`; `maintenance` for offset retention;
//! - `subscription`: reads subscribed topics from consumer metadata (only for
//!   OffsetDelete); `clock`, `config`, `error`, `backend`.

mod backend;
mod clock;
mod config;
mod coordinator;
mod delete_groups;
mod describe_groups;
mod driver;
mod error;
mod group;
mod heartbeat;
mod join;
mod leave;
mod list_groups;
mod maintenance;
mod member;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod protocol;
mod rebalance;
mod registry;
mod state;
mod subscription;
mod sync;
mod timers;

#[cfg(test)]
mod tests;

pub use backend::GroupBackend;
pub use config::GroupConfig;
pub use coordinator::GroupCoordinator;
/// The committed-offset record, owned by the storage crate's metadata store.
pub use starlog_storage::CommittedOffset;
