//! `LightCurveWriter`: one light curve per object (ZTF `objectId`, Rubin
//! `diaObjectId`), written as a FITS binary table and/or a VOTable, and
//! updated as new alerts of the object arrive.
//!
//! Each alert brings its detection, its previous detections (ZTF
//! `prv_candidates`, with the upper limits; Rubin `prvDiaSources`) and its
//! forced photometry (ZTF `fp_hists`, Rubin `prvDiaForcedSources`). Rows are
//! merged into the object's curve by identity — `(kind, source id)`, or
//! `(kind, time, band)` for rows without an id (ZTF upper limits and forced
//! photometry) — so the detection of one alert, repeated in the next
//! alert's history, is one row, and a replay adds nothing.
//!
//! `process` merges in memory; `flush` writes every changed curve as
//! `<object>.fits` / `<object>.vot` through [`StagedFiles`] (`.part`, fsync,
//! rename, directory fsync). A curve not in memory is read back from its
//! file before merging (FITS when written, else the VOTable).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use apache_avro::types::Value;
use starlog_processors::avro_value::{as_f64, as_i64, as_str, field};
use starlog_processors::candidate::detection::{ztf_band, NJY_AB_ZERO_POINT};
use starlog_processors::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use starlog_processors::{
    AlertFamily, Candidate, CandidateProcessor, Detection, ObjectId, ProcessError, Response,
};
use votable::data::{Data, DataElem};
use votable::datatype::Datatype;
use votable::field::{ArraySize, Field};
use votable::impls::mem::InMemTableDataRows;
use votable::impls::VOTableValue;
use votable::resource::{Resource, ResourceOrTable, ResourceSubElem};
use votable::table::Table;
use votable::values::Values;
use votable::votable::{VOTable, VOTableWrapper, Version};
use votable::TableElem;

use super::fits::{self, Cell, Column, ColumnType};
use super::staged::{io_err, remove_stale_parts, StagedFiles};

/// The class name.
pub(crate) const CLASS: &str = "LightCurveWriter";

/// 2.5 / ln(10).
const MAG_ERR_FACTOR: f64 = 1.085_736_204_758_129_6;

/// ZTF's missing-value marker in `fp_hists.forcediffimflux`.
const ZTF_FP_MISSING: f64 = -99_999.0;

/// The columns of a light curve, in file order.
pub(crate) const COLUMNS: [Column; 11] = [
    Column {
        name: "kind",
        kind: ColumnType::Text(12),
        unit: "",
        ucd: "meta.code.class",
        description: "detection, upper_limit or forced",
    },
    Column {
        name: "source_id",
        kind: ColumnType::Int64,
        unit: "",
        ucd: "meta.id",
        description: "ZTF candid, Rubin diaSourceId or diaForcedSourceId",
    },
    Column {
        name: "mjd",
        kind: ColumnType::Float64,
        unit: "d",
        ucd: "time.epoch",
        description: "MJD (ZTF jd - 2400000.5; Rubin midpointMjdTai)",
    },
    Column {
        name: "band",
        kind: ColumnType::Text(8),
        unit: "",
        ucd: "instr.filter",
        description: "photometric band",
    },
    Column {
        name: "ra",
        kind: ColumnType::Float64,
        unit: "deg",
        ucd: "pos.eq.ra",
        description: "right ascension",
    },
    Column {
        name: "dec",
        kind: ColumnType::Float64,
        unit: "deg",
        ucd: "pos.eq.dec",
        description: "declination",
    },
    Column {
        name: "mag",
        kind: ColumnType::Float64,
        unit: "mag",
        ucd: "phot.mag",
        description: "PSF magnitude (AB from a positive flux)",
    },
    Column {
        name: "mag_err",
        kind: ColumnType::Float64,
        unit: "mag",
        ucd: "stat.error;phot.mag",
        description: "1-sigma magnitude error",
    },
    Column {
        name: "flux",
        kind: ColumnType::Float64,
        unit: "nJy",
        ucd: "phot.flux",
        description: "PSF flux (difference image)",
    },
    Column {
        name: "flux_err",
        kind: ColumnType::Float64,
        unit: "nJy",
        ucd: "stat.error;phot.flux",
        description: "1-sigma flux error",
    },
    Column {
        name: "limiting_mag",
        kind: ColumnType::Float64,
        unit: "mag",
        ucd: "phot.mag;stat.max",
        description: "5-sigma limiting magnitude (ZTF diffmaglim)",
    },
];

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum RowKind {
    Detection,
    UpperLimit,
    Forced,
}

