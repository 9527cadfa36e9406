//! Writers of rows into relational databases (PostgreSQL, MariaDB).

use starlog_processors::config::ProcessorRegistry;

/// Adds this module's classes to `registry`.
pub(crate) fn register(_registry: &mut ProcessorRegistry) {}
