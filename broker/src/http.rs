//! The broker's HTTP listener (`http.listen`, or `schema_registry.listen`):
//! `/metrics`, `/cluster/*` in cluster mode, and the schema registry's
//! routes when the registry is enabled.
//!
//! The listener speaks plain HTTP, or TLS when `http.tls` is set (with an
//! optional client certificate, whose subject is then the client's
//! principal). Every request passes [`authorize`]: with `authentication:
//! basic` the client gives a user and password checked against the SCRAM
//! users (401 and `WWW-Authenticate: Basic` when they are missing or
//! wrong); the principal must then be allowed what the request does (403
//! otherwise, nothing changed):
//!
//! | request | needs |
//! |---|---|
//! | `GET /metrics`, `GET /cluster/*` | Describe on the cluster |
//! | `POST /cluster/*` | Alter on the cluster |
//! | registry reads (GETs, `POST /subjects/{s}`, `POST /compatibility/…`) | an authenticated principal |
//! | registry writes on subject `<topic>-value` / `<topic>-key` | Write on the topic, or Alter on the cluster |
//! | other registry writes (`PUT /config`, other subject names) | Alter on the cluster |
//!
//! `anonymous_read: true` lets GETs without credentials (no basic
//! credentials, no client certificate) through unchecked, as Rubin's
//! registry allows; with `authentication: none` it keeps `/metrics` and
//! `/cluster/status` open to monitoring when the ACLs refuse
//! `User:ANONYMOUS`. With `authentication: none` (the default)
//! a client is its certificate's principal or `User:ANONYMOUS`, and the
//! same ACL checks apply (with the default policy, no ACL and
//! `allow_everyone_if_no_acl_found: true`, everything is allowed, as
//! before).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use starlog_security::acl::CLUSTER_NAME as CLUSTER;
use starlog_security::tls::ServerTls;
use starlog_security::{AclOperation, Principal, ResourceType, ScramMechanism};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::server::TlsStream;

use crate::broker::Broker;
use crate::config::HttpAuthentication;
use crate::peer::Peer;
use crate::security::{tls_accept, INTERNAL_USER};

/// TLS handshakes in progress at once, at most.
const MAX_HANDSHAKES: usize = 256;

/// The listener's name in a [`Peer`] (and in ACL decisions' logs).
const LISTENER: &str = "http";

/// Who is at the other end of an HTTP connection: its address and, over
/// TLS with a client certificate, the certificate's principal.
#[derive(Debug, Clone)]
pub struct HttpClient {
    addr: SocketAddr,
    cert_principal: Option<Principal>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, PlainListener>>
    for HttpClient
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for HttpClient
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The plain listener, naming each client as an [`HttpClient`].
struct PlainListener(TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = HttpClient;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (
            io,
            HttpClient {
                addr,
                cert_principal: None,
            },
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(HttpClient {
            addr: self.0.local_addr()?,
            cert_principal: None,
        })
    }
}

/// The TLS listener: handshakes run in their own tasks (a slow client
/// holds up no other), finished connections come through a channel.
struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, HttpClient)>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = HttpClient;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor stopped (shutdown): never return again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(HttpClient {
            addr: self.local,
            cert_principal: None,
        })
    }
}

/// Accepts TCP connections and runs their TLS handshakes.
async fn tls_acceptor(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, HttpClient)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, addr) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(peer = %addr, "closing HTTP connection: too many TLS handshakes");
            continue;
        };
        let tls = Arc::clone(&tls);
        let ready = ready.clone();
        tokio::spawn(async move {
            let accepted = tls_accept(&tls, stream).await;
            drop(permit);
            let (stream, cert_principal) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(peer = %addr, error = %e, "HTTP connection refused");
                    return;
                }
            };
            let client = HttpClient {
                addr,
                cert_principal,
            };
            let _ = ready.send((stream, client)).await;
        });
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let app = router.into_make_service_with_connect_info::<HttpClient>();
    let mut stop = shutdown.clone();
    let graceful = async move {
        let _ = stop.changed().await;
    };
    let result = match tls {
        None => {
            axum::serve(PlainListener(listener), app)
                .with_graceful_shutdown(graceful)
                .await
        }
        Some(tls) => {
            let Some(local) = addr else {
                tracing::error!("HTTP listener has no local address");
                return;
            };
            let (tx, rx) = mpsc::channel(64);
            let acceptor = tokio::spawn(tls_acceptor(listener, tls, tx, shutdown));
            let served = axum::serve(TlsListener { local, ready: rx }, app)
                .with_graceful_shutdown(graceful)
                .await;
            acceptor.abort();
            served
        }
    };
    if let Err(e) = result {
        tracing::error!(?addr, error = %e, "HTTP listener stopped");
    }
}