impl RowKind {
    fn name(self) -> &'static str {
        match self {
            Self::Detection => "detection",
            Self::UpperLimit => "upper_limit",
            Self::Forced => "forced",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "detection" => Some(Self::Detection),
            "upper_limit" => Some(Self::UpperLimit),
            "forced" => Some(Self::Forced),
            _ => None,
        }
    }
}

/// One epoch of a light curve; NaN is null.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    kind: RowKind,
    source_id: Option<i64>,
    mjd: f64,
    band: String,
    ra: f64,
    dec: f64,
    mag: f64,
    mag_err: f64,
    flux: f64,
    flux_err: f64,
    limiting_mag: f64,
}

/// A row's identity within its curve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RowKey {
    Id(RowKind, i64),
    Epoch(RowKind, u64, String),
}

impl Row {
    fn key(&self) -> RowKey {
        match self.source_id {
            Some(id) => RowKey::Id(self.kind, id),
            None => RowKey::Epoch(self.kind, self.mjd.to_bits(), self.band.clone()),
        }
    }

    fn from_detection(kind: RowKind, d: &Detection) -> Self {
        let n = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Row {
            kind,
            source_id: d.source_id,
            mjd: n(d.mjd),
            band: d.band.clone().unwrap_or_default(),
            ra: n(d.ra),
            dec: n(d.dec),
            mag: n(d.magnitude),
            mag_err: n(d.magnitude_err),
            flux: n(d.flux_njy),
            flux_err: n(d.flux_err_njy),
            limiting_mag: n(d.limiting_magnitude),
        }
    }

    /// A forced-photometry row: flux in nJy, magnitude when the flux is positive.
    fn forced(source_id: Option<i64>, mjd: f64, band: String, flux: f64, flux_err: f64) -> Self {
        let (mag, mag_err) = if flux > 0.0 {
            (
                NJY_AB_ZERO_POINT - 2.5 * flux.log10(),
                MAG_ERR_FACTOR * flux_err / flux,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        Row {
            kind: RowKind::Forced,
            source_id,
            mjd,
            band,
            ra: f64::NAN,
            dec: f64::NAN,
            mag,
            mag_err,
            flux,
            flux_err,
            limiting_mag: f64::NAN,
        }
    }

    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::Text(self.kind.name().to_owned()),
            Cell::Int(self.source_id),
            Cell::Float(self.mjd),
            Cell::Text(self.band.clone()),
            Cell::Float(self.ra),
            Cell::Float(self.dec),
            Cell::Float(self.mag),
            Cell::Float(self.mag_err),
            Cell::Float(self.flux),
            Cell::Float(self.flux_err),
            Cell::Float(self.limiting_mag),
        ]
    }

    fn from_cells(cells: &[Cell]) -> Option<Self> {
        let f = |i: usize| match cells.get(i) {
            Some(Cell::Float(v)) => Some(*v),
            _ => None,
        };
        let t = |i: usize| match cells.get(i) {
            Some(Cell::Text(s)) => Some(s.clone()),
            _ => None,
        };
        let source_id = match cells.get(1) {
            Some(Cell::Int(v)) => *v,
            _ => return None,
        };
        Some(Row {
            kind: RowKind::from_name(&t(0)?)?,
            source_id,
            mjd: f(2)?,
            band: t(3)?,
            ra: f(4)?,
            dec: f(5)?,
            mag: f(6)?,
            mag_err: f(7)?,
            flux: f(8)?,
            flux_err: f(9)?,
            limiting_mag: f(10)?,
        })
    }
}

fn num(record: &Value, name: &str) -> f64 {
    field(record, name)
        .and_then(as_f64)
        .filter(|v| v.is_finite())
        .unwrap_or(f64::NAN)
}

/// A ZTF `fp_hists` row: `forcediffimflux` is in data numbers at zero point
/// `magzpsci`, so in nJy it is `f × 10^((31.4 − magzpsci) / 2.5)`.
fn ztf_forced(record: &Value) -> Row {
    let jd = num(record, "jd");
    let band = field(record, "fid")
        .and_then(as_i64)
        .map(ztf_band)
        .unwrap_or_default();
    let zp = num(record, "magzpsci");
    let scale = 10f64.powf((NJY_AB_ZERO_POINT - zp) / 2.5);
    let raw = num(record, "forcediffimflux");
    let raw_err = num(record, "forcediffimfluxunc");
    let (flux, flux_err) = if raw == ZTF_FP_MISSING || raw_err == ZTF_FP_MISSING {
        (f64::NAN, f64::NAN)
    } else {
        (raw * scale, raw_err * scale)
    };
    let mut row = Row::forced(
        None,
        jd - starlog_processors::candidate::detection::JD_TO_MJD,
        band,
        flux,
        flux_err,
    );
    row.limiting_mag = num(record, "diffmaglim");
    row
}

