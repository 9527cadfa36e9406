//! Hive-style folders by observation date: `year=YYYY/month=MM/day=DD`.

use std::path::PathBuf;

use crate::calendar::{civil_from_days, MJD_UNIX_EPOCH};

/// The date folder of an observation at `mjd`, or why there is none.
///
/// # Errors
/// The MJD is not finite or outside years 1..9999.
pub(crate) fn date_folder(mjd: f64) -> Result<PathBuf, String> {
    if !mjd.is_finite() {
        return Err(format!(
            "observation time (MJD) {mjd} is not a finite number"
        ));
    }
    let days = (mjd - MJD_UNIX_EPOCH).floor();
    if !(-719_162.0..=2_932_896.0).contains(&days) {
        return Err(format!(
            "observation time (MJD) {mjd} is outside the years 1 to 9999"
        ));
    }
    // In range, checked above.
    #[allow(clippy::cast_possible_truncation)]
    let (y, m, d) = civil_from_days(days as i64);
    Ok(PathBuf::from(format!("year={y:04}"))
        .join(format!("month={m:02}"))
        .join(format!("day={d:02}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_known_mjds() {
        assert_eq!(
            date_folder(40_587.0).unwrap(),
            PathBuf::from("year=1970/month=01/day=01")
        );
        // ZTF jd 2458451.6 = MJD 58451.1 = 2018-11-29.
        assert_eq!(
            date_folder(2_458_451.6 - 2_400_000.5).unwrap(),
            PathBuf::from("year=2018/month=11/day=29")
        );
        // 2024-02-29 (leap day) is MJD 60369.
        assert_eq!(
            date_folder(60_369.99).unwrap(),
            PathBuf::from("year=2024/month=02/day=29")
        );
        assert_eq!(
            date_folder(60_370.0).unwrap(),
            PathBuf::from("year=2024/month=03/day=01")
        );
        assert!(date_folder(f64::NAN).is_err());
        assert!(date_folder(1e12).is_err());
    }
}
