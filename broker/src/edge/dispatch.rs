//! The request loop of one connection, on the broker runtime. A connection is anonymous until
//! its hello succeeds; then it is bound to one mesh, member and session for its lifetime.
//! The loop serves `hello` and `send` itself (they change the connection or must keep its
//! order); every other op goes through [`super::registry`] and runs concurrently.

use std::sync::Arc;
use uuid::Uuid;

use plexus_proto::{
    decode_body, encode_server_frame,
    ops::{self, Op},
    CloseCode, Request, Response, ServerFrame, PROTOCOL_VERSION,
};
use ractor::ActorRef;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{
    ops as handlers,
    registry::{self, Routed},
};
use crate::{
    actors::{presence_session::SessionMsg, ConnHandle},
    admission::Slot,
    app::Broker,
    coord::Caller,
    error::OpError,
};

/// What a completed hello binds the connection to.
#[derive(Debug)]
pub struct Authed {
    /// The mesh, member and session, as coordination sees a caller.
    pub who: Caller,
    /// Whether the member holds the mesh key.
    pub holds_mesh_key: bool,
    /// Connection mode.
    pub mode: plexus_proto::types::SessionMode,
    /// The presence actor (session mode).
    pub session: Option<ActorRef<SessionMsg>>,
    /// Connection id.
    pub conn_id: u64,
    /// Session rooms this connection is attached to.
    pub rooms: std::sync::Mutex<Vec<Uuid>>,
}

impl Authed {
    /// Note an attached room.
    pub fn attached(&self, session_id: Uuid) {
        let mut rooms = self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rooms.contains(&session_id) {
            rooms.push(session_id);
        }
    }