/// A Rubin `prvDiaForcedSources` row.
fn rubin_forced(record: &Value) -> Row {
    let pick = |a: &str, b: &str| {
        let v = num(record, a);
        if v.is_nan() {
            num(record, b)
        } else {
            v
        }
    };
    let mut row = Row::forced(
        field(record, "diaForcedSourceId").and_then(as_i64),
        pick("midpointMjdTai", "midPointTai"),
        field(record, "band")
            .or_else(|| field(record, "filterName"))
            .and_then(as_str)
            .unwrap_or_default()
            .to_owned(),
        pick("psfFlux", "psFlux"),
        pick("psfFluxErr", "psFluxErr"),
    );
    row.ra = num(record, "ra");
    row.dec = pick("dec", "decl");
    row
}

/// Every row an alert carries.
fn rows_of(c: &Candidate) -> Vec<Row> {
    let mut rows = vec![Row::from_detection(RowKind::Detection, c.detection())];
    for d in c.previous_detections() {
        let kind = if d.source_id.is_some() {
            RowKind::Detection
        } else {
            RowKind::UpperLimit
        };
        rows.push(Row::from_detection(kind, &d));
    }
    for fp in c.forced_photometry() {
        let fp = starlog_processors::avro_value::unwrap_union(fp);
        rows.push(match c.family() {
            AlertFamily::Ztf => ztf_forced(fp),
            AlertFamily::Rubin => rubin_forced(fp),
        });
    }
    rows
}

/// One object's curve.
#[derive(Debug)]
struct LightCurve {
    family: AlertFamily,
    rows: HashMap<RowKey, Row>,
}

impl LightCurve {
    fn merge(&mut self, rows: Vec<Row>) {
        for r in rows {
            self.rows.insert(r.key(), r);
        }
    }

    /// Rows by time, then kind and id.
    fn sorted(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.values().collect();
        rows.sort_by(|a, b| {
            a.mjd
                .total_cmp(&b.mjd)
                .then(a.kind.cmp(&b.kind))
                .then(a.source_id.cmp(&b.source_id))
                .then(a.band.cmp(&b.band))
        });
        rows
    }
}

/// Which files a light curve is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Formats {
    pub(crate) fits: bool,
    pub(crate) votable: bool,
}

