//! One module per family of Kafka APIs; each turns a decoded request into a
//! response, using the broker's topics, partitions and groups.

pub mod cluster;
pub mod configs;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassign;
pub mod topics_admin;
