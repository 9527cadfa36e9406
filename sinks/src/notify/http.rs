//! A minimal blocking HTTP/1.1 client for webhooks: one `POST` of a JSON
//! body per connection (`Connection: close`), over TCP or TLS (rustls with
//! the Mozilla roots, plus an optional extra CA). Only the status, the
//! `Retry-After` header and the start of the body are read.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes of the body kept for error messages.
const BODY_KEPT: usize = 512;

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Network or TLS failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
}

/// A parsed `http(s)://host[:port]/path` URL. Its `Debug` leaves the path
/// out: a webhook's path is its secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}/(path hidden)", self.host, self.port)
    }
}

impl Url {
    /// Parses `text`; `None` when it is not an http(s) URL with a host.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return None;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_owned(), p.parse().ok()?)
            }
            _ => (authority.to_owned(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return None;
        }
        Some(Url {
            tls,
            host,
            port,
            path: path.to_owned(),
        })
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// A webhook client: a URL and its TLS configuration.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    url: Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

/// The client TLS configuration: Mozilla's roots plus `extra_ca_pem`.
///
/// # Errors
/// An unreadable extra CA.
pub(crate) fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut reader = pem;
        let mut n = 0;
        for cert in rustls_pemfile_certs(&mut reader)? {
            roots.add(cert).map_err(|e| e.to_string())?;
            n += 1;
        }
        if n == 0 {
            return Err("no certificate in the CA file".to_owned());
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The certificates of a PEM text.
fn rustls_pemfile_certs(
    pem: &mut &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the CA file: {e}"))
}

impl Client {
    pub(crate) fn new(url: Url, tls: Option<Arc<rustls::ClientConfig>>, timeout: Duration) -> Self {
        Client { url, tls, timeout }
    }

    fn connect(&self) -> Result<TcpStream, std::io::Error> {
        let mut last = None;
        for addr in (self.url.host.as_str(), self.url.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))?;
                    s.set_write_timeout(Some(self.timeout))?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address")))
    }

    /// POSTs `body` as JSON.
    ///
    /// # Errors
    /// [`HttpError`] when no answer could be read.
    pub(crate) fn post_json(&self, body: &[u8]) -> Result<Response, HttpError> {
        let tcp = self.connect()?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: starlog\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.url.path,
            self.url.host,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let raw = if self.url.tls {
            let config = self
                .tls
                .clone()
                .ok_or_else(|| HttpError::Malformed("no TLS configuration".to_owned()))?;
            let name = ServerName::try_from(self.url.host.clone())
                .map_err(|e| HttpError::Io(std::io::Error::new(ErrorKind::InvalidInput, e)))?;
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| HttpError::Io(std::io::Error::other(e)))?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream.write_all(&request)?;
            stream.flush()?;
            read_response(&mut stream)?
        } else {
            let mut stream = tcp;
            stream.write_all(&request)?;
            stream.flush()?;
            read_response(&mut stream)?
        };
        parse_response(&raw)
    }
}

/// Reads the head and up to [`BODY_KEPT`] bytes of the body.
fn read_response(stream: &mut impl Read) -> Result<Vec<u8>, std::io::Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify, after the answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&buf) {
            if buf.len() >= end + BODY_KEPT {
                break;
            }
        }
        if buf.len() > MAX_HEAD + BODY_KEPT {
            break;
        }
    }
    Ok(buf)
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let end = find_head_end(raw).ok_or_else(|| {
        HttpError::Malformed(format!("{} bytes without a complete head", raw.len()))
    })?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let mut retry_after = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("retry-after") {
                // Seconds; an HTTP date is not honoured (the back-off applies).
                retry_after = value.trim().parse::<u64>().ok().map(Duration::from_secs);
            }
        }
    }
    let body_end = raw.len().min(end + BODY_KEPT);
    Ok(Response {
        status,
        retry_after,
        body: String::from_utf8_lossy(&raw[end..body_end])
            .trim()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_responses() {
        let u = Url::parse("https://hooks.example.com/services/T/B/X").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "hooks.example.com", 443, "/services/T/B/X")
        );
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 8080, "/"));
        assert!(Url::parse("ftp://x/").is_none());
        assert!(Url::parse("http://user@x/").is_none());
        let r =
            parse_response(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n\r\nslow down")
                .unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(r.body, "slow down");
        assert!(parse_response(b"garbage").is_err());
        let secret = Url::parse("https://hooks.example.com/services/T/B/SECRET").unwrap();
        assert!(!format!("{secret:?}").contains("SECRET"));
    }
}
