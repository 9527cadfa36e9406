//! Talking to Confluent-compatible schema registries: the clients crate's
//! registry client ([`RegistryClient`]) and the once-per-id cache that maps
//! upstream ids to local ids ([`mapper`]).

pub mod mapper;

pub use mapper::{MapError, Mapping, SchemaMapper};
pub use starlog_clients::registry::{RegistryClient, RegistryError};
