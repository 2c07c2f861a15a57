//! One WebSocket connection: reads frames, hands decoded requests to the dispatcher, writes
//! queued frames, pings, and closes with a typed code. Runs on the actix worker that accepted
//! it; everything heavier runs in the dispatcher on the broker runtime.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_ws::{AggregatedMessage, CloseReason, MessageStream, Session};
use plexus_proto::{decode_request, encode_server_frame, limits, CloseCode, ErrorCode, Response, ServerFrame};
use tokio::sync::mpsc;

use crate::{actors::ConnHandle, app::Broker};

/// Frames beyond this size are a protocol violation (the stream is cut); frames between
/// [`limits::MAX_FRAME_BYTES`] and this get a typed error and the connection lives on.
const HARD_FRAME_LIMIT: usize = limits::MAX_FRAME_BYTES * 4;

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

/// Serve one connection until it closes.
pub async fn run(broker: Arc<Broker>, mut session: Session, stream: MessageStream) {
    crate::metrics::connections().inc();
    let mut stream =
        stream.max_frame_size(HARD_FRAME_LIMIT).aggregate_continuations().max_continuation_size(HARD_FRAME_LIMIT);
    let (frames_tx, mut frames_rx) = mpsc::channel(broker.cfg.http.outbound_queue);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let conn = ConnHandle { frames: frames_tx, control: control_tx };
    let (req_tx, req_rx) = mpsc::channel(256);
    let dispatcher = broker.rt.spawn(super::dispatch::run(broker.clone(), conn.clone(), req_rx));

    let every = Duration::from_secs(broker.cfg.http.ping_interval_secs.max(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let idle_timeout = Duration::from_secs(broker.cfg.http.idle_timeout_secs.max(2));
    let mut last_heard = Instant::now();
    let mut shutdown = broker.shutdown.subscribe();
    if *shutdown.borrow() {
        let _ = session.close(Some(shutdown_reason(&broker))).await;
        return;
    }

    let close: Option<CloseCode> = loop {
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
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket protocol error");
                    break Some(CloseCode::ProtocolViolation);
                }
            },
            Some(frame) = frames_rx.recv() => {
                if session.binary(frame).await.is_err() {
                    break None;
                }
            }
            Some(code) = control_rx.recv() => break Some(code),
            Ok(()) = shutdown.changed() => break Some(CloseCode::ServerShutdown),
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_timeout {
                    break Some(CloseCode::HeartbeatTimeout);
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
        }
    };
    drop(req_tx);
    let _ = dispatcher.await;
    if let Some(code) = close {
        if code != CloseCode::SlowConsumer {
            // Responses already queued (e.g. the error that explains the close) still go out.
            while let Ok(frame) = frames_rx.try_recv() {
                if session.binary(frame).await.is_err() {
                    break;
                }
            }
        }
        let reason = if code == CloseCode::ServerShutdown {
            shutdown_reason(&broker)
        } else {
            CloseReason { code: actix_ws::CloseCode::Other(code.as_u16()), description: Some(format!("{code:?}")) }
        };
        let _ = session.close(Some(reason)).await;
    } else {
        let _ = session.close(None).await;
    }
    crate::metrics::connections().dec();
}
