//! The durable security state (users' SCRAM credentials and ACLs) and the
//! changes made to it. Applying a change is deterministic, so a cluster's
//! brokers that apply the same changes in the same order (the metadata
//! log) hold the same state; a broker alone keeps the state in a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::acl::{AclBinding, AclError, AclFilter, Authorizer};
use crate::credential::{ScramCredential, ScramMechanism};
use crate::principal::Principal;

/// The format version of [`SecurityChange`] as written to a log or file;
/// a reader refuses a newer version instead of misreading it.
pub const SECURITY_FORMAT_VERSION: u32 = 1;

/// Users and ACLs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityState {
    /// The format version this state was written with.
    pub version: u32,
    /// SCRAM credentials by user name, then mechanism.
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// ACLs, in a stable order.
    pub acls: Vec<AclBinding>,
}

/// One change to the security state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SecurityChange {
    /// Sets (adds or replaces) a user's credential for one mechanism.
    SetCredential {
        /// The user name.
        user: String,
        /// The credential (its mechanism says which one it replaces).
        credential: ScramCredential,
    },
    /// Removes a user's credential for one mechanism (the user goes when
    /// none is left).
    DeleteCredential {
        /// The user name.
        user: String,
        /// Which one.
        mechanism: ScramMechanism,
    },
    /// Adds ACLs (one already there is left as is).
    CreateAcls {
        /// The ACLs.
        acls: Vec<AclBinding>,
    },
    /// Removes every ACL each filter selects.
    DeleteAcls {
        /// The filters.
        filters: Vec<AclFilter>,
    },
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// A credential was set or deleted (false: there was none to delete).
    Credential(bool),
    /// ACLs created (per ACL: added, already there, or refused).
    Created(Vec<Result<bool, AclError>>),
    /// ACLs deleted, per filter.
    Deleted(Vec<Vec<AclBinding>>),
}

impl SecurityState {
    /// Applies a change.
    pub fn apply(&mut self, change: &SecurityChange) -> ChangeOutcome {
        self.version = SECURITY_FORMAT_VERSION;
        match change {
            SecurityChange::SetCredential { user, credential } => {
                self.users
                    .entry(user.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
                ChangeOutcome::Credential(true)
            }
            SecurityChange::DeleteCredential { user, mechanism } => {
                let Some(creds) = self.users.get_mut(user) else {
                    return ChangeOutcome::Credential(false);
                };
                let had = creds.remove(mechanism).is_some();
                if creds.is_empty() {
                    self.users.remove(user);
                }
                ChangeOutcome::Credential(had)
            }
            SecurityChange::CreateAcls { acls } => {
                let mut authz = self.acl_set();
                let results = acls.iter().map(|a| authz.add(a.clone())).collect();
                self.acls = authz.all().cloned().collect();
                ChangeOutcome::Created(results)
            }
            SecurityChange::DeleteAcls { filters } => {
                let mut authz = self.acl_set();
                let results = filters.iter().map(|f| authz.remove_matching(f)).collect();
                self.acls = authz.all().cloned().collect();
                ChangeOutcome::Deleted(results)
            }
        }
    }

    fn acl_set(&self) -> Authorizer {
        let mut a = Authorizer::default();
        // Stored ACLs were validated when created.
        a.replace_all(self.acls.iter().cloned());
        a
    }

    /// The authorizer for these ACLs with the configured policy.
    pub fn authorizer(
        &self,
        super_users: impl IntoIterator<Item = Principal>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Authorizer {
        let mut a = Authorizer::new(super_users, allow_everyone_if_no_acl_found);
        a.replace_all(self.acls.iter().cloned());
        a
    }

    /// A user's credential for a mechanism.
    pub fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user).and_then(|m| m.get(&mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{
        AclEntry, AclOperation, PatternType, Permission, ResourcePattern, ResourceType,
    };

    #[test]
    fn the_same_changes_give_the_same_state_and_survive_serde() {
        let cred = ScramCredential::new(ScramMechanism::Sha512, "pw-1", 4096)
            .unwrap_or_else(|e| panic!("{e}"));
        let acl = AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                name: "alerts".into(),
                pattern_type: PatternType::Literal,
            },
            entry: AclEntry {
                principal: Principal::user("u"),
                host: "*".into(),
                operation: AclOperation::Read,
                permission: Permission::Allow,
            },
        };
        let changes = vec![
            SecurityChange::SetCredential {
                user: "u".into(),
                credential: cred.clone(),
            },
            SecurityChange::CreateAcls {
                acls: vec![acl.clone(), acl.clone()],
            },
            SecurityChange::DeleteCredential {
                user: "nobody".into(),
                mechanism: ScramMechanism::Sha256,
            },
        ];
        let mut a = SecurityState::default();
        let mut b = SecurityState::default();
        for c in &changes {
            let json = serde_json::to_string(c).unwrap_or_else(|e| panic!("{e}"));
            let back: SecurityChange =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            a.apply(c);
            b.apply(&back);
        }
        assert_eq!(a, b);
        assert_eq!(a.acls, vec![acl]);
        assert_eq!(a.credential("u", ScramMechanism::Sha512), Some(&cred));
        let out = a.apply(&SecurityChange::DeleteCredential {
            user: "u".into(),
            mechanism: ScramMechanism::Sha512,
        });
        assert_eq!(out, ChangeOutcome::Credential(true));
        assert!(a.users.is_empty());
        let out = a.apply(&SecurityChange::DeleteAcls {
            filters: vec![AclFilter::any()],
        });
        assert!(matches!(out, ChangeOutcome::Deleted(v) if v[0].len() == 1));
        assert!(a.acls.is_empty());
    }
}
