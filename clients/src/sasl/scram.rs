//! SCRAM (RFC 5802, with SHA-256 per RFC 7677 or SHA-512) client side: the
//! one implementation in `starlog-security`, which the broker's server side
//! shares, re-exported under this module's names.
//!
//! The client proves it knows the password without sending it, and the
//! server proves it knows the salted password too: the server's final
//! message carries a signature the client recomputes and compares, so a
//! server that does not hold the credential is refused even if it says "ok".

pub use starlog_security::scram::{
    escape_username, ScramClient, ScramError, MAX_ITERATIONS, MIN_ITERATIONS,
};
/// The hash function of the mechanism (SCRAM-SHA-256 or SCRAM-SHA-512).
pub use starlog_security::ScramMechanism as ScramHash;
