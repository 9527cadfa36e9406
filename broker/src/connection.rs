//! One client connection: read size-prefixed frames, answer them in order.
//!
//! Requests on a connection are handled one at a time, as Kafka does, so
//! responses keep their order. Every read is bounded: a frame larger than
//! `max_request_bytes` or a negative size closes the connection, an idle
//! connection is closed after `idle_timeout_ms`, and a client that stops in
//! the middle of a frame is dropped after the same timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::dispatch::{self, Outcome, Peer};

/// Serves one connection until the client leaves, misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: Peer,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %peer.host, error = %e, "cannot set TCP_NODELAY");
    }
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let idle = Duration::from_millis(broker.config.limits.idle_timeout_ms);
    let max = broker.config.limits.max_request_bytes;
    loop {
        let size = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_i32()) => match r {
                Ok(Ok(size)) => size,
                Ok(Err(e)) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(peer = %peer.host, error = %e, "connection read failed");
                    }
                    return;
                }
                Err(_) => {
                    tracing::info!(peer = %peer.host, "closing idle connection");
                    return;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(len) = u32::try_from(size).ok().filter(|&s| s <= max) else {
            tracing::warn!(peer = %peer.host, size, max, "closing connection: request size out of bounds");
            return;
        };
        let mut frame = BytesMut::zeroed(len as usize);
        match tokio::time::timeout(idle, rd.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::info!(peer = %peer.host, size, error = %e, "connection closed mid-request");
                return;
            }
            Err(_) => {
                tracing::warn!(peer = %peer.host, size, "closing connection: request body not sent in time");
                return;
            }
        }
        match dispatch::handle_frame(&broker, frame.freeze(), &peer).await {
            Ok(Outcome::Respond(bytes)) => {
                if let Err(e) = wr.write_all(&bytes).await {
                    tracing::debug!(peer = %peer.host, error = %e, "connection write failed");
                    return;
                }
            }
            Ok(Outcome::Silent) => {}
            Err(refusal) => {
                tracing::warn!(peer = %peer.host, "closing connection: {refusal}");
                return;
            }
        }
    }
}
