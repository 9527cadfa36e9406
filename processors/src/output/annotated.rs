//! The annotated output schema: the alert's writer schema plus one field,
//! `starlog_matches`, an array of `starlog.CandidateMatch` records
//! (default `[]`, so readers with the original schema still read it).
//!
//! The field is appended *last* to the top-level record. Avro encodes a
//! record as its fields in order, so the annotated body is the original
//! body followed by the encoded array: the alert itself is encoded once,
//! with its own schema, and nothing is cloned. Derived schemas are cached
//! per writer schema (decoders share one `Arc<Schema>` per distinct schema).

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use parking_lot::Mutex;
use serde_json::{json, Value as Json};

use crate::candidate::{Candidate, CandidateMatch};
use crate::decode::varint::{write_bytes, write_long};

/// Name of the annotation field added to the top-level record.
pub const MATCHES_FIELD: &str = "starlog_matches";

/// The annotated form of one writer schema.
#[derive(Debug)]
pub struct AnnotatedSchema {
    /// The parsed annotated schema.
    pub schema: Schema,
    /// Its JSON text (for registries and file headers).
    pub text: String,
    /// True when the writer schema already had `starlog_matches`
    /// (re-processing an annotated stream): new matches replace the field.
    already_annotated: bool,
}

/// Why an annotated schema or record could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotateError {
    /// The writer schema's top level is not a record.
    #[error("schema {0} is not a record schema")]
    NotARecord(String),
    /// The derived schema does not parse (a bug, reported rather than hidden).
    #[error("annotated schema for {schema} is invalid: {reason}")]
    Invalid {
        /// Original schema name.
        schema: String,
        /// Parser message.
        reason: String,
    },
    /// The record does not encode with its schema.
    #[error("cannot encode alert with schema {schema}: {reason}")]
    Encode {
        /// Schema name.
        schema: String,
        /// Encoder message.
        reason: String,
    },
}

fn match_record_schema() -> Json {
    json!({
        "type": "record",
        "name": "CandidateMatch",
        "namespace": "starlog",
        "doc": "A catalog source within the cross-match radius of the candidate",
        "fields": [
            {"name": "candid", "type": "long", "doc": "alert id of the candidate"},
            {"name": "candra", "type": "double", "doc": "candidate right ascension [deg]"},
            {"name": "canddec", "type": "double", "doc": "candidate declination [deg]"},
            {"name": "catalogid", "type": "string", "doc": "catalog the source comes from"},
            {"name": "sourceid", "type": "string", "doc": "source id in that catalog"},
            {"name": "sourcera", "type": "double", "doc": "source right ascension [deg]"},
            {"name": "sourcedec", "type": "double", "doc": "source declination [deg]"},
            {"name": "distance", "type": "double", "doc": "angular distance candidate-source [deg]"}
        ]
    })
}

fn schema_name(schema: &Schema) -> String {
    schema
        .name()
        .map_or_else(|| "(unnamed)".to_owned(), ToString::to_string)
}

impl AnnotatedSchema {
    /// Derives the annotated schema from a writer schema.
    ///
    /// # Errors
    /// [`AnnotateError`] when the writer schema is not a record.
    pub fn derive(writer: &Schema) -> Result<Self, AnnotateError> {
        let name = schema_name(writer);
        let mut json = serde_json::to_value(writer).map_err(|e| AnnotateError::Invalid {
            schema: name.clone(),
            reason: e.to_string(),
        })?;
        let Some(fields) = json.get_mut("fields").and_then(Json::as_array_mut) else {
            return Err(AnnotateError::NotARecord(name));
        };
        let already_annotated = fields
            .iter()
            .any(|f| f.get("name").and_then(Json::as_str) == Some(MATCHES_FIELD));
        if !already_annotated {
            fields.push(json!({
                "name": MATCHES_FIELD,
                "type": {"type": "array", "items": match_record_schema()},
                "default": [],
                "doc": "catalog matches added by Starlog processors"
            }));
        }
        let text = json.to_string();
        let schema = Schema::parse_str(&text).map_err(|e| AnnotateError::Invalid {
            schema: name,
            reason: e.to_string(),
        })?;
        Ok(AnnotatedSchema {
            schema,
            text,
            already_annotated,
        })
    }

