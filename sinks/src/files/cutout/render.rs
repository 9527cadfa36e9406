//! Display limits and stretches for stamps: IRAF's zscale (as astropy's
//! `ZScaleInterval` computes it, with its defaults) or min/max, then a
//! linear or asinh stretch (astropy's `AsinhStretch`, `a = 0.1`) to 8-bit
//! grey levels.

/// How the display limits are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limits {
    /// IRAF zscale.
    ZScale,
    /// The finite minimum and maximum.
    MinMax,
}

/// How values between the limits map to grey levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stretch {
    /// Proportional.
    Linear,
    /// `asinh(x / a) / asinh(1 / a)` with `a = 0.1`.
    Asinh,
}

const ZS_SAMPLES: usize = 1000;
const ZS_CONTRAST: f64 = 0.25;
const ZS_MAX_REJECT: f64 = 0.5;
const ZS_MIN_NPIXELS: usize = 5;
const ZS_KREJ: f64 = 2.5;
const ZS_MAX_ITERATIONS: usize = 5;
const ASINH_A: f64 = 0.1;

/// The limits of the finite values of `pixels` (`None` when there is none).
pub(crate) fn limits(pixels: &[f64], how: Limits) -> Option<(f64, f64)> {
    let finite: Vec<f64> = pixels.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    Some(match how {
        Limits::MinMax => finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            }),
        Limits::ZScale => zscale(&finite),
    })
}

/// astropy's `ZScaleInterval.get_limits`, step by step.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn zscale(values: &[f64]) -> (f64, f64) {
    let stride = ((values.len() as f64 / ZS_SAMPLES as f64).max(1.0)) as usize;
    let mut samples: Vec<f64> = values
        .iter()
        .step_by(stride)
        .take(ZS_SAMPLES)
        .copied()
        .collect();
    samples.sort_by(f64::total_cmp);
    let npix = samples.len();
    let (mut vmin, mut vmax) = (samples[0], samples[npix - 1]);
    let minpix = ZS_MIN_NPIXELS.max((npix as f64 * ZS_MAX_REJECT) as usize);
    let mut ngoodpix = npix;
    let mut last_ngoodpix = npix + 1;
    let mut badpix = vec![false; npix];
    let ngrow = 1usize.max((npix as f64 * 0.01) as usize);
    let mut fit: Option<(f64, f64)> = None;
    for _ in 0..ZS_MAX_ITERATIONS {
        if ngoodpix >= last_ngoodpix || ngoodpix < minpix {
            break;
        }
        let (slope, intercept) = line_fit(&samples, &badpix);
        fit = Some((slope, intercept));
        let flat: Vec<f64> = samples
            .iter()
            .enumerate()
            .map(|(i, &s)| s - (slope * i as f64 + intercept))
            .collect();
        let good: Vec<f64> = flat
            .iter()
            .zip(&badpix)
            .filter(|(_, b)| !**b)
            .map(|(f, _)| *f)
            .collect();
        let threshold = ZS_KREJ * std_dev(&good);
        for (b, f) in badpix.iter_mut().zip(&flat) {
            if *f < -threshold || *f > threshold {
                *b = true;
            }
        }
        badpix = dilate(&badpix, ngrow);
        last_ngoodpix = ngoodpix;
        ngoodpix = badpix.iter().filter(|b| !**b).count();
    }
    if ngoodpix >= minpix {
        if let Some((mut slope, _)) = fit {
            slope /= ZS_CONTRAST;
            let center = (npix - 1) / 2;
            let median = if npix % 2 == 1 {
                samples[npix / 2]
            } else {
                (samples[npix / 2 - 1] + samples[npix / 2]) / 2.0
            };
            vmin = vmin.max(median - (center as f64 - 1.0) * slope);
            vmax = vmax.min(median + (npix - center) as f64 * slope);
        }
    }
    (vmin, vmax)
}

