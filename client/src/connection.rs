//! One WebSocket connection to a broker: a reader task that routes responses to their callers
//! and pushes to a channel, a writer task, typed calls with timeouts, and the hello handshake.
//! [`Connection::call`] is the typed call for every op: the op's body type names its wire op
//! and its reply type (`plexus_proto::Op`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use plexus_crypto as crypto;
use plexus_proto::{
    decode_body, decode_server_frame, encode_body, encode_request,
    ops::{self, Op},
    push::PushBody,
    signing,
    types::{Cursor, SessionMode, SessionProfile},
    CloseCode, ErrorCode, Push, Request, Response, ServerFrame, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode as WsCloseCode, Message as WsMessage};
use uuid::Uuid;

use crate::profile::Profile;

/// How long a call waits for its response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// Broker URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The connection closed.
    #[error("connection closed{}", .0.map(|c| format!(" ({c:?})")).unwrap_or_default())]
    Closed(Option<CloseCode>),
    /// The broker answered with an error.
    #[error("{message} (code {code:?})")]
    Remote {
        /// Code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// Over a send rate: nothing was stored; the same request fits after `retry_after`.
    #[error("{message} (retry after {} ms)", retry_after.as_millis())]
    RateLimited {
        /// When it would fit.
        retry_after: Duration,
        /// Detail.
        message: String,
    },
    /// A frame or body did not decode.
    #[error("protocol: {0}")]
    Proto(String),
    /// No response in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Local key material is unusable.
    #[error("keys: {0}")]
    Keys(String),
    /// The local profile could not be read or written.
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// A recipient could not be resolved.
    #[error("{0}")]
    Address(String),
    /// Local state (the cursor, a registration) could not be written.
    #[error("local state: {0}")]
    Io(String),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e.to_string())
    }
}

impl From<plexus_crypto::CryptoError> for ClientError {
    fn from(e: plexus_crypto::CryptoError) -> ClientError {
        ClientError::Keys(e.to_string())
    }
}

impl ClientError {
    /// The broker's error code, when it answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Remote { code, .. } => Some(*code),
            ClientError::RateLimited { .. } => Some(ErrorCode::RateLimited),
            _ => None,
        }
    }

    /// Whether retrying on a new connection may help.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Closed(_) | ClientError::Timeout(_) => true,
            ClientError::Remote { code, .. } => matches!(code, ErrorCode::Internal | ErrorCode::Unavailable),
            _ => false,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// TLS settings for `wss://`.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra CA certificate (PEM) to trust.
    pub ca_file: Option<String>,
}

/// An open connection.
pub struct Connection {
    out: mpsc::Sender<WsMessage>,
    pending: Pending,
    pushes: mpsc::UnboundedReceiver<Push>,
    next_id: AtomicU64,
    closed: watch::Receiver<Option<Option<CloseCode>>>,
    /// A draining broker's "reconnect after" hint (close 4005 `retry_after_ms=…`).
    retry_hint: Arc<Mutex<Option<Duration>>>,
    /// The URL connected to.
    pub url: String,
}

fn tls_connector(opts: &TlsOptions) -> Result<tokio_tungstenite::Connector, String> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(ca) = &opts.ca_file {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("reading {ca}: {e}"))? {
            roots.add(cert.map_err(|e| format!("reading {ca}: {e}"))?).map_err(|e| e.to_string())?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_tungstenite::Connector::Rustls(Arc::new(cfg)))
}

/// `ws://host:port` or `wss://host` → the `/ws` endpoint URL.
pub fn ws_url(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    if trimmed.ends_with("/ws") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/ws")
    }
}

/// `retry_after_ms=<n>` in a close reason.
fn parse_retry_hint(reason: &str) -> Option<u64> {
    let v = reason.split_whitespace().find_map(|w| w.strip_prefix("retry_after_ms="))?;
    v.parse().ok().filter(|ms| *ms <= 60_000)
}

