//! raft-rs logs through `slog`; Starlog logs through `tracing`. This is the bridge: a slog
//! drain that turns each record (message plus key-values) into one `tracing` event with the
//! `raft` target, at the matching level.

use std::fmt::{self, Write as _};

use slog::{Drain, Level, OwnedKVList, Record, Serializer, KV};

/// A slog drain that forwards to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

struct KvText(String);

impl Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = KvText(String::new());
        // Serialising into a String cannot fail.
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        let fields = kv.0;
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", %fields, "{msg}");
            }
            Level::Warning => tracing::warn!(target: "raft", %fields, "{msg}"),
            Level::Info => tracing::info!(target: "raft", %fields, "{msg}"),
            Level::Debug => tracing::debug!(target: "raft", %fields, "{msg}"),
            Level::Trace => tracing::trace!(target: "raft", %fields, "{msg}"),
        }
        Ok(())
    }
}

/// A slog logger whose records go to `tracing`, tagged with the group and node.
pub fn logger(group: u64, node: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("group" => group, "node" => node))
}
