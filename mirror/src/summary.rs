//! What a run did, printed on exit and returned by `run`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Counters of one upstream topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicCounts {
    /// Where it went.
    pub target: String,
    /// Upstream records handled (every fate, including records found
    /// already present; records in flight count once handed on).
    pub read: u64,
    /// Records written to the target.
    pub mirrored: u64,
    /// Value bytes written to the target.
    pub bytes: u64,
    /// Values whose schema id was rewritten.
    pub rewritten: u64,
    /// Records copied within whole upstream batches, as bytes (counted in
    /// `mirrored` too).
    pub passed_through: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Records skipped by the `skip` policy.
    pub skipped: u64,
    /// Records found already in the local log after a restart (not written
    /// again).
    pub already_present: u64,
}

impl TopicCounts {
    /// Adds `other`'s counters (the target is taken when unset).
    pub fn add(&mut self, other: &Self) {
        if self.target.is_empty() {
            self.target.clone_from(&other.target);
        }
        self.read += other.read;
        self.mirrored += other.mirrored;
        self.bytes += other.bytes;
        self.rewritten += other.rewritten;
        self.passed_through += other.passed_through;
        self.dead_lettered += other.dead_lettered;
        self.skipped += other.skipped;
        self.already_present += other.already_present;
    }
}

/// The summary of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Per upstream topic.
    pub topics: BTreeMap<String, TopicCounts>,
    /// Bad input by reason kind (all policies).
    pub bad_input: BTreeMap<String, u64>,
    /// Schema ids mapped: (upstream id, local subject, local id).
    pub schema_ids: Vec<(u32, String, u32)>,
    /// Registry round trips.
    pub registry_calls: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Target records read back at start-up to find what was already there.
    pub recovery_scanned: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Records written to targets, all topics.
    pub fn mirrored(&self) -> u64 {
        self.topics.values().map(|t| t.mirrored).sum()
    }
    /// Records dead-lettered, all topics.
    pub fn dead_lettered(&self) -> u64 {
        self.topics.values().map(|t| t.dead_lettered).sum()
    }
    /// Records skipped, all topics.
    pub fn skipped(&self) -> u64 {
        self.topics.values().map(|t| t.skipped).sum()
    }
    /// Records found already present, all topics.
    pub fn already_present(&self) -> u64 {
        self.topics.values().map(|t| t.already_present).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let bytes: u64 = self.topics.values().map(|t| t.bytes).sum();
        writeln!(
            f,
            "mirrored {} records ({:.1} MB) in {:.1} s: {:.0} records/s, {:.1} MB/s",
            self.mirrored(),
            bytes as f64 / 1e6,
            secs,
            self.mirrored() as f64 / secs,
            bytes as f64 / 1e6 / secs
        )?;
        writeln!(
            f,
            "{:<32} {:<24} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}",
            "upstream topic",
            "target",
            "mirrored",
            "rewritten",
            "as bytes",
            "dead",
            "skipped",
            "present"
        )?;
        for (name, t) in &self.topics {
            writeln!(
                f,
                "{:<32} {:<24} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}",
                name,
                t.target,
                t.mirrored,
                t.rewritten,
                t.passed_through,
                t.dead_lettered,
                t.skipped,
                t.already_present
            )?;
        }
        for (kind, n) in &self.bad_input {
            writeln!(f, "bad input: {kind}: {n}")?;
        }
        for (up, subject, local) in &self.schema_ids {
            writeln!(f, "schema id {up} -> {local} ({subject})")?;
        }
        write!(
            f,
            "{} registry calls, {} checkpoints, {} records read back at start-up",
            self.registry_calls, self.checkpoints, self.recovery_scanned
        )
    }
}
