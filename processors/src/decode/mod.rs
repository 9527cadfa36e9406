//! Bytes to [`Candidate`]s: the alert decoder.
//!
//! Alerts reach a chain in three forms (see the design's "Schema registry"
//! section): an Avro Object Container File with the writer schema in its
//! header (ZTF), the Confluent wire format whose schema id is resolved
//! through a [`SchemaSource`] (Rubin, and any Confluent serializer), or a
//! bare Avro body written with a schema the pipeline names in its
//! configuration. [`AlertDecoder`] handles all three, detecting the form in
//! [`InputFormat::Auto`] mode. Every failure is a typed [`DecodeError`] —
//! the caller routes the message to the dead-letter topic with the error's
//! text as the reason; nothing here panics on input bytes.

pub mod confluent;
mod datum;
pub mod named_schema;
pub mod ocf;
pub mod schema_source;
pub(crate) mod varint;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use apache_avro::Schema;

use crate::candidate::{Candidate, CandidateError};
pub use ocf::OcfSchemaCache;
pub use schema_source::{
    MemorySchemaRegistry, SchemaCache, SchemaRegistry, SchemaSource, SchemaSourceError,
};

/// Why a message could not be turned into candidates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Zero-length message.
    #[error("empty message")]
    Empty,
    /// Bad container-file header.
    #[error("not a valid Avro object container file: {reason}")]
    OcfHeader {
        /// What is wrong.
        reason: String,
    },
    /// The container uses a codec this build cannot decompress.
    #[error("object container file uses codec {codec:?}; only null and deflate are read")]
    UnsupportedCodec {
        /// The codec name from the header.
        codec: String,
    },
    /// Bad container-file data block.
    #[error("object container file block {block}: {reason}")]
    OcfBlock {
        /// 0-based block number.
        block: usize,
        /// What is wrong.
        reason: String,
    },
    /// Shorter than the 5-byte Confluent header.
    #[error("Confluent-framed message of {len} bytes is shorter than the 5-byte header")]
    ConfluentTooShort {
        /// Message length.
        len: usize,
    },
    /// First byte is not the Confluent magic 0.
    #[error("Confluent-framed message starts with byte {magic}, expected the magic 0")]
    ConfluentMagic {
        /// The byte found.
        magic: u8,
    },
    /// Confluent framing, but no schema source is configured.
    #[error("message is Confluent-framed (schema id {id}) but no schema registry is configured")]
    NoSchemaSource {
        /// The schema id in the frame.
        id: u32,
    },
    /// The schema id could not be resolved.
    #[error("schema id {id}: {source}")]
    Schema {
        /// The schema id in the frame.
        id: u32,
        /// Why.
        #[source]
        source: SchemaSourceError,
    },
    /// Bare Avro expected but no schema configured.
    #[error(
        "bare Avro input needs a schema (input.schema in the pipeline), and none is configured"
    )]
    NoBareSchema,
    /// Auto mode could not tell what the bytes are.
    #[error("message is neither an object container file nor Confluent-framed (first byte {first:#04x}), and no bare schema is configured")]
    Unrecognized {
        /// The first byte.
        first: u8,
    },
    /// The Avro body does not decode with its schema.
    #[error("schema {schema}: undecodable record: {reason}")]
    Body {
        /// Schema name.
        schema: String,
        /// The decoder's message.
        reason: String,
    },
    /// Bytes remain after the one record a message must hold.
    #[error("schema {schema}: {count} bytes left over after the record")]
    TrailingBytes {
        /// Schema name.
        schema: String,
        /// Leftover byte count.
        count: usize,
    },
    /// The Avro library panicked (a bug there); reported, never propagated.
    #[error("schema {schema}: the Avro decoder failed on this input ({reason})")]
    DecoderPanic {
        /// Schema name.
        schema: String,
        /// The panic message.
        reason: String,
    },
    /// The record decoded but is not a usable alert.
    #[error(transparent)]
    NotAnAlert(#[from] CandidateError),
}

/// How messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Detect per message: container magic, else Confluent magic (when a
    /// registry is configured), else bare (when a schema is configured).
    #[default]
    Auto,
    /// Avro Object Container Files.
    ObjectContainer,
    /// Confluent wire format.
    Confluent,
    /// Bare Avro bodies with a configured schema.
    Bare,
}

