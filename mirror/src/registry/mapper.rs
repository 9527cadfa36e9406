//! Upstream schema id → local schema id, each resolved once.
//!
//! The first record carrying an upstream id costs two registry calls (the
//! schema text upstream, its registration locally under the target's
//! subject); every later record with that id is a hash-map hit. Confluent
//! ids are immutable, so nothing is ever invalidated. Failures are cached
//! too: an id the upstream registry does not know, or a schema the local
//! registry refuses, is a fact about the data and is not asked again; an
//! unavailable registry is retried, but at most once per `retry_after`,
//! so an outage does not make every record wait for a timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema;

use super::{RegistryClient, RegistryError};
use crate::alert_id::AlertIdReader;

/// An upstream schema, fetched and parsed.
#[derive(Debug)]
pub struct UpstreamSchema {
    /// Upstream id.
    pub id: u32,
    /// The schema text as the upstream registry returned it.
    pub text: String,
    /// Parsed.
    pub schema: Schema,
    /// How to read the alert id from a body, when the schema allows it.
    pub alert_id: Option<AlertIdReader>,
    /// The compiled body check, when the schema allows it.
    pub walker: Option<crate::body_check::Walker>,
}

/// A resolved mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The local id.
    pub local_id: u32,
    /// The schema.
    pub schema: Arc<UpstreamSchema>,
}

/// Why an id could not be mapped (the bad-input reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The upstream registry does not know the id.
    #[error("unknown upstream schema id {id}: {reason}")]
    UnknownId {
        /// Upstream id.
        id: u32,
        /// The registry's answer.
        reason: String,
    },
    /// The upstream schema is not a valid Avro schema.
    #[error("upstream schema id {id} is not a valid Avro schema: {reason}")]
    InvalidSchema {
        /// Upstream id.
        id: u32,
        /// The parser's message.
        reason: String,
    },
    /// A registry refused the request (e.g. the local subject's
    /// compatibility rules refuse the schema).
    #[error("schema id {id}: {reason}")]
    Refused {
        /// Upstream id.
        id: u32,
        /// The registry's answer.
        reason: String,
    },
    /// A registry could not be reached.
    #[error("schema id {id}: {reason}")]
    Unavailable {
        /// Upstream id.
        id: u32,
        /// What failed.
        reason: String,
    },
}

impl MapError {
    /// A short label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownId { .. } => "unknown schema id",
            Self::InvalidSchema { .. } => "invalid upstream schema",
            Self::Refused { .. } => "schema refused",
            Self::Unavailable { .. } => "registry unavailable",
        }
    }
}

#[derive(Debug, Clone)]
enum Cached<T> {
    Ok(T),
    Permanent(MapError),
    Retry(MapError, Instant),
}

/// The id cache in front of both registries.
#[derive(Debug)]
pub struct SchemaMapper {
    upstream: RegistryClient,
    local: RegistryClient,
    alert_id_fields: Vec<String>,
    retry_after: Duration,
    schemas: HashMap<u32, Cached<Arc<UpstreamSchema>>>,
    local_ids: HashMap<(u32, String), Cached<u32>>,
    /// Registry round trips made (for the summary and tests).
    pub calls: u64,
}

fn classify(id: u32, e: RegistryError) -> Cached<std::convert::Infallible> {
    match e {
        RegistryError::NotFound { .. } => Cached::Permanent(MapError::UnknownId {
            id,
            reason: e.to_string(),
        }),
        RegistryError::Refused { .. } => Cached::Permanent(MapError::Refused {
            id,
            reason: e.to_string(),
        }),
        RegistryError::Unavailable { .. } => Cached::Retry(
            MapError::Unavailable {
                id,
                reason: e.to_string(),
            },
            Instant::now(),
        ),
    }
}

fn widen<T>(c: Cached<std::convert::Infallible>, retry_after: Duration) -> Cached<T> {
    match c {
        Cached::Ok(never) => match never {},
        Cached::Permanent(e) => Cached::Permanent(e),
        Cached::Retry(e, at) => Cached::Retry(e, at + retry_after),
    }
}

impl SchemaMapper {
    /// A mapper between two registries.
    pub fn new(
        upstream: RegistryClient,
        local: RegistryClient,
        alert_id_fields: Vec<String>,
        retry_after: Duration,
    ) -> Self {
        Self {
            upstream,
            local,
            alert_id_fields,
            retry_after,
            schemas: HashMap::new(),
            local_ids: HashMap::new(),
            calls: 0,
        }
    }

    /// The upstream schema of `id`, fetched once.
    pub async fn upstream_schema(&mut self, id: u32) -> Result<Arc<UpstreamSchema>, MapError> {
        match self.schemas.get(&id) {
            Some(Cached::Ok(s)) => return Ok(Arc::clone(s)),
            Some(Cached::Permanent(e)) => return Err(e.clone()),
            Some(Cached::Retry(e, at)) if Instant::now() < *at => return Err(e.clone()),
            _ => {}
        }
        self.calls += 1;
        let entry = match self.upstream.schema_text(id).await {
            Ok(text) => match Schema::parse_str(&text) {
                Ok(schema) => {
                    let alert_id = AlertIdReader::for_schema(&schema, &self.alert_id_fields);
                    tracing::info!(
                        upstream_id = id,
                        alert_id_field = alert_id.as_ref().map(AlertIdReader::field),
                        "upstream schema fetched"
                    );
                    let walker = crate::body_check::Walker::new(&schema);
                    Cached::Ok(Arc::new(UpstreamSchema {
                        id,
                        text,
                        schema,
                        alert_id,
                        walker,
                    }))
                }
                Err(e) => Cached::Permanent(MapError::InvalidSchema {
                    id,
                    reason: e.to_string(),
                }),
            },
            Err(e) => widen(classify(id, e), self.retry_after),
        };
        self.schemas.insert(id, entry.clone());
        match entry {
            Cached::Ok(s) => Ok(s),
            Cached::Permanent(e) | Cached::Retry(e, _) => Err(e),
        }
    }

    /// The local id of upstream `id`, registering the schema under
    /// `subject` the first time.
    pub async fn map(&mut self, id: u32, subject: &str) -> Result<Mapping, MapError> {
        let schema = self.upstream_schema(id).await?;
        let key = (id, subject.to_owned());
        match self.local_ids.get(&key) {
            Some(Cached::Ok(local_id)) => {
                return Ok(Mapping {
                    local_id: *local_id,
                    schema,
                })
            }
            Some(Cached::Permanent(e)) => return Err(e.clone()),
            Some(Cached::Retry(e, at)) if Instant::now() < *at => return Err(e.clone()),
            _ => {}
        }
        self.calls += 1;
        let entry = match self.local.register(subject, &schema.text).await {
            Ok(local_id) => {
                tracing::info!(upstream_id = id, local_id, %subject, "schema id mapped");
                Cached::Ok(local_id)
            }
            Err(e) => widen(classify(id, e), self.retry_after),
        };
        self.local_ids.insert(key, entry.clone());
        match entry {
            Cached::Ok(local_id) => Ok(Mapping { local_id, schema }),
            Cached::Permanent(e) | Cached::Retry(e, _) => Err(e),
        }
    }

    /// Every mapping made so far: `(upstream id, subject, local id)`.
    pub fn mappings(&self) -> Vec<(u32, String, u32)> {
        let mut v: Vec<(u32, String, u32)> = self
            .local_ids
            .iter()
            .filter_map(|((id, s), c)| match c {
                Cached::Ok(l) => Some((*id, s.clone(), *l)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }
}
