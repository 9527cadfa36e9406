//! A partition's published high watermark: the offset up to which
//! consumers may read.
//!
//! The partition holds one end of it; in cluster mode the Raft driver loop
//! holds a clone and publishes each group's commit index into it, without
//! holding the partition itself. Long-poll fetches wait on it and are woken
//! when it moves.

use std::sync::Arc;

use tokio::sync::watch;

/// A shared, monotonic high watermark (see the module docs).
#[derive(Debug, Clone)]
pub struct HighWatermark(Arc<watch::Sender<i64>>);

impl HighWatermark {
    /// A high watermark starting at `start`.
    pub fn new(start: i64) -> Self {
        Self(Arc::new(watch::channel(start).0))
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        *self.0.borrow()
    }

    /// A receiver woken whenever it moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.0.subscribe()
    }

    /// Moves it forward to `end` (never back: concurrent appends may finish
    /// their durability wait out of order, and the later one's fsync covered
    /// the earlier one's bytes).
    pub fn publish(&self, end: i64) {
        self.0.send_if_modified(|hw| {
            if end > *hw {
                *hw = end;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_only_moves_forward_and_clones_share_it() {
        let hw = HighWatermark::new(5);
        let publisher = hw.clone();
        let rx = hw.subscribe();
        publisher.publish(3);
        assert_eq!(hw.get(), 5);
        assert!(!rx.has_changed().unwrap());
        publisher.publish(9);
        assert_eq!(hw.get(), 9);
        assert!(rx.has_changed().unwrap());
    }
}
