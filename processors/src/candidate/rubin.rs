//! The Rubin/LSST alert layout (`lsst.vM_m.alert`, 3.0 to 11.1, and Spark
//! `topLevelRecord` rewrites of 7.4 and 9.0).
//!
//! Across versions: the top-level id is `alertId` up to 7.4 and
//! `diaSourceId` from 8.0; the solar-system record is `ssObject` up to 7.4
//! and `ssSource` from 8.0, and `diaSource.ssObjectId` is set (non-zero)
//! for associated sources. Solar-system sources carry `diaObjectId = 0`
//! (they belong to an `ssObject`, not a `diaObject`), so 0 means "none".

use apache_avro::types::Value;

use super::{CandidateError, Core, ObjectId, SolarSystemAssociation};
use crate::avro_value::{as_i64, field};
use crate::candidate::detection::Detection;
use crate::candidate::AlertFamily;

/// Index of the top-level `diaSource` field, when this is a Rubin alert.
pub(super) fn detection_index(fields: &[(String, Value)]) -> Option<usize> {
    let idx = fields.iter().position(|(n, _)| n == "diaSource")?;
    super::is_record(&fields[idx].1).then_some(idx)
}

pub(super) fn extract(root: &Value, detection_index: usize) -> Result<Core, CandidateError> {
    let missing = |field: &'static str| CandidateError::MissingField {
        family: AlertFamily::Rubin,
        field,
    };
    let fields = super::top_fields(root);
    let source = &fields[detection_index].1;
    let detection = Detection::from_rubin(source);
    let alert_id = field(root, "diaSourceId")
        .or_else(|| field(root, "alertId"))
        .and_then(as_i64)
        .or(detection.source_id)
        .ok_or_else(|| missing("diaSourceId"))?;
    let ra = detection.ra.ok_or_else(|| missing("diaSource.ra"))?;
    let dec = detection.dec.ok_or_else(|| missing("diaSource.dec"))?;
    let nonzero = |v: Option<i64>| v.filter(|id| *id != 0);
    let object_id = nonzero(field(source, "diaObjectId").and_then(as_i64))
        .or_else(|| {
            nonzero(
                field(root, "diaObject")
                    .and_then(|o| field(o, "diaObjectId"))
                    .and_then(as_i64),
            )
        })
        .map(ObjectId::Rubin);
    Ok(Core {
        family: AlertFamily::Rubin,
        alert_id,
        object_id,
        ra,
        dec,
        solar_system: solar_system(root, source),
        detection,
        detection_index,
    })
}

fn solar_system(root: &Value, source: &Value) -> Option<SolarSystemAssociation> {
    let nonzero = |v: Option<&Value>| v.and_then(as_i64).filter(|id| *id != 0);
    let from_source = nonzero(field(source, "ssObjectId"));
    let record = field(root, "ssSource").or_else(|| field(root, "ssObject"));
    if from_source.is_none() && record.is_none() {
        return None;
    }
    let id = from_source.or_else(|| nonzero(record.and_then(|r| field(r, "ssObjectId"))));
    Some(SolarSystemAssociation {
        name: id.map(|i| i.to_string()),
        distance_arcsec: None,
        magnitude: None,
    })
}
