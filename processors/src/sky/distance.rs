//! Angular distance on the sphere.
//!
//! Vincenty's formula (the special case of his ellipsoid formula for a
//! sphere) is used because it is accurate at every separation: the
//! spherical law of cosines loses all precision below ~1 arcsec, and
//! haversine loses it near 180 degrees. Cross-match radii are arcseconds, so
//! this matters.

/// Arcseconds in a degree.
pub const ARCSEC_PER_DEG: f64 = 3600.0;

/// Angular distance between two (ra, dec) positions, all in degrees.
#[must_use]
pub fn angular_distance_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (s1, c1) = dec1.to_radians().sin_cos();
    let (s2, c2) = dec2.to_radians().sin_cos();
    let (sd, cd) = (ra2 - ra1).to_radians().sin_cos();
    let a = c2 * sd;
    let b = c1 * s2 - s1 * c2 * cd;
    let num = a.hypot(b);
    let den = s1 * s2 + c1 * c2 * cd;
    num.atan2(den).to_degrees()
}

/// The unit vector of a position (degrees).
#[must_use]
pub fn unit_vector(ra: f64, dec: f64) -> [f64; 3] {
    let (sr, cr) = ra.to_radians().sin_cos();
    let (sd, cd) = dec.to_radians().sin_cos();
    [cd * cr, cd * sr, sd]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_separations() {
        assert!((angular_distance_deg(0.0, 0.0, 90.0, 0.0) - 90.0).abs() < 1e-12);
        assert!(
            (angular_distance_deg(10.0, 89.0, 190.0, 89.0) - 2.0).abs() < 1e-10,
            "over the pole"
        );
        assert!(
            (angular_distance_deg(359.9, 0.0, 0.1, 0.0) - 0.2).abs() < 1e-10,
            "across ra = 0"
        );
        assert!(
            (angular_distance_deg(0.0, 0.0, 180.0, 0.0) - 180.0).abs() < 1e-12,
            "antipodes"
        );
        assert_eq!(angular_distance_deg(12.0, -30.0, 12.0, -30.0), 0.0);
        assert!((angular_distance_deg(360.0, 5.0, 0.0, 5.0)).abs() < 1e-12);
    }

    #[test]
    fn tiny_separations_keep_precision() {
        // 1 milliarcsecond in dec: the law of cosines would return 0 or noise.
        let d = angular_distance_deg(150.0, 2.0, 150.0, 2.0 + 1e-3 / ARCSEC_PER_DEG);
        assert!((d * ARCSEC_PER_DEG - 1e-3).abs() < 1e-12, "{d}");
    }
}
