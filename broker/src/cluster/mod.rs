//! Replication in the broker: the Raft cluster a broker joins when its
//! YAML has a `cluster:` section.
//!
//! The rest of the broker sees none of this module's internals: the server
//! calls [`start`] once and gets a [`Control`](crate::control::Control) (the
//! mode seam the handlers ask) and a group backend; each hosted partition
//! gets a [`Replicator`](crate::replicator::Replicator) handle and a
//! [`HighWatermark`](crate::watermark::HighWatermark) the driver publishes
//! into. The map, one job per file:
//!
//! * `node` — [`Cluster`](node::Cluster), what the other files share:
//!   start-up (listener, driver thread, metadata group, applier), whether
//!   this broker is in touch with its peers, shutdown.
//! * `control` — the cluster's `Control` and [`start`].
//! * `applier` — applies the committed metadata log in order.
//! * `hosting` — opens the groups placed here, closes and deletes those
//!   moved away; `RaftReplica`, the partitions' replicator.
//! * `admin` — topic creation, reassignment, membership and group offsets
//!   forwarded to the metadata leader; leadership for Metadata.
//! * `checkpoint` — metadata checkpoints: propose, load, install.
//! * `offsets` — the group coordinator's backend in cluster mode.
//! * `security` — users and ACLs through the metadata group (the broker's
//!   `SecurityStore` in a cluster) and their bootstrap from a file written
//!   before the first start; `applied_security` — what the applier keeps of
//!   them beside the state (outcomes by token, a change counter, the
//!   bootstrap still to propose).
//! * `driver_loop` — the thread that owns the replication crate's `Driver`
//!   (every group here, one fsync per partition per turn); `inbox` — what
//!   it is asked to do.
//! * `transport` — Raft frames between brokers over TCP (or mutual TLS
//!   under the cluster CA, [`PeerTls`]), the fault switch; `peer_addr` —
//!   a peer's Raft address, an IP or a DNS name resolved at each connection.
//! * `node_identity` — `node_id: auto`: this broker's id from
//!   `STARLOG_NODE_ID` or its host name's ordinal (one StatefulSet template
//!   for every pod).
//! * `metadata` — the metadata group's commands and the state every broker
//!   derives from them.
//! * `view` — statuses, membership and placement as last published;
//!   `Leadership`.
//! * `http`, `metrics`, [`cli`], [`config`] — `/cluster/*`, the
//!   `starlog_raft_*` families, the CLI's HTTP client, the `cluster:` section.
//!
//! Each partition has its own replicas (the topic's replication factor, up
//! to the cluster size), placed round the brokers; leaders are spread by
//! letting each partition's preferred replica campaign first. Leaders
//! announce themselves in the metadata log, so a broker that does not host
//! a partition still names its leader. Reassignment changes a partition's
//! replicas in the metadata log; the group's leader then adds the new ones
//! as learners, promotes them once caught up, and removes the old ones,
//! which delete their copy.

pub mod config;

mod admin;
mod applied_security;
mod applier;
mod checkpoint;
mod control;
mod driver_loop;
mod hosting;
mod http;
mod inbox;
mod metadata;
mod metrics;
mod node;
pub mod node_identity;
mod offsets;
mod peer_addr;
mod security;
mod transport;
mod view;

#[cfg(test)]
mod tests;

pub use config::{ClusterSettings, ClusterTlsSettings, PeerAddr, PeerAddrError, PeerSettings};
pub use control::start;
pub use http::{ClusterStatus, GroupState, PeerState, ReplicaState, SecuritySummary};
pub use node::{ClusterError, Start};
pub use transport::PeerTls;
