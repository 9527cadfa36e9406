//! SCRAM server side (RFC 5802, RFC 7677; SCRAM-SHA-512 as Kafka defines
//! it): client-first → server-first, client-final → server-final.
//!
//! What is refused, and when: a gs2 header asking for channel binding
//! (`p=`), an authorization id other than the user, a mandatory extension
//! (`m=`), Kafka's `tokenauth` extension (delegation tokens), a missing or
//! repeated attribute, a channel-binding attribute that does not echo the
//! gs2 header, a client-final nonce that is not this exchange's combined
//! nonce, and a wrong proof. An unknown user gets a server-first built from
//! a stand-in credential (salt derived from the user name and a secret of
//! this process, the default iteration count), so it fails only at the
//! proof, as a wrong password does.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::{fake_credential, CredentialLookup, SaslError};
use crate::credential::{constant_time_eq, ScramCredential, ScramMechanism};
use crate::principal::Principal;
use crate::scram::unescape_username;

/// Bytes of randomness in the server's part of the nonce.
const SERVER_NONCE_BYTES: usize = 24;
/// Longest client nonce taken.
const MAX_NONCE_LEN: usize = 512;

/// The state between the client-first and the client-final message.
pub(super) struct Exchange {
    mechanism: ScramMechanism,
    user: String,
    /// Whether `credential` is the user's (false: a stand-in).
    known: bool,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// The combined nonce (client's + server's).
    nonce: String,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn malformed(mechanism: ScramMechanism, reason: &'static str) -> SaslError {
    SaslError::Malformed {
        mechanism: mechanism.name(),
        reason,
    }
}

/// A fresh server nonce: base64 of random bytes (printable, no comma).
pub(super) fn random_nonce() -> Result<String, SaslError> {
    let mut raw = [0u8; SERVER_NONCE_BYTES];
    getrandom::fill(&mut raw).map_err(|e| SaslError::Random(e.to_string()))?;
    Ok(B64.encode(raw))
}

/// RFC 5802's `printable`: %x21-2B / %x2D-7E (no comma).
fn is_printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Checks the extensions after the fixed attributes: `key=value`, keys
/// made of letters, digits and `_`, each at most once and none of
/// `reserved`; Kafka's `tokenauth` is refused, any other is ignored.
fn check_extensions<'a>(
    mechanism: ScramMechanism,
    reserved: &[&str],
    parts: impl Iterator<Item = &'a str>,
) -> Result<(), SaslError> {
    let mut seen: Vec<&str> = Vec::new();
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            return Err(malformed(mechanism, "an attribute without `=`"));
        };
        if key.is_empty()
            || value.is_empty()
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(malformed(mechanism, "an invalid extension"));
        }
        if reserved.contains(&key) || seen.contains(&key) {
            return Err(malformed(mechanism, "a repeated attribute"));
        }
        if key == "tokenauth" {
            return Err(SaslError::TokenAuth {
                mechanism: mechanism.name(),
            });
        }
        seen.push(key);
    }
    Ok(())
}