    /// Encodes the candidate's record with its annotations, as a body of
    /// this schema.
    ///
    /// # Errors
    /// [`AnnotateError::Encode`] when the record does not fit its schema.
    pub fn encode(&self, candidate: &Candidate) -> Result<Vec<u8>, AnnotateError> {
        let encode_err = |schema: &Schema, e: apache_avro::Error| AnnotateError::Encode {
            schema: schema_name(schema),
            reason: e.to_string(),
        };
        let mut out = Vec::with_capacity(64 * 1024);
        if self.already_annotated {
            let mut value = candidate.value().clone();
            if let Value::Record(fields) = &mut value {
                for (name, v) in fields.iter_mut() {
                    if name == MATCHES_FIELD {
                        *v = matches_value(candidate.matches());
                    }
                }
            }
            let writer = GenericDatumWriter::builder(&self.schema)
                .build()
                .map_err(|e| encode_err(&self.schema, e))?;
            writer
                .write_value_ref(&mut out, &value)
                .map_err(|e| encode_err(&self.schema, e))?;
            return Ok(out);
        }
        let schema = candidate.schema();
        let writer = GenericDatumWriter::builder(schema)
            .build()
            .map_err(|e| encode_err(schema, e))?;
        writer
            .write_value_ref(&mut out, candidate.value())
            .map_err(|e| encode_err(schema, e))?;
        encode_matches(&mut out, candidate.matches());
        Ok(out)
    }
}

fn matches_value<'a>(matches: impl Iterator<Item = &'a CandidateMatch>) -> Value {
    Value::Array(
        matches
            .map(|m| {
                Value::Record(vec![
                    ("candid".to_owned(), Value::Long(m.candid)),
                    ("candra".to_owned(), Value::Double(m.candra)),
                    ("canddec".to_owned(), Value::Double(m.canddec)),
                    (
                        "catalogid".to_owned(),
                        Value::String(m.catalogid.to_string()),
                    ),
                    ("sourceid".to_owned(), Value::String(m.sourceid.to_string())),
                    ("sourcera".to_owned(), Value::Double(m.sourcera)),
                    ("sourcedec".to_owned(), Value::Double(m.sourcedec)),
                    ("distance".to_owned(), Value::Double(m.distance)),
                ])
            })
            .collect(),
    )
}

/// Appends the Avro encoding of an array of `CandidateMatch` records.
pub fn encode_matches<'a>(out: &mut Vec<u8>, matches: impl Iterator<Item = &'a CandidateMatch>) {
    let items: Vec<&CandidateMatch> = matches.collect();
    if !items.is_empty() {
        write_long(out, i64::try_from(items.len()).unwrap_or(i64::MAX));
        for m in items {
            write_long(out, m.candid);
            out.extend_from_slice(&m.candra.to_le_bytes());
            out.extend_from_slice(&m.canddec.to_le_bytes());
            write_bytes(out, m.catalogid.as_bytes());
            write_bytes(out, m.sourceid.as_bytes());
            out.extend_from_slice(&m.sourcera.to_le_bytes());
            out.extend_from_slice(&m.sourcedec.to_le_bytes());
            out.extend_from_slice(&m.distance.to_le_bytes());
        }
    }
    write_long(out, 0);
}

/// A cached derivation: the writer schema (held so its address stays
/// unique) and its annotated form.
type CacheEntry = (Arc<Schema>, Arc<AnnotatedSchema>);

/// Annotated schemas by writer schema.
///
/// Writer schemas that differ only in documentation (ZTF re-published
/// schemas with doc changes) share one annotated schema, found by Parsing
/// Canonical Form: one registry id, and one container file, for all of them.
#[derive(Debug, Default)]
pub struct AnnotatedSchemas {
    /// Keyed by the writer schema's address; the entry holds the writer
    /// schema alive, so the address cannot be reused while cached.
    by_writer: Mutex<HashMap<usize, CacheEntry>>,
    /// Keyed by the writer schema's canonical form.
    by_canonical: Mutex<HashMap<String, Arc<AnnotatedSchema>>>,
}

impl AnnotatedSchemas {
    /// Entries kept before the cache is cleared.
    const MAX_ENTRIES: usize = 256;

    /// The annotated form of `writer`, derived on first use.
    ///
    /// # Errors
    /// As [`AnnotatedSchema::derive`].
    pub fn get(&self, writer: &Arc<Schema>) -> Result<Arc<AnnotatedSchema>, AnnotateError> {
        let key = Arc::as_ptr(writer) as usize;
        if let Some((_, a)) = self.by_writer.lock().get(&key) {
            return Ok(Arc::clone(a));
        }
        let canonical = writer.canonical_form();
        let existing = self.by_canonical.lock().get(&canonical).cloned();
        let annotated = match existing {
            Some(a) => a,
            None => {
                let a = Arc::new(AnnotatedSchema::derive(writer)?);
                let mut by_canonical = self.by_canonical.lock();
                if by_canonical.len() >= Self::MAX_ENTRIES {
                    by_canonical.clear();
                }
                Arc::clone(by_canonical.entry(canonical).or_insert(a))
            }
        };
        let mut map = self.by_writer.lock();
        if map.len() >= Self::MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (Arc::clone(writer), Arc::clone(&annotated)));
        Ok(annotated)
    }
}