impl InputFormat {
    /// The names accepted in configuration.
    pub const NAMES: [&'static str; 4] = ["auto", "ocf", "confluent", "avro"];
}

impl FromStr for InputFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "auto" => Ok(Self::Auto),
            "ocf" | "object-container" => Ok(Self::ObjectContainer),
            "confluent" => Ok(Self::Confluent),
            "avro" | "bare" => Ok(Self::Bare),
            _ => Err(()),
        }
    }
}

/// Decodes messages into candidates. Cheap to clone; clones share caches.
#[derive(Clone, Default)]
pub struct AlertDecoder {
    format: InputFormat,
    registry: Option<Arc<SchemaCache>>,
    bare: Option<Arc<Schema>>,
    ocf_schemas: Arc<OcfSchemaCache>,
}

impl fmt::Debug for AlertDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertDecoder")
            .field("format", &self.format)
            .field("registry", &self.registry.is_some())
            .field(
                "bare",
                &self
                    .bare
                    .as_ref()
                    .and_then(|s| s.name().map(ToString::to_string)),
            )
            .finish_non_exhaustive()
    }
}

impl AlertDecoder {
    /// A decoder for `format`, with no registry and no bare schema.
    #[must_use]
    pub fn new(format: InputFormat) -> Self {
        AlertDecoder {
            format,
            ..Self::default()
        }
    }

    /// Resolves Confluent schema ids through `cache`.
    #[must_use]
    pub fn with_schema_cache(mut self, cache: Arc<SchemaCache>) -> Self {
        self.registry = Some(cache);
        self
    }

    /// Resolves Confluent schema ids through `source` (cached).
    #[must_use]
    pub fn with_schema_source(self, source: Arc<dyn SchemaSource>) -> Self {
        self.with_schema_cache(Arc::new(SchemaCache::new(source)))
    }

    /// Decodes bare bodies with `schema`.
    #[must_use]
    pub fn with_bare_schema(mut self, schema: Arc<Schema>) -> Self {
        self.bare = Some(schema);
        self
    }

    /// The configured format.
    #[must_use]
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// Decodes one message. A container file yields all its records; the
    /// other forms yield exactly one.
    ///
    /// # Errors
    /// [`DecodeError`], naming the part of the input at fault.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Candidate>, DecodeError> {
        let Some(&first) = bytes.first() else {
            return Err(DecodeError::Empty);
        };
        let format = match self.format {
            InputFormat::Auto => {
                if bytes.starts_with(ocf::MAGIC) {
                    InputFormat::ObjectContainer
                } else if first == confluent::MAGIC
                    && bytes.len() >= confluent::HEADER_LEN
                    && (self.registry.is_some() || self.bare.is_none())
                {
                    InputFormat::Confluent
                } else if self.bare.is_some() {
                    InputFormat::Bare
                } else {
                    return Err(DecodeError::Unrecognized { first });
                }
            }
            f => f,
        };
        match format {
            InputFormat::ObjectContainer => {
                let (schema, values) = ocf::decode(bytes, &self.ocf_schemas)?;
                values
                    .into_iter()
                    .map(|v| Candidate::new(v, Arc::clone(&schema)).map_err(DecodeError::from))
                    .collect()
            }
            InputFormat::Confluent => {
                let (id, body) = confluent::split(bytes)?;
                let cache = self
                    .registry
                    .as_ref()
                    .ok_or(DecodeError::NoSchemaSource { id })?;
                let schema = cache
                    .get(id)
                    .map_err(|source| DecodeError::Schema { id, source })?;
                let value = datum::decode_exact(&schema, body).map_err(|e| match e {
                    DecodeError::Body { schema, reason } => DecodeError::Body {
                        schema: format!("{schema} (id {id})"),
                        reason,
                    },
                    DecodeError::TrailingBytes { schema, count } => DecodeError::TrailingBytes {
                        schema: format!("{schema} (id {id})"),
                        count,
                    },
                    other => other,
                })?;
                Ok(vec![Candidate::new(value, schema)?])
            }
            InputFormat::Bare | InputFormat::Auto => {
                let schema = self.bare.as_ref().ok_or(DecodeError::NoBareSchema)?;
                let value = datum::decode_exact(schema, bytes)?;
                Ok(vec![Candidate::new(value, Arc::clone(schema))?])
            }
        }
    }

    /// The container-file schema cache (for tests and metrics).
    #[must_use]
    pub fn ocf_schema_cache(&self) -> &OcfSchemaCache {
        &self.ocf_schemas
    }
}
