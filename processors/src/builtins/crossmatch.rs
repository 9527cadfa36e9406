//! `CrossmatchProcessor`: annotates each alert with every source of a
//! static catalog within a radius (the zone algorithm, see
//! [`crate::sky::zone_index`]).
//!
//! The catalog is loaded and indexed once per pipeline spec and shared by
//! every instance built from it (one per partition task), so a 300,000-row
//! catalog costs its memory once. Matches are added nearest first.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::candidate::{Annotation, Candidate, CandidateMatch};
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::processor::{CandidateProcessor, Response};
use crate::sky::{Catalog, CatalogColumns, Neighbor, ZoneIndex, ARCSEC_PER_DEG};

/// A catalog with its zone index.
#[derive(Debug)]
pub struct CatalogIndex {
    catalog: Catalog,
    zones: ZoneIndex,
}

impl CatalogIndex {
    /// Indexes `catalog` with zones of `zone_height_deg` (best near the query radius).
    #[must_use]
    pub fn new(catalog: Catalog, zone_height_deg: f64) -> Self {
        let zones = ZoneIndex::build(catalog.positions(), zone_height_deg);
        CatalogIndex { catalog, zones }
    }

    /// The catalog.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Cone search: appends matches within `radius_deg` to `out`.
    pub fn cone(&self, ra: f64, dec: f64, radius_deg: f64, out: &mut Vec<Neighbor>) {
        self.zones.query(ra, dec, radius_deg, out);
    }
}

/// The processor.
#[derive(Debug)]
pub struct CrossmatchProcessor {
    catalog_id: Arc<str>,
    index: Arc<CatalogIndex>,
    radius_deg: f64,
    require_match: bool,
    scratch: Vec<Neighbor>,
}

impl CrossmatchProcessor {
    /// Matches within `radius_arcsec`; with `require_match`, alerts without
    /// a match are skipped.
    #[must_use]
    pub fn new(
        catalog_id: impl Into<Arc<str>>,
        index: Arc<CatalogIndex>,
        radius_arcsec: f64,
        require_match: bool,
    ) -> Self {
        CrossmatchProcessor {
            catalog_id: catalog_id.into(),
            index,
            radius_deg: radius_arcsec / ARCSEC_PER_DEG,
            require_match,
            scratch: Vec::new(),
        }
    }
}

impl CandidateProcessor for CrossmatchProcessor {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        self.scratch.clear();
        let (ra, dec) = (candidate.ra(), candidate.dec());
        self.index.cone(ra, dec, self.radius_deg, &mut self.scratch);
        self.scratch.sort_by(|a, b| {
            a.distance
                .total_cmp(&b.distance)
                .then(a.index.cmp(&b.index))
        });
        let catalog = &self.index.catalog;
        for n in &self.scratch {
            let i = n.index as usize;
            let (sourcera, sourcedec) = catalog.positions()[i];
            candidate.annotate(Annotation::Match(CandidateMatch {
                candid: candidate.alert_id(),
                candra: ra,
                canddec: dec,
                catalogid: Arc::clone(&self.catalog_id),
                sourceid: Arc::clone(&catalog.ids()[i]),
                sourcera,
                sourcedec,
                distance: n.distance,
            }));
        }
        Response::pass_if(!self.require_match || !self.scratch.is_empty())
    }
}

/// The validated configuration; loads the catalog on first build.
#[derive(Debug)]
struct CrossmatchSpec {
    catalog_path: PathBuf,
    columns: CatalogColumns,
    catalog_id: String,
    radius_arcsec: f64,
    require_match: bool,
    loaded: Mutex<Option<Arc<CatalogIndex>>>,
}

impl ProcessorSpec for CrossmatchSpec {
    fn build(
        &self,
        _ctx: &BuildContext,
        path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        let mut loaded = self.loaded.lock();
        let index = if let Some(i) = &*loaded {
            Arc::clone(i)
        } else {
            let catalog = Catalog::from_csv(&self.catalog_path, &self.columns).map_err(|e| {
                ConfigError::Invalid {
                    path: format!("{path}.params.catalog"),
                    message: e.to_string(),
                }
            })?;
            tracing::info!(catalog = %self.catalog_path.display(), sources = catalog.len(), "cross-match catalog loaded");
            let index = Arc::new(CatalogIndex::new(
                catalog,
                self.radius_arcsec / ARCSEC_PER_DEG,
            ));
            *loaded = Some(Arc::clone(&index));
            index
        };
        Ok(Box::new(CrossmatchProcessor::new(
            self.catalog_id.as_str(),
            index,
            self.radius_arcsec,
            self.require_match,
        )))
    }
}

/// Parameters: `catalog` (CSV path, required), `radius` (arcsec, required),
/// `catalog_id` (default: the file stem), `id_column` / `ra_column` /
/// `dec_column` (default `id`, `ra`, `dec`), `require_match` (default false).
///
/// # Errors
/// Missing or mistyped parameters.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let catalog_path = p.required_path("catalog", "the path of a CSV catalog")?;
    let radius_arcsec = p.required_positive("radius", "a number of arcsec")?;
    let catalog_id = p
        .optional_str("catalog_id", "a catalog name")?
        .unwrap_or_else(|| {
            catalog_path.file_stem().map_or_else(
                || "catalog".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
    let columns = CatalogColumns {
        id: p
            .optional_str("id_column", "a column name")?
            .unwrap_or_else(|| "id".to_owned()),
        ra: p
            .optional_str("ra_column", "a column name")?
            .unwrap_or_else(|| "ra".to_owned()),
        dec: p
            .optional_str("dec_column", "a column name")?
            .unwrap_or_else(|| "dec".to_owned()),
    };
    let require_match = p.optional_bool("require_match", false)?;
    Ok(Box::new(CrossmatchSpec {
        catalog_path,
        columns,
        catalog_id,
        radius_arcsec,
        require_match,
        loaded: Mutex::new(None),
    }))
}