    /// Note a room left.
    pub fn detached(&self, session_id: Uuid) {
        self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|r| *r != session_id);
    }

    /// The rooms attached.
    pub fn rooms(&self) -> Vec<Uuid> {
        self.rooms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Decode and validate an op body.
pub fn body<O: Op>(req: &Request) -> Result<O, OpError> {
    let b: O = decode_body(O::NAME, &req.body)?;
    b.validate()?;
    Ok(b)
}

/// Queue the response to a request.
pub fn respond<T: Serialize>(conn: &ConnHandle, id: u64, op: &str, result: Result<T, OpError>) {
    let response = match result {
        Ok(reply) => {
            crate::metrics::requests().with_label_values(&[op, "ok"]).inc();
            Response::ok(id, &reply).unwrap_or_else(|e| Response::err(id, e.code(), e.to_string()))
        }
        Err(e) => {
            crate::metrics::requests().with_label_values(&[op, "error"]).inc();
            if matches!(e, OpError::Store(_) | OpError::Internal(_)) {
                tracing::warn!(op, error = %e, "request failed");
            }
            let mut response = Response::err(id, e.code(), e.to_string());
            if let (OpError::RateLimited { retry_after_ms, .. }, Some(err)) = (&e, response.err.as_mut()) {
                err.retry_after_ms = Some(*retry_after_ms);
            }
            response
        }
    };
    if let Ok(frame) = encode_server_frame(&ServerFrame::Response(response)) {
        conn.send_frame(frame);
    }
}

/// Serve requests until the connection's request channel closes. A connection that has not
/// said hello within `http.hello_timeout_secs`, or whose hello failed `http.max_failed_hellos`
/// times, is closed with `HelloFailed` (4007): an unauthenticated socket costs the node memory
/// and a slot, and gets nothing for it.
pub async fn run(broker: Arc<Broker>, conn: ConnHandle, mut requests: mpsc::Receiver<Request>, slot: Arc<Slot>) {
    let mut authed: Option<Arc<Authed>> = None;
    let mut known_targets = handlers::KnownTargets::default();
    let hello_deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(broker.cfg.http.hello_timeout_secs.max(1));
    let mut failed_hellos = 0u32;
    loop {
        let next = if authed.is_some() {
            requests.recv().await
        } else {
            match tokio::time::timeout_at(hello_deadline, requests.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    crate::metrics::hello_failures().with_label_values(&["timeout"]).inc();
                    let secs = broker.cfg.http.hello_timeout_secs;
                    conn.close_with(CloseCode::HelloFailed, format!("no hello within {secs} s"));
                    break;
                }
            }
        };
        let Some(req) = next else { break };
        let op = registry::metric_label(&req.op);
        if req.op.len() > plexus_proto::limits::MAX_OP_NAME {
            let too_long =
                plexus_proto::ProtoError::FieldTooLarge { field: "op", max: plexus_proto::limits::MAX_OP_NAME };
            respond::<()>(&conn, req.id, op, Err(OpError::Proto(too_long)));
            continue;
        }
        if req.v != PROTOCOL_VERSION {
            respond::<()>(&conn, req.id, op, Err(OpError::Version { got: req.v, want: PROTOCOL_VERSION }));
            continue;
        }
        match (req.op.as_str(), &authed) {
            (ops::Hello::NAME, None) => match handlers::hello(&broker, &conn, &req).await {
                Ok((a, welcome)) => {
                    authed = Some(Arc::new(a));
                    slot.authenticated();
                    respond(&conn, req.id, op, Ok(welcome));
                }
                Err(e) => {
                    let transient = matches!(e, OpError::Store(_) | OpError::Internal(_));
                    respond::<()>(&conn, req.id, op, Err(e));
                    if !transient {
                        failed_hellos += 1;
                        crate::metrics::hello_failures().with_label_values(&["refused"]).inc();
                        if failed_hellos >= broker.cfg.http.max_failed_hellos.max(1) {
                            conn.close_with(CloseCode::HelloFailed, format!("{failed_hellos} failed hellos"));
                            break;
                        }
                    }
                }
            },
            (ops::Hello::NAME, Some(_)) => respond::<()>(&conn, req.id, op, Err(OpError::AlreadyAuthenticated)),
            (ops::Send::NAME, Some(a)) => {
                // Prepared and enqueued in arrival order, so one connection's messages get
                // increasing sequences; the commit is awaited off the loop.
                match handlers::prepare_send(&broker, a, &mut known_targets, &req).await {
                    Ok(msg) => match broker.log.enqueue(msg).await {
                        Ok(commit) => {
                            let c = conn.clone();
                            tokio::spawn(async move {
                                let result = commit.await.map_err(|e| match e {
                                    crate::store::log::AppendError::Store(_) => {
                                        OpError::Internal("log write failed; resend with the same id")
                                    }
                                    crate::store::log::AppendError::Stopped => OpError::Internal("log writer stopped"),
                                    crate::store::log::AppendError::StaleKey(k) => {
                                        OpError::StaleKey { epoch: k.epoch, rotation_due: k.rotation_due }
                                    }
                                });
                                respond(&c, req.id, op, result);
                            });
                        }
                        Err(_) => respond::<()>(&conn, req.id, op, Err(OpError::Internal("log writer stopped"))),
                    },
                    Err(e) => respond::<()>(&conn, req.id, op, Err(e)),
                }
            }
            (_, authed) => {
                if let Routed::NotHere(req) = registry::route(&broker, &conn, authed.as_ref(), req) {
                    let error = if registry::is_op(&req.op) {
                        OpError::NotAuthenticated
                    } else {
                        OpError::UnknownOp(req.op.chars().take(32).collect())
                    };
                    respond::<()>(&conn, req.id, op, Err(error));
                }
            }
        }
    }
    if let Some(a) = authed {
        if let Some(session) = &a.session {
            let _ = session.cast(SessionMsg::Disconnected);
        }
        if a.mode == plexus_proto::types::SessionMode::Watch {
            broker.unwatch(a.who.mesh_id, a.conn_id).await;
        }
        crate::rooms::connection_closed(&broker, &a).await;
    }
}
