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
//! With `cluster.tls` ([`PeerTls`]) both directions run over mutual TLS
//! under the cluster CA: the dialing broker checks the listener's
//! certificate (chain, validity, the peer's host name), the listener
//! requires the dialer's, and each side checks the other's principal
//! against `broker_principals` when that list is given. A connection that
//! fails any of this is closed and logged; no frame is read from it. The
//! client configuration is rebuilt at each connection, so a rotated
//! certificate is presented from the next reconnection on.
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
use starlog_security::tls::{client_config, ClientTlsSettings, ServerTls, TlsError};
use starlog_security::Principal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::pki_types::ServerName;

use super::config::ClusterTlsSettings;
use super::peer_addr::PeerAddr;

use super::inbox::{Inbox, Input};

/// Largest frame accepted from a peer.
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Frames queued per peer before new ones are dropped.
const QUEUE_FRAMES: usize = 256;

/// How long a TLS handshake between brokers may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Mutual TLS between brokers (`cluster.tls`), loaded once at start-up.
#[derive(Debug)]
pub struct PeerTls {
    /// The inter-broker listener's configuration (client certificates
    /// required), reloaded with the broker's other TLS listeners.
    pub server: Arc<ServerTls>,
    client: ClientTlsSettings,
    brokers: Vec<Principal>,
}

impl PeerTls {
    /// Loads the certificate, key and CA of `settings` (relative paths
    /// against `base_dir`) for both sides.
    pub fn load(
        settings: &ClusterTlsSettings,
        base_dir: &std::path::Path,
    ) -> Result<Self, TlsError> {
        let server = Arc::new(ServerTls::load(&settings.server(), base_dir)?);
        let resolve = |p: &std::path::Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        };
        let client = settings.client();
        let client = ClientTlsSettings {
            ca: resolve(&client.ca),
            cert: client.cert.as_deref().map(resolve),
            key: client.key.as_deref().map(resolve),
        };
        // Fail at start-up, not at the first connection.
        client_config(&client, base_dir)?;
        Ok(Self {
            server,
            client,
            brokers: settings.broker_principals.clone(),
        })
    }

    /// Whether `principal` is a broker's (any certificate of the cluster CA
    /// when no list is configured).
    fn is_broker(&self, principal: Option<&Principal>) -> bool {
        match principal {
            None => false,
            Some(p) => self.brokers.is_empty() || self.brokers.contains(p),
        }
    }
}

/// A connection to or from a peer: plain TCP or TLS.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

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
    tls: Option<Arc<PeerTls>>,
    /// The host name each configured peer's certificate is checked against
    /// (its `cluster.peers[].host`); others are checked by their Raft host.
    names: HashMap<NodeId, String>,
}

impl TcpTransport {
    /// Starts one writer task per peer on `runtime` (over TLS with `tls`;
    /// `names`: the host name of each configured peer).
    pub fn start(
        peers: &[(NodeId, PeerAddr)],
        faults: Arc<Faults>,
        runtime: &tokio::runtime::Handle,
        shutdown: &watch::Receiver<bool>,
        tls: Option<Arc<PeerTls>>,
        names: HashMap<NodeId, String>,
    ) -> Self {
        let mut transport = Self {
            peers: HashMap::new(),
            faults,
            runtime: runtime.clone(),
            shutdown: shutdown.clone(),
            tls,
            names,
        };
        for (id, addr) in peers {
            transport.ensure_peer(*id, addr);
        }
        transport
    }

    /// Starts a writer for `id` unless it has one (a broker added to the cluster).
    pub fn ensure_peer(&mut self, id: NodeId, addr: &PeerAddr) {
        if self.peers.contains_key(&id) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let name = self
            .names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| addr.host().to_string());
        tracing::info!(peer = id, %addr, "inter-broker peer added");
        self.runtime.spawn(peer_writer(
            Dial {
                id,
                addr: addr.clone(),
                name,
                tls: self.tls.clone(),
            },
            rx,
            Arc::clone(&self.faults),
            self.shutdown.clone(),
        ));
        self.peers.insert(id, tx);
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

/// Who a writer dials: the peer's id, Raft address (a name is resolved
/// again at each connection), the name its certificate must carry, and the
/// TLS settings.
struct Dial {
    id: NodeId,
    addr: PeerAddr,
    name: String,
    tls: Option<Arc<PeerTls>>,
}

/// Resolves the peer's address now (a pod's name points at its current IP)
/// and connects to the first of its addresses that accepts.
async fn connect(addr: &PeerAddr) -> std::io::Result<TcpStream> {
    let resolved = addr.resolve().await?;
    TcpStream::connect(&resolved[..]).await
}

/// Wraps an outgoing connection in TLS and checks the peer's certificate.
async fn dial_tls(tls: &PeerTls, name: &str, stream: TcpStream) -> Result<Box<dyn PeerIo>, String> {
    let config = client_config(&tls.client, std::path::Path::new(""))
        .map_err(|e| format!("cannot load this broker's TLS files: {e}"))?;
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("`{name}` is not a host name: {e}"))?;
    let connect = tokio_rustls::TlsConnector::from(config).connect(server_name, stream);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Err(_) => return Err("TLS handshake timed out".into()),
    };
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| {
            starlog_security::tls::cert_principal(leaf, tls.server.settings().principal)
        });
    if !tls.is_broker(principal.as_ref()) {
        return Err(format!(
            "its certificate names {}, not a broker (cluster.tls.broker_principals)",
            principal.map_or_else(|| "no principal".to_string(), |p| p.to_string())
        ));
    }
    Ok(Box::new(stream))
}

