//! What this broker applied of the metadata log's security commands, kept
//! beside the `ClusterState`: the outcome of each recent `Security` command
//! by token (its proposer waits for it), a counter of changes to the users
//! and ACLs (the store rebuilds its authorizer when it moves), and the
//! bootstrap file's users and ACLs still to propose (`security.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use starlog_security::{ChangeOutcome, SecurityState};

/// Security outcomes remembered after they are applied.
const RECENT_OUTCOMES: usize = 1024;

/// What the security commands applied here did, by token, and a counter of
/// changes to the users and ACLs (the store rebuilds its authorizer when it
/// moves).
#[derive(Debug, Default)]
pub(crate) struct SecurityOutcomes {
    recent: Mutex<VecDeque<(u64, Result<ChangeOutcome, String>)>>,
    generation: AtomicU64,
}

impl SecurityOutcomes {
    /// Notes that the users or ACLs may have changed.
    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records what the command `token` did.
    pub(super) fn record(&self, token: u64, outcome: Result<ChangeOutcome, String>) {
        let mut recent = self.recent.lock();
        recent.push_back((token, outcome));
        while recent.len() > RECENT_OUTCOMES {
            recent.pop_front();
        }
    }

    pub(super) fn find(&self, token: u64) -> Option<Result<ChangeOutcome, String>> {
        self.recent
            .lock()
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, o)| o.clone())
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A bootstrap file's users and ACLs still to propose.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    pub(super) pending: Option<SecurityState>,
    pub(super) last: Option<Instant>,
}

impl Bootstrap {
    /// What the file holds (nothing to do when it holds no user and no ACL).
    pub(super) fn new(file: SecurityState) -> Self {
        let pending = (!file.users.is_empty() || !file.acls.is_empty()).then_some(file);
        Self {
            pending,
            last: None,
        }
    }
}
