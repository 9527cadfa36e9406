//! The notifiers' template language: text with `{field}` and
//! `{field:format}` placeholders, compiled at load time against the fields
//! of the configured survey and rendered per alert.
//!
//! - `{objectId}`, `{candidate.magpsf}`, `{magpsf}`: an alert field by dotted
//!   path, from the top of the record or inside the detection record
//!   (`candidate` for ZTF, `diaSource` for Rubin), as
//!   [`Candidate::lookup`] resolves it;
//! - survey-independent names: `alert_id`, `object_id`, `ra`, `dec`, `mjd`,
//!   `jd`, `magnitude`, `magnitude_err`, `band`, `survey`, `filter` (the
//!   notifier's filter name), `matches` (the catalog matches as
//!   `catalog:source (distance")`, comma-separated);
//! - formats: `.Nf` (N decimals), `.Ne` (scientific), `d` (integer), `iso`
//!   (a JD, or an MJD when below 2,400,000, as ISO 8601 UTC), `hms` / `dms`
//!   (degrees as sexagesimal right ascension / declination);
//! - `{{` and `}}` are literal braces.
//!
//! A name that is neither survey-independent nor a field of the survey's
//! published schemas (any version) is refused at load, with the YAML path of
//! the template. A field an alert does not carry (an older schema version, a
//! null) renders as `n/a`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::calendar::{civil_from_days, MJD_UNIX_EPOCH};
use apache_avro::types::Value;
use starlog_processors::avro_value;
use starlog_processors::config::{ConfigError, Params};
use starlog_processors::{AlertFamily, Candidate};

/// What a missing or null field renders as.
pub(crate) const MISSING: &str = "n/a";

/// Offset between Julian Date and Modified Julian Date.
const JD_TO_MJD: f64 = 2_400_000.5;

/// Names every survey has (computed from the candidate's common fields).
const VIRTUAL: &[&str] = &[
    "alert_id",
    "object_id",
    "ra",
    "dec",
    "mjd",
    "jd",
    "magnitude",
    "magnitude_err",
    "band",
    "survey",
    "filter",
    "matches",
];

fn survey_fields(family: AlertFamily) -> &'static HashSet<&'static str> {
    static ZTF: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static RUBIN: OnceLock<HashSet<&'static str>> = OnceLock::new();
    match family {
        AlertFamily::Ztf => ZTF.get_or_init(|| include_str!("fields/ztf.txt").lines().collect()),
        AlertFamily::Rubin => {
            RUBIN.get_or_init(|| include_str!("fields/rubin.txt").lines().collect())
        }
    }
}

/// The detection record's name in each survey's alerts.
fn detection_record(family: AlertFamily) -> &'static str {
    match family {
        AlertFamily::Ztf => "candidate",
        AlertFamily::Rubin => "diaSource",
    }
}

/// The fields a notifier's templates may name: the survey's (see
/// `fields/README.md`), the survey-independent names, and `extra_fields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Survey {
    /// ZTF or Rubin.
    pub family: AlertFamily,
    extra: HashSet<String>,
}

impl Survey {
    /// Reads `survey` (`ztf` | `rubin`, required) and `extra_fields`
    /// (field paths of schema versions the built-in lists lack).
    ///
    /// # Errors
    /// Missing or mistyped.
    pub(crate) fn parse(p: &mut Params<'_>) -> Result<Self, ConfigError> {
        let family = match p.choice("survey", &["ztf", "rubin"], None)?.as_str() {
            "rubin" => AlertFamily::Rubin,
            _ => AlertFamily::Ztf,
        };
        let extra = p
            .optional_str_list("extra_fields", "field paths")?
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Survey { family, extra })
    }

    /// A survey with no extra fields.
    #[cfg(test)]
    pub(crate) fn of(family: AlertFamily) -> Self {
        Survey {
            family,
            extra: HashSet::new(),
        }
    }

    /// True when `path` names a field of the survey's alerts (top-level or
    /// inside the detection record), a survey-independent name or an extra field.
    pub(crate) fn has(&self, path: &str) -> bool {
        if VIRTUAL.contains(&path) || self.extra.contains(path) {
            return true;
        }
        let fields = survey_fields(self.family);
        fields.contains(path)
            || fields.contains(format!("{}.{path}", detection_record(self.family)).as_str())
    }
}

