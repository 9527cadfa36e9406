//! One connection to one broker: pipelined requests over a single socket.
//!
//! Two tasks own the socket halves. Callers hand a request to the writer
//! task through a channel; the writer gives it the next correlation id,
//! records it in the in-flight queue and writes the frame. The reader task
//! reads size-prefixed frames and hands each to the oldest in-flight entry,
//! after checking that the correlation id is the one expected (Kafka answers
//! in order on a connection). Up to `max_in_flight_per_connection` requests
//! are outstanding; more callers wait for a permit.
//!
//! Nothing here trusts the broker: frame sizes are bounded, an unexpected
//! correlation id or an EOF fails every waiter with a typed error and closes
//! the connection, response bodies are decoded with panics caught, and every
//! call has a deadline. A closed connection stays closed; the cluster layer
//! opens a new one.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::debug;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::transport::{self, Stream};
use crate::versions::{Negotiated, API_VERSIONS_FIRST};

/// A request waiting for the writer.
struct Outgoing {
    api: ApiKey,
    version: i16,
    body: Bytes,
    /// `None` for requests without a response (produce with acks=0).
    reply: Option<oneshot::Sender<Result<Bytes>>>,
    written: Option<oneshot::Sender<Result<()>>>,
}

/// A written request waiting for its response.
struct InFlight {
    correlation: i32,
    api: ApiKey,
    response_header_version: i16,
    reply: oneshot::Sender<Result<Bytes>>,
}

#[derive(Default)]
struct Shared {
    in_flight: VecDeque<InFlight>,
    dead: Option<ClientError>,
}

impl Shared {
    /// Marks the connection dead and fails every waiter with `err`.
    fn kill(&mut self, err: ClientError) {
        if self.dead.is_none() {
            self.dead = Some(err.clone());
        }
        for f in self.in_flight.drain(..) {
            let _ = f.reply.send(Err(err.clone()));
        }
    }
}

struct Inner {
    addr: String,
    tx: mpsc::Sender<Outgoing>,
    permits: Arc<Semaphore>,
    shared: Arc<Mutex<Shared>>,
    versions: OnceLock<Negotiated>,
    request_timeout: Duration,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The tasks end when the last handle goes away.
        let _ = self.shutdown.send(true);
    }
}

/// A cheap-to-clone handle to one broker connection.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.inner.addr)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl crate::sasl::SaslChannel for Connection {
    fn peer(&self) -> &str {
        self.addr()
    }
    fn handshake(
        &self,
        req: &SaslHandshakeRequest,
    ) -> impl std::future::Future<Output = Result<SaslHandshakeResponse>> + Send {
        self.call(req)
    }
    fn authenticate(
        &self,
        req: &SaslAuthenticateRequest,
    ) -> impl std::future::Future<Output = Result<SaslAuthenticateResponse>> + Send {
        self.call(req)
    }
}

