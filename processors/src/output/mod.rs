//! What writers emit: the annotated Avro record and schema, its JSON form,
//! the compact JSON shapes of per-filter streams (`lasair`), and Avro
//! Object Container Files.
//!
//! Kept apart from the writer processors so that the broker and clients can
//! produce the same bytes (e.g. a runner re-encoding for a sink of its own).

pub mod annotated;
pub mod base64;
pub mod json;
pub mod lasair;
pub mod ocf_file;

pub use annotated::{AnnotatedSchema, AnnotatedSchemas, MATCHES_FIELD};