/// What the authorization layer needs.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// Users, ACLs and the policy.
    pub broker: Arc<Broker>,
    /// `http.authentication`.
    pub authentication: HttpAuthentication,
    /// `http.anonymous_read`.
    pub anonymous_read: bool,
}

/// Wraps `router` in the authentication and authorization layer.
pub fn secured(router: Router, state: AuthState) -> Router {
    router.layer(axum::middleware::from_fn_with_state(state, authorize))
}

/// What a request does, for authorization.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Describe on the cluster.
    Describe,
    /// Alter on the cluster.
    Alter,
    /// Any authenticated principal (registry reads).
    Authenticated,
    /// Write on the topic (or Alter on the cluster).
    WriteTopic(String),
}

fn classify(method: &Method, path: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let first = segments.first().map(String::as_str).unwrap_or_default();
    match (first, read) {
        ("metrics", true) | ("cluster", true) => Need::Describe,
        ("cluster", false) => Need::Alter,
        (_, true) => Need::Authenticated,
        // Looking a schema up and testing compatibility change nothing.
        ("subjects", false) if segments.len() == 2 && method == Method::POST => Need::Authenticated,
        ("compatibility", false) => Need::Authenticated,
        ("subjects", false) | ("config", false) if segments.len() >= 2 => {
            match subject_topic(&segments[1]) {
                Some(topic) => Need::WriteTopic(topic.to_string()),
                None => Need::Alter,
            }
        }
        _ => Need::Alter,
    }
}

/// The topic a subject names under the topic-name strategy.
fn subject_topic(subject: &str) -> Option<&str> {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .filter(|t| !t.is_empty())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn refusal(status: StatusCode, message: &str) -> Response {
    let code = if status == StatusCode::UNAUTHORIZED {
        40101
    } else {
        40301
    };
    let body = serde_json::json!({ "error_code": code, "message": message }).to_string();
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"starlog\", charset=\"UTF-8\""),
        );
    }
    response
}

