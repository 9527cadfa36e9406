//! SCRAM client side.
//!
//! The client proves it knows the password without sending it, and the
//! server proves it knows the salted password too: the server's final
//! message carries a signature we recompute and compare, so a server that
//! does not hold the credential (a man in the middle) is refused even if it
//! says "ok". Passwords are used as given (no SASLprep): ASCII passwords,
//! which is what Kafka deployments issue, are unaffected.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::escape_username;
use crate::credential::{ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// Why a SCRAM exchange failed, client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The server sent `e=...`.
    #[error("server refused: {0}")]
    ServerError(String),
    /// A server message lacks a field or has a malformed one.
    #[error("malformed server message: {0}")]
    Malformed(String),
    /// The server nonce does not extend ours (replay or confusion).
    #[error("server nonce does not start with the client nonce")]
    NonceMismatch,
    /// Iteration count outside [`MIN_ITERATIONS`], [`MAX_ITERATIONS`] (a
    /// downgrade or CPU guard).
    #[error("iteration count {0} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    /// The server's signature is wrong: it does not know the credential.
    #[error("server signature does not verify")]
    BadServerSignature,
    /// `verify_server_final` before `handle_server_first`.
    #[error("protocol step out of order")]
    OutOfOrder,
    /// No randomness for the nonce.
    #[error("no randomness for the nonce: {0}")]
    Random(String),
}

/// One SCRAM exchange, client side.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    // The password stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .field("client_first_bare", &self.client_first_bare)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client with a fresh random nonce.
    pub fn new(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
    ) -> Result<Self, ScramError> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| ScramError::Random(e.to_string()))?;
        Ok(Self::with_nonce(
            mechanism,
            username,
            password,
            &B64.encode(raw),
        ))
    }

    /// A client with a given nonce (tests and known-answer vectors).
    pub fn with_nonce(
        mechanism: ScramMechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Self {
        Self {
            mechanism,
            password: password.as_bytes().to_vec(),
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={},r={}", escape_username(username), nonce),
            expected_server_signature: None,
        }
    }

    /// The client-first message (`n,,n=user,r=nonce`).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Checks the server-first message and returns the client-final one.
    pub fn handle_server_first(&mut self, server_first: &str) -> Result<String, ScramError> {
        if let Some(e) = attribute(server_first, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let nonce = attribute(server_first, 'r')
            .ok_or_else(|| ScramError::Malformed("server-first lacks r=".into()))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = attribute(server_first, 's')
            .ok_or_else(|| ScramError::Malformed("server-first lacks s=".into()))?;
        let salt = B64
            .decode(salt)
            .map_err(|e| ScramError::Malformed(format!("salt is not base64: {e}")))?;
        let iterations: u32 = attribute(server_first, 'i')
            .ok_or_else(|| ScramError::Malformed("server-first lacks i=".into()))?
            .parse()
            .map_err(|e| ScramError::Malformed(format!("iteration count: {e}")))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let h = self.mechanism;
        let salted = h.salted_password(&self.password, &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, server_first, without_proof
        );
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(h.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server-final message: the server must prove the credential.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), ScramError> {
        let expected = self
            .expected_server_signature
            .as_ref()
            .ok_or(ScramError::OutOfOrder)?;
        if let Some(e) = attribute(server_final, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let v = attribute(server_final, 'v')
            .ok_or_else(|| ScramError::Malformed("server-final lacks v=".into()))?;
        let got = B64
            .decode(v)
            .map_err(|e| ScramError::Malformed(format!("signature is not base64: {e}")))?;
        // Constant-time comparison is not needed on the client: the secret
        // compared is the server's, and it is already on the wire.
        if &got == expected {
            Ok(())
        } else {
            Err(ScramError::BadServerSignature)
        }
    }
}

/// The value of `key=` in a comma-separated SCRAM message.
fn attribute(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(key) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The SCRAM-SHA-256 example of RFC 7677, section 3.
    #[test]
    fn rfc7677_known_answer() {
        let mut c = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = ok(c.handle_server_first(server_first));
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        ok(c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
        assert_eq!(
            c.verify_server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::BadServerSignature)
        );
    }

    #[test]
    fn bad_server_messages_are_refused() {
        let mk = || ScramClient::with_nonce(ScramMechanism::Sha512, "u", "p", "abc");
        let cases: &[(&str, ScramError)] = &[
            (
                "e=unknown-user",
                ScramError::ServerError("unknown-user".into()),
            ),
            (
                "s=AAAA,i=4096",
                ScramError::Malformed("server-first lacks r=".into()),
            ),
            ("r=xyz123,s=AAAA,i=4096", ScramError::NonceMismatch),
            ("r=abc,s=AAAA,i=4096", ScramError::NonceMismatch),
            (
                "r=abcdef,i=4096",
                ScramError::Malformed("server-first lacks s=".into()),
            ),
            (
                "r=abcdef,s=AAAA",
                ScramError::Malformed("server-first lacks i=".into()),
            ),
            ("r=abcdef,s=AAAA,i=10", ScramError::Iterations(10)),
            (
                "r=abcdef,s=AAAA,i=99999999",
                ScramError::Iterations(99_999_999),
            ),
        ];
        for (msg, want) in cases {
            assert_eq!(mk().handle_server_first(msg).as_ref(), Err(want), "{msg}");
        }
        assert!(matches!(
            mk().handle_server_first("r=abcdef,s=!!!,i=4096"),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            mk().handle_server_first("r=abcdef,s=AAAA,i=four"),
            Err(ScramError::Malformed(_))
        ));
        assert_eq!(
            mk().verify_server_final("v=AAAA"),
            Err(ScramError::OutOfOrder)
        );
        let mut c = mk();
        ok(c.handle_server_first("r=abcdef,s=AAAA,i=4096"));
        assert_eq!(
            c.verify_server_final("e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
        assert!(matches!(
            c.verify_server_final("x=1"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn usernames_are_escaped() {
        let c = ScramClient::with_nonce(ScramMechanism::Sha512, "a,b", "p", "n");
        assert_eq!(c.client_first(), "n,,n=a=2Cb,r=n");
    }

    #[test]
    fn random_nonces_differ_and_debug_hides_the_password() {
        let a = ok(ScramClient::new(ScramMechanism::Sha512, "u", "s3cret"));
        let b = ok(ScramClient::new(ScramMechanism::Sha512, "u", "s3cret"));
        assert_ne!(a.client_first(), b.client_first());
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
