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
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::dispatch::{self, Outcome, Pending};
use crate::session::{Action, Session};

/// Requests whose responses may be pending at once on one connection
/// (librdkafka and the Java client send up to 5).
const MAX_IN_FLIGHT: usize = 16;

/// Serves one connection (TCP, or TLS over TCP) until the client leaves,
/// misbehaves, or the broker shuts down. `session` holds who the client is
/// (and its SASL login, on a SASL listener).
pub async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    session: Session,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let host = session.peer().host.clone();
    let (rd, wr) = tokio::io::split(stream);
    let (queue, pending) = mpsc::channel(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_responses(wr, pending, host.clone()));
    read_requests(&broker, rd, session, shutdown, queue).await;
    // The reader is done (client gone, refusal or shutdown): the writer
    // finishes what is queued, then closes.
    if writer.await.is_err() {
        tracing::error!(peer = %host, "connection writer task failed");
    }
}

async fn read_requests<S: AsyncRead + Send>(
    broker: &Broker,
    rd: ReadHalf<S>,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
    queue: mpsc::Sender<Pending>,
) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let idle = Duration::from_millis(broker.config.limits.idle_timeout_ms);
    loop {
        let max = session.max_frame(broker.config.limits.max_request_bytes);
        let peer = session.peer();
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
        let frame = frame.freeze();
        let (pending, close): (Pending, bool) = match session.on_frame(broker, &frame).await {
            Action::Dispatch => match dispatch::handle_frame(broker, frame, session.peer()).await {
                Ok(p) => (p, false),
                Err(refusal) => {
                    tracing::warn!(peer = %session.peer().host, "closing connection: {refusal}");
                    return;
                }
            },
            Action::Respond(bytes) => (ready(bytes), false),
            Action::RespondThenClose(bytes) => (ready(bytes), true),
            Action::Close(why) => {
                tracing::warn!(peer = %session.peer().host, listener = %session.peer().listener, "closing connection: {why}");
                return;
            }
        };
        if queue.send(pending).await.is_err() || close {
            return; // the writer stopped (the client went away), or a refused login
        }
    }
}

fn ready(bytes: bytes::Bytes) -> Pending {
    Box::pin(std::future::ready(Ok(Outcome::Respond(bytes.into()))))
}

async fn write_responses<S: AsyncWrite>(
    wr: WriteHalf<S>,
    mut pending: mpsc::Receiver<Pending>,
    host: String,
) {
    let mut wr = wr;
    // Every queued completion is awaited even after the client is gone: a
    // produce's completion is what publishes its records' high watermark,
    // and written records must become visible (and be answered as
    // duplicates to a retry) whether or not their producer is still there.
    let mut open = true;
    while let Some(next) = pending.recv().await {
        match next.await {
            Ok(Outcome::Respond(frame)) if open => {
                if let Err(e) = frame.write_to(&mut wr).await {
                    tracing::debug!(peer = %host, error = %e, "connection write failed");
                    open = false;
                    pending.close();
                }
            }
            Ok(_) => {}
            Err(refusal) => {
                if open {
                    tracing::warn!(peer = %host, "closing connection: {refusal}");
                    open = false;
                    pending.close();
                    let _ = wr.shutdown().await;
                }
            }
        }
    }
}
