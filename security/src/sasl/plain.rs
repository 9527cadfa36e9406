//! SASL/PLAIN server side (RFC 4616): one client message,
//! `[authzid] NUL authcid NUL passwd`, checked against the SCRAM store.

use super::{fake_credential, CredentialLookup, SaslError};
use crate::credential::ScramMechanism;
use crate::principal::Principal;

const NAME: &str = "PLAIN";

fn malformed(reason: &'static str) -> SaslError {
    SaslError::Malformed {
        mechanism: NAME,
        reason,
    }
}

/// Checks the one PLAIN message; the principal on success.
///
/// The password is checked against the user's SCRAM-SHA-512 credential if
/// there is one, else SCRAM-SHA-256. An unknown user costs the same key
/// derivation as a known one (against a stand-in credential), so the time
/// taken does not tell whether the user exists.
pub(super) fn authenticate(
    token: &[u8],
    users: &dyn CredentialLookup,
) -> Result<Principal, SaslError> {
    let text = std::str::from_utf8(token).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected authzid NUL authcid NUL password"));
    };
    if user.is_empty() {
        return Err(malformed("username not specified"));
    }
    if password.is_empty() {
        return Err(malformed("password not specified"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::AuthzidMismatch {
            mechanism: NAME,
            user: user.to_owned(),
            authzid: authzid.to_owned(),
        });
    }
    let credential = users
        .credential(user, ScramMechanism::Sha512)
        .filter(|c| c.mechanism == ScramMechanism::Sha512)
        .or_else(|| {
            users
                .credential(user, ScramMechanism::Sha256)
                .filter(|c| c.mechanism == ScramMechanism::Sha256)
        });
    match credential {
        Some(c) if c.verify_password(password) => Ok(Principal::user(user)),
        Some(_) => Err(SaslError::BadCredentials {
            mechanism: NAME,
            user: user.to_owned(),
        }),
        None => {
            // The same work as a known user's check, then the same refusal.
            let _ = fake_credential(ScramMechanism::Sha512, user).verify_password(password);
            Err(SaslError::UnknownUser {
                mechanism: NAME,
                user: user.to_owned(),
            })
        }
    }
}