impl Connection {
    /// Dials `addr`, negotiates API versions and authenticates, all within
    /// `connect_timeout`.
    pub async fn open(addr: &str, config: &ClientConfig) -> Result<Self> {
        let fut = async {
            let stream = transport::open(addr, config.tls.as_ref()).await?;
            let conn = Self::over_stream(addr, stream, config);
            conn.negotiate().await?;
            if let Some(sasl) = &config.sasl {
                crate::sasl::authenticate(&conn, sasl).await?;
            }
            Ok(conn)
        };
        match tokio::time::timeout(config.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::ConnectTimeout {
                addr: addr.to_owned(),
                after: config.connect_timeout,
            }),
        }
    }

    /// Starts the connection tasks over an open stream (no negotiation).
    pub fn over_stream(addr: &str, stream: Box<dyn Stream>, config: &ClientConfig) -> Self {
        let (rd, wr) = tokio::io::split(stream);
        let n = config.max_in_flight_per_connection.max(1);
        let (tx, rx) = mpsc::channel(n);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let client_id = StrBytes::from_string(config.client_id.clone());
        tokio::spawn(write_loop(
            addr.to_owned(),
            wr,
            rx,
            Arc::clone(&shared),
            client_id,
            shutdown_rx.clone(),
        ));
        tokio::spawn(read_loop(
            addr.to_owned(),
            rd,
            Arc::clone(&shared),
            config.max_response_bytes,
            shutdown_rx,
        ));
        Self {
            inner: Arc::new(Inner {
                addr: addr.to_owned(),
                tx,
                permits: Arc::new(Semaphore::new(n)),
                shared,
                versions: OnceLock::new(),
                request_timeout: config.request_timeout,
                shutdown,
            }),
        }
    }

    /// `host:port` of the broker.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// False once the connection failed or was closed.
    pub fn is_alive(&self) -> bool {
        self.inner.shared.lock().dead.is_none() && !*self.inner.shutdown.borrow()
    }

    /// Closes the connection; pending calls fail with `ConnectionClosed`.
    pub fn close(&self) {
        self.inner
            .shared
            .lock()
            .kill(ClientError::ConnectionClosed {
                addr: self.inner.addr.clone(),
                mid_response: false,
            });
        let _ = self.inner.shutdown.send(true);
    }

    fn close_with(&self, err: ClientError) {
        self.inner.shared.lock().kill(err);
        let _ = self.inner.shutdown.send(true);
    }

    /// The negotiated version of `key`.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        self.inner
            .versions
            .get()
            .and_then(|v| v.version(key as i16))
            .ok_or_else(|| ClientError::UnsupportedApi {
                addr: self.inner.addr.clone(),
                api: key,
            })
    }

    /// Sends `req` at the negotiated version and decodes the response.
    pub async fn call<R: Request>(&self, req: &R) -> Result<R::Response> {
        let key = api_key::<R>()?;
        let version = self.version(key)?;
        self.call_at(req, version, Duration::ZERO).await
    }

    /// Like [`call`](Self::call), allowing `extra` time beyond the request
    /// timeout (long-poll fetches, group joins).
    pub async fn call_extra<R: Request>(&self, req: &R, extra: Duration) -> Result<R::Response> {
        let key = api_key::<R>()?;
        let version = self.version(key)?;
        self.call_at(req, version, extra).await
    }

    /// Sends `req` at `version` and decodes the response.
    pub async fn call_at<R: Request>(
        &self,
        req: &R,
        version: i16,
        extra: Duration,
    ) -> Result<R::Response> {
        let key = api_key::<R>()?;
        let body = encode(req, key, version)?;
        let bytes = self.call_raw(key, version, body, extra).await?;
        self.decode::<R::Response>(key, version, bytes)
    }

    /// Decodes a response body; garbage closes the connection.
    fn decode<T: Decodable>(&self, key: ApiKey, version: i16, mut bytes: Bytes) -> Result<T> {
        // The codec must not panic on broker bytes, but we do not rely on it.
        let res = std::panic::catch_unwind(AssertUnwindSafe(|| T::decode(&mut bytes, version)));
        let err = match res {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the decoder panicked".to_owned(),
        };
        let err = ClientError::Garbage {
            addr: self.inner.addr.clone(),
            api: key,
            reason: format!("v{version} body: {err}"),
        };
        self.close_with(err.clone());
        Err(err)
    }

    /// Sends an encoded body and returns the response body (after the
    /// response header).
    pub async fn call_raw(
        &self,
        api: ApiKey,
        version: i16,
        body: Bytes,
        extra: Duration,
    ) -> Result<Bytes> {
        self.submit_raw(api, version, body, extra)
            .await?
            .wait()
            .await
    }

    /// Queues a request on the connection and returns once it is queued
    /// (requests submitted one after the other are written in that order);
    /// the returned handle waits for the response.
    pub async fn submit_raw(
        &self,
        api: ApiKey,
        version: i16,
        body: Bytes,
        extra: Duration,
    ) -> Result<PendingResponse> {
        let limit = self.inner.request_timeout + extra;
        let deadline = tokio::time::Instant::now() + limit;
        let timeout_err = || ClientError::Timeout {
            addr: self.inner.addr.clone(),
            api,
            after: limit,
        };
        let permit =
            tokio::time::timeout_at(deadline, Arc::clone(&self.inner.permits).acquire_owned())
                .await
                .map_err(|_| timeout_err())?
                .map_err(|_| self.dead_error())?;
        self.check_alive()?;
        let (reply, rx) = oneshot::channel();
        let out = Outgoing {
            api,
            version,
            body,
            reply: Some(reply),
            written: None,
        };
        tokio::time::timeout_at(deadline, self.inner.tx.send(out))
            .await
            .map_err(|_| timeout_err())?
            .map_err(|_| self.dead_error())?;
        Ok(PendingResponse {
            conn: self.clone(),
            api,
            version,
            rx,
            deadline,
            limit,
            _permit: permit,
        })
    }

    /// Decodes a response body of type `T` received for `api` at `version`.
    pub fn decode_response<T: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        bytes: Bytes,
    ) -> Result<T> {
        self.decode(api, version, bytes)
    }

    /// Writes a request that gets no response (produce with acks=0);
    /// returns once the bytes are handed to the socket.
    pub async fn send_oneway(&self, api: ApiKey, version: i16, body: Bytes) -> Result<()> {
        let limit = self.inner.request_timeout;
        let timeout_err = || ClientError::Timeout {
            addr: self.inner.addr.clone(),
            api,
            after: limit,
        };
        self.check_alive()?;
        let (written, rx) = oneshot::channel();
        let out = Outgoing {
            api,
            version,
            body,
            reply: None,
            written: Some(written),
        };
        let fut = async {
            self.inner
                .tx
                .send(out)
                .await
                .map_err(|_| self.dead_error())?;
            rx.await.map_err(|_| self.dead_error())?
        };
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| timeout_err())?
    }

    fn check_alive(&self) -> Result<()> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(self.dead_error())
        }
    }

    fn dead_error(&self) -> ClientError {
        self.inner
            .shared
            .lock()
            .dead
            .clone()
            .unwrap_or_else(|| ClientError::ConnectionClosed {
                addr: self.inner.addr.clone(),
                mid_response: false,
            })
    }

    /// ApiVersions: v3 first, v0 when the broker does not know v3.
    async fn negotiate(&self) -> Result<()> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("starlog-clients"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let key = ApiKey::ApiVersions;
        let body = encode(&req, key, API_VERSIONS_FIRST)?;
        let bytes = self
            .call_raw(key, API_VERSIONS_FIRST, body, Duration::ZERO)
            .await?;
        let resp = match self.decode::<ApiVersionsResponse>(key, API_VERSIONS_FIRST, bytes.clone())
        {
            Ok(r) if r.error_code == 0 => r,
            first => {
                // An old broker answers an unknown version with error 35 in
                // the v0 layout; anything else is a real failure.
                let v0 = ApiVersionsResponse::decode(&mut bytes.clone(), 0).ok();
                if v0.as_ref().is_some_and(|r| r.error_code == 35) {
                    let body = encode(&ApiVersionsRequest::default(), key, 0)?;
                    let bytes = self.call_raw(key, 0, body, Duration::ZERO).await?;
                    self.decode::<ApiVersionsResponse>(key, 0, bytes)?
                } else {
                    let r = first?;
                    crate::error::check(r.error_code, || {
                        format!("ApiVersions from {}", self.addr())
                    })?;
                    r
                }
            }
        };
        let _ = self.inner.versions.set(Negotiated::from_response(&resp));
        Ok(())
    }
}

