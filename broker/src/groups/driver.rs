//! The per-group timer task.
//!
//! Each group in the registry has one task that sleeps until the group's next
//! deadline (`Group::poll`) or until a request notifies it, then applies what
//! is due. It exits when the group is removed (Dead). One task per group keeps
//! deadlines exact without a periodic scan of every member of every group.

use std::sync::Arc;

use super::registry::GroupCell;

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
