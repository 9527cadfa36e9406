//! `Candidate`: one decoded alert, with typed access to the fields every
//! chain needs and the raw Avro value for everything else.
//!
//! Alerts come in two families whose layouts differ in names, units and
//! nesting (ZTF: `candidate`, magnitudes, JD; Rubin: `diaSource`, fluxes in
//! nJy, MJD) and in many schema versions. The common fields are extracted
//! once, when the candidate is built, so accessors are field reads: a chain
//! running at tens of thousands of alerts per second never re-walks the
//! record for `ra`/`dec`. Anything else is reached through [`Candidate::value`]
//! or [`Candidate::lookup`].

pub mod annotation;
pub mod detection;
mod rubin;
mod ztf;

use std::fmt;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::avro_value::{self, as_array, as_bytes, field};
pub use annotation::{Annotation, CandidateMatch};
pub use detection::{CutoutKind, Detection};

/// Which survey's layout an alert follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertFamily {
    /// Zwicky Transient Facility (`ztf.alert`).
    Ztf,
    /// Vera C. Rubin Observatory (`lsst.vM_m.alert`).
    Rubin,
}

impl fmt::Display for AlertFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ztf => "ZTF",
            Self::Rubin => "Rubin",
        })
    }
}

/// The object (light curve) an alert belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// ZTF `objectId`, e.g. `ZTF18aagqxtf`.
    Ztf(String),
    /// Rubin `diaObjectId`.
    Rubin(i64),
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ztf(s) => f.write_str(s),
            Self::Rubin(i) => write!(f, "{i}"),
        }
    }
}

/// A known solar-system object associated with the alert.
#[derive(Debug, Clone, PartialEq)]
pub struct SolarSystemAssociation {
    /// ZTF `ssnamenr` (MPC number or designation, e.g. `4826`,
    /// `(97125)1999VG102`); Rubin `ssObjectId` in decimal. `None` when the
    /// alert carries an association record without an id (Rubin samples).
    pub name: Option<String>,
    /// Distance to the object, arcsec (ZTF `ssdistnr`).
    pub distance_arcsec: Option<f64>,
    /// Its predicted magnitude (ZTF `ssmagnr`).
    pub magnitude: Option<f64>,
}

/// Why a decoded Avro record is not usable as an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// The record has neither a ZTF `candidate` nor a Rubin `diaSource` record.
    #[error(
        "record {schema} is not a ZTF or Rubin alert: it has no `candidate` or `diaSource` record"
    )]
    NotAnAlert {
        /// Name of the record's schema.
        schema: String,
    },
    /// A field every alert of the family must have is missing, null or not a number.
    #[error("{family} alert: field {field} is missing, null or of the wrong type")]
    MissingField {
        /// The alert family.
        family: AlertFamily,
        /// Dotted path of the field.
        field: &'static str,
    },
}

/// The common fields, extracted once.
#[derive(Debug, Clone)]
struct Core {
    family: AlertFamily,
    alert_id: i64,
    object_id: Option<ObjectId>,
    ra: f64,
    dec: f64,
    solar_system: Option<SolarSystemAssociation>,
    detection: Detection,
    /// Position of `candidate` / `diaSource` in the top-level record.
    detection_index: usize,
}

/// One alert on its way through a chain.
#[derive(Debug, Clone)]
pub struct Candidate {
    value: Value,
    schema: Arc<Schema>,
    core: Core,
    annotations: Vec<Annotation>,
}

fn is_record(v: &Value) -> bool {
    avro_value::record_fields(v).is_some()
}

/// The top-level fields; only called after `Candidate::new` checked `root` is a record.
fn top_fields(root: &Value) -> &[(String, Value)] {
    avro_value::record_fields(root).unwrap_or(&[])
}

impl Candidate {
    /// Builds a candidate from a decoded record and the schema it was written with.
    ///
    /// # Errors
    /// [`CandidateError`] when the record is not a ZTF or Rubin alert or lacks
    /// its id or position.
    pub fn new(value: Value, schema: Arc<Schema>) -> Result<Self, CandidateError> {
        let value = match value {
            Value::Union(_, inner) => *inner,
            other => other,
        };
        let not_alert = || CandidateError::NotAnAlert {
            schema: schema
                .name()
                .map_or_else(|| "(unnamed)".to_owned(), ToString::to_string),
        };
        let fields = avro_value::record_fields(&value).ok_or_else(not_alert)?;
        let core = if let Some(i) = ztf::detection_index(fields) {
            ztf::extract(&value, i)?
        } else if let Some(i) = rubin::detection_index(fields) {
            rubin::extract(&value, i)?
        } else {
            return Err(not_alert());
        };
        Ok(Candidate {
            value,
            schema,
            core,
            annotations: Vec::new(),
        })
    }

    /// ZTF or Rubin.
    #[must_use]
    pub fn family(&self) -> AlertFamily {
        self.core.family
    }

    /// ZTF `candid`; Rubin `diaSourceId` (8.0+) or `alertId` (up to 7.4).
    #[must_use]
    pub fn alert_id(&self) -> i64 {
        self.core.alert_id
    }

    /// ZTF `objectId` (absent in schema 1.1); Rubin `diaSource.diaObjectId`, else `diaObject.diaObjectId`
    /// (0 means none: solar-system sources have no `diaObject`).
    #[must_use]
    pub fn object_id(&self) -> Option<&ObjectId> {
        self.core.object_id.as_ref()
    }

