//! The per-group timer task.
//!
//! Each group in the registry has one task that sleeps until the group's next
//! deadline (`Group::poll`) or until a request notifies it, then applies what
//! is due. It exits when the group is removed (Dead). One task per group keeps
//! deadlines exact without a periodic scan of every member of every group.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::group::Group;

/// A group and the wake-up signal of its timer task.
#[derive(Debug)]
pub(super) struct GroupCell {
    pub(super) group: Mutex<Group>,
    /// Notified when a request added or advanced a deadline of the group
    /// (`Group::timers_changed`), so its timer task recomputes when to wake.
    pub(super) wake: Notify,
}

pub(super) fn spawn(cell: Arc<GroupCell>) {
    tokio::spawn(async move {
        loop {
            let next = {
                let mut group = cell.group.lock();
                if group.is_dead() {
                    return;
                }
                group.poll(tokio::time::Instant::now())
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = cell.wake.notified() => {}
                    }
                }
                None => cell.wake.notified().await,
            }
        }
    });
}
