//! JSON form of an annotated alert, for consumers that do not speak Avro.
//!
//! Unions are unwrapped to their value, bytes (cutouts) become base64
//! strings, non-finite floats become null (JSON has no NaN), and the
//! matches are added as `starlog_matches`. Cutouts can be left out: they
//! are most of an alert's size and rarely wanted in JSON.

use apache_avro::types::Value;
use serde_json::{Map, Number, Value as Json};

use super::annotated::MATCHES_FIELD;
use crate::candidate::Candidate;

fn number(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// Converts an Avro value to JSON (see the module docs).
#[must_use]
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Json::from(*i),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => Json::from(*i),
        Value::Float(f) => number(f64::from(*f)),
        Value::Double(f) => number(*f),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(super::base64::encode(b)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Union(_, inner) => value_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
        Value::Uuid(u) => Json::String(u.to_string()),
        other => Json::String(format!("{other:?}")),
    }
}

/// The candidate as a JSON object, with its matches.
#[must_use]
pub fn candidate_to_json(c: &Candidate, include_cutouts: bool) -> Json {
    let mut obj = match value_to_json(c.value()) {
        Json::Object(o) => o,
        other => {
            let mut m = Map::new();
            m.insert("value".to_owned(), other);
            m
        }
    };
    if !include_cutouts {
        for kind in crate::candidate::CutoutKind::ALL {
            obj.remove(kind.field_name());
        }
    }
    let matches = c
        .matches()
        .map(|m| {
            serde_json::json!({
                "candid": m.candid,
                "candra": number(m.candra),
                "canddec": number(m.canddec),
                "catalogid": &*m.catalogid,
                "sourceid": &*m.sourceid,
                "sourcera": number(m.sourcera),
                "sourcedec": number(m.sourcedec),
                "distance": number(m.distance),
            })
        })
        .collect();
    obj.insert(MATCHES_FIELD.to_owned(), Json::Array(matches));
    Json::Object(obj)
}