/// The client-first message: the exchange's state and the server-first message.
pub(super) fn client_first(
    mechanism: ScramMechanism,
    token: &[u8],
    users: &dyn CredentialLookup,
    server_nonce: &str,
) -> Result<(Exchange, Vec<u8>), SaslError> {
    let msg = std::str::from_utf8(token).map_err(|_| malformed(mechanism, "not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (cbind, rest) = msg
        .split_once(',')
        .ok_or_else(|| malformed(mechanism, "no gs2 header"))?;
    match cbind {
        "n" | "y" => {}
        _ => {
            return Err(match cbind.strip_prefix("p=") {
                Some(binding) => SaslError::ChannelBinding {
                    mechanism: mechanism.name(),
                    binding: binding.chars().take(64).collect(),
                },
                None => malformed(mechanism, "an invalid channel-binding flag"),
            })
        }
    }
    let (authz, bare) = rest
        .split_once(',')
        .ok_or_else(|| malformed(mechanism, "no gs2 header"))?;
    let authzid = if authz.is_empty() {
        None
    } else {
        let name = authz
            .strip_prefix("a=")
            .ok_or_else(|| malformed(mechanism, "an invalid authzid"))?;
        Some(unescape_username(name).ok_or_else(|| malformed(mechanism, "an invalid authzid"))?)
    };
    let gs2_header = &msg[..msg.len() - bare.len()];

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    let mut parts = bare.split(',');
    let first = parts.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(malformed(mechanism, "a mandatory extension (m=)"));
    }
    let user = first
        .strip_prefix("n=")
        .ok_or_else(|| malformed(mechanism, "no user name (n=)"))?;
    let user = unescape_username(user)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| malformed(mechanism, "an invalid user name"))?;
    let client_nonce = parts
        .next()
        .and_then(|p| p.strip_prefix("r="))
        .ok_or_else(|| malformed(mechanism, "no nonce (r=)"))?;
    if client_nonce.is_empty() || client_nonce.len() > MAX_NONCE_LEN || !is_printable(client_nonce)
    {
        return Err(malformed(mechanism, "an invalid nonce"));
    }
    check_extensions(mechanism, &["n", "r", "m"], parts)?;
    if let Some(authzid) = authzid {
        if authzid != user {
            return Err(SaslError::AuthzidMismatch {
                mechanism: mechanism.name(),
                user,
                authzid,
            });
        }
    }

    let (known, credential) = match users
        .credential(&user, mechanism)
        .filter(|c| c.mechanism == mechanism)
    {
        Some(c) => (true, c),
        None => (false, fake_credential(mechanism, &user)),
    };
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let reply = server_first.clone().into_bytes();
    Ok((
        Exchange {
            mechanism,
            user,
            known,
            credential,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        },
        reply,
    ))
}

/// The client-final message: the principal and the server-final message.
pub(super) fn client_final(ex: &Exchange, token: &[u8]) -> Result<(Principal, Vec<u8>), SaslError> {
    let m = ex.mechanism;
    let msg = std::str::from_utf8(token).map_err(|_| malformed(m, "not UTF-8"))?;
    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(m, "no proof (p=) at the end"))?;
    if proof.contains(',') {
        return Err(malformed(m, "no proof (p=) at the end"));
    }
    let mut parts = without_proof.split(',');
    let binding = parts
        .next()
        .and_then(|p| p.strip_prefix("c="))
        .ok_or_else(|| malformed(m, "no channel binding (c=)"))?;
    let nonce = parts
        .next()
        .and_then(|p| p.strip_prefix("r="))
        .ok_or_else(|| malformed(m, "no nonce (r=)"))?;
    check_extensions(m, &["c", "r", "p"], parts)?;
    let binding = B64
        .decode(binding)
        .map_err(|_| malformed(m, "channel binding is not base64"))?;
    if binding != ex.gs2_header.as_bytes() {
        return Err(malformed(m, "channel binding does not echo the gs2 header"));
    }
    if nonce != ex.nonce {
        return Err(SaslError::NonceMismatch {
            mechanism: m.name(),
        });
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed(m, "proof is not base64"))?;
    let auth_message = format!(
        "{},{},{}",
        ex.client_first_bare, ex.server_first, without_proof
    );
    let c = &ex.credential;
    let client_signature = m.hmac(&c.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(malformed(m, "proof of the wrong length"));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    let proved = constant_time_eq(&m.hash(&client_key), &c.stored_key);
    if !ex.known {
        return Err(SaslError::UnknownUser {
            mechanism: m.name(),
            user: ex.user.clone(),
        });
    }
    if !proved {
        return Err(SaslError::BadCredentials {
            mechanism: m.name(),
            user: ex.user.clone(),
        });
    }
    let server_signature = m.hmac(&c.server_key, auth_message.as_bytes());
    Ok((
        Principal::user(ex.user.clone()),
        format!("v={}", B64.encode(server_signature)).into_bytes(),
    ))
}
