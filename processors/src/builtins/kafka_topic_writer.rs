//! `KafkaTopicWriter`: writes each alert that reaches it to a Kafka topic,
//! through the [`TopicSink`] the runner injects, and passes it on.
//!
//! Avro output is the annotated record (see [`crate::output::annotated`])
//! in the Confluent wire format: the annotated schema is registered under
//! `<topic>-value` (or `subject`) on first use of each input schema, and its
//! id framed into every message, so ordinary Confluent deserializers read
//! the topic. JSON output is the same content as a JSON object
//! ([`crate::output::json`]). The key is the object id by default, so all
//! alerts of an object land in one partition, in order.
//!
//! JSON output has three shapes, those of Lasair's per-filter streams
//! ([`crate::output::lasair`]): the full alert (without cutouts unless
//! asked), chosen fields only, or a lite light curve.

use std::collections::HashMap;
use std::sync::Arc;

use crate::candidate::Candidate;
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::decode::{confluent, SchemaRegistry, SchemaSourceError};
use crate::output::annotated::{AnnotatedSchema, AnnotatedSchemas};
use crate::output::json::candidate_to_json;
use crate::output::lasair::{fields_json, lite_lightcurve_json, FieldPath};
use crate::processor::{CandidateProcessor, ProcessError, Response};
use crate::sink::TopicSink;

/// Message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Confluent-framed Avro with a registered schema.
    Avro,
    /// UTF-8 JSON.
    Json {
        /// Keep the cutouts (base64) in the JSON.
        include_cutouts: bool,
    },
}

/// What a JSON message holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum JsonShape {
    /// The whole alert with its matches (cutouts per `include_cutouts`).
    #[default]
    Full,
    /// Only these fields, keyed as written.
    Fields(Vec<FieldPath>),
    /// The object, the alert, its position and its detections.
    LiteLightcurve,
}

/// What the message key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The object id (ZTF `objectId`, Rubin `diaObjectId`), as text.
    ObjectId,
    /// The alert id, as decimal text.
    AlertId,
    /// No key.
    None,
}

/// The writer.
pub struct KafkaTopicWriter {
    topic: String,
    subject: String,
    format: OutputFormat,
    shape: JsonShape,
    key: KeyChoice,
    sink: Arc<dyn TopicSink>,
    registry: Option<Arc<dyn SchemaRegistry>>,
    schemas: AnnotatedSchemas,
    /// Registered ids by annotated schema address (the `Arc` keeps it alive).
    ids: HashMap<usize, (Arc<AnnotatedSchema>, u32)>,
}

impl std::fmt::Debug for KafkaTopicWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopicWriter")
            .field("topic", &self.topic)
            .field("subject", &self.subject)
            .field("format", &self.format)
            .field("shape", &self.shape)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl KafkaTopicWriter {
    /// A writer to `topic`. Avro output needs a `registry`.
    #[must_use]
    pub fn new(
        topic: impl Into<String>,
        format: OutputFormat,
        key: KeyChoice,
        sink: Arc<dyn TopicSink>,
        registry: Option<Arc<dyn SchemaRegistry>>,
    ) -> Self {
        let topic = topic.into();
        KafkaTopicWriter {
            subject: format!("{topic}-value"),
            topic,
            format,
            shape: JsonShape::Full,
            key,
            sink,
            registry,
            schemas: AnnotatedSchemas::default(),
            ids: HashMap::new(),
        }
    }

    /// Registers under `subject` instead of `<topic>-value`.
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Writes JSON messages of `shape` (only for [`OutputFormat::Json`]).
    #[must_use]
    pub fn with_shape(mut self, shape: JsonShape) -> Self {
        self.shape = shape;
        self
    }

    fn avro_value(&mut self, c: &Candidate) -> Result<Vec<u8>, ProcessError> {
        let encode_err = |reason: String| ProcessError::Encode {
            alert_id: c.alert_id(),
            schema: c
                .schema()
                .name()
                .map_or_else(String::new, ToString::to_string),
            reason,
        };
        let annotated = self
            .schemas
            .get(c.schema())
            .map_err(|e| encode_err(e.to_string()))?;
        let key = Arc::as_ptr(&annotated) as usize;
        let id = match self.ids.get(&key) {
            Some((_, id)) => *id,
            None => {
                let Some(registry) = &self.registry else {
                    return Err(ProcessError::Other {
                        processor: "KafkaTopicWriter".to_owned(),
                        reason: "Avro output needs a schema registry".to_owned(),
                    });
                };
                let id = registry
                    .register(&self.subject, &annotated.text)
                    .map_err(|source| ProcessError::Registry {
                        subject: self.subject.clone(),
                        source,
                    })?;
                self.ids.insert(key, (Arc::clone(&annotated), id));
                id
            }
        };
        let body = annotated.encode(c).map_err(|e| encode_err(e.to_string()))?;
        Ok(confluent::frame(id, &body))
    }
}