async fn peer_writer(
    dial: Dial,
    mut queue: mpsc::Receiver<(Instant, Bytes)>,
    faults: Arc<Faults>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Dial { id, ref addr, .. } = dial;
    let mut backoff = Duration::from_millis(50);
    // The last TLS failure logged (the same one is not logged at each retry).
    let mut last_refusal: Option<String> = None;
    loop {
        let connected = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(1), connect(addr)) => c,
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
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn PeerIo> = match &dial.tls {
            None => Box::new(stream),
            Some(tls) => {
                let dialed = tokio::select! {
                    d = dial_tls(tls, &dial.name, stream) => d,
                    _ = shutdown.changed() => return,
                };
                match dialed {
                    Ok(s) => s,
                    Err(why) => {
                        faults.set_reachable(id, false);
                        if last_refusal.as_ref() != Some(&why) {
                            tracing::warn!(peer = id, %addr, name = %dial.name, reason = %why, "inter-broker connection refused; retrying");
                            last_refusal = Some(why);
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        faults.set_reachable(id, true);
        if dial.tls.is_none() {
            backoff = Duration::from_millis(50);
        }
        if last_refusal.is_none() {
            tracing::info!(peer = id, %addr, tls = dial.tls.is_some(), "connected to peer");
        }
        let connected_at = Instant::now();
        let (mut incoming, outgoing) = tokio::io::split(stream);
        let mut out = BufWriter::with_capacity(1 << 20, outgoing);
        loop {
            let frame = tokio::select! {
                f = queue.recv() => f,
                // The peer never writes on this connection (TLS aside, whose
                // own messages the read consumes): the read ending means it
                // closed (a killed broker), found out now rather than at the
                // next frame.
                closed = peer_closed(&mut incoming) => {
                    let Some(why) = closed else { continue };
                    faults.set_reachable(id, false);
                    // Over TLS 1.3 the dialer finishes its handshake before
                    // the listener checks its certificate: a refusal arrives
                    // here, as an alert, right after connecting.
                    let refused = dial.tls.is_some() && connected_at.elapsed() < Duration::from_secs(1);
                    if !refused {
                        tracing::info!(peer = id, %addr, reason = %why, "peer closed the connection; reconnecting");
                    } else if last_refusal.as_ref() != Some(&why) {
                        tracing::warn!(peer = id, %addr, name = %dial.name, reason = %why, "inter-broker connection refused by the peer; retrying");
                        last_refusal = Some(why);
                    }
                    break;
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
        if dial.tls.is_some() {
            // A TLS connection that ended at once (refused, typically)
            // backs off, up to 5 s; one that lived resets the back-off.
            if connected_at.elapsed() < Duration::from_secs(1) {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                backoff = Duration::from_millis(50);
                last_refusal = None;
            }
        }
    }
}

/// Reads the peer's end of an outgoing connection: `Some(why)` when it
/// closed or failed, `None` when the peer sent data (ignored).
/// Cancel-safe: no data the peer sends matters.
async fn peer_closed<R: AsyncRead + Unpin>(incoming: &mut R) -> Option<String> {
    let mut buf = [0u8; 64];
    match incoming.read(&mut buf).await {
        Ok(0) => Some("end of stream".to_string()),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    out: &mut BufWriter<W>,
    frame: &[u8],
) -> std::io::Result<()> {
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
    tls: Option<Arc<PeerTls>>,
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
                    let (inbox, faults, stop) = (inbox.clone(), Arc::clone(&faults), shutdown.clone());
                    match &tls {
                        None => {
                            tokio::spawn(read_peer(stream, peer, inbox, faults, stop));
                        }
                        Some(tls) => {
                            let tls = Arc::clone(tls);
                            tokio::spawn(async move {
                                if let Some(stream) = accept_tls(&tls, stream, peer).await {
                                    read_peer(stream, peer, inbox, faults, stop).await;
                                }
                            });
                        }
                    }
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

/// Runs the TLS handshake of an incoming peer connection and checks the
/// broker's principal; `None` (logged) when it is refused.
async fn accept_tls(
    tls: &PeerTls,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let (stream, principal) = match crate::security::tls_accept(&tls.server, stream).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "inter-broker connection refused: TLS handshake failed (no valid certificate of the cluster CA?)");
            return None;
        }
    };
    if !tls.is_broker(principal.as_ref()) {
        tracing::warn!(%peer, principal = ?principal.map(|p| p.to_string()), "inter-broker connection refused: not a broker's principal (cluster.tls.broker_principals)");
        return None;
    }
    tracing::debug!(%peer, principal = ?principal.map(|p| p.to_string()), "inter-broker TLS connection accepted");
    Some(stream)
}

async fn read_peer<S: AsyncRead + Unpin>(
    mut stream: S,
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
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
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