impl Connection {
    /// Open a WebSocket to `url` (a broker base URL or its `/ws` endpoint).
    pub async fn open(url: &str, tls: &TlsOptions) -> Result<Connection, ClientError> {
        let url = ws_url(url);
        let err = |reason: String| ClientError::Connect { url: url.clone(), reason };
        let mut config = tungstenite::protocol::WebSocketConfig::default();
        config.max_message_size = Some(plexus_proto::limits::MAX_FRAME_BYTES * 4);
        config.max_frame_size = Some(plexus_proto::limits::MAX_FRAME_BYTES * 4);
        let connector = if url.starts_with("wss://") { Some(tls_connector(tls).map_err(err)?) } else { None };
        let connect = tokio_tungstenite::connect_async_tls_with_config(&url, Some(config), true, connector);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| err("timed out".into()))?
            .map_err(|e| err(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<WsMessage>(1024);
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let pending: Pending = Arc::default();

        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_pending = pending.clone();
        let retry_hint: Arc<Mutex<Option<Duration>>> = Arc::default();
        let reader_hint = retry_hint.clone();
        let ping_out = out_tx.clone();
        tokio::spawn(async move {
            let mut code = None;
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(WsMessage::Binary(bytes)) => match decode_server_frame(&bytes) {
                        Ok(ServerFrame::Response(r)) => {
                            let waiter =
                                reader_pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&r.id);
                            if let Some(w) = waiter {
                                let _ = w.send(r);
                            }
                        }
                        Ok(ServerFrame::Push(p)) => {
                            let _ = push_tx.send(p);
                        }
                        Err(e) => tracing::warn!(error = %e, "undecodable frame from broker"),
                    },
                    Ok(WsMessage::Ping(p)) => {
                        let _ = ping_out.try_send(WsMessage::Pong(p));
                    }
                    Ok(WsMessage::Close(frame)) => {
                        if let Some(ms) = frame.as_ref().and_then(|f| parse_retry_hint(&f.reason)) {
                            *reader_hint.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(Duration::from_millis(ms));
                        }
                        code = frame.map(|f| match f.code {
                            WsCloseCode::Library(n) => CloseCode::from_u16(n),
                            other => CloseCode::Unknown(u16::from(other)),
                        });
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // Closed first, then fail the waiters: a call that registers after this sees
            // `closed` and fails at once instead of waiting out its timeout.
            let _ = closed_tx.send(Some(code));
            reader_pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        });
        Ok(Connection {
            out: out_tx,
            pending,
            pushes: push_rx,
            next_id: AtomicU64::new(1),
            closed: closed_rx,
            retry_hint,
            url,
        })
    }

    /// How long the broker asked us to wait before reconnecting, if it did (a draining node
    /// spreads its sessions' reconnects this way).
    pub fn retry_hint(&self) -> Option<Duration> {
        *self.retry_hint.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why the connection closed, once it has (`Some(None)`: closed without a code).
    pub fn closed(&self) -> Option<Option<CloseCode>> {
        *self.closed.borrow()
    }

    /// Send raw bytes as one binary frame (tests of malformed input use this).
    pub async fn send_raw(&self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.out.send(WsMessage::Binary(bytes.into())).await.map_err(|_| ClientError::Closed(self.closed().flatten()))
    }

    /// Send a request with an explicit version, op name and raw body; wait for the response.
    pub async fn request_raw(&self, v: u16, op: &str, body: Vec<u8>) -> Result<Response, ClientError> {
        self.request_within(v, op, body, CALL_TIMEOUT).await
    }

    async fn request_within(&self, v: u16, op: &str, body: Vec<u8>, limit: Duration) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(&Request { v, id, op: op.to_owned(), body })
            .map_err(|e| ClientError::Proto(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, tx);
        if self.closed().is_some() {
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            return Err(ClientError::Closed(self.closed().flatten()));
        }
        if self.out.send(WsMessage::Binary(frame.into())).await.is_err() {
            self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
            return Err(ClientError::Closed(self.closed().flatten()));
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(ClientError::Closed(self.wait_closed().await)),
            Err(_) => {
                self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
                Err(ClientError::Timeout(limit))
            }
        }
    }

    async fn wait_closed(&self) -> Option<CloseCode> {
        let mut rx = self.closed.clone();
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(std::option::Option::is_some)).await;
        self.closed().flatten()
    }

    /// Call an op and decode its reply.
    pub async fn call<O: Op>(&self, body: &O) -> Result<O::Reply, ClientError> {
        self.call_waiting(body, Duration::ZERO).await
    }

    /// Call an op the broker may hold for up to `server_wait` (a lock acquire that waits in the
    /// queue); the reply timeout is that plus the usual call timeout.
    pub async fn call_waiting<O: Op>(&self, body: &O, server_wait: Duration) -> Result<O::Reply, ClientError> {
        let bytes = encode_body(body).map_err(|e| ClientError::Proto(e.to_string()))?;
        let r = self.request_within(PROTOCOL_VERSION, O::NAME, bytes, CALL_TIMEOUT + server_wait).await?;
        if let Some(err) = r.err {
            if let (ErrorCode::RateLimited, Some(ms)) = (err.code, err.retry_after_ms) {
                return Err(ClientError::RateLimited { retry_after: Duration::from_millis(ms), message: err.message });
            }
            return Err(ClientError::Remote { code: err.code, message: err.message });
        }
        let ok = r.ok.ok_or_else(|| ClientError::Proto("response without ok or err".into()))?;
        decode_body(O::NAME, &ok).map_err(|e| ClientError::Proto(e.to_string()))
    }

    /// The next push; `None` once the connection is closed.
    pub async fn next_push(&mut self) -> Option<Push> {
        self.pushes.recv().await
    }

    /// Take the push stream, so pushes can be consumed by one task while others make calls.
    /// Afterwards [`Connection::next_push`] returns `None`.
    pub fn take_pushes(&mut self) -> mpsc::UnboundedReceiver<Push> {
        let (_, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.pushes, empty)
    }

    /// Close politely.
    pub async fn close(&self) {
        let _ = self.out.send(WsMessage::Close(None)).await;
    }
}

/// Decode a push body of type `P` if the push is of that kind.
pub fn push_as<P: PushBody>(push: &Push) -> Option<P> {
    if push.push == P::KIND {
        decode_body(P::KIND, &push.body).ok()
    } else {
        None
    }
}

/// Build a signed hello for a profile's member identity and the given session.
pub fn signed_hello(
    profile: &Profile,
    session_id: Uuid,
    session_pubkey: &[u8],
    mode: SessionMode,
    cursor: Option<Cursor>,
    session_profile: SessionProfile,
) -> Result<ops::Hello, ClientError> {
    let member = profile.member_key().map_err(ClientError::Keys)?;
    let nonce: [u8; 16] = crypto::random_array();
    let ts =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let signed = signing::hello_bytes(
        PROTOCOL_VERSION,
        profile.mesh_id,
        profile.member_id,
        session_id,
        session_pubkey,
        ts,
        &nonce,
    );
    Ok(ops::Hello {
        mesh_id: profile.mesh_id,
        member_id: profile.member_id,
        session_id,
        session_pubkey: session_pubkey.to_vec(),
        timestamp_ms: ts,
        nonce: nonce.to_vec(),
        signature: member.sign(&signed).to_vec(),
        mode,
        cursor,
        profile: session_profile,
    })
}

/// Connect to the first reachable broker of the list (starting at `start`), returning the
/// connection and the index used.
pub async fn open_any(brokers: &[String], start: usize, tls: &TlsOptions) -> Result<(Connection, usize), ClientError> {
    let mut last = ClientError::Connect { url: String::new(), reason: "no broker URL configured".into() };
    for k in 0..brokers.len() {
        let i = (start + k) % brokers.len();
        match Connection::open(&brokers[i], tls).await {
            Ok(c) => return Ok((c, i)),
            Err(e) => last = e,
        }
    }
    Err(last)
}
