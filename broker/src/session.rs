//! One connection's login: the SASL exchange of a SASL listener (Kafka's
//! SaslHandshake v0/v1 and SaslAuthenticate, re-authentication of KIP-368)
//! and the principal every later request carries.
//!
//! Before a SASL listener's client has logged in, only ApiVersions,
//! SaslHandshake and SaslAuthenticate are answered; any other request
//! closes the connection, as Kafka does. A failed login is answered with
//! SASL_AUTHENTICATION_FAILED after a short delay, then the connection is
//! closed: one attempt per connection, so guessing costs a connection and
//! the delay each time. Frames before login are bounded to
//! [`MAX_UNAUTHENTICATED_FRAME`] (Kafka's `sasl.server.max.receive.size`).
//! After SaslHandshake v0 the client's tokens come as raw size-prefixed
//! frames, and the answers go back the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use starlog_security::sasl::{CredentialLookup, Mechanism, SaslServer, Step};
use starlog_security::{Principal, ScramCredential, ScramMechanism};

use crate::broker::Broker;
use crate::dispatch::{self, Parsed};
use crate::frame;
use crate::peer::Peer;
use crate::security::INTERNAL_USER;

/// The largest frame a client may send before it has logged in.
pub const MAX_UNAUTHENTICATED_FRAME: u32 = 512 * 1024;

/// How long a failed login waits before it is answered (Kafka's
/// `connection.failed.authentication.delay.ms` is of this order).
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(100);

/// What a listener asks of its clients, as the connection needs it.
#[derive(Debug)]
pub struct ListenerAuth {
    /// The listener's name (requests carry it; Metadata answers for it).
    pub name: Arc<str>,
    /// Whether clients log in with SASL.
    pub sasl: bool,
    /// The mechanisms accepted, in the order the handshake lists them.
    pub mechanisms: Vec<String>,
    /// How long a login lasts (KIP-368); `None`: for the connection's life.
    pub reauthentication: Option<Duration>,
}

/// What the connection does with a frame.
#[derive(Debug)]
pub enum Action {
    /// Dispatch it as [`Session::peer`].
    Dispatch,
    /// Send these bytes (length prefix included) and read on.
    Respond(Bytes),
    /// Send these bytes, then close.
    RespondThenClose(Bytes),
    /// Close without an answer.
    Close(String),
}

/// One SASL exchange under way.
#[derive(Debug)]
struct Exchange {
    server: SaslServer,
    /// After SaslHandshake v0: tokens come as raw frames.
    raw: bool,
    mechanism: &'static str,
}

/// A connection's login state.
#[derive(Debug)]
pub struct Session {
    listener: Arc<ListenerAuth>,
    peer: Peer,
    /// Logged in (or a listener without login), until when.
    authenticated: bool,
    expires: Option<Instant>,
    exchange: Option<Exchange>,
}

/// The users as the SASL mechanisms look them up: the broker's internal
/// login first (its name is reserved), then the store.
struct Users<'a>(&'a Broker);

impl CredentialLookup for Users<'_> {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        if user == INTERNAL_USER {
            return self.0.internal.credential(user, mechanism);
        }
        self.0.security.credential(user, mechanism)
    }
}

impl Session {
    /// A new connection's session: anonymous on a listener without SASL
    /// (or the client certificate's principal, when TLS gave one), not
    /// yet logged in on a SASL listener.
    pub fn new(listener: Arc<ListenerAuth>, peer: Peer) -> Self {
        Self {
            authenticated: !listener.sasl,
            listener,
            peer,
            expires: None,
            exchange: None,
        }
    }

    /// The largest frame accepted now.
    pub fn max_frame(&self, normal: u32) -> u32 {
        if self.authenticated {
            normal
        } else {
            normal.min(MAX_UNAUTHENTICATED_FRAME)
        }
    }

    /// The peer as requests see it.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Decides what to do with one frame (without its length prefix).
    pub async fn on_frame(&mut self, broker: &Broker, frame: &Bytes) -> Action {
        if self.exchange.as_ref().is_some_and(|e| e.raw) {
            return self.raw_token(broker, frame).await;
        }
        if frame.len() < 8 {
            return Action::Close(format!("frame of {} bytes is too short", frame.len()));
        }
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        match ApiKey::try_from(raw_key) {
            Ok(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) => {}
            Ok(ApiKey::ApiVersions) => return Action::Dispatch,
            _ if !self.authenticated => {
                return Action::Close(format!(
                    "request (API key {raw_key}) before SASL authentication on listener {}",
                    self.listener.name
                ))
            }
            _ if self.expires.is_some_and(|t| Instant::now() >= t) => {
                return Action::Close(format!(
                    "the SASL session of {} expired (listener {}); the client did not re-authenticate",
                    self.peer.principal, self.listener.name
                ))
            }
            _ => return Action::Dispatch,
        }
        let (key, version, correlation_id, request) = match dispatch::parse_frame(frame.clone()) {
            Ok(Parsed::Request {
                key,
                version,
                header,
                request,
            }) => (key, version, header.correlation_id, request),
            Ok(Parsed::ApiVersionsTooNew { .. }) => {
                return Action::Close("unexpected ApiVersions form".to_string())
            }
            Err(refusal) => return Action::Close(refusal.to_string()),
        };
        let respond = |r: ResponseKind, then_close: bool| match frame::encode(
            r,
            key,
            version,
            correlation_id,
        ) {
            Ok(bytes) if then_close => Action::RespondThenClose(bytes),
            Ok(bytes) => Action::Respond(bytes),
            Err(e) => Action::Close(e.to_string()),
        };
        match request {
            RequestKind::SaslHandshake(r) => {
                let (response, close) = self.handshake(r.mechanism.as_str(), version);
                respond(ResponseKind::SaslHandshake(response), close)
            }
            RequestKind::SaslAuthenticate(r) => {
                let (response, close) = self.authenticate(broker, &r.auth_bytes).await;
                respond(ResponseKind::SaslAuthenticate(response), close)
            }
            _ => Action::Close("unexpected request in the SASL exchange".to_string()),
        }
    }

