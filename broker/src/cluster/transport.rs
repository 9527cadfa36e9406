//! Raft messages between brokers over TCP: the replication crate's
//! [`Transport`] on the inter-broker listener.
//!
//! Each peer has one outgoing connection, written by its own task from a
//! bounded queue; [`TcpTransport::send`] never blocks the driver loop and
//! drops a frame when the queue is full or the peer is down (Raft recovers
//! from loss). Incoming connections are read by one task each and their
//! frames handed to the driver loop. On the wire a frame is its length
//! (u32, big-endian) followed by the replication crate's frame encoding.
//!
//! A fault switch ([`Faults`]) drops every frame in and out, which cuts a
//! broker off from its peers without touching its Kafka listener; the
//! fault tests flip it over HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use starlog_replication::{
    decode_frame, encode_frame, DriverMetrics, Envelope, Histogram, NodeId, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::inbox::{Inbox, Input};

/// Largest frame accepted from a peer.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Frames queued per peer before new ones are dropped.
const QUEUE_FRAMES: usize = 256;

/// The fault switch and transport counters.
#[derive(Debug, Default)]
pub struct Faults {
    isolated: AtomicBool,
    /// Frames dropped (queue full, peer down, or isolated).
    pub dropped: AtomicU64,
    /// Frames sent.
    pub sent: AtomicU64,
    /// Frames received.
    pub received: AtomicU64,
    /// Peers whose inter-broker listener refused or timed out the last
    /// connection attempt (a killed broker, typically).
    unreachable: parking_lot::RwLock<std::collections::BTreeSet<NodeId>>,
    /// Time a frame waits in its peer's queue until it is written to the socket.
    pub queue_wait: Histogram,
    /// The driver's stage timings (the driver loop records into these).
    pub driver: Arc<DriverMetrics>,
    /// The driver loop's inbox, once the listener runs: wakes the loop when a background sync
    /// completes.
    wake: std::sync::Mutex<Option<Inbox>>,
}

impl Faults {
    /// Cuts this broker off from its peers (`true`) or heals it.
    pub fn set_isolated(&self, on: bool) {
        self.isolated.store(on, Ordering::SeqCst);
        tracing::warn!(isolated = on, "inter-broker fault switch");
    }

    /// Wakes the driver loop (an empty input) so it runs a turn now.
    pub fn wake_driver(&self) {
        if let Ok(wake) = self.wake.lock() {
            if let Some(inbox) = wake.as_ref() {
                let _ = inbox.send(Input::Envelopes(Vec::new()));
            }
        }
    }

    /// Whether the broker is cut off.
    pub fn isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Whether the last attempt to connect to `peer` failed.
    pub fn unreachable(&self, peer: NodeId) -> bool {
        self.unreachable.read().contains(&peer)
    }

    pub(super) fn set_reachable(&self, peer: NodeId, reachable: bool) {
        if reachable != self.unreachable(peer) {
            return;
        }
        let mut set = self.unreachable.write();
        if reachable {
            set.remove(&peer);
        } else {
            set.insert(peer);
        }
    }
}

/// Sends Raft frames to peers (see the module docs).
#[derive(Debug)]
pub struct TcpTransport {
    peers: HashMap<NodeId, mpsc::Sender<(Instant, Bytes)>>,
    faults: Arc<Faults>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
}

impl TcpTransport {
    /// Starts one writer task per peer on `runtime`.
    pub fn start(
        peers: &[(NodeId, SocketAddr)],
        faults: Arc<Faults>,
        runtime: &tokio::runtime::Handle,
        shutdown: &watch::Receiver<bool>,
    ) -> Self {
        let mut transport = Self {
            peers: HashMap::new(),
            faults,
            runtime: runtime.clone(),
            shutdown: shutdown.clone(),
        };
        for &(id, addr) in peers {
            transport.ensure_peer(id, addr);
        }
        transport
    }

    /// Starts a writer for `id` unless it has one (a broker added to the cluster).
    pub fn ensure_peer(&mut self, id: NodeId, addr: SocketAddr) {
        if self.peers.contains_key(&id) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        self.runtime.spawn(peer_writer(
            id,
            addr,
            rx,
            Arc::clone(&self.faults),
            self.shutdown.clone(),
        ));
        self.peers.insert(id, tx);
        tracing::info!(peer = id, %addr, "inter-broker peer added");
    }

