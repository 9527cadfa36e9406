//! Plain HTTP/1.0 requests to the broker's HTTP listener (loopback).
//!
//! The bench talks to Starlog's HTTP port twice per chain run: one `PUT` to
//! relax the output subject's schema compatibility, and `GET /metrics` for
//! the pipeline's counters. For that, one `Connection: close` request with
//! timeouts on connect, write and read is enough, and keeps an HTTP client
//! library out of the load generator.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::BenchError;

/// Largest response accepted.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// Sends `method path` (with a JSON `body`, if any) to `addr`; the response
/// body if the status is 2xx.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<String, BenchError> {
    let fail = |reason: String| BenchError::Metrics {
        addr: addr.to_string(),
        path: path.to_string(),
        reason,
    };
    let sock: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| fail(format!("address: {e}")))?
        .next()
        .ok_or_else(|| fail("address resolves to nothing".into()))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout).map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| fail(e.to_string()))?;
    let body = body.unwrap_or("");
    // One write: the request must not be split into many small segments.
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| fail(format!("sending the request: {e}")))?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| fail(format!("reading the response: {e}")))?;
    let text = String::from_utf8(raw).map_err(|_| fail("response is not UTF-8".into()))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("response has no header/body separator".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if !status
        .split_whitespace()
        .nth(1)
        .is_some_and(|c| c.starts_with('2'))
    {
        return Err(fail(format!(
            "status line `{status}`, body `{}`",
            body.trim()
        )));
    }
    Ok(body.to_string())
}

/// Sets `subject`'s schema compatibility to `NONE` in the broker's registry.
pub fn allow_any_schema(addr: &str, subject: &str, timeout: Duration) -> Result<(), BenchError> {
    request(
        addr,
        "PUT",
        &format!("/config/{subject}"),
        Some(r#"{"compatibility":"NONE"}"#),
        timeout,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn get(addr: &str, timeout: Duration) -> Result<String, BenchError> {
        request(addr, "GET", "/metrics", None, timeout)
    }

    /// Serves one scripted response on a loopback port.
    fn serve_once(response: &'static str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                // Read the whole request (headers and any short body) first.
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    req.extend_from_slice(&buf[..n]);
                    if n == 0 || req.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = s.write_all(response.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn fetches_the_body_and_refuses_errors() {
        let addr = serve_once("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello 1\n");
        assert_eq!(get(&addr, Duration::from_secs(5)).unwrap(), "hello 1\n");
        let addr = serve_once("HTTP/1.1 200 OK\r\n\r\n{}");
        allow_any_schema(&addr, "s-value", Duration::from_secs(5)).unwrap();
        let addr = serve_once("HTTP/1.1 404 Not Found\r\n\r\n");
        let err = get(&addr, Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("404"), "{err}");
        let addr = serve_once("garbage");
        let err = get(&addr, Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("no header/body separator"), "{err}");
        // Nothing listening.
        let port = crate::spawned::free_port().unwrap();
        assert!(get(&format!("127.0.0.1:{port}"), Duration::from_secs(2)).is_err());
    }
}
