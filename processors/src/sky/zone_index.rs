//! The zone algorithm (Gray, Nieto-Santisteban & Szalay 2006) for cone
//! searches over a static set of positions.
//!
//! The sky is cut into declination zones of fixed height; inside a zone,
//! entries are sorted by right ascension. A cone of radius r around
//! (ra, dec) touches the zones between dec - r and dec + r, and inside each
//! only the ra window ra ± alpha, where alpha = asin(sin r / cos dec) is the
//! widest ra offset of the circle. Windows that cross ra = 0/360 are split
//! in two; cones that touch a pole take whole zones. Candidates in the
//! windows are screened with a dot product, then measured with Vincenty's
//! formula, and kept when the distance is at most r.

use super::distance::{angular_distance_deg, unit_vector};

/// One entry found by a cone search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Index of the entry in the slice the index was built from.
    pub index: u32,
    /// Angular distance to the query position, degrees.
    pub distance: f64,
}

/// Smallest zone height; bounds the zone table at 360,000 zones.
const MIN_ZONE_HEIGHT_DEG: f64 = 0.0005;

/// A zone index over fixed positions.
#[derive(Debug, Clone)]
pub struct ZoneIndex {
    zone_height: f64,
    /// `starts[z]..starts[z + 1]` are the slots of zone `z`.
    starts: Vec<u32>,
    /// Right ascension in [0, 360), sorted within each zone.
    ra: Vec<f64>,
    dec: Vec<f64>,
    xyz: Vec<[f64; 3]>,
    /// Original index of each slot.
    original: Vec<u32>,
}

impl ZoneIndex {
    /// Builds the index. `zone_height_deg` is best close to the typical
    /// query radius. Positions must be finite with |dec| <= 90 (the catalog
    /// loader checks); others are left out of the index.
    ///
    /// # Panics
    /// Never for valid input; more than `u32::MAX` positions is refused by
    /// truncating (documented limit, far above any catalog here).
    #[must_use]
    pub fn build(positions: &[(f64, f64)], zone_height_deg: f64) -> Self {
        let zone_height = if zone_height_deg.is_finite() {
            zone_height_deg.clamp(MIN_ZONE_HEIGHT_DEG, 180.0)
        } else {
            1.0
        };
        // Zone count is at most 360,000 by the clamp above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n_zones = (180.0 / zone_height).ceil() as usize;
        let mut slots: Vec<(usize, f64, f64, u32)> = positions
            .iter()
            .take(u32::MAX as usize)
            .enumerate()
            .filter(|(_, (ra, dec))| ra.is_finite() && dec.is_finite() && dec.abs() <= 90.0)
            .map(|(i, &(ra, dec))| {
                // `take` above bounds i to u32.
                #[allow(clippy::cast_possible_truncation)]
                let i = i as u32;
                (zone_of(dec, zone_height, n_zones), normalize_ra(ra), dec, i)
            })
            .collect();
        slots.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut starts = vec![0u32; n_zones + 1];
        for s in &slots {
            starts[s.0 + 1] += 1;
        }
        for z in 0..n_zones {
            starts[z + 1] += starts[z];
        }
        ZoneIndex {
            zone_height,
            starts,
            ra: slots.iter().map(|s| s.1).collect(),
            dec: slots.iter().map(|s| s.2).collect(),
            xyz: slots.iter().map(|s| unit_vector(s.1, s.2)).collect(),
            original: slots.iter().map(|s| s.3).collect(),
        }
    }

    /// Number of indexed positions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ra.len()
    }

    /// True when nothing is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ra.is_empty()
    }

    /// The zone height in use, degrees.
    #[must_use]
    pub fn zone_height(&self) -> f64 {
        self.zone_height
    }

    /// Appends to `out` every entry within `radius_deg` of (ra, dec).
    /// Order: by zone, then by ra.
    pub fn query(&self, ra: f64, dec: f64, radius_deg: f64, out: &mut Vec<Neighbor>) {
        if !(ra.is_finite() && dec.is_finite() && radius_deg.is_finite())
            || radius_deg < 0.0
            || dec.abs() > 90.0
        {
            return;
        }
        let ra = normalize_ra(ra);
        let n_zones = self.starts.len() - 1;
        let z_lo = zone_of((dec - radius_deg).max(-90.0), self.zone_height, n_zones);
        let z_hi = zone_of((dec + radius_deg).min(90.0), self.zone_height, n_zones);
        let alpha = ra_half_width(dec, radius_deg);
        let q = unit_vector(ra, dec);
        // Screening threshold, loosened so the dot product never rejects an
        // entry that Vincenty's formula would accept.
        let min_dot = radius_deg.to_radians().cos() - 1e-10;
        let mut scan = |lo: usize, hi: usize| {
            for slot in lo..hi {
                let p = self.xyz[slot];
                if p[0] * q[0] + p[1] * q[1] + p[2] * q[2] < min_dot {
                    continue;
                }
                let d = angular_distance_deg(ra, dec, self.ra[slot], self.dec[slot]);
                if d <= radius_deg {
                    out.push(Neighbor {
                        index: self.original[slot],
                        distance: d,
                    });
                }
            }
        };
        for z in z_lo..=z_hi {
            let (start, end) = (self.starts[z] as usize, self.starts[z + 1] as usize);
            if start == end {
                continue;
            }
            let Some(alpha) = alpha else {
                scan(start, end);
                continue;
            };
            let zone = &self.ra[start..end];
            let range = |lo: f64, hi: f64| {
                (
                    start + zone.partition_point(|&x| x < lo),
                    start + zone.partition_point(|&x| x <= hi),
                )
            };
            let (lo, hi) = (ra - alpha, ra + alpha);
            if lo < 0.0 {
                let (a, b) = range(0.0, hi);
                scan(a, b);
                let (a, b) = range(lo + 360.0, 360.0);
                scan(a, b);
            } else if hi >= 360.0 {
                let (a, b) = range(lo, 360.0);
                scan(a, b);
                let (a, b) = range(0.0, hi - 360.0);
                scan(a, b);
            } else {
                let (a, b) = range(lo, hi);
                scan(a, b);
            }
        }
    }
}