/// Why a curve's existing file could not be read back.
#[derive(Debug, thiserror::Error)]
enum ReadBackError {
    #[error(transparent)]
    Fits(#[from] fits::FitsError),
    #[error("VOTable: {0}")]
    VoTable(String),
}

/// The writer.
#[derive(Debug)]
pub(crate) struct LightCurveWriter {
    directory: PathBuf,
    formats: Formats,
    max_pending: usize,
    curves: HashMap<String, LightCurve>,
    dirty: BTreeSet<String>,
    staged: StagedFiles,
}

/// A file-name-safe form of an object id (ZTF ids and Rubin integers already are).
fn file_stem(id: &ObjectId) -> String {
    id.to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl LightCurveWriter {
    pub(crate) fn open(
        directory: PathBuf,
        formats: Formats,
        max_pending: usize,
    ) -> Result<Self, ProcessError> {
        std::fs::create_dir_all(&directory).map_err(io_err(&directory))?;
        remove_stale_parts(&directory, &[".fits", ".vot"])?;
        Ok(LightCurveWriter {
            staged: StagedFiles::new(directory.clone()),
            directory,
            formats,
            max_pending,
            curves: HashMap::new(),
            dirty: BTreeSet::new(),
        })
    }

    fn load(&self, stem: &str, family: AlertFamily) -> Result<LightCurve, ProcessError> {
        let mut curve = LightCurve {
            family,
            rows: HashMap::new(),
        };
        let fits_path = self.directory.join(format!("{stem}.fits"));
        let vot_path = self.directory.join(format!("{stem}.vot"));
        let (path, rows) = if self.formats.fits && fits_path.exists() {
            let bytes = std::fs::read(&fits_path).map_err(io_err(&fits_path))?;
            (fits_path, read_fits(&bytes))
        } else if self.formats.votable && vot_path.exists() {
            let bytes = std::fs::read(&vot_path).map_err(io_err(&vot_path))?;
            (vot_path, read_votable(&bytes))
        } else {
            return Ok(curve);
        };
        // An existing curve that cannot be read is not overwritten: a
        // failure the operator must look at, retried until then.
        let rows = rows.map_err(|e| ProcessError::Other {
            processor: CLASS.to_owned(),
            reason: format!("cannot read back {}: {e}", path.display()),
        })?;
        curve.merge(rows);
        Ok(curve)
    }

    fn add(&mut self, c: &Candidate) -> Result<(), ProcessError> {
        let Some(id) = c.object_id().filter(|id| **id != ObjectId::Rubin(0)) else {
            tracing::debug!(
                alert_id = c.alert_id(),
                "alert without an object: no light curve"
            );
            return Ok(());
        };
        let stem = file_stem(id);
        if !self.curves.contains_key(&stem) {
            let curve = self.load(&stem, c.family())?;
            self.curves.insert(stem.clone(), curve);
        }
        if let Some(curve) = self.curves.get_mut(&stem) {
            curve.merge(rows_of(c));
        }
        self.dirty.insert(stem);
        if self.dirty.len() >= self.max_pending {
            self.write_dirty()?;
        }
        Ok(())
    }

    /// Writes every changed curve and commits the files; then forgets the
    /// curves when too many are kept.
    fn write_dirty(&mut self) -> Result<(), ProcessError> {
        for stem in &self.dirty {
            let Some(curve) = self.curves.get(stem) else {
                continue;
            };
            if self.formats.fits {
                self.staged
                    .stage(&format!("{stem}.fits"), &fits_bytes(stem, curve))?;
            }
            if self.formats.votable {
                let bytes = votable_bytes(stem, curve).map_err(|e| ProcessError::Other {
                    processor: CLASS.to_owned(),
                    reason: format!("writing the VOTable of {stem}: {e}"),
                })?;
                self.staged.stage(&format!("{stem}.vot"), &bytes)?;
            }
        }
        self.staged.commit()?;
        self.dirty.clear();
        if self.curves.len() > self.max_pending {
            self.curves.clear();
        }
        Ok(())
    }
}

fn fits_bytes(stem: &str, curve: &LightCurve) -> Vec<u8> {
    let rows: Vec<Vec<Cell>> = curve.sorted().iter().map(|r| r.cells()).collect();
    let survey = curve.family.to_string();
    let mut out = fits::empty_primary(|h| {
        h.string("OBJECT", stem, "object id");
        h.string("TELESCOP", &survey, "alert stream");
        h.string("ORIGIN", "Starlog", "LightCurveWriter");
    });
    out.extend(fits::bintable(&COLUMNS, &rows, |h| {
        h.string("EXTNAME", "LIGHTCURVE", "");
        h.string("OBJECT", stem, "object id");
        h.string("TELESCOP", &survey, "alert stream");
        h.comment("Null integers are TNULL, null reals NaN. TUCDn: IVOA UCD of column n.");
    }));
    out
}

fn read_fits(bytes: &[u8]) -> Result<Vec<Row>, ReadBackError> {
    let (cells, _) = fits::read_bintable(bytes, &COLUMNS)?;
    cells
        .iter()
        .map(|c| {
            Row::from_cells(c)
                .ok_or_else(|| fits::FitsError::Unexpected("a row of an unknown kind".to_owned()))
        })
        .collect::<Result<_, _>>()
        .map_err(ReadBackError::from)
}

fn vo_field(c: &Column) -> Field {
    let mut f = match c.kind {
        ColumnType::Int64 => Field::new(c.name, Datatype::LongInt),
        ColumnType::Float64 => Field::new(c.name, Datatype::Double),
        ColumnType::Text(_) => {
            Field::new(c.name, Datatype::CharASCII).set_arraysize(ArraySize::Variable1D)
        }
    }
    .set_ucd(c.ucd)
    .set_description(c.description.into());
    if !c.unit.is_empty() {
        f = f.set_unit(c.unit);
    }
    if c.kind == ColumnType::Int64 {
        f = f.set_values(Values::new().set_null(fits::INT_NULL.to_string()));
    }
    f
}

fn vo_value(cell: Cell) -> VOTableValue {
    match cell {
        Cell::Int(Some(v)) => VOTableValue::Long(v),
        Cell::Float(v) if v.is_finite() => VOTableValue::Double(v),
        Cell::Text(s) => VOTableValue::String(s),
        Cell::Int(None) | Cell::Float(_) => VOTableValue::Null,
    }
}

fn votable_bytes(stem: &str, curve: &LightCurve) -> Result<Vec<u8>, votable::error::VOTableError> {
    let rows = curve
        .sorted()
        .iter()
        .map(|r| r.cells().into_iter().map(vo_value).collect())
        .collect();
    let mut table = Table::new()
        .set_name(format!("lightcurve_{stem}"))
        .set_description(format!("{} light curve of object {stem}", curve.family).into());
    for c in &COLUMNS {
        table = table.push_field(vo_field(c));
    }
    let table = table.set_data(Data::new_empty().set_tabledata(InMemTableDataRows::new(rows)));
    let resource = Resource::default()
        .set_name(stem.to_owned())
        .push_sub_elem(ResourceSubElem::from_table(table));
    VOTable::new(Version::V1_4, resource)
        .set_description("Written by Starlog's LightCurveWriter".into())
        .wrap()
        .to_ivoa_xml_bytes()
}

fn read_votable(bytes: &[u8]) -> Result<Vec<Row>, ReadBackError> {
    let err = |m: &str| ReadBackError::VoTable(m.to_owned());
    let vot = VOTableWrapper::<InMemTableDataRows>::from_ivoa_xml_bytes(bytes)
        .map_err(|e| ReadBackError::VoTable(e.to_string()))?
        .unwrap();
    let table = vot
        .resources
        .first()
        .and_then(|r| r.sub_elems.first())
        .and_then(|s| match &s.resource_or_table {
            ResourceOrTable::Table(t) => Some(t),
            ResourceOrTable::Resource(_) => None,
        })
        .ok_or_else(|| err("no table in the first resource"))?;
    let names: Vec<&str> = table
        .elems
        .iter()
        .filter_map(|e| match e {
            TableElem::Field(f) => Some(f.name.as_str()),
            _ => None,
        })
        .collect();
    if names != COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>() {
        return Err(err("the columns are not a light curve's"));
    }
    let Some(Data {
        data: DataElem::TableData(td),
        ..
    }) = &table.data
    else {
        return Err(err("no TABLEDATA"));
    };
    td.content
        .rows
        .iter()
        .map(|row| {
            let cells: Vec<Cell> = COLUMNS
                .iter()
                .zip(row)
                .map(|(c, v)| match (c.kind, v) {
                    (ColumnType::Int64, VOTableValue::Long(x)) if *x != fits::INT_NULL => {
                        Cell::Int(Some(*x))
                    }
                    (ColumnType::Int64, _) => Cell::Int(None),
                    (ColumnType::Float64, VOTableValue::Double(x)) => Cell::Float(*x),
                    (ColumnType::Float64, _) => Cell::Float(f64::NAN),
                    (ColumnType::Text(_), VOTableValue::String(s)) => Cell::Text(s.clone()),
                    (ColumnType::Text(_), VOTableValue::CharASCII(ch)) => {
                        Cell::Text(ch.to_string())
                    }
                    (ColumnType::Text(_), _) => Cell::Text(String::new()),
                })
                .collect();
            Row::from_cells(&cells).ok_or_else(|| err("a row of an unknown kind"))
        })
        .collect()
}

impl CandidateProcessor for LightCurveWriter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        match self.add(candidate) {
            Ok(()) => Response::Pass,
            Err(e) => Response::Fail(e),
        }
    }