/// The user and password of an `Authorization: Basic` header; `Err` when
/// the header is there but malformed.
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// Whether `password` is `user`'s (SCRAM-SHA-512 credential first, then
/// SCRAM-SHA-256; the internal user's is this run's, never a stored one).
/// Runs the key derivation off the async workers.
async fn check_password(broker: &Arc<Broker>, user: String, password: String) -> bool {
    let broker = Arc::clone(broker);
    tokio::task::spawn_blocking(move || {
        let credential = |m| {
            if user == INTERNAL_USER {
                broker.internal.credential(&user, m)
            } else {
                broker.security.credential(&user, m)
            }
        };
        [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .find_map(credential)
            .is_some_and(|c| c.verify_password(&password))
    })
    .await
    .unwrap_or(false)
}

/// The principal of basic-auth credentials, checked (`Err`: refused).
async fn basic_login(
    auth: &AuthState,
    user: String,
    password: String,
    client: Option<&HttpClient>,
) -> Result<Principal, Response> {
    if !check_password(&auth.broker, user.clone(), password).await {
        tracing::info!(user = %user, client = ?client.map(|c| c.addr), "HTTP basic authentication failed");
        return Err(refusal(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    }
    Ok(Principal::user(user))
}

/// The authentication and authorization layer (see the module docs).
async fn authorize(State(auth): State<AuthState>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<HttpClient>>()
        .map(|c| c.0.clone());
    let need = classify(req.method(), req.uri().path());
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let sent_internal =
        matches!(basic_credentials(&req), Ok(Some((ref u, _))) if u == INTERNAL_USER);
    let principal = match auth.authentication {
        // Credentials are not asked for and, as a registry without
        // authentication does, ignored — except the broker's own login
        // (in-broker mirrors send it), which is checked and used; otherwise
        // the client certificate's principal, an anonymous read, or
        // User:ANONYMOUS.
        HttpAuthentication::None => match basic_credentials(&req) {
            Ok(Some((user, password))) if user == INTERNAL_USER => {
                match basic_login(&auth, user, password, client.as_ref()).await {
                    Ok(p) => p,
                    Err(r) => return r,
                }
            }
            _ => match client.as_ref().and_then(|c| c.cert_principal.clone()) {
                Some(p) => p,
                None if read && auth.anonymous_read => return next.run(req).await,
                None => Principal::anonymous(),
            },
        },
        HttpAuthentication::Basic => match basic_credentials(&req) {
            Err(()) => {
                return refusal(
                    StatusCode::UNAUTHORIZED,
                    "malformed Authorization header (want Basic)",
                )
            }
            Ok(Some((user, password))) => {
                match basic_login(&auth, user, password, client.as_ref()).await {
                    Ok(p) => p,
                    Err(r) => return r,
                }
            }
            Ok(None) => match client.as_ref().and_then(|c| c.cert_principal.clone()) {
                Some(p) => p,
                None if read && auth.anonymous_read => return next.run(req).await,
                None => return refusal(StatusCode::UNAUTHORIZED, "authentication required"),
            },
        },
    };
    let logged_in_internal = sent_internal && principal.name() == INTERNAL_USER;
    let peer = Peer {
        host: client
            .as_ref()
            .map(|c| c.addr.to_string())
            .unwrap_or_default(),
        ip: client
            .as_ref()
            .map(|c| c.addr.ip().to_string())
            .unwrap_or_default(),
        listener: Arc::from(LISTENER),
        principal,
        // Only a checked login names the internal user (a certificate's
        // principal of that name does not count).
        internal: logged_in_internal,
    };
    let allowed = match &need {
        Need::Authenticated => true,
        Need::Describe => auth.broker.allowed(
            &peer,
            AclOperation::Describe,
            ResourceType::Cluster,
            CLUSTER,
        ),
        Need::Alter => {
            auth.broker
                .allowed(&peer, AclOperation::Alter, ResourceType::Cluster, CLUSTER)
        }
        Need::WriteTopic(topic) => {
            auth.broker
                .allowed(&peer, AclOperation::Write, ResourceType::Topic, topic)
                || auth
                    .broker
                    .allowed(&peer, AclOperation::Alter, ResourceType::Cluster, CLUSTER)
        }
    };
    if !allowed {
        tracing::info!(principal = %peer.principal, method = %req.method(), path = %req.uri().path(), "HTTP request refused");
        let what = match &need {
            Need::Describe => "Describe on the cluster".to_string(),
            Need::Alter => "Alter on the cluster".to_string(),
            Need::WriteTopic(t) => format!("Write on topic {t} (or Alter on the cluster)"),
            Need::Authenticated => String::new(),
        };
        return refusal(
            StatusCode::FORBIDDEN,
            &format!("{} is not allowed {what}", peer.principal),
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_what_they_do() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(classify(&get, "/metrics"), Need::Describe);
        assert_eq!(classify(&get, "/cluster/status"), Need::Describe);
        assert_eq!(classify(&post, "/cluster/reassign"), Need::Alter);
        assert_eq!(classify(&get, "/subjects"), Need::Authenticated);
        assert_eq!(
            classify(&post, "/subjects/alerts-value"),
            Need::Authenticated
        );
        assert_eq!(
            classify(&post, "/compatibility/subjects/a-value/versions/latest"),
            Need::Authenticated
        );
        assert_eq!(
            classify(&post, "/subjects/ztf%2Dalerts-value/versions"),
            Need::WriteTopic("ztf-alerts".into())
        );
        assert_eq!(
            classify(&Method::DELETE, "/subjects/alerts-key/versions/1"),
            Need::WriteTopic("alerts".into())
        );
        assert_eq!(
            classify(&Method::PUT, "/config/alerts-value"),
            Need::WriteTopic("alerts".into())
        );
        assert_eq!(classify(&Method::PUT, "/config"), Need::Alter);
        assert_eq!(
            classify(&post, "/subjects/com.example.Alert/versions"),
            Need::Alter
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2Db"), "a-b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }
}
