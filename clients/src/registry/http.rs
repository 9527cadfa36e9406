//! A deliberately small HTTP/1.1 client for the schema registry.
//!
//! The mirror makes a handful of registry calls per schema over its whole
//! life (each upstream id is resolved once, each schema registered once),
//! so a connection per request with `Connection: close` is plenty, and a
//! hand-written client is smaller than pulling an HTTP stack into the
//! build. It speaks plain HTTP and HTTPS (the client crate's rustls
//! transport), sends basic auth when configured, reads `Content-Length`,
//! chunked and read-to-close bodies, and bounds both time and size.

use std::time::Duration;

use crate::transport;
use crate::TlsConfig;
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let addr = if transport::split_host_port(authority).is_some() {
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
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: starlog-mirror\r\n\
             Accept: application/vnd.schemaregistry.v1+json, application/json\r\nConnection: close\r\n",
            self.base.prefix, self.base.host_header
        );
        if let Some(a) = &self.auth {
            req.push_str(&format!("Authorization: Basic {a}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        let io = |reason: String| HttpError::Io {
            method,
            url: url.clone(),
            reason,
        };
        let exchange = async {
            let mut stream = transport::open(&self.base.addr, self.tls.as_ref())
                .await
                .map_err(|e| io(e.to_string()))?;
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| io(format!("write: {e}")))?;
            stream
                .flush()
                .await
                .map_err(|e| io(format!("write: {e}")))?;
            let mut raw = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream
                    .read(&mut buf)
                    .await
                    .map_err(|e| io(format!("read: {e}")))?;
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_RESPONSE {
                    return Err(io(format!("response larger than {MAX_RESPONSE} bytes")));
                }
                // Stop as soon as a complete message is in (a server may
                // keep the connection open despite `Connection: close`).
                if matches!(parse_response(&raw), Ok(Some(_))) {
                    break;
                }
            }
            Ok(raw)
        };
        let raw = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                method,
                url: url.clone(),
                after: self.timeout,
            })??;
        match parse_response(&raw) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => parse_to_close(&raw).map_err(|reason| HttpError::Malformed {
                method,
                url,
                reason,
            }),
            Err(reason) => Err(HttpError::Malformed {
                method,
                url,
                reason,
            }),
        }
    }
}

/// Splits the head: `(status, headers as lowercase name/value, body start)`.
#[allow(clippy::type_complexity)]
fn parse_head(raw: &[u8]) -> Result<Option<(u16, Vec<(String, String)>, usize)>, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        if raw.len() > 64 * 1024 {
            return Err("header section longer than 64 KiB".into());
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "header is not UTF-8".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?} is not HTTP/1.x"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| format!("status line {status_line:?} has no status code"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?} has no colon"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Some((status, headers, end + 4)))
}

/// A complete response, `None` while more bytes are needed (or when the
/// body runs to the close of the connection).
fn parse_response(raw: &[u8]) -> Result<Option<Response>, String> {
    let Some((status, headers, start)) = parse_head(raw)? else {
        return Ok(None);
    };
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let body = &raw[start..];
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(dechunk(body)?.map(|body| Response { status, body }));
    }
    if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("content-length {len:?} is not a number"))?;
        return Ok((body.len() >= len).then(|| Response {
            status,
            body: body[..len].to_vec(),
        }));
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Some(Response {
            status,
            body: Vec::new(),
        }));
    }
    Ok(None)
}

/// The response when the connection closed: a body without a length runs
/// to the end; a declared length or chunking that is not complete is an
/// error (a truncated schema must not be taken for a whole one).
fn parse_to_close(raw: &[u8]) -> Result<Response, String> {
    let Some((status, headers, start)) = parse_head(raw)? else {
        return Err(format!(
            "connection closed after {} bytes, before the end of the header",
            raw.len()
        ));
    };
    let declared = headers
        .iter()
        .any(|(k, v)| k == "content-length" || (k == "transfer-encoding" && v.contains("chunked")));
    if declared {
        return Err("connection closed before the end of the body".into());
    }
    Ok(Response {
        status,
        body: raw[start..].to_vec(),
    })
}

/// Decodes a chunked body; `None` while incomplete.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "chunk size is not text")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("chunk size {size_hex:?} is not hexadecimal"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        if &b[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(&b[..size]);
        if out.len() > MAX_RESPONSE {
            return Err(format!("body larger than {MAX_RESPONSE} bytes"));
        }
        b = &b[size + 2..];
    }
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

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            r,
            Some(Response {
                status: 200,
                body: b"{}".to_vec()
            })
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").unwrap(),
            None,
            "incomplete"
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            Some(Response {
                status: 404,
                body: b"abcde".to_vec()
            })
        );
        let open = b"HTTP/1.0 200 OK\r\n\r\nrest of body";
        assert_eq!(parse_response(open).unwrap(), None);
        assert_eq!(parse_to_close(open).unwrap().body, b"rest of body");
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert!(parse_response(b"SMTP 220 hi\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
        assert!(parse_to_close(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(parse_to_close(b"HTTP/1.1 200").is_err());
    }
}