    /// Where the driver records its stage timings (shown on `/metrics`).
    pub fn driver_metrics(&self) -> Arc<DriverMetrics> {
        Arc::clone(&self.faults.driver)
    }

    /// Wakes the driver loop from any thread (see [`Faults::wake_driver`]).
    pub fn waker(&self) -> starlog_replication::Waker {
        let faults = Arc::clone(&self.faults);
        Arc::new(move || faults.wake_driver())
    }
}

impl TcpTransport {
    /// The peers whose last connection attempt failed.
    pub fn unreachable_peers(&self) -> Vec<NodeId> {
        self.peers
            .keys()
            .copied()
            .filter(|&p| self.faults.unreachable(p))
            .collect()
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, to: NodeId, envelopes: Vec<Envelope>) {
        let Some(queue) = self.peers.get(&to) else {
            tracing::debug!(to, "raft message for a node that is not a peer dropped");
            return;
        };
        if self.faults.isolated() {
            self.faults.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let frame = Bytes::from(encode_frame(&envelopes));
        if queue.try_send((Instant::now(), frame)).is_err() {
            self.faults.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.faults.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn peer_writer(
    id: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<(Instant, Bytes)>,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)) => c,
            _ = shutdown.changed() => return,
        };
        let stream = match connected {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                faults.set_reachable(id, false);
                tracing::debug!(peer = id, %addr, error = %e, "cannot reach peer; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(_) => {
                faults.set_reachable(id, false);
                continue;
            }
        };
        faults.set_reachable(id, true);
        backoff = Duration::from_millis(50);
        let _ = stream.set_nodelay(true);
        tracing::info!(peer = id, %addr, "connected to peer");
        let mut out = BufWriter::with_capacity(1 << 20, stream);
        loop {
            let frame = tokio::select! {
                f = queue.recv() => f,
                // The peer never writes on this connection: readable means
                // it closed (a killed broker), found out now rather than at
                // the next frame.
                closed = peer_closed(out.get_ref()) => {
                    if closed {
                        faults.set_reachable(id, false);
                        tracing::info!(peer = id, %addr, "peer closed the connection; reconnecting");
                        break;
                    }
                    continue;
                }
                _ = shutdown.changed() => return,
            };
            let Some((queued, frame)) = frame else { return };
            let mut result = write_frame(&mut out, &frame).await;
            // Coalesce whatever else is queued into the same flush.
            while result.is_ok() {
                match queue.try_recv() {
                    Ok((_, f)) => result = write_frame(&mut out, &f).await,
                    Err(_) => break,
                }
            }
            result = result.and(out.flush().await);
            if result.is_ok() {
                // From the oldest frame of this flush being queued to its bytes leaving.
                faults.queue_wait.observe(queued.elapsed());
            }
            if let Err(e) = result {
                tracing::info!(peer = id, %addr, error = %e, "connection to peer lost; reconnecting");
                break;
            }
        }
    }
}

/// Waits until the peer's end of an outgoing connection is readable: true
/// when that is because it closed (or failed).
async fn peer_closed(stream: &TcpStream) -> bool {
    if stream.readable().await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

async fn write_frame(out: &mut BufWriter<TcpStream>, frame: &[u8]) -> std::io::Result<()> {
    let len =
        u32::try_from(frame.len()).map_err(|_| std::io::Error::other("frame longer than 4 GiB"))?;
    out.write_all(&len.to_be_bytes()).await?;
    out.write_all(frame).await
}

/// Accepts peer connections and hands their frames to the driver loop.
pub async fn listen(
    listener: TcpListener,
    inbox: Inbox,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(mut wake) = faults.wake.lock() {
        *wake = Some(inbox.clone());
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(read_peer(stream, peer, inbox.clone(), Arc::clone(&faults), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inter-broker accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn read_peer(
    mut stream: TcpStream,
    peer: SocketAddr,
    inbox: Inbox,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut stream) => f,
            _ = shutdown.changed() => return,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing inter-broker connection");
                return;
            }
        };
        if faults.isolated() {
            faults.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        faults.received.fetch_add(1, Ordering::Relaxed);
        match decode_frame(&frame) {
            Ok(envelopes) => {
                if inbox.send(Input::Envelopes(envelopes)).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "malformed raft frame; closing the connection");
                return;
            }
        }
    }
}

/// Reads one length-prefixed frame; `None` at a clean end of stream.
async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME_BYTES}"),
        ));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf))
}
