//! One module per family of Kafka APIs; each turns a decoded request into a
//! response, using the broker's topics, partitions and groups. Each takes
//! the request's [`access::Access`] and checks the ACLs before it acts.

pub mod access;
pub mod acls;
pub mod cluster;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassign;
pub mod topics_admin;
pub mod users;
