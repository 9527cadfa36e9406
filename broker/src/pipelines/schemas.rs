//! The broker's own schema registry as the pipelines' schema source: Confluent
//! ids resolve in-process, and writers register their output schemas there.

use std::sync::Arc;

use starlog_processors::decode::schema_source::{SchemaRegistry, SchemaSource, SchemaSourceError};

use crate::registry::{RegistryError, SchemaStore};

/// [`SchemaStore`] seen through the processors' traits.
#[derive(Debug, Clone)]
pub struct LocalSchemas(pub Arc<SchemaStore>);

impl SchemaSource for LocalSchemas {
    fn schema_text(&self, id: u32) -> Result<String, SchemaSourceError> {
        self.0.schema_by_id(id).map_err(|e| match e {
            RegistryError::SchemaNotFound => SchemaSourceError::NotFound { id },
            other => SchemaSourceError::Unavailable {
                reason: other.to_string(),
            },
        })
    }
}

impl SchemaRegistry for LocalSchemas {
    fn register(&self, subject: &str, schema_text: &str) -> Result<u32, SchemaSourceError> {
        self.0.register(subject, schema_text).map_err(|e| match e {
            RegistryError::InvalidSchema(reason) => SchemaSourceError::Invalid {
                what: format!("for subject {subject}"),
                reason,
            },
            e @ RegistryError::Incompatible(_) => SchemaSourceError::Refused {
                subject: subject.to_owned(),
                reason: e.to_string(),
            },
            other => SchemaSourceError::Unavailable {
                reason: other.to_string(),
            },
        })
    }
}
