//! What processors attach to a candidate on its way down a chain.
//!
//! Annotations travel with the candidate to the writers, which add them to
//! the output record (the `starlog_matches` field of the annotated schema,
//! see `output::annotated_schema`). They are plain data so that a writer
//! never needs to know which processor produced them.

use std::sync::Arc;

/// One catalog (or watch-list) source within the match radius of a candidate.
///
/// Field names follow the design note so that downstream consumers of the
/// annotated stream see the same names in Avro and JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateMatch {
    /// The alert id of the candidate (ZTF `candid`, Rubin `diaSourceId`/`alertId`).
    pub candid: i64,
    /// Candidate right ascension, degrees.
    pub candra: f64,
    /// Candidate declination, degrees.
    pub canddec: f64,
    /// Which catalog the source comes from (the processor's `catalog_id`).
    pub catalogid: Arc<str>,
    /// The source's id in that catalog.
    pub sourceid: Arc<str>,
    /// Source right ascension, degrees, as given in the catalog.
    pub sourcera: f64,
    /// Source declination, degrees.
    pub sourcedec: f64,
    /// Angular distance between candidate and source, **degrees**.
    pub distance: f64,
}

/// An annotation attached to a candidate by a processor.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Annotation {
    /// A positional match against a catalog or watch list.
    Match(CandidateMatch),
}
