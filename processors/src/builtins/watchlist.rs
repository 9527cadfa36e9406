//! `WatchlistFilter`: passes alerts within the radius of any watch-list
//! target, annotating them with the targets matched (as
//! [`CandidateMatch`]es whose `catalogid` is the list's name).
//!
//! Each target has its own radius; the zone index is queried with the
//! largest and the result filtered per target.

use std::sync::Arc;

use serde_yaml::Value as Yaml;

use crate::candidate::{Annotation, Candidate, CandidateMatch};
use crate::config::params::expected;
use crate::config::{BuildContext, ConfigError, Params, ProcessorSpec};
use crate::processor::{CandidateProcessor, Response};
use crate::sky::{Neighbor, ZoneIndex, ARCSEC_PER_DEG};

/// One target of a watch list.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchlistEntry {
    /// Target name.
    pub name: Arc<str>,
    /// Right ascension, degrees.
    pub ra: f64,
    /// Declination, degrees.
    pub dec: f64,
    /// Match radius, arcsec.
    pub radius_arcsec: f64,
}

/// The filter.
#[derive(Debug, Clone)]
pub struct WatchlistFilter {
    list_id: Arc<str>,
    entries: Arc<Vec<WatchlistEntry>>,
    index: Arc<ZoneIndex>,
    max_radius_deg: f64,
    scratch: Vec<Neighbor>,
}

impl WatchlistFilter {
    /// A filter over `entries`, reporting matches under `list_id`.
    #[must_use]
    pub fn new(list_id: impl Into<Arc<str>>, entries: Vec<WatchlistEntry>) -> Self {
        let max_radius_deg =
            entries.iter().map(|e| e.radius_arcsec).fold(0.0, f64::max) / ARCSEC_PER_DEG;
        let positions: Vec<(f64, f64)> = entries.iter().map(|e| (e.ra, e.dec)).collect();
        let index = ZoneIndex::build(&positions, max_radius_deg.max(1.0 / ARCSEC_PER_DEG));
        WatchlistFilter {
            list_id: list_id.into(),
            entries: Arc::new(entries),
            index: Arc::new(index),
            max_radius_deg,
            scratch: Vec::new(),
        }
    }
}

impl CandidateProcessor for WatchlistFilter {
    fn process(&mut self, candidate: &mut Candidate) -> Response {
        self.scratch.clear();
        let (ra, dec) = (candidate.ra(), candidate.dec());
        self.index
            .query(ra, dec, self.max_radius_deg, &mut self.scratch);
        self.scratch.sort_by(|a, b| {
            a.distance
                .total_cmp(&b.distance)
                .then(a.index.cmp(&b.index))
        });
        let mut matched = false;
        for n in &self.scratch {
            let e = &self.entries[n.index as usize];
            if n.distance * ARCSEC_PER_DEG <= e.radius_arcsec {
                matched = true;
                candidate.annotate(Annotation::Match(CandidateMatch {
                    candid: candidate.alert_id(),
                    candra: ra,
                    canddec: dec,
                    catalogid: Arc::clone(&self.list_id),
                    sourceid: Arc::clone(&e.name),
                    sourcera: e.ra,
                    sourcedec: e.dec,
                    distance: n.distance,
                }));
            }
        }
        Response::pass_if(matched)
    }
}

impl ProcessorSpec for WatchlistFilter {
    fn build(
        &self,
        _ctx: &BuildContext,
        _path: &str,
    ) -> Result<Box<dyn CandidateProcessor>, ConfigError> {
        Ok(Box::new(self.clone()))
    }
}

fn parse_entry(
    node: &Yaml,
    path: &str,
    default_radius: Option<f64>,
    p: &Params<'_>,
) -> Result<WatchlistEntry, ConfigError> {
    if !node.is_mapping() {
        return Err(expected(
            path,
            "a mapping with name, ra, dec and radius",
            node,
        ));
    }
    let mut e = Params::new(path, Some(node), p.base_dir())?;
    let name = e.required_str("name", "a target name")?;
    let ra = e.required_f64("ra", "a right ascension in degrees")?;
    if !(0.0..=360.0).contains(&ra) {
        return Err(e.error(
            "ra",
            format!("expected a right ascension in [0, 360] degrees, found {ra}"),
        ));
    }
    let dec = e.required_f64("dec", "a declination in degrees")?;
    if !(-90.0..=90.0).contains(&dec) {
        return Err(e.error(
            "dec",
            format!("expected a declination in [-90, 90] degrees, found {dec}"),
        ));
    }
    let radius_arcsec = match (
        e.optional_f64("radius", "a number of arcsec")?,
        default_radius,
    ) {
        (Some(r), _) if r > 0.0 => r,
        (Some(r), _) => {
            return Err(e.error(
                "radius",
                format!("expected a number of arcsec greater than 0, found {r}"),
            ))
        }
        (None, Some(r)) => r,
        (None, None) => {
            return Err(e.error(
                "radius",
                "missing, expected a number of arcsec (or set params.radius for all targets)",
            ))
        }
    };
    e.finish()?;
    Ok(WatchlistEntry {
        name: Arc::from(name),
        ra,
        dec,
        radius_arcsec,
    })
}

/// Parameters: `targets` (required list of `{name, ra, dec, radius}`,
/// degrees and arcsec), `radius` (default radius for targets without one),
/// `list_id` (default `watchlist`).
///
/// # Errors
/// Missing or mistyped parameters, with the path of the target at fault.
pub fn parse(p: &mut Params<'_>) -> Result<Box<dyn ProcessorSpec>, ConfigError> {
    let default_radius = match p.optional_f64("radius", "a number of arcsec")? {
        Some(r) if r <= 0.0 => {
            return Err(p.error(
                "radius",
                format!("expected a number of arcsec greater than 0, found {r}"),
            ))
        }
        other => other,
    };
    let list_id = p
        .optional_str("list_id", "a watch-list name")?
        .unwrap_or_else(|| "watchlist".to_owned());
    let targets_path = p.path_of("targets");
    let entries = match p.get("targets") {
        None => {
            return Err(p.error(
                "targets",
                "missing, expected a list of {name, ra, dec, radius}",
            ))
        }
        Some(Yaml::Sequence(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, node)| parse_entry(node, &format!("{targets_path}[{i}]"), default_radius, p))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(expected(
                &targets_path,
                "a non-empty list of {name, ra, dec, radius}",
                other,
            ))
        }
    };
    Ok(Box::new(WatchlistFilter::new(list_id, entries)))
}
