//! One WebSocket connection: a control loop that reads frames, hands decoded requests to the
//! dispatcher, pings and closes with a typed code, and a writer task that drains the bounded
//! outbound queue into the socket. Both run on the actix worker that accepted the socket;
//! everything heavier runs in the dispatcher on the broker runtime.
//!
//! The control loop never waits on the socket's write side: a peer that stops reading only
//! stalls the writer, its queue fills, and the connection is cut off as a slow consumer, while
//! the heartbeat keeps running on schedule. A polite close needs the peer to read; when it
//! does not within [`CLOSE_GRACE`] (or [`STUCK_SOCKET_GRACE`] after a slow-consumer or heartbeat
//! close), the TCP connection is reset (see [`super::socket::SocketKiller`]).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_ws::{AggregatedMessage, CloseReason, MessageStream, Session};
use plexus_proto::{decode_request, encode_server_frame, limits, CloseCode, ErrorCode, Response, ServerFrame};
use tokio::sync::{mpsc, oneshot};

use super::socket::SocketKiller;
use crate::admission::Slot;
use crate::{
    actors::{CloseRequest, ConnHandle},
    app::Broker,
};

/// Frames beyond this size are a protocol violation (the stream is cut); frames between
/// [`limits::MAX_FRAME_BYTES`] and this get a typed error and the connection lives on.
const HARD_FRAME_LIMIT: usize = limits::MAX_FRAME_BYTES * 4;

/// How long a closing connection may take to flush its last frames and the close frame before
/// its socket is reset.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long a connection closed for not reading (slow consumer, heartbeat timeout) keeps its
/// socket so a peer that resumes reading still gets the typed close, before it is reset.
pub const STUCK_SOCKET_GRACE: Duration = Duration::from_secs(10);

pub(crate) fn error_frame(id: u64, code: ErrorCode, message: impl Into<String>) -> Vec<u8> {
    encode_server_frame(&ServerFrame::Response(Response::err(id, code, message))).unwrap_or_default()
}

/// Close 4005 with a retry hint: `ServerShutdown retry_after_ms=<n>`, n random below
/// `node.drain_retry_jitter_ms`, so a node's sessions do not all reconnect at the same instant.
fn shutdown_reason(broker: &Broker) -> CloseReason {
    let jitter = broker.cfg.node.drain_retry_jitter_ms.max(1);
    let after = u64::from(plexus_crypto::random_below(jitter.min(u64::from(u32::MAX)) as u32));
    CloseReason {
        code: actix_ws::CloseCode::Other(CloseCode::ServerShutdown.as_u16()),
        description: Some(format!("ServerShutdown retry_after_ms={after}")),
    }
}

/// Control frames for the writer.
enum Control {
    Ping,
    Pong(actix_web::web::Bytes),
}

/// Drain the queues into the socket until told to stop or the socket fails; hands the frame
/// queue back so the closing side can flush what is left.
async fn write_loop(
    mut session: Session,
    mut frames: mpsc::Receiver<bytes::Bytes>,
    mut control: mpsc::Receiver<Control>,
    mut stop: oneshot::Receiver<()>,
) -> mpsc::Receiver<bytes::Bytes> {
    loop {
        let sent = tokio::select! {
            biased;
            _ = &mut stop => return frames,
            Some(c) = control.recv() => match c {
                Control::Ping => tokio::select! {
                    r = session.ping(b"") => r.is_ok(),
                    _ = &mut stop => return frames,
                },
                Control::Pong(b) => tokio::select! {
                    r = session.pong(&b) => r.is_ok(),
                    _ = &mut stop => return frames,
                },
            },
            Some(frame) = frames.recv() => tokio::select! {
                r = session.binary(frame) => r.is_ok(),
                _ = &mut stop => return frames,
            },
        };
        if !sent {
            return frames;
        }
    }
}