/// A queued request's response, awaited with [`PendingResponse::wait`].
#[derive(Debug)]
pub struct PendingResponse {
    conn: Connection,
    api: ApiKey,
    version: i16,
    rx: oneshot::Receiver<Result<Bytes>>,
    deadline: tokio::time::Instant,
    limit: Duration,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl PendingResponse {
    /// The API and version of the request.
    pub fn api_version(&self) -> (ApiKey, i16) {
        (self.api, self.version)
    }

    /// The connection the request went to.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Waits for the response body (bounded by the request timeout).
    pub async fn wait(self) -> Result<Bytes> {
        match tokio::time::timeout_at(self.deadline, self.rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.conn.dead_error()),
            Err(_) => {
                debug!(addr = %self.conn.inner.addr, api = ?self.api, "request timed out");
                Err(ClientError::Timeout {
                    addr: self.conn.inner.addr.clone(),
                    api: self.api,
                    after: self.limit,
                })
            }
        }
    }
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| ClientError::Encode {
        what: format!("api key {}", R::KEY),
        reason: "unknown API".to_owned(),
    })
}

/// Encodes a request body.
pub(crate) fn encode<R: Encodable>(req: &R, key: ApiKey, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    req.encode(&mut buf, version)
        .map_err(|e| ClientError::Encode {
            what: format!("{key:?} v{version}"),
            reason: e.to_string(),
        })?;
    Ok(buf.freeze())
}