    /// Right ascension of the triggering detection, degrees.
    #[must_use]
    pub fn ra(&self) -> f64 {
        self.core.ra
    }

    /// Declination of the triggering detection, degrees.
    #[must_use]
    pub fn dec(&self) -> f64 {
        self.core.dec
    }

    /// Observation time, MJD (ZTF `jd - 2400000.5`; Rubin `midpointMjdTai`).
    #[must_use]
    pub fn mjd(&self) -> Option<f64> {
        self.core.detection.mjd
    }

    /// PSF magnitude (Rubin: derived from a positive `psfFlux`).
    #[must_use]
    pub fn magnitude(&self) -> Option<f64> {
        self.core.detection.magnitude
    }

    /// 1-sigma error of [`Self::magnitude`].
    #[must_use]
    pub fn magnitude_err(&self) -> Option<f64> {
        self.core.detection.magnitude_err
    }

    /// Band name (`g`, `r`, `i`, ... ).
    #[must_use]
    pub fn band(&self) -> Option<&str> {
        self.core.detection.band.as_deref()
    }

    /// Real/bogus score where the alert has one (ZTF `drb`, else `rb`; Rubin `reliability`).
    #[must_use]
    pub fn real_bogus(&self) -> Option<f64> {
        self.core.detection.real_bogus
    }

    /// The triggering detection in the common shape.
    #[must_use]
    pub fn detection(&self) -> &Detection {
        &self.core.detection
    }

    /// The solar-system association, when the alert has one.
    #[must_use]
    pub fn solar_system(&self) -> Option<&SolarSystemAssociation> {
        self.core.solar_system.as_ref()
    }

    /// True when the alert is associated with a known solar-system object.
    #[must_use]
    pub fn is_solar_system(&self) -> bool {
        self.core.solar_system.is_some()
    }

    /// The bytes of a cutout (gzipped FITS), when present.
    #[must_use]
    pub fn cutout(&self, kind: CutoutKind) -> Option<&[u8]> {
        let v = field(&self.value, kind.field_name())?;
        match self.core.family {
            AlertFamily::Ztf => field(v, "stampData").and_then(as_bytes),
            AlertFamily::Rubin => as_bytes(v),
        }
    }

    /// Previous detections (the light curve before this alert): ZTF
    /// `prv_candidates` (non-detections included, with `source_id` `None`),
    /// Rubin `prvDiaSources`.
    #[must_use]
    pub fn previous_detections(&self) -> Vec<Detection> {
        match self.core.family {
            AlertFamily::Ztf => self
                .raw_array("prv_candidates")
                .iter()
                .map(Detection::from_ztf)
                .collect(),
            AlertFamily::Rubin => self
                .raw_array("prvDiaSources")
                .iter()
                .map(Detection::from_rubin)
                .collect(),
        }
    }

    /// Number of previous detections, without converting them.
    #[must_use]
    pub fn previous_detection_count(&self) -> usize {
        self.raw_array(match self.core.family {
            AlertFamily::Ztf => "prv_candidates",
            AlertFamily::Rubin => "prvDiaSources",
        })
        .len()
    }

    /// Forced-photometry rows as raw records: ZTF `fp_hists` (4.01+), Rubin
    /// `prvDiaForcedSources`. Empty when absent.
    #[must_use]
    pub fn forced_photometry(&self) -> &[Value] {
        self.raw_array(match self.core.family {
            AlertFamily::Ztf => "fp_hists",
            AlertFamily::Rubin => "prvDiaForcedSources",
        })
    }

    fn raw_array(&self, name: &str) -> &[Value] {
        field(&self.value, name).and_then(as_array).unwrap_or(&[])
    }

    /// The whole decoded record.
    #[must_use]
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The detection record (`candidate` for ZTF, `diaSource` for Rubin).
    #[must_use]
    pub fn detection_record(&self) -> &Value {
        top_fields(&self.value)
            .get(self.core.detection_index)
            .map_or(&Value::Null, |(_, v)| avro_value::unwrap_union(v))
    }

    /// The schema the record was written with.
    #[must_use]
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Finds a field by dotted path: first from the top of the record
    /// (`candidate.magpsf`, `objectId`), then inside the detection record
    /// (`magpsf`, `psfFlux`). Returns `Some(&Value::Null)` for a present null
    /// and `None` when no such field exists.
    #[must_use]
    pub fn lookup<S: AsRef<str>>(&self, segments: &[S]) -> Option<&Value> {
        avro_value::path(&self.value, segments)
            .or_else(|| avro_value::path(self.detection_record(), segments))
    }

    /// The annotations added so far.
    #[must_use]
    pub fn annotations(&self) -> &[Annotation] {
        &self.annotations
    }

    /// The catalog matches among the annotations.
    pub fn matches(&self) -> impl Iterator<Item = &CandidateMatch> {
        self.annotations.iter().map(|a| match a {
            Annotation::Match(m) => m,
        })
    }

    /// Adds an annotation.
    pub fn annotate(&mut self, annotation: Annotation) {
        self.annotations.push(annotation);
    }

    /// Removes all annotations (used by benchmarks and re-processing).
    pub fn clear_annotations(&mut self) {
        self.annotations.clear();
    }
}