/// How a value is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// As it comes (numbers with Rust's shortest representation).
    Plain,
    /// Fixed decimals.
    Fixed(usize),
    /// Scientific with decimals.
    Sci(usize),
    /// Rounded integer.
    Int,
    /// JD or MJD as ISO 8601 UTC.
    Iso,
    /// Degrees as `HH:MM:SS.ss`.
    Hms,
    /// Degrees as `+DD:MM:SS.s`.
    Dms,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field {
        name: String,
        segments: Vec<String>,
        format: Format,
    },
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

fn parse_format(spec: &str) -> Option<Format> {
    match spec {
        "" => Some(Format::Plain),
        "d" => Some(Format::Int),
        "iso" => Some(Format::Iso),
        "hms" => Some(Format::Hms),
        "dms" => Some(Format::Dms),
        _ => {
            let rest = spec.strip_prefix('.')?;
            let (digits, kind) = rest.split_at(rest.len().checked_sub(1)?);
            let n: usize = digits.parse().ok().filter(|n| *n <= 17)?;
            match kind {
                "f" => Some(Format::Fixed(n)),
                "e" => Some(Format::Sci(n)),
                _ => None,
            }
        }
    }
}

impl Template {
    /// Compiles `text`; `path` is its YAML path for errors.
    ///
    /// # Errors
    /// An unbalanced brace, an unknown format, or a field `family`'s alerts do not have.
    pub(crate) fn compile(text: &str, survey: &Survey, path: &str) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(err(format!("unmatched `}}` at character {i}"))),
                '{' => {
                    let start = i + 1;
                    let end = text[start..]
                        .find('}')
                        .map(|e| start + e)
                        .ok_or_else(|| err(format!("unclosed `{{` at character {i}")))?;
                    let inner = &text[start..end];
                    while chars.peek().is_some_and(|(j, _)| *j <= end) {
                        chars.next();
                    }
                    let (name, spec) = inner.split_once(':').unwrap_or((inner, ""));
                    let name = name.trim();
                    if name.is_empty() || name.contains('{') {
                        return Err(err(format!("empty or malformed placeholder `{{{inner}}}`")));
                    }
                    let format = parse_format(spec.trim()).ok_or_else(|| {
                        err(format!(
                            "unknown format `{spec}` in `{{{inner}}}` (known: .Nf, .Ne, d, iso, hms, dms)"
                        ))
                    })?;
                    if !survey.has(name) {
                        return Err(err(format!(
                            "`{name}` is not a field of {} alerts (nor one of {}; fields of other schema versions go in extra_fields)",
                            survey.family,
                            VIRTUAL.join(", ")
                        )));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field {
                        name: name.to_owned(),
                        segments: name.split('.').map(str::to_owned).collect(),
                        format,
                    });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// Reads and compiles the template at `key`, or `default` when absent.
    ///
    /// # Errors
    /// As [`Template::compile`], or not a string.
    pub(crate) fn param(
        p: &mut Params<'_>,
        key: &str,
        survey: &Survey,
        default: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let text = match (p.optional_str(key, "a template text")?, default) {
            (Some(t), _) => t,
            (None, Some(d)) => d.to_owned(),
            (None, None) => return Err(p.error(key, "missing, expected a template text")),
        };
        Self::compile(&text, survey, &p.path_of(key))
    }

    /// The text for one alert; `filter` is what `{filter}` renders as.
    pub(crate) fn render(&self, c: &Candidate, filter: &str) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Field {
                    name,
                    segments,
                    format,
                } => out.push_str(&render_field(c, filter, name, segments, *format)),
            }
        }
        out
    }
}

