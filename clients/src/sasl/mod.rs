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
