//! A client of Confluent-compatible schema registries: the id → schema and
//! subject/version calls ([`client`]) over HTTP or HTTPS ([`http`]), with
//! basic auth, the same TLS options as the Kafka connections, timeouts and
//! errors that name the URL. The mirror (upstream and local registries) and
//! the `starlog` binary (the broker's server-side schema-id rule) use it.

pub mod client;
pub mod http;
pub mod pool;

pub use client::{RegistryClient, RegistryError};
pub use http::{BaseUrl, HttpError};
pub use pool::RegistryPool;
