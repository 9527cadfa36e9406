//! SCRAM (RFC 5802; SHA-256 per RFC 7677, and SHA-512 as Kafka uses it),
//! both sides, on the primitives of [`ScramMechanism`](crate::ScramMechanism).
//!
//! * [`ScramClient`]: the client side (Starlog's own client, the mirror).
//! * the server side lives in [`crate::sasl`] ([`crate::sasl::SaslServer`]),
//!   which shares this module's name escaping.
//!
//! Names are used as given (no SASLprep), as Kafka does; the `n=` and `a=`
//! attributes escape `=` and `,` as `=3D` and `=2C`.

mod client;

pub use crate::credential::{MAX_ITERATIONS, MIN_ITERATIONS};
pub use client::{ScramClient, ScramError};

/// Escapes a user name for the `n=` and `a=` attributes (`=` → `=3D`, `,` → `=2C`).
pub fn escape_username(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Reverses [`escape_username`]; `None` when a `=` is not followed by
/// `2C` or `3D`, or when the name holds a raw `,` (RFC 5802 §5.1).
pub fn unescape_username(saslname: &str) -> Option<String> {
    let mut out = String::with_capacity(saslname.len());
    let mut rest = saslname;
    while let Some(i) = rest.find(['=', ',']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = t;
        } else {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_escape_and_unescape() {
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
        for name in ["a=b,c", "plain", "", "==,,", "é=2C"] {
            assert_eq!(
                unescape_username(&escape_username(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(unescape_username("a=b"), None);
        assert_eq!(unescape_username("a,b"), None);
        assert_eq!(unescape_username("a="), None);
        assert_eq!(unescape_username("a=2"), None);
    }
}
