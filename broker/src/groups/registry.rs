//! The table of live groups.
//!
//! Locking: one short-lived mutex for the table and one mutex per group, both
//! synchronous and never held across an `.await`. The order is always table
//! then group. A group is looked up and locked while the table lock is held,
//! and a group is only removed (and marked Dead) while both are held, so a
//! caller that got a group's lock from here never sees a Dead group.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::clock::Clock;
use super::config::GroupConfig;
use super::driver::{self, GroupCell};
use super::error::GroupError;
use super::group::Group;
use super::state::GroupState;

/// All groups that have members, pending members or recent activity.
#[derive(Debug)]
pub(super) struct Registry {
    groups: Mutex<HashMap<String, Arc<GroupCell>>>,
    config: Arc<GroupConfig>,
    clock: Clock,
}

impl Registry {
    pub(super) fn new(config: Arc<GroupConfig>, clock: Clock) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            config,
            clock,
        }
    }

    /// Runs `f` on the group `id` if it exists; `None` otherwise.
    pub(super) fn with_group<R>(&self, id: &str, f: impl FnOnce(&mut Group) -> R) -> Option<R> {
        let table = self.groups.lock();
        let cell = Arc::clone(table.get(id)?);
        let mut group = cell.group.lock();
        drop(table);
        let result = f(&mut group);
        let wake = std::mem::take(&mut group.timers_changed);
        drop(group);
        if wake {
            cell.wake.notify_one();
        }
        Some(result)
    }

    /// Runs `f` on the group `id`, creating it (Empty) if needed. Creating a
    /// group past `max_groups` fails with GROUP_MAX_SIZE_REACHED. Must be called
    /// inside a tokio runtime: a new group gets its timer task.
    pub(super) fn with_group_or_create<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Group) -> R,
    ) -> Result<R, GroupError> {
        let mut table = self.groups.lock();
        let cell = match table.get(id) {
            Some(cell) => Arc::clone(cell),
            None => {
                if table.len() >= self.config.max_groups {
                    return Err(GroupError::GroupFull {
                        group: id.to_owned(),
                        limit: self.config.max_groups,
                        what: "groups",
                    });
                }
                let group = Group::new(
                    id.to_owned(),
                    Instant::now(),
                    self.clock,
                    self.config.initial_rebalance_delay(),
                );
                let cell = Arc::new(GroupCell {
                    group: Mutex::new(group),
                    wake: Notify::new(),
                });
                table.insert(id.to_owned(), Arc::clone(&cell));
                driver::spawn(Arc::clone(&cell));
                cell
            }
        };
        let mut group = cell.group.lock();
        drop(table);
        let result = f(&mut group);
        let wake = std::mem::take(&mut group.timers_changed);
        drop(group);
        if wake {
            cell.wake.notify_one();
        }
        Ok(result)
    }

    /// Removes the group `id` if `check` allows it, marking it Dead so its
    /// timer task stops. `None` when the group is not in the table.
    pub(super) fn remove_if(
        &self,
        id: &str,
        check: impl FnOnce(&Group) -> Result<(), GroupError>,
    ) -> Option<Result<(), GroupError>> {
        let mut table = self.groups.lock();
        let cell = Arc::clone(table.get(id)?);
        let mut group = cell.group.lock();
        if let Err(error) = check(&group) {
            return Some(Err(error));
        }
        group.transition(GroupState::Dead, Instant::now());
        drop(group);
        table.remove(id);
        drop(table);
        cell.wake.notify_one();
        Some(Ok(()))
    }

    /// The ids of all groups in the table.
    pub(super) fn ids(&self) -> Vec<String> {
        self.groups.lock().keys().cloned().collect()
    }

    /// Number of groups in the table.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.groups.lock().len()
    }
}

impl Drop for Registry {
    /// Stops every group's timer task when the coordinator goes away.
    fn drop(&mut self) {
        let now = Instant::now();
        for cell in self.groups.get_mut().values() {
            cell.group.lock().transition(GroupState::Dead, now);
            cell.wake.notify_one();
        }
    }
}
