//! One client connection: read size-prefixed frames, answer them in order.
//!
//! A reader handles each request's ordered part (decoding, effects, a
//! produce's writes) one request at a time, as Kafka does; what remains (a
//! produce's wait for its flush policy) is queued to a writer that resolves
//! the queue in order and sends the responses. So a producer with several
//! requests in flight has their fsyncs overlap instead of paying one per
//! request, and responses keep their order. The queue is bounded
//! (`MAX_IN_FLIGHT`).
//!
//! Every read is bounded: a frame larger than `max_request_bytes` or a
//! negative size closes the connection, an idle connection is closed after
//! `idle_timeout_ms`, and a client that stops in the middle of a frame is
//! dropped after the same timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::dispatch::{self, Outcome, Peer, Pending};

/// Requests whose responses may be pending at once on one connection
/// (librdkafka and the Java client send up to 5).
const MAX_IN_FLIGHT: usize = 16;

/// Serves one connection until the client leaves, misbehaves, or the broker shuts down.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: Peer,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %peer.host, error = %e, "cannot set TCP_NODELAY");
    }
    let (rd, wr) = stream.into_split();
    let (queue, pending) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(wr, pending, peer.clone()));
    read_requests(&broker, rd, &peer, shutdown, queue).await;
    // The reader is done (client gone, refusal or shutdown): the writer
    // finishes what is queued, then closes.
    if writer.await.is_err() {
        tracing::error!(peer = %peer.host, "connection writer task failed");
    }
}

async fn read_requests(
    broker: &Broker,
    rd: OwnedReadHalf,
    peer: &Peer,
    mut shutdown: watch::Receiver<bool>,
    queue: mpsc::Sender<Pending>,
) {
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
        let pending = match dispatch::handle_frame(broker, frame.freeze(), peer).await {
            Ok(p) => p,
            Err(refusal) => {
                tracing::warn!(peer = %peer.host, "closing connection: {refusal}");
                return;
            }
        };
        if queue.send(pending).await.is_err() {
            return; // the writer stopped (the client went away)
        }
    }
}

async fn write_responses(mut wr: OwnedWriteHalf, mut pending: mpsc::Receiver<Pending>, peer: Peer) {
    // Every queued completion is awaited even after the client is gone: a
    // produce's completion is what publishes its records' high watermark,
    // and written records must become visible (and be answered as
    // duplicates to a retry) whether or not their producer is still there.
    let mut open = true;
    while let Some(next) = pending.recv().await {
        match next.await {
            Ok(Outcome::Respond(bytes)) if open => {
                if let Err(e) = wr.write_all(&bytes).await {
                    tracing::debug!(peer = %peer.host, error = %e, "connection write failed");
                    open = false;
                    pending.close();
                }
            }
            Ok(_) => {}
            Err(refusal) => {
                if open {
                    tracing::warn!(peer = %peer.host, "closing connection: {refusal}");
                    open = false;
                    pending.close();
                    let _ = wr.shutdown().await;
                }
            }
        }
    }
}