async fn write_loop(
    addr: String,
    wr: tokio::io::WriteHalf<Box<dyn Stream>>,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Mutex<Shared>>,
    client_id: StrBytes,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut correlation: i32 = 0;
    loop {
        let out = tokio::select! {
            o = rx.recv() => o,
            _ = shutdown.changed() => None,
        };
        let Some(mut out) = out else { break };
        correlation = correlation.wrapping_add(1);
        let res = write_one(&mut wr, &mut out, correlation, &client_id, &shared).await;
        // Flush when nothing else is queued: pipelined requests share a write.
        let res = match res {
            Ok(()) if rx.is_empty() => wr.flush().await,
            other => other,
        };
        if let Err(e) = res {
            let err = ClientError::Io {
                addr: addr.clone(),
                source: Arc::new(e),
            };
            if let Some(w) = out.written {
                let _ = w.send(Err(err.clone()));
            }
            shared.lock().kill(err);
            break;
        }
        if let Some(w) = out.written {
            if !rx.is_empty() {
                // acks=0 callers must know the bytes left: flush now.
                if let Err(e) = wr.flush().await {
                    let err = ClientError::Io {
                        addr: addr.clone(),
                        source: Arc::new(e),
                    };
                    let _ = w.send(Err(err.clone()));
                    shared.lock().kill(err);
                    break;
                }
            }
            let _ = w.send(Ok(()));
        }
    }
    // Fail whatever is still queued.
    rx.close();
    let err = shared
        .lock()
        .dead
        .clone()
        .unwrap_or(ClientError::ConnectionClosed {
            addr: addr.clone(),
            mid_response: false,
        });
    while let Ok(out) = rx.try_recv() {
        if let Some(r) = out.reply {
            let _ = r.send(Err(err.clone()));
        }
        if let Some(w) = out.written {
            let _ = w.send(Err(err.clone()));
        }
    }
    let _ = wr.shutdown().await;
}

async fn write_one<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut Outgoing,
    correlation: i32,
    client_id: &StrBytes,
    shared: &Mutex<Shared>,
) -> std::io::Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(out.api as i16)
        .with_request_api_version(out.version)
        .with_correlation_id(correlation)
        .with_client_id(Some(client_id.clone()));
    let mut head = BytesMut::with_capacity(64);
    head.put_i32(0);
    header
        .encode(&mut head, out.api.request_header_version(out.version))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let size = head.len() - 4 + out.body.len();
    let size = i32::try_from(size)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "request over 2 GiB"))?;
    head[..4].copy_from_slice(&size.to_be_bytes());
    if let Some(reply) = out.reply.take() {
        let mut s = shared.lock();
        if let Some(dead) = &s.dead {
            let msg = dead.to_string();
            let _ = reply.send(Err(dead.clone()));
            return Err(std::io::Error::new(std::io::ErrorKind::NotConnected, msg));
        }
        // Registered before the bytes leave, so the reader always finds it.
        s.in_flight.push_back(InFlight {
            correlation,
            api: out.api,
            response_header_version: out.api.response_header_version(out.version),
            reply,
        });
    }
    wr.write_all(&head).await?;
    wr.write_all(&out.body).await
}