impl CandidateProcessor for KafkaTopicWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        let value = match self.format {
            OutputFormat::Avro => match self.avro_value(candidate) {
                Ok(v) => v,
                // An alert that cannot be encoded, or whose schema the
                // registry refuses, never will be: dead-letter it. A
                // registry that cannot answer now is retried.
                Err(
                    e @ (ProcessError::Encode { .. }
                    | ProcessError::Registry {
                        source:
                            SchemaSourceError::Refused { .. } | SchemaSourceError::Invalid { .. },
                        ..
                    }),
                ) => return Response::DeadLetter(e.to_string()),
                Err(e) => return Response::Fail(e),
            },
            OutputFormat::Json { include_cutouts } => {
                let json = match &self.shape {
                    JsonShape::Full => candidate_to_json(candidate, include_cutouts),
                    JsonShape::Fields(fields) => fields_json(candidate, fields),
                    JsonShape::LiteLightcurve => lite_lightcurve_json(candidate),
                };
                match serde_json::to_vec(&json) {
                    Ok(v) => v,
                    Err(e) => {
                        return Response::DeadLetter(
                            ProcessError::Encode {
                                alert_id: candidate.alert_id(),
                                schema: "json".to_owned(),
                                reason: e.to_string(),
                            }
                            .to_string(),
                        )
                    }
                }
            }
        };
        let key = match self.key {
            KeyChoice::ObjectId => candidate.object_id().map(ToString::to_string),
            KeyChoice::AlertId => Some(candidate.alert_id().to_string()),
            KeyChoice::None => None,
        };
        match self
            .sink
            .send(&self.topic, key.as_deref().map(str::as_bytes), &value, &[])
        {
            Ok(()) => Response::Pass,
            Err(source) => Response::Fail(ProcessError::Sink {
                topic: self.topic.clone(),
                source,
            }),
        }
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.sink.flush().map_err(|source| ProcessError::Sink {
            topic: self.topic.clone(),
            source,
        })
    }
}

#[derive(Debug)]
struct KafkaTopicWriterSpec {
    topic: String,
    subject: Option<String>,
    format: OutputFormat,
    shape: JsonShape,
    key: KeyChoice,
}

impl ProcessorSpec for KafkaTopicWriterSpec {
    fn build(
        &self,
        ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let sink = ctx.topic_sink.clone().ok_or_else(|| ConfigError::Invalid {
            path: path.to_owned(),
            message: "KafkaTopicWriter needs a Kafka sink, and the runner provided none".to_owned(),
        })?;
        if self.format == OutputFormat::Avro && ctx.schema_registry.is_none() {
            return Err(ConfigError::Invalid {
                path: format!("{path}.params.format"),
                message: "avro output needs a schema registry, and the runner provided none (use format: json)".to_owned(),
            });
        }
        let mut w = KafkaTopicWriter::new(
            self.topic.clone(),
            self.format,
            self.key,
            sink,
            ctx.schema_registry.clone(),
        );
        if let Some(s) = &self.subject {
            w = w.with_subject(s.clone());
        }
        Ok(Box::new(w.with_shape(self.shape.clone())))
    }
}

/// Parameters: `topic` (required), `format` (`avro` | `json`, default
/// `avro`), `key` (`object_id` | `alert_id` | `none`, default `object_id`),
/// `subject` (default `<topic>-value`), `include_cutouts` (JSON only,
/// default false), `shape` (JSON only: `full` | `fields` |
/// `lite_lightcurve`, default `full`), `fields` (names or dotted paths,
/// required with `shape: fields`).
///
/// # Errors
/// Missing or mistyped parameters.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let topic = p.required_str("topic", "a topic name")?;
    let format = p.choice("format", &["avro", "json"], Some("avro"))?;
    let include_cutouts = p.optional_bool("include_cutouts", false)?;
    let shape_name = p.choice(
        "shape",
        &["full", "fields", "lite_lightcurve"],
        Some("full"),
    )?;
    let fields = p.optional_str_list("fields", "field names or dotted paths")?;
    let format = if format == "json" {
        OutputFormat::Json { include_cutouts }
    } else {
        if include_cutouts {
            return Err(p.error(
                "include_cutouts",
                "only applies to format: json (Avro output always keeps cutouts)",
            ));
        }
        if shape_name != "full" {
            return Err(p.error(
                "shape",
                "only applies to format: json (Avro output is the full annotated alert)",
            ));
        }
        OutputFormat::Avro
    };
    if include_cutouts && shape_name != "full" {
        return Err(p.error("include_cutouts", "only applies to shape: full"));
    }
    let shape = match (shape_name.as_str(), fields) {
        ("fields", Some(f)) if !f.is_empty() => {
            JsonShape::Fields(f.iter().map(|s| FieldPath::new(s)).collect())
        }
        ("fields", _) => {
            return Err(p.error(
                "fields",
                "missing, expected a non-empty list of field names (shape: fields)",
            ))
        }
        (_, Some(_)) => return Err(p.error("fields", "only applies to shape: fields")),
        ("lite_lightcurve", None) => JsonShape::LiteLightcurve,
        _ => JsonShape::Full,
    };
    let key = match p
        .choice("key", &["object_id", "alert_id", "none"], Some("object_id"))?
        .as_str()
    {
        "alert_id" => KeyChoice::AlertId,
        "none" => KeyChoice::None,
        _ => KeyChoice::ObjectId,
    };
    let subject = p.optional_str("subject", "a schema registry subject")?;
    Ok(Box::new(KafkaTopicWriterSpec {
        topic,
        subject,
        format,
        shape,
        key,
    }))
}
