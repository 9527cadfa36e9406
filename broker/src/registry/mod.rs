//! A schema registry compatible with Confluent Schema Registry clients,
//! served by the broker on its own HTTP port.
//!
//! Alerts travel in the Confluent wire format (magic byte 0, a 4-byte schema
//! id, the Avro body); ordinary serializers register and fetch schemas here.
//! Ids are global, stable across restarts, and the same schema (by Avro
//! parsing canonical form) always gets the same id. Only Avro schemas are
//! accepted; references are refused rather than half-supported.
//!
//! `store` holds the durable state, `compat` the compatibility rules,
//! `http` the REST API, `error` the error codes clients act on.

pub mod compat;
pub mod error;
pub mod http;
pub mod store;

pub use error::RegistryError;
pub use store::SchemaStore;