/// Reads exactly `buf.len()` bytes; `Err(Ok(n))` is EOF after `n` bytes.
async fn read_full<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut [u8],
) -> std::result::Result<(), std::result::Result<usize, std::io::Error>> {
    let mut n = 0;
    while n < buf.len() {
        match rd.read(&mut buf[n..]).await {
            Ok(0) => return Err(Ok(n)),
            Ok(k) => n += k,
            Err(e) => return Err(Err(e)),
        }
    }
    Ok(())
}

async fn read_loop(
    addr: String,
    mut rd: tokio::io::ReadHalf<Box<dyn Stream>>,
    shared: Arc<Mutex<Shared>>,
    max_frame: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let err = tokio::select! {
        e = read_frames(&addr, &mut rd, &shared, max_frame) => e,
        _ = shutdown.changed() => ClientError::ConnectionClosed { addr: addr.clone(), mid_response: false },
    };
    debug!(%addr, error = %err, "connection reader stops");
    shared.lock().kill(err);
}

/// Reads response frames until the connection fails; returns why.
async fn read_frames<R: AsyncRead + Unpin>(
    addr: &str,
    rd: &mut R,
    shared: &Mutex<Shared>,
    max_frame: usize,
) -> ClientError {
    let closed = |mid: bool| ClientError::ConnectionClosed {
        addr: addr.to_owned(),
        mid_response: mid,
    };
    let io = |e: std::io::Error| ClientError::Io {
        addr: addr.to_owned(),
        source: Arc::new(e),
    };
    loop {
        let mut size = [0u8; 4];
        match read_full(rd, &mut size).await {
            Ok(()) => {}
            Err(Ok(0)) => return closed(false),
            Err(Ok(_)) => return closed(true),
            Err(Err(e)) => return io(e),
        }
        let size = i32::from_be_bytes(size);
        let api_of_front = || {
            shared
                .lock()
                .in_flight
                .front()
                .map(|f| f.api)
                .unwrap_or(ApiKey::ApiVersions)
        };
        if size < 4 || usize::try_from(size).map_or(true, |s| s > max_frame) {
            if size >= 4 {
                return ClientError::FrameTooLarge {
                    addr: addr.to_owned(),
                    size: i64::from(size),
                    limit: max_frame,
                };
            }
            return ClientError::Garbage {
                addr: addr.to_owned(),
                api: api_of_front(),
                reason: format!("frame size {size}"),
            };
        }
        // Bounded by max_frame above. Read into spare capacity: no zeroing
        // pass over large fetch responses.
        let size = size as usize;
        let mut buf = BytesMut::with_capacity(size);
        while buf.len() < size {
            let remaining = size - buf.len();
            // Never past this frame: the next frame's bytes stay in the socket.
            let mut limited = (&mut buf).limit(remaining);
            match rd.read_buf(&mut limited).await {
                Ok(0) => return closed(true),
                Ok(_) => {}
                Err(e) => return io(e),
            }
        }
        let mut frame = buf.freeze();
        let correlation = (&frame[..4]).get_i32();
        let Some(entry) = shared.lock().in_flight.pop_front() else {
            return ClientError::Garbage {
                addr: addr.to_owned(),
                api: ApiKey::ApiVersions,
                reason: format!("unsolicited response (correlation id {correlation})"),
            };
        };
        if entry.correlation != correlation {
            let err = ClientError::Garbage {
                addr: addr.to_owned(),
                api: entry.api,
                reason: format!(
                    "correlation id {correlation}, expected {}",
                    entry.correlation
                ),
            };
            let _ = entry.reply.send(Err(err.clone()));
            return err;
        }
        match ResponseHeader::decode(&mut frame, entry.response_header_version) {
            Ok(_) => {
                let _ = entry.reply.send(Ok(frame));
            }
            Err(e) => {
                let err = ClientError::Garbage {
                    addr: addr.to_owned(),
                    api: entry.api,
                    reason: format!("response header: {e}"),
                };
                let _ = entry.reply.send(Err(err.clone()));
                return err;
            }
        }
    }
}
