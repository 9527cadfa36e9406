//! Talking to Confluent-compatible schema registries: a small HTTP/1.1
//! client ([`http`]), the two REST calls the mirror needs ([`client`]),
//! and the once-per-id cache that maps upstream ids to local ids
//! ([`mapper`]).

pub mod client;
pub mod http;
pub mod mapper;

pub use client::{RegistryClient, RegistryError};
pub use mapper::{MapError, Mapping, SchemaMapper};
