//! Writers of files astronomers read (Parquet, light curves as FITS and VOTable, cutouts).

use starlog_processors::config::ProcessorRegistry;

/// Adds this module's classes to `registry`.
pub(crate) fn register(_registry: &mut ProcessorRegistry) {}
