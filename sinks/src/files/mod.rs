//! Writers of files astronomers read (Parquet, light curves as FITS and VOTable, cutouts).

mod cutout;
mod fits;
mod lightcurve;
mod parquet;
mod staged;

use starlog_processors::config::{ConfigError, Params, ProcessorRegistry};

/// Adds this module's classes to `registry`.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    registry.register(lightcurve::CLASS, lightcurve::parse);
    registry.register(cutout::CLASS, cutout::parse);
    parquet::register(registry);
}

/// The `formats` parameter: a non-empty list of `choices` (default: all of them).
fn format_list(
    p: &mut Params<'_>,
    choices: &[&'static str],
) -> Result<Vec<&'static str>, ConfigError> {
    let what = format!("one of {}", choices.join(", "));
    let Some(items) = p.optional_str_list("formats", &what)? else {
        return Ok(choices.to_vec());
    };
    if items.is_empty() {
        return Err(p.error(
            "formats",
            format!("expected a non-empty list of {what}, found an empty list"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            choices
                .iter()
                .find(|c| **c == item)
                .copied()
                .ok_or_else(|| ConfigError::Invalid {
                    path: format!("{}[{i}]", p.path_of("formats")),
                    message: format!("expected {what}, found a string ({item:?})"),
                })
        })
        .collect()
}
