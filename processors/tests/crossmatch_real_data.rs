//! Cross-match of every real alert against the Mangrove catalog of
//! `testdata/` (4,565 galaxies: every one within a degree of an alert, a
//! sample of the rest, and the edge cases) equals a brute-force match computed here with an
//! independent parser (plain line splitting) and an independent formula
//! (haversine): same (alert, galaxy) pairs, distances within 1e-9 degree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{manifest, testdata_dir};
use starlog_processors::builtins::{CatalogIndex, CrossmatchProcessor};
use starlog_processors::sky::{Catalog, CatalogColumns};
use starlog_processors::{Candidate, CandidateProcessor, Response};

struct Galaxy {
    id: String,
    ra: f64,
    dec: f64,
}

fn galaxies() -> Vec<Galaxy> {
    let text = std::fs::read_to_string(testdata_dir().join("catalogs/mangrove_radec.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,ra,dec,lum_dist"));
    let g: Vec<Galaxy> = lines
        .map(|l| {
            let mut parts = l.split(',');
            let id = parts.next().unwrap().to_owned();
            let ra = parts.next().unwrap().parse().unwrap();
            let dec = parts.next().unwrap().parse().unwrap();
            Galaxy { id, ra, dec }
        })
        .collect();
    assert_eq!(g.len(), 4_565, "testdata/README.md's row count");
    g
}

fn haversine_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (p1, p2) = (dec1.to_radians(), dec2.to_radians());
    let dp = p2 - p1;
    let dl = (ra2 - ra1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    (2.0 * a.sqrt().min(1.0).asin()).to_degrees()
}

/// (index of the candidate in the test's list, galaxy id) -> distance.
type Pairs = BTreeMap<(usize, String), f64>;

/// Brute force over galaxies sorted by dec: only a dec band can be within
/// the radius, which is trivially true, so the band is scanned in full.
fn brute_force(candidates: &[(f64, f64)], sorted: &[&Galaxy], radius_deg: f64) -> Pairs {
    let mut pairs = Pairs::new();
    for (id, &(ra, dec)) in candidates.iter().enumerate() {
        let start = sorted.partition_point(|g| g.dec < dec - radius_deg);
        for g in &sorted[start..] {
            if g.dec > dec + radius_deg {
                break;
            }
            let d = haversine_deg(ra, dec, g.ra, g.dec);
            if d <= radius_deg {
                pairs.insert((id, g.id.clone()), d);
            }
        }
    }
    pairs
}

fn processor_pairs(
    index: &Arc<CatalogIndex>,
    candidates: &mut [Candidate],
    radius_arcsec: f64,
) -> Pairs {
    let mut xm = CrossmatchProcessor::new("mangrove", Arc::clone(index), radius_arcsec, false);
    let mut pairs = Pairs::new();
    for (i, c) in candidates.iter_mut().enumerate() {
        c.clear_annotations();
        assert!(matches!(xm.process(c), Response::Pass));
        let mut last = 0.0;
        for m in c.matches() {
            assert_eq!(
                (m.candid, m.candra, m.canddec),
                (c.alert_id(), c.ra(), c.dec())
            );
            assert_eq!(&*m.catalogid, "mangrove");
            assert!(m.distance >= last, "nearest first");
            last = m.distance;
            assert!(
                pairs
                    .insert((i, m.sourceid.to_string()), m.distance)
                    .is_none(),
                "pair reported twice"
            );
        }
    }
    pairs
}

fn assert_same(got: &Pairs, want: &Pairs, what: &str) {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, extra {extra:?}"
    );
    for (k, d) in want {
        assert!(
            (got[k] - d).abs() < 1e-9,
            "{what}: {k:?} distance {} vs brute force {d}",
            got[k]
        );
    }
}

