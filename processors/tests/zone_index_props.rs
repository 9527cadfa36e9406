//! Property tests: the zone index returns exactly what a brute-force scan
//! returns, for random catalogs concentrated where zone algorithms break
//! (ra near 0/360, declinations near the poles), random radii and zone heights.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use starlog_processors::sky::{angular_distance_deg, ZoneIndex};

fn coordinate() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        // Anywhere.
        (0.0..360.0f64, -90.0..=90.0f64),
        // Straddling ra = 0 / 360 (including exactly 360).
        (prop_oneof![0.0..0.05f64, 359.95..=360.0f64], -5.0..5.0f64),
        // Near the poles.
        (0.0..360.0f64, prop_oneof![89.5..=90.0f64, -90.0..=-89.5f64]),
    ]
}

fn brute(points: &[(f64, f64)], ra: f64, dec: f64, r: f64) -> Vec<(u32, f64)> {
    let mut v: Vec<(u32, f64)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                u32::try_from(i).unwrap(),
                angular_distance_deg(ra, dec, p.0, p.1),
            )
        })
        .filter(|(_, d)| *d <= r)
        .collect();
    v.sort_by_key(|(i, _)| *i);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn zone_index_equals_brute_force(
        points in prop::collection::vec(coordinate(), 1..300),
        queries in prop::collection::vec(coordinate(), 1..20),
        radius in prop_oneof![0.0001..0.01f64, 0.01..1.0f64, 1.0..10.0f64],
        height_factor in 0.3..3.0f64,
    ) {
        let index = ZoneIndex::build(&points, radius * height_factor);
        for (ra, dec) in queries {
            let mut out = Vec::new();
            index.query(ra, dec, radius, &mut out);
            let mut got: Vec<(u32, f64)> = out.iter().map(|n| (n.index, n.distance)).collect();
            got.sort_by_key(|(i, _)| *i);
            let want = brute(&points, ra, dec, radius);
            prop_assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want.iter().map(|w| w.0).collect::<Vec<_>>(), "query ({}, {}) r={}", ra, dec, radius);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.1 - w.1).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn queries_at_catalog_points_find_themselves(points in prop::collection::vec(coordinate(), 1..200)) {
        let index = ZoneIndex::build(&points, 0.01);
        for (i, &(ra, dec)) in points.iter().enumerate() {
            let mut out = Vec::new();
            index.query(ra, dec, 1e-7, &mut out);
            prop_assert!(out.iter().any(|n| n.index as usize == i), "point {} ({}, {}) not found", i, ra, dec);
        }
    }
}
