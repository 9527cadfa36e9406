//! One epoch of photometry, in the same shape for ZTF and Rubin.
//!
//! The triggering detection of an alert and its previous detections (the
//! light curve) are read by the same code, so a chain can treat
//! `candidate.detection()` and `candidate.previous_detections()` alike.
//! ZTF measures magnitudes; Rubin measures fluxes in nJy, from which an AB
//! magnitude is derived when the flux is positive.

use apache_avro::types::Value;

use crate::avro_value::{as_f64, as_i64, as_str, field};

/// Offset between Julian Date and Modified Julian Date.
pub const JD_TO_MJD: f64 = 2_400_000.5;

/// AB zero point for fluxes in nanojansky: m = -2.5 log10(f / nJy) + 31.4.
pub const NJY_AB_ZERO_POINT: f64 = 31.4;

/// 2.5 / ln(10): converts a relative flux error to a magnitude error.
const MAG_ERR_FACTOR: f64 = 1.085_736_204_758_129_6;

/// A single epoch of photometry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detection {
    /// ZTF `candid` / Rubin `diaSourceId`; `None` for ZTF non-detections
    /// (upper limits in `prv_candidates`).
    pub source_id: Option<i64>,
    /// Right ascension, degrees.
    pub ra: Option<f64>,
    /// Declination, degrees.
    pub dec: Option<f64>,
    /// Time of the observation, MJD (ZTF `jd - 2400000.5`; Rubin `midpointMjdTai`).
    pub mjd: Option<f64>,
    /// Photometric band: `g`, `r`, `i` for ZTF (`fid` 1, 2, 3), Rubin's `band`.
    pub band: Option<String>,
    /// PSF magnitude (ZTF `magpsf`; Rubin: AB magnitude of a positive `psfFlux`).
    pub magnitude: Option<f64>,
    /// 1-sigma magnitude error.
    pub magnitude_err: Option<f64>,
    /// PSF flux in nJy (Rubin only).
    pub flux_njy: Option<f64>,
    /// PSF flux error in nJy (Rubin only).
    pub flux_err_njy: Option<f64>,
    /// 5-sigma limiting magnitude of the difference image (ZTF `diffmaglim`).
    pub limiting_magnitude: Option<f64>,
    /// Real/bogus score: ZTF `drb`, else `rb`; Rubin `reliability`.
    pub real_bogus: Option<f64>,
}

impl Detection {
    /// Reads a ZTF `candidate` or `prv_candidate` record.
    #[must_use]
    pub fn from_ztf(record: &Value) -> Self {
        let num = |name: &str| {
            field(record, name)
                .and_then(as_f64)
                .filter(|v| v.is_finite())
        };
        Detection {
            source_id: field(record, "candid").and_then(as_i64),
            ra: num("ra"),
            dec: num("dec"),
            mjd: num("jd").map(|jd| jd - JD_TO_MJD),
            band: field(record, "fid").and_then(as_i64).map(ztf_band),
            magnitude: num("magpsf"),
            magnitude_err: num("sigmapsf"),
            flux_njy: None,
            flux_err_njy: None,
            limiting_magnitude: num("diffmaglim"),
            real_bogus: num("drb").or_else(|| num("rb")),
        }
    }

    /// Reads a Rubin `diaSource` record (any schema version: `dec`/`decl`,
    /// `midpointMjdTai`/`midPointTai`, `band`/`filterName`,
    /// `psfFlux`/`psFlux`).
    #[must_use]
    pub fn from_rubin(record: &Value) -> Self {
        let num = |name: &str| {
            field(record, name)
                .and_then(as_f64)
                .filter(|v| v.is_finite())
        };
        let flux = num("psfFlux").or_else(|| num("psFlux"));
        let flux_err = num("psfFluxErr").or_else(|| num("psFluxErr"));
        let (magnitude, magnitude_err) = match flux {
            Some(f) if f > 0.0 => (
                Some(NJY_AB_ZERO_POINT - 2.5 * f.log10()),
                flux_err.map(|e| MAG_ERR_FACTOR * e / f),
            ),
            _ => (None, None),
        };
        Detection {
            source_id: field(record, "diaSourceId").and_then(as_i64),
            ra: num("ra"),
            dec: num("dec").or_else(|| num("decl")),
            mjd: num("midpointMjdTai").or_else(|| num("midPointTai")),
            band: field(record, "band")
                .or_else(|| field(record, "filterName"))
                .and_then(as_str)
                .map(str::to_owned),
            magnitude,
            magnitude_err,
            flux_njy: flux,
            flux_err_njy: flux_err,
            limiting_magnitude: None,
            real_bogus: num("reliability"),
        }
    }
}

/// ZTF filter id to band name (1 = g, 2 = r, 3 = i).
#[must_use]
pub fn ztf_band(fid: i64) -> String {
    match fid {
        1 => "g".to_owned(),
        2 => "r".to_owned(),
        3 => "i".to_owned(),
        other => format!("fid{other}"),
    }
}

/// The three image stamps carried by an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoutKind {
    /// The science image.
    Science,
    /// The reference (template) image.
    Template,
    /// The difference image.
    Difference,
}

impl CutoutKind {
    /// All three kinds.
    pub const ALL: [CutoutKind; 3] = [Self::Science, Self::Template, Self::Difference];

    /// The top-level field holding this cutout (same name in ZTF and Rubin).
    #[must_use]
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Science => "cutoutScience",
            Self::Template => "cutoutTemplate",
            Self::Difference => "cutoutDifference",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: Vec<(&str, Value)>) -> Value {
        Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn rubin_magnitude_from_positive_flux_only() {
        // 3631 Jy = 3.631e12 nJy is magnitude 0 by definition of AB.
        let d = Detection::from_rubin(&rec(vec![
            ("psfFlux", Value::Float(3.631e12)),
            ("psfFluxErr", Value::Float(3.631e10)),
        ]));
        let m = d.magnitude.unwrap();
        assert!(m.abs() < 1e-3, "AB zero point: {m}");
        assert!((d.magnitude_err.unwrap() - 0.010_857).abs() < 1e-5);
        let neg = Detection::from_rubin(&rec(vec![("psfFlux", Value::Float(-10.0))]));
        assert_eq!(neg.magnitude, None);
        assert_eq!(neg.flux_njy, Some(-10.0));
    }

    #[test]
    fn ztf_prefers_drb_and_converts_jd() {
        let d = Detection::from_ztf(&rec(vec![
            ("jd", Value::Double(2_458_451.5)),
            ("fid", Value::Int(2)),
            ("rb", Value::Float(0.25)),
            ("drb", Value::Union(1, Box::new(Value::Float(0.75)))),
        ]));
        assert_eq!(d.mjd, Some(58_451.0));
        assert_eq!(d.band.as_deref(), Some("r"));
        assert_eq!(d.real_bogus, Some(0.75));
        let no_drb = Detection::from_ztf(&rec(vec![
            ("rb", Value::Float(0.25)),
            ("drb", Value::Union(0, Box::new(Value::Null))),
        ]));
        assert_eq!(no_drb.real_bogus, Some(0.25));
    }
}
