//! SASL authentication on a fresh connection.
//!
//! Kafka wraps SASL in two requests: `SaslHandshake` picks the mechanism,
//! then each SASL token travels in a `SaslAuthenticate` request. `plain` and
//! `scram` are the mechanisms; they are pure message builders/checkers so
//! they can be tested without a network. `authenticate` drives them over any
//! [`SaslChannel`] (the client's `Connection` is one), so this module does not
//! depend on the connection that depends on it.

pub mod plain;
pub mod scram;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::config::{SaslConfig, SaslMechanism};
use crate::error::{ClientError, Result};

/// The two Kafka requests SASL travels in, on a fresh connection.
pub(crate) trait SaslChannel {
    /// The peer's address, for errors.
    fn peer(&self) -> &str;
    /// Sends `SaslHandshake`.
    fn handshake(
        &self,
        req: &SaslHandshakeRequest,
    ) -> impl std::future::Future<Output = Result<SaslHandshakeResponse>> + Send;
    /// Sends one `SaslAuthenticate` token.
    fn authenticate(
        &self,
        req: &SaslAuthenticateRequest,
    ) -> impl std::future::Future<Output = Result<SaslAuthenticateResponse>> + Send;
}

/// Authenticates `conn` with `sasl`; the connection is usable afterwards.
pub(crate) async fn authenticate<C: SaslChannel + Sync>(conn: &C, sasl: &SaslConfig) -> Result<()> {
    let mech = sasl.mechanism.name();
    let fail = |reason: String| ClientError::Sasl {
        addr: conn.peer().to_owned(),
        mechanism: mech.to_owned(),
        reason,
    };
    let hs = conn
        .handshake(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech)))
        .await?;
    if let Some(e) = ResponseError::try_from_code(hs.error_code) {
        let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(fail(format!(
            "handshake refused ({e}); broker offers {offered:?}"
        )));
    }
    match sasl.mechanism {
        SaslMechanism::Plain => {
            let token = plain::initial_response(&sasl.username, &sasl.password);
            exchange(conn, token, &fail).await?;
            Ok(())
        }
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            let hash = if sasl.mechanism == SaslMechanism::ScramSha256 {
                scram::ScramHash::Sha256
            } else {
                scram::ScramHash::Sha512
            };
            let mut client = scram::ScramClient::new(hash, &sasl.username, &sasl.password)
                .map_err(|e| fail(e.to_string()))?;
            let server_first = exchange(conn, client.client_first().into_bytes(), &fail).await?;
            let server_first = std::str::from_utf8(&server_first)
                .map_err(|e| fail(format!("server-first: {e}")))?;
            let client_final = client
                .handle_server_first(server_first)
                .map_err(|e| fail(e.to_string()))?;
            let server_final = exchange(conn, client_final.into_bytes(), &fail).await?;
            let server_final = std::str::from_utf8(&server_final)
                .map_err(|e| fail(format!("server-final: {e}")))?;
            client
                .verify_server_final(server_final)
                .map_err(|e| fail(e.to_string()))
        }
    }
}

/// Sends one SASL token and returns the server's.
async fn exchange<C: SaslChannel + Sync>(
    conn: &C,
    token: Vec<u8>,
    fail: &(dyn Fn(String) -> ClientError + Sync),
) -> Result<Bytes> {
    let resp = conn
        .authenticate(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)))
        .await?;
    if let Some(e) = ResponseError::try_from_code(resp.error_code) {
        let msg = resp
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        return Err(fail(format!("{e}: {msg}")));
    }
    Ok(resp.auth_bytes)
}

#[cfg(test)]
mod tests {
    //! `authenticate` against the broker's server side (`starlog_security::SaslServer`)
    //! behind an in-memory channel: Kafka's two requests, no socket.

    use super::*;
    use parking_lot::Mutex;
    use starlog_security::{
        Mechanism, SaslServer, ScramCredential, ScramMechanism, SecurityChange, SecurityState, Step,
    };

    struct ServerChannel {
        users: SecurityState,
        server: Mutex<Option<SaslServer>>,
        principal: Mutex<Option<String>>,
    }

    impl ServerChannel {
        fn new() -> Self {
            let mut users = SecurityState::default();
            for m in ScramMechanism::ALL {
                let credential =
                    ScramCredential::new(m, "alice-pw", 4096).unwrap_or_else(|e| panic!("{e}"));
                users.apply(&SecurityChange::SetCredential {
                    user: "alice".into(),
                    credential,
                });
            }
            Self {
                users,
                server: Mutex::new(None),
                principal: Mutex::new(None),
            }
        }
    }

    impl SaslChannel for ServerChannel {
        fn peer(&self) -> &str {
            "127.0.0.1:9092"
        }

        async fn handshake(&self, req: &SaslHandshakeRequest) -> Result<SaslHandshakeResponse> {
            let mut resp = SaslHandshakeResponse::default().with_mechanisms(
                Mechanism::ALL
                    .iter()
                    .map(|m| StrBytes::from_static_str(m.name()))
                    .collect(),
            );
            match Mechanism::parse(&req.mechanism) {
                Some(m) => *self.server.lock() = Some(SaslServer::new(m)),
                None => resp.error_code = ResponseError::UnsupportedSaslMechanism.code(),
            }
            Ok(resp)
        }

        async fn authenticate(
            &self,
            req: &SaslAuthenticateRequest,
        ) -> Result<SaslAuthenticateResponse> {
            let mut guard = self.server.lock();
            let Some(server) = guard.as_mut() else {
                panic!("SaslAuthenticate before SaslHandshake");
            };
            Ok(match server.step(&req.auth_bytes, &self.users) {
                Ok(Step::Continue(bytes)) => {
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes))
                }
                Ok(Step::Done {
                    principal,
                    response,
                }) => {
                    *self.principal.lock() = Some(principal.to_string());
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(response))
                }
                Err(e) => SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(e.client_message()))),
            })
        }
    }

    fn config(mechanism: SaslMechanism, username: &str, password: &str) -> SaslConfig {
        SaslConfig {
            mechanism,
            username: username.into(),
            password: password.into(),
        }
    }

    const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    #[tokio::test]
    async fn every_mechanism_authenticates_against_the_server_side() {
        for m in ALL {
            let channel = ServerChannel::new();
            authenticate(&channel, &config(m, "alice", "alice-pw"))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert_eq!(channel.principal.lock().as_deref(), Some("User:alice"));
        }
    }

    #[tokio::test]
    async fn wrong_passwords_and_unknown_users_are_refused_alike() {
        for m in ALL {
            for (user, password) in [("alice", "wrong"), ("mallory", "alice-pw")] {
                let channel = ServerChannel::new();
                let e = authenticate(&channel, &config(m, user, password)).await;
                let Err(ClientError::Sasl { reason, .. }) = e else {
                    panic!("{}: {user} was not refused: {e:?}", m.name());
                };
                assert!(
                    reason.ends_with("Authentication failed: Invalid username or password"),
                    "{reason}"
                );
                assert!(channel.principal.lock().is_none());
            }
        }
    }
}
