//! The progress bar shown while a run is under way.
//!
//! A benchmark of a minute or more must show it is alive and whether the
//! consumers keep up, so the bar counts messages sent and the message shows
//! acknowledged and slowest-group consumed counts. It draws on stderr only
//! when that is a terminal (indicatif's own rule), and tests turn it off.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar, or nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` messages titled `label`; `None` when `enabled` is false.
    pub fn new(enabled: bool, total: u64, label: &str) -> Self {
        if !enabled {
            return Self { bar: None };
        }
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {bar:30} {pos}/{len} sent {msg}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        Self { bar: Some(bar) }
    }

    /// Updates the counts.
    pub fn update(&self, sent: u64, acked: u64, slowest_group: Option<u64>) {
        if let Some(b) = &self.bar {
            b.set_position(sent);
            match slowest_group {
                Some(c) => b.set_message(format!("| {acked} acked | {c} consumed (slowest group)")),
                None => b.set_message(format!("| {acked} acked")),
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
