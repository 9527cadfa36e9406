//! The operator's view while the mirror runs: one line per upstream topic
//! with its lag (upstream high watermark minus the mirror's position,
//! summed over partitions), its rate over the last refresh and its totals.
//!
//! Drawn with `indicatif` on stderr, and only when stderr is a terminal
//! (indicatif hides itself otherwise), so logs and pipes stay clean.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Per-topic numbers for one refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicView {
    /// Records behind the upstream end.
    pub lag: i64,
    /// Records written so far.
    pub mirrored: u64,
    /// Records dead-lettered or skipped so far.
    pub bad: u64,
}

/// The display.
#[derive(Debug)]
pub struct Progress {
    multi: MultiProgress,
    bars: BTreeMap<String, (ProgressBar, u64)>,
    last: Instant,
    every: Duration,
}

impl Progress {
    /// A display; `enabled = false` draws nothing.
    pub fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: BTreeMap::new(),
            last: Instant::now(),
            every: Duration::from_millis(500),
        }
    }

    /// True when a refresh is due.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// Updates every topic's line.
    pub fn update(&mut self, views: &BTreeMap<String, TopicView>) {
        let secs = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();
        for (topic, v) in views {
            let (bar, prev) = self.bars.entry(topic.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                let style = ProgressStyle::with_template("{spinner} {prefix:<32} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(topic.clone());
                (bar, 0)
            });
            let rate = (v.mirrored.saturating_sub(*prev)) as f64 / secs;
            *prev = v.mirrored;
            bar.set_message(format!(
                "lag {:>9}  {:>8.0} rec/s  mirrored {:>10}  bad {:>6}",
                v.lag, rate, v.mirrored, v.bad
            ));
            bar.tick();
        }
    }

    /// Removes the lines (before the summary is printed).
    pub fn finish(&self) {
        for (bar, _) in self.bars.values() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
