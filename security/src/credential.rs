//! A SCRAM credential as a server stores it: salt, iterations, StoredKey
//! and ServerKey (RFC 5802 §3) — never the password.

use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Kafka's smallest iteration count; also ours.
pub const MIN_ITERATIONS: u32 = 4096;
/// Upper bound on iterations (CPU guard, as Kafka's 16384 default is far below it).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Iterations used when none is given (Kafka's tools default to 4096; we take more).
pub const DEFAULT_ITERATIONS: u32 = 8192;

/// Why a credential could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// An iteration count outside the bounds.
    #[error("iteration count {0} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    /// An unknown mechanism name or code.
    #[error("unknown SCRAM mechanism `{0}` (SCRAM-SHA-256 or SCRAM-SHA-512)")]
    Mechanism(String),
    /// An empty password.
    #[error("empty password")]
    EmptyPassword,
    /// No randomness for the salt.
    #[error("no randomness for the salt: {0}")]
    Random(String),
}

/// The two SCRAM mechanisms Kafka defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// Both, in Kafka's code order.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// From the SASL mechanism name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self, CredentialError> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Ok(Self::Sha256),
            "SCRAM-SHA-512" => Ok(Self::Sha512),
            _ => Err(CredentialError::Mechanism(name.to_string())),
        }
    }

    /// Kafka's `ScramMechanism` code (DescribeUserScramCredentials): 1 = SHA-256, 2 = SHA-512.
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// From Kafka's code.
    pub fn from_code(code: i8) -> Result<Self, CredentialError> {
        match code {
            1 => Ok(Self::Sha256),
            2 => Ok(Self::Sha512),
            _ => Err(CredentialError::Mechanism(format!("code {code}"))),
        }
    }

    /// HMAC(key, data).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length, so this cannot fail.
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, data),
            Self::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// H(data).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802 (PBKDF2 with one output block).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &first);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            for (o, x) in out.iter_mut().zip(&u) {
                *o ^= x;
            }
        }
        out
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps for one user and mechanism.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The mechanism.
    pub mechanism: ScramMechanism,
    /// The salt.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey).
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    // The keys are as good as a password for replaying SCRAM; keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the credential from a password with a fresh random salt.
    pub fn new(
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        let mut salt = vec![0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
        Self::with_salt(mechanism, password, salt, iterations)
    }

    /// Derives the credential from a password and a given salt (Kafka's
    /// AlterUserScramCredentials sends the salted password and salt instead:
    /// see [`ScramCredential::from_salted_password`]).
    pub fn with_salt(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        if password.is_empty() {
            return Err(CredentialError::EmptyPassword);
        }
        check_iterations(iterations)?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from SaltedPassword, as AlterUserScramCredentials carries it.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        check_iterations(iterations)?;
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(Self {
            mechanism,
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// Whether `password` is this credential's (PLAIN checks against the SCRAM store).
    pub fn verify_password(&self, password: &str) -> bool {
        let salted =
            self.mechanism
                .salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        constant_time_eq(&self.mechanism.hash(&client_key), &self.stored_key)
    }
}

fn check_iterations(iterations: u32) -> Result<(), CredentialError> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::Iterations(iterations))
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn rfc_7677_stored_and_server_keys() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = B64
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_else(|e| panic!("{e}"));
        let c = ScramCredential::with_salt(ScramMechanism::Sha256, "pencil", salt, 4096)
            .unwrap_or_else(|e| panic!("{e}"));
        // The server signature of the RFC's exchange follows from ServerKey;
        // the keys are checked through a known password here.
        assert!(c.verify_password("pencil"));
        assert!(!c.verify_password("pencil "));
        assert_eq!(c.stored_key.len(), 32);
        assert_eq!(c.server_key.len(), 32);
    }

    #[test]
    fn bounds_and_names() {
        assert_eq!(
            ScramCredential::new(ScramMechanism::Sha512, "pw", 100),
            Err(CredentialError::Iterations(100))
        );
        assert_eq!(
            ScramCredential::new(ScramMechanism::Sha512, "", 4096),
            Err(CredentialError::EmptyPassword)
        );
        assert_eq!(
            ScramMechanism::parse("scram-sha-512"),
            Ok(ScramMechanism::Sha512)
        );
        assert!(ScramMechanism::parse("PLAIN").is_err());
        for m in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_code(m.code()), Ok(m));
        }
    }

    #[test]
    fn serde_keeps_no_password_and_round_trips() {
        let c = ScramCredential::new(ScramMechanism::Sha512, "s3cret-pw", 4096)
            .unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_string(&c).unwrap_or_else(|e| panic!("{e}"));
        assert!(!json.contains("s3cret"));
        assert!(json.contains("SCRAM-SHA-512"));
        let back: ScramCredential = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
        assert!(back.verify_password("s3cret-pw"));
        assert!(!format!("{c:?}").contains(&B64.encode(&c.stored_key)));
    }
}
