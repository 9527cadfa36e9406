//! The broker's own principal, `User:starlog-internal`: what in-broker
//! pipelines and mirrors act as.
//!
//! In-broker pipelines read and write partitions in the process, so no
//! request (and no ACL) stands between them and the logs. In-broker mirrors
//! are Kafka clients of this broker: on a SASL listener they log in as
//! `starlog-internal` with a password made at random when the broker
//! starts, held only in its memory (never stored, never logged), and the
//! principal is a super user. A stored user of that name is never used.

use starlog_security::{Principal, ScramCredential, ScramMechanism};

/// The internal user's name.
pub const INTERNAL_USER: &str = "starlog-internal";

/// The mechanism in-broker clients log in with.
pub const INTERNAL_MECHANISM: ScramMechanism = ScramMechanism::Sha512;

/// The internal principal's login for this run of the broker.
#[derive(Clone)]
pub struct InternalLogin {
    password: String,
    credential: ScramCredential,
}

impl std::fmt::Debug for InternalLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalLogin")
            .field("user", &INTERNAL_USER)
            .finish_non_exhaustive()
    }
}

impl InternalLogin {
    /// A fresh random password and its credential.
    pub fn generate() -> Result<Self, starlog_security::CredentialError> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes)
            .map_err(|e| starlog_security::CredentialError::Random(e.to_string()))?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let credential = ScramCredential::new(
            INTERNAL_MECHANISM,
            &password,
            starlog_security::MIN_ITERATIONS,
        )?;
        Ok(Self {
            password,
            credential,
        })
    }

    /// The password (for the in-broker clients' configuration only).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The credential, when `user` and `mechanism` are the internal ones.
    pub fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        (user == INTERNAL_USER && mechanism == INTERNAL_MECHANISM).then(|| self.credential.clone())
    }

    /// `User:starlog-internal`.
    pub fn principal() -> Principal {
        Principal::user(INTERNAL_USER)
    }
}