/// Right ascension in [0, 360).
#[must_use]
pub fn normalize_ra(ra: f64) -> f64 {
    let r = ra.rem_euclid(360.0);
    // rem_euclid can round up to exactly 360.0 for tiny negative inputs.
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

fn zone_of(dec: f64, height: f64, n_zones: usize) -> usize {
    // Non-negative and bounded by the `min` below.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let z = ((dec + 90.0) / height).floor().max(0.0) as usize;
    z.min(n_zones - 1)
}

/// Half-width in ra of the circle, degrees; `None` when the circle reaches a
/// pole or is so wide that every ra is in range.
fn ra_half_width(dec: f64, radius: f64) -> Option<f64> {
    if dec.abs() + radius >= 90.0 - 1e-9 {
        return None;
    }
    let s = radius.to_radians().sin() / dec.to_radians().cos();
    if s >= 1.0 {
        return None;
    }
    // Margin against rounding; the exact distance test decides membership.
    let alpha = s.asin().to_degrees() * (1.0 + 1e-9) + 1e-9;
    (alpha < 180.0).then_some(alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(points: &[(f64, f64)], ra: f64, dec: f64, r: f64) -> Vec<u32> {
        let mut v: Vec<u32> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| angular_distance_deg(ra, dec, p.0, p.1) <= r)
            .map(|(i, _)| u32::try_from(i).unwrap())
            .collect();
        v.sort_unstable();
        v
    }

    fn indexed(idx: &ZoneIndex, ra: f64, dec: f64, r: f64) -> Vec<u32> {
        let mut out = Vec::new();
        idx.query(ra, dec, r, &mut out);
        let mut v: Vec<u32> = out.iter().map(|n| n.index).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn wrap_around_ra_zero() {
        let pts = [
            (359.999, 0.0),
            (0.0005, 0.0),
            (360.0, 0.0),
            (180.0, 0.0),
            (0.0, 0.01),
        ];
        let idx = ZoneIndex::build(&pts, 0.01);
        assert_eq!(indexed(&idx, 0.0, 0.0, 0.002), vec![0, 1, 2]);
        assert_eq!(indexed(&idx, 359.9995, 0.0, 0.002), vec![0, 1, 2]);
        assert_eq!(indexed(&idx, 0.0, 0.0, 0.002), brute(&pts, 0.0, 0.0, 0.002));
    }

    #[test]
    fn cones_over_the_poles_see_every_ra() {
        let pts: Vec<(f64, f64)> = (0..36)
            .map(|i| (f64::from(i) * 10.0, 89.9))
            .chain([(0.0, 90.0), (45.0, -90.0)])
            .collect();
        let idx = ZoneIndex::build(&pts, 0.05);
        let got = indexed(&idx, 123.0, 89.95, 0.2);
        assert_eq!(got, brute(&pts, 123.0, 89.95, 0.2));
        assert_eq!(got.len(), 37, "the ring and the pole");
        assert_eq!(indexed(&idx, 0.0, -90.0, 0.001), vec![37]);
    }

    #[test]
    fn duplicates_are_all_returned_and_bad_input_ignored() {
        let pts = [(10.0, 10.0), (10.0, 10.0), (f64::NAN, 0.0), (10.0, 91.0)];
        let idx = ZoneIndex::build(&pts, 0.1);
        assert_eq!(idx.len(), 2);
        assert_eq!(indexed(&idx, 10.0, 10.0, 1e-6), vec![0, 1]);
        assert!(indexed(&idx, f64::NAN, 10.0, 1.0).is_empty());
        assert!(indexed(&idx, 10.0, 10.0, -1.0).is_empty());
        assert!(ZoneIndex::build(&[], 0.1).is_empty());
    }

    #[test]
    fn zone_height_is_clamped() {
        assert_eq!(
            ZoneIndex::build(&[], 0.0).zone_height(),
            MIN_ZONE_HEIGHT_DEG
        );
        assert_eq!(ZoneIndex::build(&[], f64::INFINITY).zone_height(), 1.0);
        let idx = ZoneIndex::build(&[(1.0, 1.0)], 500.0);
        assert_eq!(idx.zone_height(), 180.0);
        assert_eq!(indexed(&idx, 1.0, 1.5, 1.0), vec![0]);
    }
}