    fn handshake(&mut self, mechanism: &str, version: i16) -> (SaslHandshakeResponse, bool) {
        let offered: Vec<StrBytes> = self
            .listener
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let answer = |error: Option<ResponseError>| {
            SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(offered.clone())
        };
        if !self.listener.sasl {
            tracing::info!(peer = %self.peer.host, listener = %self.listener.name, mechanism, "SASL handshake on a listener without SASL");
            return (answer(Some(ResponseError::IllegalSaslState)), false);
        }
        if self.exchange.is_some() {
            return (answer(Some(ResponseError::IllegalSaslState)), true);
        }
        let known = self
            .listener
            .mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism));
        let Some(m) = Mechanism::parse(mechanism).filter(|_| known) else {
            tracing::info!(peer = %self.peer.host, listener = %self.listener.name, mechanism, "SASL mechanism not enabled on this listener");
            return (answer(Some(ResponseError::UnsupportedSaslMechanism)), true);
        };
        // A re-authentication (KIP-368) needs SaslAuthenticate: a v0
        // handshake switches the connection to raw tokens, which an
        // authenticated connection cannot do.
        if self.authenticated && version == 0 {
            return (answer(Some(ResponseError::IllegalSaslState)), true);
        }
        self.exchange = Some(Exchange {
            mechanism: m.name(),
            server: SaslServer::new(m),
            raw: version == 0,
        });
        (answer(None), false)
    }

    /// One SaslAuthenticate; true in the second place: close after answering.
    async fn authenticate(
        &mut self,
        broker: &Broker,
        token: &[u8],
    ) -> (SaslAuthenticateResponse, bool) {
        let fail = |error: ResponseError, message: String| {
            SaslAuthenticateResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        };
        let Some(exchange) = self.exchange.as_mut().filter(|e| !e.raw) else {
            let close = self.listener.sasl;
            return (
                fail(
                    ResponseError::IllegalSaslState,
                    "SaslAuthenticate without a SaslHandshake".to_string(),
                ),
                close,
            );
        };
        match exchange.server.step(token, &Users(broker)) {
            Ok(Step::Continue(bytes)) => (
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
                false,
            ),
            Ok(Step::Done {
                principal,
                response,
            }) => {
                let mechanism = exchange.mechanism;
                match self.logged_in(principal, mechanism) {
                    Ok(lifetime) => (
                        SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(response))
                            .with_session_lifetime_ms(lifetime),
                        false,
                    ),
                    Err(message) => {
                        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
                        (fail(ResponseError::SaslAuthenticationFailed, message), true)
                    }
                }
            }
            Err(e) => {
                let mechanism = exchange.mechanism;
                self.exchange = None;
                tracing::warn!(peer = %self.peer.host, listener = %self.listener.name, mechanism, error = %e, "SASL authentication failed");
                tokio::time::sleep(FAILED_LOGIN_DELAY).await;
                (
                    fail(ResponseError::SaslAuthenticationFailed, e.client_message()),
                    true,
                )
            }
        }
    }

    /// A raw token after SaslHandshake v0.
    async fn raw_token(&mut self, broker: &Broker, token: &[u8]) -> Action {
        let Some(exchange) = self.exchange.as_mut() else {
            return Action::Close("raw SASL token outside an exchange".to_string());
        };
        let raw_frame = |bytes: &[u8]| {
            let mut out = BytesMut::with_capacity(bytes.len() + 4);
            out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            out.put_slice(bytes);
            out.freeze()
        };
        match exchange.server.step(token, &Users(broker)) {
            Ok(Step::Continue(bytes)) => Action::Respond(raw_frame(&bytes)),
            Ok(Step::Done {
                principal,
                response,
            }) => {
                let mechanism = exchange.mechanism;
                match self.logged_in(principal, mechanism) {
                    Ok(_) => Action::Respond(raw_frame(&response)),
                    Err(message) => Action::Close(message),
                }
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer.host, listener = %self.listener.name, mechanism = exchange.mechanism, error = %e, "SASL authentication failed");
                tokio::time::sleep(FAILED_LOGIN_DELAY).await;
                // v0 has no error response: the connection is closed.
                Action::Close(format!("SASL authentication failed: {e}"))
            }
        }
    }

    /// Records a successful login; the session lifetime to tell the client
    /// (0: unlimited). A re-authentication must keep the principal.
    fn logged_in(&mut self, principal: Principal, mechanism: &str) -> Result<i64, String> {
        self.exchange = None;
        if self.authenticated && self.listener.sasl && principal != self.peer.principal {
            tracing::warn!(peer = %self.peer.host, was = %self.peer.principal, now = %principal, "re-authentication as another principal refused");
            return Err(format!(
                "re-authentication must keep the principal {}",
                self.peer.principal
            ));
        }
        tracing::debug!(peer = %self.peer.host, listener = %self.listener.name, %principal, mechanism, "SASL login");
        self.peer.internal =
            principal.kind() == Principal::USER && principal.name() == INTERNAL_USER;
        self.peer.principal = principal;
        self.authenticated = true;
        let lifetime = self.listener.reauthentication;
        self.expires = lifetime.map(|d| Instant::now() + d);
        Ok(lifetime.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }
}
