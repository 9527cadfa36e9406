//! `starlog cluster status`: fetches `/cluster/status` from a broker's HTTP
//! port and renders it as a table.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use starlog_broker::cluster::{ClusterStatus, PeerSettings};

/// Why the status could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The connection failed.
    #[error("cannot reach the broker: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not a 200 with a JSON body.
    #[error("unexpected answer: {0}")]
    Answer(String),
}

/// GETs `/cluster/status` from `addr` (a plain HTTP/1.0 request).
pub fn fetch_status(addr: SocketAddr) -> Result<Value, StatusError> {
    request(addr, "GET", "/cluster/status", None)
}

/// Asks the broker at `addr` to add `peer` to its cluster.
pub fn add_broker(addr: SocketAddr, peer: &PeerSettings) -> Result<Value, StatusError> {
    let body = serde_json::to_string(peer).map_err(|e| StatusError::Answer(e.to_string()))?;
    request(addr, "POST", "/cluster/brokers", Some(&body))
}

/// Asks the broker at `addr` to remove broker `id` from its cluster.
pub fn remove_broker(addr: SocketAddr, id: i32) -> Result<Value, StatusError> {
    let body = serde_json::json!({ "id": id }).to_string();
    request(addr, "POST", "/cluster/brokers/remove", Some(&body))
}

/// Asks the broker at `addr` to move `topic`-`partition` onto `replicas`
/// (`None` cancels a move in progress).
pub fn reassign(
    addr: SocketAddr,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> Result<Value, StatusError> {
    let body = serde_json::json!({ "topic": topic, "partition": partition, "replicas": replicas })
        .to_string();
    request(addr, "POST", "/cluster/reassign", Some(&body))
}

/// One HTTP/1.0 exchange with a JSON answer; a non-200 answer is an error
/// carrying the broker's message.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<Value, StatusError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.take(64 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| StatusError::Answer("no HTTP header".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200") {
        return Err(StatusError::Answer(format!(
            "{status_line}: {} (is this broker part of a cluster?)",
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