/// Serve one connection until it closes.
pub async fn run(
    broker: Arc<Broker>,
    session: Session,
    stream: MessageStream,
    slot: Slot,
    killer: Option<Arc<SocketKiller>>,
) {
    crate::metrics::connections().inc();
    let slot = Arc::new(slot);
    let mut stream =
        stream.max_frame_size(HARD_FRAME_LIMIT).aggregate_continuations().max_continuation_size(HARD_FRAME_LIMIT);
    let (frames_tx, frames_rx) = mpsc::channel(broker.cfg.http.outbound_queue);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<CloseRequest>();
    let conn = ConnHandle::new(frames_tx, control_tx);
    let (req_tx, req_rx) = mpsc::channel(256);
    let dispatcher = broker.rt.spawn(super::dispatch::run(broker.clone(), conn.clone(), req_rx, slot.clone()));
    let (ws_ctl_tx, ws_ctl_rx) = mpsc::channel(4);
    let (stop_writer, stop_rx) = oneshot::channel();
    let mut writer = actix_web::rt::spawn(write_loop(session.clone(), frames_rx, ws_ctl_rx, stop_rx));

    let every = Duration::from_secs(broker.cfg.http.ping_interval_secs.max(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let idle_timeout = Duration::from_secs(broker.cfg.http.idle_timeout_secs.max(2));
    let mut last_heard = Instant::now();
    let mut shutdown = broker.shutdown.subscribe();
    let mut writer_done = false;

    let close: Option<CloseRequest> = if *shutdown.borrow() {
        Some((CloseCode::ServerShutdown, None))
    } else {
        loop {
            tokio::select! {
                incoming = stream.recv() => match incoming {
                    Some(Ok(AggregatedMessage::Binary(bytes))) => {
                        last_heard = Instant::now();
                        match decode_request(&bytes) {
                            Ok(req) => {
                                if req_tx.send(req).await.is_err() {
                                    break None;
                                }
                            }
                            Err(e) => {
                                let code = e.code();
                                crate::metrics::decode_errors().with_label_values(&[&u16::from(code).to_string()]).inc();
                                conn.send_frame(error_frame(0, code, e.to_string()));
                            }
                        }
                    }
                    Some(Ok(AggregatedMessage::Text(_))) => {
                        last_heard = Instant::now();
                        crate::metrics::decode_errors().with_label_values(&[&u16::from(ErrorCode::BadFrame).to_string()]).inc();
                        conn.send_frame(error_frame(0, ErrorCode::BadFrame, "binary MessagePack frames only"));
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        last_heard = Instant::now();
                        let _ = ws_ctl_tx.try_send(Control::Pong(bytes));
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => last_heard = Instant::now(),
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket protocol error");
                        break Some((CloseCode::ProtocolViolation, None));
                    }
                },
                Some(request) = control_rx.recv() => break Some(request),
                Ok(()) = shutdown.changed() => break Some((CloseCode::ServerShutdown, None)),
                _ = ping.tick() => {
                    if last_heard.elapsed() > idle_timeout {
                        break Some((CloseCode::HeartbeatTimeout, None));
                    }
                    // A full control queue means the writer is stuck: the timeout above decides.
                    let _ = ws_ctl_tx.try_send(Control::Ping);
                }
                _ = &mut writer => {
                    // The socket failed under the writer: the peer is gone.
                    writer_done = true;
                    break None;
                }
            }
        }
    };
    drop(req_tx);
    let _ = dispatcher.await;

    // Take the frame queue back from the writer (it may be stuck on a socket nobody reads).
    let _ = stop_writer.send(());
    let mut leftover =
        if writer_done { None } else { tokio::time::timeout(CLOSE_GRACE, &mut writer).await.ok() }.and_then(Result::ok);
    if !writer_done {
        writer.abort();
    }
    // A peer that stopped reading cannot take the close frame until it reads again: queueing it
    // may wait on the full socket, so it gets the stuck-socket grace, not the short one.
    let stuck = matches!(close, Some((CloseCode::SlowConsumer | CloseCode::HeartbeatTimeout, _)));
    let closed = tokio::time::timeout(if stuck { STUCK_SOCKET_GRACE } else { CLOSE_GRACE }, async {
        let mut session = session;
        if let Some((code, reason)) = &close {
            if !matches!(code, CloseCode::SlowConsumer | CloseCode::HeartbeatTimeout) {
                // Responses already queued (e.g. the error that explains the close) still go out.
                if let Some(frames) = leftover.as_mut() {
                    while let Ok(frame) = frames.try_recv() {
                        if session.binary(frame).await.is_err() {
                            return false;
                        }
                    }
                }
            }
            let reason = if *code == CloseCode::ServerShutdown {
                shutdown_reason(&broker)
            } else {
                let text = match reason {
                    Some(r) => format!("{code:?}: {r}"),
                    None => format!("{code:?}"),
                };
                CloseReason { code: actix_ws::CloseCode::Other(code.as_u16()), description: Some(text) }
            };
            session.close(Some(reason)).await.is_ok()
        } else {
            session.close(None).await.is_ok()
        }
    })
    .await;
    if let Some(k) = killer {
        if !matches!(closed, Ok(true)) {
            k.kill();
        } else if stuck {
            // The close frame is queued behind data the peer is not reading: give it a chance to
            // read them and the typed close, then free the socket and its buffers regardless.
            actix_web::rt::spawn(async move {
                tokio::time::sleep(STUCK_SOCKET_GRACE).await;
                k.kill();
            });
        }
    }
    crate::metrics::connections().dec();
}
