//! Processor classes that do I/O, registered into the processors' class
//! registry so that pipelines (in-broker and in processing nodes) can name
//! them. `starlog-processors` itself knows nothing of files beyond its Avro
//! container writer, nor of sockets; what opens a database connection,
//! writes a Parquet file or sends a notification lives here.
//!
//! | module | holds |
//! | --- | --- |
//! | `files/` | writers of files astronomers read: Parquet, light curves (FITS, VOTable), cutouts (FITS, PNG, JPEG) |
//! | `db/` | writers of rows into relational databases (PostgreSQL, MariaDB) |
//! | `notify/` | notifications (VOEvent, Slack, e-mail) |
//! | `calendar.rs` | dates of observation times (MJD to civil dates), shared by writers and notifiers |
//!
//! The public surface is [`register`] and [`registry`]; the classes are
//! reached by name through the registry, never as Rust types.

mod calendar;
mod db;
mod files;
mod notify;

use starlog_processors::config::ProcessorRegistry;

/// Adds this crate's classes to `registry`.
pub fn register(registry: &mut ProcessorRegistry) {
    files::register(registry);
    db::register(registry);
    notify::register(registry);
}

/// The processors' built-in classes and this crate's: what the `starlog`
/// binary's pipelines may name.
#[must_use]
pub fn registry() -> ProcessorRegistry {
    let mut registry = ProcessorRegistry::with_builtins();
    register(&mut registry);
    registry
}
