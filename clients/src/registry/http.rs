//! The registry's HTTP exchanges, on hyper's HTTP/1.1 client.
//!
//! Registry calls are rare (each upstream id is resolved once, each schema
//! registered once), so every request opens its own connection through the
//! client crate's transport — plain TCP, or TLS with rustls and the same
//! root/CA options as the Kafka connections — and hyper speaks HTTP/1.1 on
//! it (chunked, length-delimited and read-to-close bodies). Basic auth is
//! sent when configured; time and response size are bounded; every error
//! names the method and the URL.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;

use crate::transport;
use crate::TlsConfig;

/// Largest response accepted (schemas are tens of KB).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Why an HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http://host[:port][/path]` or `https://...`.
    #[error("registry URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting, writing or reading failed.
    #[error("{method} {url}: {reason}")]
    Io {
        /// Method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("{method} {url}: no answer within {after:?}")]
    Timeout {
        /// Method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// The answer is not valid HTTP/1.x.
    #[error("{method} {url}: malformed response: {reason}")]
    Malformed {
        /// Method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `host:port` to dial.
    pub addr: String,
    /// Value of the `Host` header.
    pub host_header: String,
    /// Path prefix without a trailing slash (may be empty).
    pub prefix: String,
    /// HTTPS.
    pub tls: bool,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let bad = |reason: &str| HttpError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad(
                "put credentials in the username/password settings, not the URL",
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let addr = if crate::address::split_host_port(authority).is_some() {
            authority.to_owned()
        } else if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:{default_port}")
        } else {
            return Err(bad("port is not a number from 0 to 65535"));
        };
        Ok(Self {
            addr,
            host_header: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
            tls,
        })
    }
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

/// Connection settings of one registry.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: BaseUrl,
    auth: Option<String>,
    tls: Option<TlsConfig>,
    timeout: Duration,
}

/// The media type of registry requests and answers.
const REGISTRY_JSON: &str = "application/vnd.schemaregistry.v1+json";

impl HttpClient {
    /// A client for `base`; `tls` applies to `https` URLs (public roots
    /// when `None`).
    pub fn new(
        base: BaseUrl,
        basic_auth: Option<(&str, &str)>,
        tls: Option<TlsConfig>,
        timeout: Duration,
    ) -> Self {
        let auth = basic_auth
            .map(|(u, p)| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
        let tls = if base.tls {
            Some(tls.unwrap_or_else(TlsConfig::public_roots))
        } else {
            None
        };
        Self {
            base,
            auth,
            tls,
            timeout,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.base.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}{}{path}",
            self.base.host_header, self.base.prefix
        )
    }

    /// `GET {prefix}{path}`.
    pub async fn get(&self, path: &str) -> Result<Response, HttpError> {
        self.exchange("GET", path, None).await
    }

    /// `POST {prefix}{path}` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &[u8]) -> Result<Response, HttpError> {
        self.exchange("POST", path, Some(body)).await
    }

    async fn exchange(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let url = self.url(path);
        let io = |reason: String| HttpError::Io {
            method,
            url: url.clone(),
            reason,
        };
        // hyper's own words for what went wrong, sorted: a message that is
        // not HTTP, one cut short, or a failed connection.
        let failed = |e: &hyper::Error| {
            if e.is_parse() || e.is_parse_status() {
                HttpError::Malformed {
                    method,
                    url: url.clone(),
                    reason: e.to_string(),
                }
            } else if e.is_incomplete_message() || ended_early(e) {
                HttpError::Malformed {
                    method,
                    url: url.clone(),
                    reason: "connection closed before the end of the body".into(),
                }
            } else {
                io(e.to_string())
            }
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.prefix))
            .header(HOST, &self.base.host_header)
            .header(USER_AGENT, "starlog")
            .header(ACCEPT, format!("{REGISTRY_JSON}, application/json"))
            .header(CONNECTION, "close");
        if let Some(a) = &self.auth {
            request = request.header(AUTHORIZATION, format!("Basic {a}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, REGISTRY_JSON);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| io(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let stream = transport::open(&self.base.addr, self.tls.as_ref())
                .await
                .map_err(|e| io(e.to_string()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| failed(&e))?;
            // The connection task ends with the exchange (or with the
            // timeout, which drops it).
            let driver = tokio::spawn(connection);
            let outcome = async {
                let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
                let status = response.status().as_u16();
                let body = Limited::new(response.into_body(), MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| match e.downcast::<hyper::Error>() {
                        Ok(e) => failed(&e),
                        Err(e) => io(format!("{e} (the limit is {MAX_RESPONSE} bytes)")),
                    })?
                    .to_bytes();
                Ok(Response {
                    status,
                    body: body.to_vec(),
                })
            }
            .await;
            driver.abort();
            outcome
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                method,
                url: url.clone(),
                after: self.timeout,
            })?
    }
}

/// Whether hyper's error is a body cut short by the end of the connection
/// (less than its `Content-Length`, or chunks without the last one).
fn ended_early(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = BaseUrl::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            (u.addr.as_str(), u.prefix.as_str(), u.tls),
            ("127.0.0.1:8081", "", false)
        );
        let u = BaseUrl::parse("https://reg.example.org/api/v1/").unwrap();
        assert_eq!(u.addr, "reg.example.org:443");
        assert_eq!(u.prefix, "/api/v1");
        assert_eq!(u.host_header, "reg.example.org");
        assert!(u.tls);
        assert_eq!(BaseUrl::parse("http://[::1]").unwrap().addr, "[::1]:80");
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@h:1",
            "http://h:99999",
            "h:1",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// A server answering one connection with `reply`; the request head
    /// it read comes back through the handle.
    async fn scripted(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "request cut short");
                got.extend_from_slice(&buf[..n]);
            }
            // The client may hang up first (an answer over the limit).
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
            String::from_utf8(got).unwrap()
        });
        (url, h)
    }

    fn client(url: &str) -> HttpClient {
        HttpClient::new(
            BaseUrl::parse(url).unwrap(),
            Some(("user", "pw")),
            None,
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn a_body_may_run_to_the_close_and_auth_is_sent() {
        let (url, head) = scripted(b"HTTP/1.0 200 OK\r\n\r\nrest of body").await;
        let r = client(&format!("{url}/api/"))
            .get("/schemas/ids/1")
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"rest of body"[..]));
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /api/schemas/ids/1 http/1.1\r\n"),
            "{head}"
        );
        // base64("user:pw")
        assert!(head.contains("authorization: basic dxnlcjpwdw=="), "{head}");
    }

    #[tokio::test]
    async fn an_answer_larger_than_the_limit_is_refused() {
        static HUGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let reply = HUGE.get_or_init(|| {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                MAX_RESPONSE + 1
            )
            .into_bytes();
            r.resize(r.len() + MAX_RESPONSE + 1, b'x');
            r
        });
        let (url, _) = scripted(reply).await;
        let e = client(&url).get("/x").await.unwrap_err();
        assert!(e.to_string().contains("GET http://"), "{e}");
        assert!(matches!(e, HttpError::Io { .. }), "{e}");
    }
}