/// Least-squares line through `(i, y[i])` for the points not marked bad.
#[allow(clippy::cast_precision_loss)]
fn line_fit(y: &[f64], bad: &[bool]) -> (f64, f64) {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, (&v, &b)) in y.iter().zip(bad).enumerate() {
        if !b {
            let x = i as f64;
            n += 1.0;
            sx += x;
            sy += v;
            sxx += x * x;
            sxy += x * v;
        }
    }
    let det = n * sxx - sx * sx;
    if det == 0.0 {
        return (0.0, if n > 0.0 { sy / n } else { 0.0 });
    }
    let slope = (n * sxy - sx * sy) / det;
    (slope, (sy - slope * sx) / n)
}

#[allow(clippy::cast_precision_loss)]
fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// `np.convolve(bad, ones(ngrow), mode="same")` on booleans.
fn dilate(bad: &[bool], ngrow: usize) -> Vec<bool> {
    let n = bad.len();
    let shift = (ngrow - 1) / 2;
    (0..n)
        .map(|i| {
            // same[i] = full[i + shift] = OR of bad[i + shift + 1 - ngrow ..= i + shift]
            let hi = i + shift;
            let lo = (hi + 1).saturating_sub(ngrow);
            (lo..=hi.min(n - 1)).any(|j| bad[j])
        })
        .collect()
}

/// Grey levels, top row first (FITS row 1 is the bottom of the image);
/// NaN and infinite pixels are 0.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(crate) fn grey_levels(
    pixels: &[f64],
    width: usize,
    height: usize,
    limits: Option<(f64, f64)>,
    stretch: Stretch,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    let (lo, hi) = limits.unwrap_or((0.0, 0.0));
    let span = hi - lo;
    let asinh_norm = (1.0 / ASINH_A).asinh();
    for row in (0..height).rev() {
        for &v in &pixels[row * width..(row + 1) * width] {
            if !v.is_finite() || span <= 0.0 {
                out.push(0);
                continue;
            }
            let x = ((v - lo) / span).clamp(0.0, 1.0);
            let y = match stretch {
                Stretch::Linear => x,
                Stretch::Asinh => (x / ASINH_A).asinh() / asinh_norm,
            };
            out.push((y * 255.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_matches_numpy_same_mode() {
        // np.convolve([0,0,0,1,0,0,0,0], ones(3), 'same') > 0 -> [0,0,1,1,1,0,0,0]
        let bad = [false, false, false, true, false, false, false, false];
        let d = dilate(&bad, 3);
        assert_eq!(d, [false, false, true, true, true, false, false, false]);
        // even kernel (4): same[i] = OR bad[i-2 ..= i+1] -> [0,0,1,1,1,1,0,0]
        let d = dilate(&bad, 4);
        assert_eq!(d, [false, false, true, true, true, true, false, false]);
    }

    #[test]
    fn flat_ramp_keeps_its_range_and_orders_grey_levels() {
        let pixels: Vec<f64> = (0..100).map(f64::from).collect();
        let (lo, hi) = limits(&pixels, Limits::ZScale).unwrap();
        assert!(lo >= 0.0 && hi <= 99.0 && lo < hi);
        let g = grey_levels(&pixels, 10, 10, Some((0.0, 99.0)), Stretch::Linear);
        // top row first: the last FITS row.
        assert_eq!(g[0], ((90.0 / 99.0) * 255.0_f64).round() as u8);
        assert_eq!(g[90], 0);
        assert_eq!(limits(&[f64::NAN], Limits::MinMax), None);
    }

    #[test]
    fn non_finite_pixels_take_no_part_and_are_black() {
        let pixels = [1.0, f64::NAN, 3.0, f64::INFINITY];
        assert_eq!(limits(&pixels, Limits::MinMax), Some((1.0, 3.0)));
        let g = grey_levels(&pixels, 2, 2, Some((1.0, 3.0)), Stretch::Asinh);
        // top row first: [3, inf], then [1, NaN]
        assert_eq!(g, [255, 0, 0, 0]);
    }
}
