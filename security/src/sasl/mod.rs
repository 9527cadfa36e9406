//! SASL on the server side, sans-io: the mechanisms Kafka clients use
//! (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), one [`SaslServer`] per
//! authentication exchange, fed one client token at a time (Kafka's
//! `SaslAuthenticate` auth bytes, or a raw frame of the v0 handshake).
//!
//! Users come from a [`CredentialLookup`] (the broker's security store;
//! [`SecurityState`] is one). PLAIN checks the password against the same
//! SCRAM credentials (RFC 4616 says nothing of storage).
//!
//! SCRAM's server side is written here on the primitives of
//! [`ScramMechanism`] rather than taken from a SASL framework: the checks
//! that make it safe for Kafka's use (an unknown user indistinguishable
//! from a wrong password up to the proof, refusal of Kafka's `tokenauth`
//! extension and of repeated attributes, constant-time proof comparison,
//! no panic on any token sequence) and a fixed-nonce hook for RFC 7677's
//! known-answer test are what a broker needs, and are small on these
//! primitives.

mod error;
mod plain;
mod scram;

use std::sync::OnceLock;

pub use error::SaslError;

use crate::credential::{ScramCredential, ScramMechanism, DEFAULT_ITERATIONS};
use crate::principal::Principal;
use crate::state::SecurityState;

/// The longest client token taken (SCRAM messages and PLAIN's one message
/// are a few hundred bytes; RFC 4616 asks for 255 bytes a field).
pub const MAX_TOKEN_LEN: usize = 4096;

/// A SASL mechanism the broker can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    /// PLAIN (RFC 4616): the password in the clear (use it over TLS).
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl Mechanism {
    /// Every mechanism, strongest first.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Scram(ScramMechanism::Sha512),
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Plain,
    ];

    /// From the SASL mechanism name (case-insensitive, as in the YAML).
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::parse(name).ok().map(Mechanism::Scram)
    }

    /// The SASL mechanism name (`PLAIN`, `SCRAM-SHA-512`).
    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Mechanism {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Mechanism {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Mechanism::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown SASL mechanism `{s}` (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            ))
        })
    }
}

/// Where the SASL server finds users' SCRAM credentials.
pub trait CredentialLookup {
    /// The user's credential for `mechanism`, if any.
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl CredentialLookup for SecurityState {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        SecurityState::credential(self, user, mechanism).cloned()
    }
}

/// What the server answers to one client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes back; the exchange goes on.
    Continue(Vec<u8>),
    /// Authenticated as `principal`; send `response` back (empty for PLAIN,
    /// SCRAM's server-final message otherwise).
    Done {
        /// Who the client is.
        principal: Principal,
        /// The last server token.
        response: Vec<u8>,
    },
}

/// Where an exchange is.
#[derive(Debug)]
enum State {
    /// Waiting for the first client token.
    Start,
    /// SCRAM: waiting for the client-final message.
    ScramFinal(Box<scram::Exchange>),
    /// Done, in success or failure: any further token is refused.
    Finished,
}

/// One authentication exchange, server side.
#[derive(Debug)]
pub struct SaslServer {
    mechanism: Mechanism,
    state: State,
    /// A fixed SCRAM server nonce (known-answer tests only).
    fixed_nonce: Option<String>,
}

impl SaslServer {
    /// An exchange for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Self {
        Self {
            mechanism,
            state: State::Start,
            fixed_nonce: None,
        }
    }

    /// An exchange whose SCRAM server nonce is `nonce` instead of a fresh
    /// random one. For known-answer tests (RFC 7677's example) only: a
    /// fixed nonce lets a recorded exchange be replayed.
    pub fn with_nonce(mechanism: Mechanism, nonce: &str) -> Self {
        Self {
            fixed_nonce: Some(nonce.to_owned()),
            ..Self::new(mechanism)
        }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Whether the exchange has ended (authenticated or refused).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Feeds one client token (Kafka's SaslAuthenticate auth_bytes, or a raw v0 frame).
    ///
    /// After an error, or after [`Step::Done`], every further token is
    /// refused ([`SaslError::TooManySteps`]).
    pub fn step(&mut self, token: &[u8], users: &dyn CredentialLookup) -> Result<Step, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let name = self.mechanism.name();
        if matches!(state, State::Finished) {
            return Err(SaslError::TooManySteps { mechanism: name });
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(SaslError::TooLarge {
                mechanism: name,
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        match (self.mechanism, state) {
            (Mechanism::Plain, _) => {
                plain::authenticate(token, users).map(|principal| Step::Done {
                    principal,
                    response: Vec::new(),
                })
            }
            (Mechanism::Scram(m), State::Start) => {
                let nonce = match &self.fixed_nonce {
                    Some(n) => n.clone(),
                    None => scram::random_nonce()?,
                };
                let (exchange, reply) = scram::client_first(m, token, users, &nonce)?;
                self.state = State::ScramFinal(Box::new(exchange));
                Ok(Step::Continue(reply))
            }
            (Mechanism::Scram(_), State::ScramFinal(exchange)) => {
                scram::client_final(&exchange, token).map(|(principal, response)| Step::Done {
                    principal,
                    response,
                })
            }
            (Mechanism::Scram(_), State::Finished) => {
                Err(SaslError::TooManySteps { mechanism: name })
            }
        }
    }
}

/// A stand-in credential for a user that does not exist: its salt and keys
/// are derived from the user name and a random secret of this process, so
/// asking twice for the same unknown user gives the same salt (as for a
/// real user) and nobody can tell a stand-in from a real one.
fn fake_credential(mechanism: ScramMechanism, user: &str) -> ScramCredential {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        // Without randomness the stand-in is still deterministic, only
        // predictable; authentication of real users does not depend on it.
        let _ = getrandom::fill(&mut s);
        s
    });
    let derive = |label: &[u8]| {
        let mut data = label.to_vec();
        data.push(0);
        data.extend_from_slice(user.as_bytes());
        mechanism.hmac(secret, &data)
    };
    let mut salt = derive(b"salt");
    salt.truncate(32);
    ScramCredential {
        mechanism,
        salt,
        iterations: DEFAULT_ITERATIONS,
        stored_key: derive(b"stored key"),
        server_key: derive(b"server key"),
    }
}
