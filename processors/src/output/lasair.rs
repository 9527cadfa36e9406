//! The compact JSON shapes community brokers publish per user filter
//! (Lasair's "streams"): chosen fields only, or a lite light curve. The
//! full alert without cutouts is [`super::json::candidate_to_json`].

use serde_json::{Map, Number, Value as Json};

use super::json::value_to_json;
use crate::candidate::{Candidate, Detection};

/// A field chosen by name (`magpsf`, looked up in the detection record
/// when not at the top) or by dotted path (`candidate.magpsf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    name: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses `candidate.magpsf`-style text.
    #[must_use]
    pub fn new(text: &str) -> Self {
        FieldPath {
            name: text.to_owned(),
            segments: text.split('.').map(str::to_owned).collect(),
        }
    }

    /// The text it was written as (the key in the output object).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn number(f: Option<f64>) -> Json {
    f.and_then(Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

/// `{ "<field as written>": value, ... }` (a JSON object: keys unordered); a field the
/// alert lacks is null.
#[must_use]
pub fn fields_json(c: &Candidate, fields: &[FieldPath]) -> Json {
    let mut obj = Map::new();
    for f in fields {
        let v = c.lookup(&f.segments).map_or(Json::Null, value_to_json);
        obj.insert(f.name.clone(), v);
    }
    Json::Object(obj)
}

fn point(d: &Detection) -> Json {
    serde_json::json!({
        "mjd": number(d.mjd),
        "band": d.band,
        "magnitude": number(d.magnitude),
        "magnitude_err": number(d.magnitude_err),
    })
}

/// The lite light curve: the object, the alert, its position, and every
/// detection with a magnitude (previous ones and this alert's), oldest
/// first, as `{mjd, band, magnitude, magnitude_err}`. Non-detections (ZTF
/// upper limits) and Rubin sources with a non-positive flux are left out.
#[must_use]
pub fn lite_lightcurve_json(c: &Candidate) -> Json {
    let mut points: Vec<Detection> = c
        .previous_detections()
        .into_iter()
        .filter(|d| d.magnitude.is_some() && d.mjd.is_some())
        .collect();
    if c.magnitude().is_some() && c.mjd().is_some() {
        points.push(c.detection().clone());
    }
    points.sort_by(|a, b| a.mjd.unwrap_or(0.0).total_cmp(&b.mjd.unwrap_or(0.0)));
    let object_id = c.object_id().map_or(Json::Null, |o| match o {
        crate::candidate::ObjectId::Ztf(s) => Json::String(s.clone()),
        crate::candidate::ObjectId::Rubin(i) => Json::from(*i),
    });
    serde_json::json!({
        "object_id": object_id,
        "alert_id": c.alert_id(),
        "survey": c.family().to_string(),
        "ra": number(Some(c.ra())),
        "dec": number(Some(c.dec())),
        "lightcurve": points.iter().map(point).collect::<Vec<_>>(),
    })
}
