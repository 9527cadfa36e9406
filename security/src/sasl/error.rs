//! Why an authentication exchange failed: the detail for the broker's log
//! ([`Display`](std::fmt::Display)) and what Kafka tells the client
//! ([`SaslError::client_message`]).

/// Why an authentication exchange failed.
///
/// `Display` carries the detail (the user name, which check failed) for the
/// broker's log; [`SaslError::client_message`] is what the client is told,
/// and says the same for an unknown user and a wrong password so user names
/// cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// No credential for the user (for SCRAM: found at the proof, after an
    /// exchange with a stand-in salt, so it looks like a wrong password).
    #[error("{mechanism}: unknown user `{user}`")]
    UnknownUser {
        /// The mechanism.
        mechanism: &'static str,
        /// The user the client named.
        user: String,
    },
    /// A wrong password (PLAIN) or client proof (SCRAM).
    #[error("{mechanism}: wrong password or proof for user `{user}`")]
    BadCredentials {
        /// The mechanism.
        mechanism: &'static str,
        /// The user.
        user: String,
    },
    /// A token that does not follow the mechanism's grammar.
    #[error("{mechanism}: malformed message: {reason}")]
    Malformed {
        /// The mechanism.
        mechanism: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A token longer than [`MAX_TOKEN_LEN`](crate::sasl::MAX_TOKEN_LEN).
    #[error("{mechanism}: token of {len} bytes exceeds {max}")]
    TooLarge {
        /// The mechanism.
        mechanism: &'static str,
        /// The token's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A SCRAM gs2 header asking for channel binding (`p=`), which Starlog
    /// does not offer (no `-PLUS` mechanism).
    #[error("{mechanism}: the client asks for channel binding `{binding}`, which is not offered")]
    ChannelBinding {
        /// The mechanism.
        mechanism: &'static str,
        /// The channel-binding type the client named.
        binding: String,
    },
    /// An authorization id other than the authenticated user.
    #[error("{mechanism}: authorization id `{authzid}` differs from user `{user}`")]
    AuthzidMismatch {
        /// The mechanism.
        mechanism: &'static str,
        /// The authenticated user.
        user: String,
        /// The identity asked for.
        authzid: String,
    },
    /// Kafka's `tokenauth` SCRAM extension: delegation tokens are not supported.
    #[error("{mechanism}: delegation-token authentication (tokenauth) is not supported")]
    TokenAuth {
        /// The mechanism.
        mechanism: &'static str,
    },
    /// A client-final message whose nonce is not this exchange's combined
    /// nonce (a replayed or forged message).
    #[error("{mechanism}: the client-final nonce is not this exchange's (replayed or forged)")]
    NonceMismatch {
        /// The mechanism.
        mechanism: &'static str,
    },
    /// A token after the exchange ended (in success or failure).
    #[error("{mechanism}: a token after the exchange ended")]
    TooManySteps {
        /// The mechanism.
        mechanism: &'static str,
    },
    /// No randomness for the server nonce.
    #[error("no randomness for the SCRAM server nonce: {0}")]
    Random(String),
}

impl SaslError {
    /// What Kafka tells the client in the SaslAuthenticate error message.
    pub fn client_message(&self) -> String {
        match self {
            Self::UnknownUser { .. } | Self::BadCredentials { .. } => {
                "Authentication failed: Invalid username or password".to_owned()
            }
            Self::Malformed { mechanism, reason } => {
                format!("Authentication failed: invalid {mechanism} message: {reason}")
            }
            Self::TooLarge { .. } => "Authentication failed: SASL token too large".to_owned(),
            Self::ChannelBinding { .. } => {
                "Authentication failed: channel binding is not supported".to_owned()
            }
            Self::AuthzidMismatch { .. } => "Authentication failed: Client requested an \
                 authorization id that is different from username"
                .to_owned(),
            Self::TokenAuth { .. } => {
                "Authentication failed: delegation tokens are not supported".to_owned()
            }
            Self::NonceMismatch { .. } => {
                "Authentication failed: Invalid client nonce in the final client message."
                    .to_owned()
            }
            Self::TooManySteps { .. } => {
                "Authentication failed: unexpected SASL token after the exchange ended".to_owned()
            }
            Self::Random(_) => "Authentication failed: internal server error".to_owned(),
        }
    }

    /// Whether the client named an unknown user or gave a wrong password or
    /// proof (the broker may count these toward its bound on attempts).
    pub fn is_credential_failure(&self) -> bool {
        matches!(self, Self::UnknownUser { .. } | Self::BadCredentials { .. })
    }
}