    fn flush(&mut self) -> Result<(), ProcessError> {
        self.write_dirty()
    }
}

#[derive(Debug)]
struct LightCurveWriterSpec {
    directory: PathBuf,
    formats: Formats,
    max_pending: usize,
}

impl ProcessorSpec for LightCurveWriterSpec {
    fn build(
        &self,
        _ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        LightCurveWriter::open(self.directory.clone(), self.formats, self.max_pending)
            .map(|w| Box::new(w) as Box<dyn CandidateProcessor>)
            .map_err(|e| ConfigError::Invalid {
                path: format!("{path}.params.directory"),
                message: e.to_string(),
            })
    }
}

/// Parameters: `directory` (required), `formats` (a non-empty list of
/// `fits` and `votable`, default both), `max_pending_objects` (changed
/// curves kept before they are written without waiting for a flush,
/// default 10000).
pub(crate) fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let directory = p.required_path("directory", "an output directory")?;
    let formats = super::format_list(p, &["fits", "votable"])?;
    let formats = Formats {
        fits: formats.contains(&"fits"),
        votable: formats.contains(&"votable"),
    };
    let max_pending = p.optional_u64(
        "max_pending_objects",
        "a positive number of objects",
        10_000,
    )?;
    if max_pending == 0 {
        return Err(p.error(
            "max_pending_objects",
            "expected a positive number of objects, found 0",
        ));
    }
    Ok(Box::new(LightCurveWriterSpec {
        directory,
        formats,
        max_pending: usize::try_from(max_pending).unwrap_or(usize::MAX),
    }))
}