#[test]
fn crossmatch_equals_brute_force_on_real_alerts() {
    let galaxies = galaxies();
    let mut sorted: Vec<&Galaxy> = galaxies.iter().collect();
    sorted.sort_by(|a, b| a.dec.total_cmp(&b.dec));
    let catalog = Catalog::from_csv(
        &testdata_dir().join("catalogs/mangrove_radec.csv"),
        &CatalogColumns::default(),
    )
    .unwrap();
    assert_eq!(catalog.len(), galaxies.len());

    let mut candidates: Vec<Candidate> = manifest().iter().map(common::candidate).collect();
    let positions: Vec<(f64, f64)> = candidates.iter().map(|c| (c.ra(), c.dec())).collect();

    // One index serves every radius; the zone height only tunes speed.
    let index = Arc::new(CatalogIndex::new(catalog, 0.05));
    let mut total = 0;
    for radius_arcsec in [30.0, 600.0, 3600.0] {
        let got = processor_pairs(&index, &mut candidates, radius_arcsec);
        let want = brute_force(&positions, &sorted, radius_arcsec / 3600.0);
        assert_same(&got, &want, &format!("radius {radius_arcsec}\""));
        total += want.len();
    }
    assert!(total > 100, "the test must see real matches, saw {total}");
}

#[test]
fn catalog_edge_cases_ra_360_duplicates_and_poles() {
    let galaxies = galaxies();
    let mut sorted: Vec<&Galaxy> = galaxies.iter().collect();
    sorted.sort_by(|a, b| a.dec.total_cmp(&b.dec));
    let catalog = Catalog::from_csv(
        &testdata_dir().join("catalogs/mangrove_radec.csv"),
        &CatalogColumns::default(),
    )
    .unwrap();
    let index = Arc::new(CatalogIndex::new(catalog, 10.0 / 3600.0));

    let at_360 = galaxies
        .iter()
        .find(|g| g.ra == 360.0)
        .expect("README: one row has ra = 360.0");
    let mut seen = std::collections::HashSet::new();
    let duplicate = galaxies
        .iter()
        .find(|g| !seen.insert((g.ra.to_bits(), g.dec.to_bits())))
        .expect("testdata/README.md: 47 duplicates");
    let south = galaxies
        .iter()
        .min_by(|a, b| a.dec.total_cmp(&b.dec))
        .unwrap();
    let north = galaxies
        .iter()
        .max_by(|a, b| a.dec.total_cmp(&b.dec))
        .unwrap();

    let template = common::candidate(&manifest()[0]);
    let probes = [
        (0.0001, at_360.dec),
        (359.9999, at_360.dec),
        (duplicate.ra, duplicate.dec),
        (south.ra + 180.0, -89.999),
        (north.ra, 89.7),
        (0.0, 90.0),
        (123.0, -90.0),
    ];
    let mut candidates: Vec<Candidate> = probes
        .iter()
        .map(|&(ra, dec)| common::moved(&template, ra.rem_euclid(360.0), dec))
        .collect();
    for radius_arcsec in [2.0, 60.0, 1800.0] {
        let mut per_probe = Vec::new();
        for c in &mut candidates {
            let pairs = processor_pairs(&index, std::slice::from_mut(c), radius_arcsec);
            let want = brute_force(&[(c.ra(), c.dec())], &sorted, radius_arcsec / 3600.0);
            assert_same(
                &pairs,
                &want,
                &format!("probe ({}, {}) radius {radius_arcsec}", c.ra(), c.dec()),
            );
            per_probe.push(pairs.len());
        }
        if radius_arcsec == 2.0 {
            assert!(
                per_probe[0] >= 1 && per_probe[1] >= 1,
                "the ra = 360 galaxy is found from both sides of 0"
            );
            assert!(
                per_probe[2] >= 2,
                "both copies of a duplicated position are reported"
            );
        }
        if radius_arcsec == 1800.0 {
            assert!(
                per_probe[3] >= 1,
                "the southernmost galaxy is found by a cone over the pole"
            );
        }
    }
}
