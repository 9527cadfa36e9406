//! The ZTF alert layout (`ztf.alert`, schema 1.7 to 4.02, and Spark
//! `topLevelRecord` rewrites of it).
//!
//! Facts from the data README that this module encodes:
//! - `ssnamenr` is the *string* `"null"` (with `ssdistnr = -999`) when there
//!   is no solar-system match; an Avro null is treated the same way.
//! - `candid` is at the top level (and repeated in `candidate`).
//! - time is `candidate.jd`, a Julian Date.

use apache_avro::types::Value;

use super::{CandidateError, Core, ObjectId, SolarSystemAssociation};
use crate::avro_value::{as_f64, as_i64, as_str, field};
use crate::candidate::detection::Detection;
use crate::candidate::AlertFamily;

/// Index of the top-level `candidate` record, when this is a ZTF alert
/// (every version has one; `objectId` only exists from 1.3 on).
pub(super) fn detection_index(fields: &[(String, Value)]) -> Option<usize> {
    let idx = fields.iter().position(|(n, _)| n == "candidate")?;
    super::is_record(&fields[idx].1).then_some(idx)
}

pub(super) fn extract(root: &Value, detection_index: usize) -> Result<Core, CandidateError> {
    let missing = |field: &'static str| CandidateError::MissingField {
        family: AlertFamily::Ztf,
        field,
    };
    let fields = super::top_fields(root);
    let cand = &fields[detection_index].1;
    let detection = Detection::from_ztf(cand);
    let alert_id = field(root, "candid")
        .and_then(as_i64)
        .or(detection.source_id)
        .ok_or_else(|| missing("candid"))?;
    let ra = detection.ra.ok_or_else(|| missing("candidate.ra"))?;
    let dec = detection.dec.ok_or_else(|| missing("candidate.dec"))?;
    let object_id = field(root, "objectId")
        .and_then(as_str)
        .map(|s| ObjectId::Ztf(s.to_owned()));
    Ok(Core {
        family: AlertFamily::Ztf,
        alert_id,
        object_id,
        ra,
        dec,
        solar_system: solar_system(cand),
        detection,
        detection_index,
    })
}

fn solar_system(cand: &Value) -> Option<SolarSystemAssociation> {
    let name = field(cand, "ssnamenr").and_then(as_str)?.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("null") {
        return None;
    }
    let positive = |n: &str| {
        field(cand, n)
            .and_then(as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    Some(SolarSystemAssociation {
        name: Some(name.to_owned()),
        distance_arcsec: positive("ssdistnr"),
        magnitude: positive("ssmagnr"),
    })
}
