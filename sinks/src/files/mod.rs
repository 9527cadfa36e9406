//! Writers of files astronomers read (Parquet, light curves as FITS and VOTable, cutouts).

mod parquet;

use starlog_processors::config::ProcessorRegistry;

/// Adds this module's classes to `registry`.
pub(crate) fn register(registry: &mut ProcessorRegistry) {
    parquet::register(registry);
}