/// A value to format: a number, or text.
enum Scalar {
    Num(f64),
    Int(i64),
    Text(String),
    Missing,
}

fn from_avro(v: Option<&Value>) -> Scalar {
    let Some(v) = v.map(avro_value::unwrap_union) else {
        return Scalar::Missing;
    };
    match v {
        Value::Null => Scalar::Missing,
        Value::Int(i) => Scalar::Int(i64::from(*i)),
        Value::Long(i) => Scalar::Int(*i),
        Value::Float(f) => Scalar::Num(f64::from(*f)),
        Value::Double(f) => Scalar::Num(*f),
        Value::Boolean(b) => Scalar::Text(b.to_string()),
        Value::String(s) | Value::Enum(_, s) => Scalar::Text(s.clone()),
        other => Scalar::Text(starlog_processors::output::json::value_to_json(other).to_string()),
    }
}

/// The value of `name` for `c` (survey-independent names first).
fn scalar(c: &Candidate, filter: &str, name: &str, segments: &[String]) -> Scalar {
    let opt = |v: Option<f64>| v.map_or(Scalar::Missing, Scalar::Num);
    match name {
        "alert_id" => Scalar::Int(c.alert_id()),
        "object_id" => c
            .object_id()
            .map_or(Scalar::Missing, |o| Scalar::Text(o.to_string())),
        "ra" => Scalar::Num(c.ra()),
        "dec" => Scalar::Num(c.dec()),
        "mjd" => opt(c.mjd()),
        "jd" => opt(c.mjd().map(|m| m + JD_TO_MJD)),
        "magnitude" => opt(c.magnitude()),
        "magnitude_err" => opt(c.magnitude_err()),
        "band" => c
            .band()
            .map_or(Scalar::Missing, |b| Scalar::Text(b.to_owned())),
        "survey" => Scalar::Text(c.family().to_string()),
        "filter" => Scalar::Text(filter.to_owned()),
        "matches" => Scalar::Text(matches_text(c)),
        _ => from_avro(c.lookup(segments)),
    }
}

/// The value of field `name` for a VOEvent `Param`: its text and VOEvent
/// `dataType` (`int`, `float`, `string`); `None` when the alert lacks it.
pub(crate) fn param_value(c: &Candidate, name: &str) -> Option<(String, &'static str)> {
    let segments: Vec<String> = name.split('.').map(str::to_owned).collect();
    match scalar(c, "", name, &segments) {
        Scalar::Missing => None,
        Scalar::Int(i) => Some((i.to_string(), "int")),
        Scalar::Num(f) if f.is_finite() => Some((f.to_string(), "float")),
        Scalar::Num(_) => None,
        Scalar::Text(t) => Some((t, "string")),
    }
}

/// The catalog matches as `catalog:source (1.23")`, comma-separated.
pub(crate) fn matches_text(c: &Candidate) -> String {
    let mut out = String::new();
    for (i, m) in c.matches().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{}:{} ({:.2}\")",
            m.catalogid,
            m.sourceid,
            m.distance * 3600.0
        );
    }
    out
}

fn render_field(
    c: &Candidate,
    filter: &str,
    name: &str,
    segments: &[String],
    format: Format,
) -> String {
    let value = scalar(c, filter, name, segments);
    let num = match &value {
        Scalar::Missing => return MISSING.to_owned(),
        Scalar::Text(t) => return t.clone(),
        Scalar::Int(i) if format == Format::Plain => return i.to_string(),
        #[allow(clippy::cast_precision_loss)]
        Scalar::Int(i) => *i as f64,
        Scalar::Num(f) => *f,
    };
    if !num.is_finite() {
        return MISSING.to_owned();
    }
    match format {
        Format::Plain => num.to_string(),
        Format::Fixed(n) => format!("{num:.n$}"),
        Format::Sci(n) => format!("{num:.n$e}"),
        Format::Int => format!("{:.0}", num.round()),
        Format::Iso => iso_from_day_number(num),
        Format::Hms => sexagesimal(num.rem_euclid(360.0) / 15.0, false, 2),
        Format::Dms => sexagesimal(num, true, 1),
    }
}

