//! `starlog cluster status`: fetches `/cluster/status` from a broker's HTTP
//! port and renders it as a table; the other `starlog cluster` commands'
//! requests. Plain HTTP, or HTTPS trusting a given CA (`--ca`), with HTTP
//! basic authentication when a user is given.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use starlog_broker::cluster::{ClusterStatus, PeerSettings};
use starlog_security::tls::{client_config, ClientTlsSettings, TlsError};

/// Where the broker's HTTP listener is and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    authorization: Option<String>,
}

impl Endpoint {
    /// Plain HTTP to `addr`.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls: None,
            authorization: None,
        }
    }

    /// HTTPS to `addr`, trusting the CA certificates in `ca` (PEM), the
    /// server's certificate checked against `server_name` (default: the
    /// address's IP).
    pub fn https(
        addr: SocketAddr,
        ca: &Path,
        server_name: Option<&str>,
    ) -> Result<Self, StatusError> {
        let config = client_config(
            &ClientTlsSettings {
                ca: ca.to_path_buf(),
                cert: None,
                key: None,
            },
            Path::new("."),
        )?;
        let name = match server_name {
            Some(n) => rustls::pki_types::ServerName::try_from(n.to_string())
                .map_err(|e| StatusError::Answer(format!("--server-name {n}: {e}")))?,
            None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
        };
        Ok(Self {
            addr,
            tls: Some((config, name)),
            authorization: None,
        })
    }

    /// Adds HTTP basic authentication.
    pub fn with_user(mut self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }
}

/// Why the status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The connection failed.
    #[error("cannot reach the broker: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not a 200 with a JSON body.
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// The CA file could not be loaded, or the TLS session failed.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
}

/// GETs `/cluster/status` from `at` (an HTTP/1.0 request).
pub fn fetch_status(at: &Endpoint) -> Result<Value, StatusError> {
    request(at, "GET", "/cluster/status", None)
}

/// Asks the broker at `at` to add `peer` to its cluster.
pub fn add_broker(at: &Endpoint, peer: &PeerSettings) -> Result<Value, StatusError> {
    let body = serde_json::to_string(peer).map_err(|e| StatusError::Answer(e.to_string()))?;
    request(at, "POST", "/cluster/brokers", Some(&body))
}

/// Asks the broker at `at` to remove broker `id` from its cluster.
pub fn remove_broker(at: &Endpoint, id: i32) -> Result<Value, StatusError> {
    let body = serde_json::json!({ "id": id }).to_string();
    request(at, "POST", "/cluster/brokers/remove", Some(&body))
}

/// Asks the broker at `addr` to move `topic`-`partition` onto `replicas`
/// (`None` cancels a move in progress).
pub fn reassign(
    at: &Endpoint,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> Result<Value, StatusError> {
    let body = serde_json::json!({ "topic": topic, "partition": partition, "replicas": replicas })
        .to_string();
    request(at, "POST", "/cluster/reassign", Some(&body))
}

/// One HTTP/1.0 exchange with a JSON answer; a non-200 answer is an error
/// carrying the broker's message.
fn request(
    at: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Value, StatusError> {
    let addr = at.addr;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or_default();
    let auth = at
        .authorization
        .as_ref()
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut raw = Vec::new();
    match &at.tls {
        None => {
            let mut stream = stream;
            stream.write_all(head.as_bytes())?;
            stream.take(64 << 20).read_to_end(&mut raw)?;
        }
        Some((config, name)) => {
            let conn = rustls::ClientConnection::new(Arc::clone(config), name.clone())
                .map_err(|e| StatusError::Answer(format!("TLS: {e}")))?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            tls.write_all(head.as_bytes())?;
            tls.flush()?;
            // HTTP/1.0: the server closes after the answer (a missing
            // close_notify is not an error here).
            match tls.take(64 << 20).read_to_end(&mut raw) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| StatusError::Answer("no HTTP header".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200") {
        let hint = if status_line.contains(" 401") {
            "give --user (the password from STARLOG_PASSWORD)"
        } else if status_line.contains(" 403") {
            "this user is not allowed this (it needs Describe or Alter on the cluster)"
        } else {
            "is this broker part of a cluster?"
        };
        return Err(StatusError::Answer(format!(
            "{status_line}: {} ({hint})",
            body.trim()
        )));
    }
    serde_json::from_str(body).map_err(|e| StatusError::Answer(format!("body is not JSON: {e}")))
}

/// The status document as a table: one line per Raft group.
pub fn render_status(doc: &ClusterStatus) -> String {
    fn num<T: ToString>(v: Option<T>) -> String {
        v.map_or("-".to_string(), |n| n.to_string())
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {}  controller {}  isolated {}",
        doc.node,
        num(doc.controller),
        doc.isolated
    );
    let _ = writeln!(
        out,
        "{:<24} {:>5} {:<10} {:>6} {:>6} {:>10} {:>12} {:>12}  replica lag (records)",
        "TOPIC", "PART", "ROLE", "LEADER", "TERM", "COMMIT", "HW", "LOG-END"
    );
    for g in &doc.groups {
        let lag: Vec<String> = g
            .replicas
            .iter()
            .map(|r| format!("{}:{}", r.node, num(r.lag_offsets)))
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:>5} {:<10} {:>6} {:>6} {:>10} {:>12} {:>12}  {}",
            g.topic,
            g.partition,
            g.role,
            num(g.leader),
            g.term,
            g.commit_index,
            g.high_watermark,
            g.log_end_offset,
            if lag.is_empty() {
                "-".to_string()
            } else {
                lag.join(" ")
            }
        );
    }
    if !doc.reassignments.is_empty() {
        let _ = writeln!(out, "moving replicas:");
        for r in &doc.reassignments {
            let _ = writeln!(
                out,
                "  {}-{}: {} -> {}",
                r.topic,
                r.partition,
                serde_json::json!(r.current),
                serde_json::json!(r.target)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_group() {
        let doc = serde_json::json!({
            "node": 2, "controller": 1, "isolated": false,
            "groups": [
                {"topic": "alerts", "partition": 0, "role": "leader", "leader": 2, "term": 3,
                 "commit_index": 10, "high_watermark": 7, "log_end_offset": 7,
                 "replicas": [{"node": 1, "lag_offsets": 0}, {"node": 3, "lag_offsets": 5}]},
                {"topic": "alerts", "partition": 1, "role": "follower", "leader": null, "term": 3,
                 "commit_index": 4, "high_watermark": 2, "log_end_offset": 2, "replicas": []}
            ]
        });
        let doc: ClusterStatus = serde_json::from_value(doc).unwrap();
        let t = render_status(&doc);
        assert!(t.contains("controller 1"), "{t}");
        assert!(t.contains("1:0 3:5"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(
            lines[3].contains("follower") && lines[3].contains(" - "),
            "{t}"
        );
    }
}
