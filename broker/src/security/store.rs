//! Where users and ACLs are kept: [`SecurityStore`], chosen at start-up.
//! [`LocalSecurityStore`] is a broker alone's (one JSON file under the data
//! directory's `__meta`, rewritten atomically); the cluster's replicates
//! each change through the metadata group (`cluster/`).

use std::fmt::Debug;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use starlog_security::{
    Authorizer, ChangeOutcome, Principal, ScramCredential, ScramMechanism, SecurityChange,
    SecurityState, SECURITY_FORMAT_VERSION,
};

/// The file (under `data_dir/__meta`) a broker alone keeps users and ACLs in.
pub const SECURITY_FILE: &str = "security.json";

/// Why a change could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("security store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file did not parse.
    #[error("security store {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The file was written by a newer Starlog.
    #[error("security store {path} has format version {found}; this Starlog reads up to {SECURITY_FORMAT_VERSION}")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The cluster could not commit the change (no quorum, not the
    /// controller, shutting down).
    #[error("the change was not committed: {0}")]
    NotCommitted(String),
}

/// Users and ACLs, as a mode keeps them (see the module docs).
pub trait SecurityStore: Send + Sync + Debug + 'static {
    /// The ACLs in force with the configured policy (super users, what
    /// happens when no ACL matches).
    fn authorizer(&self) -> Arc<Authorizer>;

    /// A user's SCRAM credential for a mechanism.
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;

    /// The whole state (users and ACLs), for the Describe APIs.
    fn state(&self) -> SecurityState;

    /// Applies a change durably (in a cluster: once the metadata group has
    /// committed it) and returns what it did.
    fn change(&self, change: SecurityChange) -> BoxFuture<'_, Result<ChangeOutcome, StoreError>>;
}

/// The policy around the ACLs, from the `security:` section of the YAML.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Principals allowed everything.
    pub super_users: Vec<Principal>,
    /// What happens when no ACL names a resource.
    pub allow_everyone_if_no_acl_found: bool,
}

impl Policy {
    /// The authorizer for `state` under this policy.
    pub fn authorizer(&self, state: &SecurityState) -> Arc<Authorizer> {
        Arc::new(state.authorizer(
            self.super_users.iter().cloned(),
            self.allow_everyone_if_no_acl_found,
        ))
    }
}

/// A broker alone's store: `data_dir/__meta/security.json`.
#[derive(Debug)]
pub struct LocalSecurityStore {
    path: PathBuf,
    policy: Policy,
    state: Mutex<SecurityState>,
    authorizer: RwLock<Arc<Authorizer>>,
}

impl LocalSecurityStore {
    /// Opens (or starts empty) the store in `meta_dir`.
    pub fn open(meta_dir: &Path, policy: Policy) -> Result<Self, StoreError> {
        let path = meta_dir.join(SECURITY_FILE);
        let state = read_state(&path)?;
        let authorizer = policy.authorizer(&state);
        Ok(Self {
            path,
            policy,
            state: Mutex::new(state),
            authorizer: RwLock::new(authorizer),
        })
    }

    /// Applies a change and writes the file before returning (what
    /// `starlog users` / `starlog acls` do with the broker stopped).
    pub fn change_now(&self, change: &SecurityChange) -> Result<ChangeOutcome, StoreError> {
        let mut state = self.state.lock();
        let mut next = state.clone();
        let outcome = next.apply(change);
        write_state(&self.path, &next)?;
        *self.authorizer.write() = self.policy.authorizer(&next);
        *state = next;
        Ok(outcome)
    }
}

impl SecurityStore for LocalSecurityStore {
    fn authorizer(&self) -> Arc<Authorizer> {
        Arc::clone(&self.authorizer.read())
    }

    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.state.lock().credential(user, mechanism).cloned()
    }

    fn state(&self) -> SecurityState {
        self.state.lock().clone()
    }

    fn change(&self, change: SecurityChange) -> BoxFuture<'_, Result<ChangeOutcome, StoreError>> {
        // A small file, written and synced under the lock: changes are rare
        // (an administrator's), and their order must be the file's order.
        Box::pin(async move { tokio::task::block_in_place(|| self.change_now(&change)) })
    }
}

/// Reads a state file; a missing file is an empty state.
pub fn read_state(path: &Path) -> Result<SecurityState, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SecurityState::default()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let state: SecurityState = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if state.version > SECURITY_FORMAT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    Ok(state)
}

/// Writes a state file atomically: a temporary file, synced, renamed over
/// the old one, and the directory synced.
pub fn write_state(path: &Path, state: &SecurityState) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            super_users: vec![Principal::user("admin")],
            allow_everyone_if_no_acl_found: false,
        }
    }

    #[test]
    fn changes_survive_reopening_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            LocalSecurityStore::open(dir.path(), policy()).unwrap_or_else(|e| panic!("{e}"));
        let cred = ScramCredential::new(ScramMechanism::Sha512, "pw", 4096)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .change_now(&SecurityChange::SetCredential {
                user: "alice".into(),
                credential: cred.clone(),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let again =
            LocalSecurityStore::open(dir.path(), policy()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.credential("alice", ScramMechanism::Sha512),
            Some(cred)
        );
        let text = std::fs::read_to_string(dir.path().join(SECURITY_FILE))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("\"pw\""), "the password is never stored");
        std::fs::write(dir.path().join(SECURITY_FILE), b"{ not json")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = LocalSecurityStore::open(dir.path(), policy()).map(|_| ());
        assert!(matches!(err, Err(StoreError::Corrupt { .. })), "{err:?}");
    }
}