/// A JD (or an MJD, below 2,400,000) as `YYYY-MM-DDTHH:MM:SS.sss` UTC.
pub(crate) fn iso_from_day_number(day: f64) -> String {
    let mjd = if day >= 2_400_000.0 {
        day - JD_TO_MJD
    } else {
        day
    };
    iso_from_mjd(mjd)
}

/// An MJD as `YYYY-MM-DDTHH:MM:SS.sss` (no zone letter: the scale is the caller's).
pub(crate) fn iso_from_mjd(mjd: f64) -> String {
    // Milliseconds since 1970-01-01 (MJD 40587).
    #[allow(clippy::cast_possible_truncation)]
    let ms = ((mjd - MJD_UNIX_EPOCH) * 86_400_000.0).round() as i64;
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// `value` (hours or degrees) as `[+-]HH:MM:SS.s…` with `decimals` on the seconds.
fn sexagesimal(value: f64, signed: bool, decimals: usize) -> String {
    let sign = if value < 0.0 { '-' } else { '+' };
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(2));
    #[allow(clippy::cast_possible_truncation)]
    let total = (value.abs() * 3600.0 * scale).round() as i64;
    #[allow(clippy::cast_possible_truncation)]
    let unit = scale as i64;
    let secs = total % (60 * unit);
    let mins = total / (60 * unit) % 60;
    let whole = total / (3600 * unit);
    let width = decimals + 3;
    #[allow(clippy::cast_precision_loss)]
    let s = format!("{:0width$.decimals$}", secs as f64 / scale);
    if signed {
        format!("{sign}{whole:02}:{mins:02}:{s}")
    } else {
        format!("{whole:02}:{mins:02}:{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_angles() {
        assert_eq!(iso_from_mjd(40_587.0), "1970-01-01T00:00:00.000");
        assert_eq!(iso_from_mjd(51_544.5), "2000-01-01T12:00:00.000");
        assert_eq!(iso_from_day_number(2_451_545.0), "2000-01-01T12:00:00.000");
        assert_eq!(iso_from_mjd(60_000.25), "2023-02-25T06:00:00.000");
        assert_eq!(sexagesimal(180.0 / 15.0, false, 2), "12:00:00.00");
        assert_eq!(sexagesimal(-30.5, true, 1), "-30:30:00.0");
        assert_eq!(sexagesimal(12.345_678 / 15.0, false, 2), "00:49:22.96");
    }

    #[test]
    fn compile_checks_fields_and_formats() {
        let ztf = Survey::of(AlertFamily::Ztf);
        let rubin = Survey::of(AlertFamily::Rubin);
        let t = Template::compile(
            "{objectId} {candidate.magpsf:.2f} {magpsf:.1f} {{x}} {jd:iso}",
            &ztf,
            "p.text",
        )
        .unwrap();
        assert_eq!(t.pieces.len(), 7);
        assert_eq!(t.pieces[5], Piece::Text(" {x} ".to_owned()));
        let e = Template::compile("{nope}", &ztf, "p.text").unwrap_err();
        assert!(e.to_string().contains("p.text"), "{e}");
        assert!(e.to_string().contains("`nope`"), "{e}");
        assert!(Template::compile("{psfFlux}", &ztf, "p").is_err());
        assert!(Template::compile("{psfFlux:.1e}", &rubin, "p").is_ok());
        assert!(Template::compile("{ra:xyz}", &ztf, "p").is_err());
        assert!(Template::compile("{ra", &ztf, "p").is_err());
        assert!(Template::compile("ra}", &ztf, "p").is_err());
        let mut newer = Survey::of(AlertFamily::Rubin);
        assert!(Template::compile("{diaObject.someNewField}", &newer, "p").is_err());
        newer.extra.insert("diaObject.someNewField".to_owned());
        assert!(Template::compile("{diaObject.someNewField}", &newer, "p").is_ok());
    }
}
