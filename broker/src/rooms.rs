//! Session rooms: the rules behind an agent session's stream, the people watching it, the
//! wheel (who drives it), prompts from the driver, permission requests answered by people, and
//! the lock check agent hooks and commit guards ask for.
//!
//! Who may do what:
//! - publish to a stream: the member whose session it is (any of its connections);
//! - read and attach: any member of the mesh (bodies are sealed with the mesh key);
//! - drive (take the wheel, prompt) and answer permission requests: the session's member,
//!   members it granted (`drive_grant`), and admins.
//!
//! Room changes go out as [`MeshEvent::Room`] to every node; each node's router hands them to
//! the connections attached to that room there. The wheel belongs to the holder's session
//! while that session watches the room from any node; once it watches no more, a sweeper frees
//! the wheel after `rooms.wheel_grace_secs`.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use plexus_proto::{
    coord::LockInfo,
    ops::{Done, Sent},
    room::*,
    types::{Priority, Role, Sealing, Target},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    actors::ConnHandle,
    app::Broker,
    cluster::MeshEvent,
    edge::dispatch::Authed,
    edge::ops::actor,
    error::OpError,
    store::{self, audit, log::NewMessage, meshes, rooms as db},
};

/// A room change, routed to the room's viewers on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RoomEvent {
    /// New stream entries.
    Entries(Vec<Entry>),
    /// Viewers, wheel or pending requests changed.
    State(Box<RoomState>),
    /// A permission request was made or decided; also pushed to the sessions of the members
    /// who may answer it (wherever they are, e.g. a phone).
    Approval(Box<ApprovalInfo>, Vec<Uuid>),
}

/// How long a "typing" mark lasts without another.
const TYPING_FOR: Duration = Duration::from_secs(6);

/// The message subtype of a driver's prompt: only `session_prompt` produces it.
pub const PROMPT_SUBTYPE: &str = "prompt";

/// The member a session belongs to.
async fn session_owner(broker: &Broker, a: &Authed, session_id: Uuid) -> Result<Uuid, OpError> {
    meshes::session_member(&broker.pool, a.who.mesh_id, session_id).await?.ok_or(OpError::NotFound("session"))
}

/// Whether the caller may drive (and answer for) a session of `owner`.
async fn may_drive(broker: &Broker, a: &Authed, owner: Uuid) -> Result<bool, OpError> {
    if owner == a.who.member_id || a.who.role >= Role::Admin {
        return Ok(true);
    }
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    Ok(db::granted(&client, a.who.mesh_id, owner, a.who.member_id).await?)
}

/// The state of a room as everyone sees it.
pub async fn room_state(broker: &Broker, mesh_id: Uuid, session_id: Uuid) -> Result<RoomState, OpError> {
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let member_id =
        meshes::session_member(&broker.pool, mesh_id, session_id).await?.ok_or(OpError::NotFound("session"))?;
    let member = meshes::member(&broker.pool, mesh_id, member_id).await?.ok_or(OpError::NotFound("member"))?;
    let online = broker.presence.list(mesh_id).await.iter().any(|p| p.session_id == session_id);
    Ok(RoomState {
        session_id,
        member_id,
        member_name: member.display_name,
        online,
        head: db::head(&client, mesh_id, session_id).await?,
        viewers: db::viewers(&client, mesh_id, session_id).await?,
        wheel: db::wheel_get(&client, mesh_id, session_id).await?,
        pending: db::approvals_pending(&client, mesh_id, session_id).await?,
    })
}

/// Tell every viewer of the room its new state.
pub async fn publish_state(broker: &Broker, mesh_id: Uuid, session_id: Uuid) {
    match room_state(broker, mesh_id, session_id).await {
        Ok(state) => broker.fanout.publish(mesh_id, MeshEvent::Room(session_id, RoomEvent::State(Box::new(state)))),
        Err(e) => tracing::debug!(%session_id, error = %e, "room state unavailable"),
    }
}

/// `stream_append`: the caller's member publishes entries of one of its sessions.
pub async fn stream_append(broker: &Broker, a: &Authed, b: StreamAppend) -> Result<StreamAppended, OpError> {
    // A session publishing its own stream (what `plexus mcp` does) needs no lookup.
    if b.session_id != a.who.session_id && session_owner(broker, a, b.session_id).await? != a.who.member_id {
        return Err(OpError::Forbidden("a session's stream is published by its own member"));
    }
    let max = broker.cfg.rooms.max_stream_bytes;
    let appended = db::append(&broker.pool, a.who.mesh_id, b.session_id, a.who.member_id, &b.entries, max)
        .await?
        .ok_or(OpError::Forbidden("a session's stream is published by its own member"))?;
    let reply = StreamAppended { stored: appended.stored.len() as u32, pruned: appended.pruned };
    if !appended.stored.is_empty() {
        broker.fanout.publish(a.who.mesh_id, MeshEvent::Room(b.session_id, RoomEvent::Entries(appended.stored)));
    }
    Ok(reply)
}

/// `stream_read`: any member reads a session's stream.
pub async fn stream_read(broker: &Broker, a: &Authed, b: StreamRead) -> Result<StreamEntries, OpError> {
    session_owner(broker, a, b.session_id).await?;
    let (entries, more, pruned_below) = db::read(&broker.pool, a.who.mesh_id, b.session_id, b.after, b.limit).await?;
    Ok(StreamEntries { entries, more, pruned_below })
}

/// The viewer key of a connection: `<session>:<node>:<connection>`. One session may watch from
/// several connections; a wheel follows the session part, so a reconnect keeps it.
fn viewer_key(broker: &Broker, a: &Authed) -> String {
    format!("{}:{}:{}", a.who.session_id, broker.node_id, a.conn_id)
}

/// `room_attach`: this connection receives the room's pushes until it detaches or closes.
pub async fn room_attach(broker: &Broker, conn: &ConnHandle, a: &Authed, b: RoomAttach) -> Result<RoomState, OpError> {
    session_owner(broker, a, b.session_id).await?;
    broker.room_attach(a.who.mesh_id, b.session_id, a.conn_id, conn.clone()).await?;
    a.attached(b.session_id);
    db::viewer_add(
        &broker.pool,
        a.who.mesh_id,
        b.session_id,
        &viewer_key(broker, a),
        &broker.node_id,
        a.who.member_id,
        &a.who.name,
    )
    .await?;
    // A returning holder stops its wheel's grace.
    let changed = db::wheels_follow_viewers(&broker.pool).await?;
    for (mesh_id, session_id) in changed.into_iter().filter(|(m, s)| *m == a.who.mesh_id && *s != b.session_id) {
        publish_state(broker, mesh_id, session_id).await;
    }
    let state = room_state(broker, a.who.mesh_id, b.session_id).await?;
    broker.fanout.publish(a.who.mesh_id, MeshEvent::Room(b.session_id, RoomEvent::State(Box::new(state.clone()))));
    Ok(state)
}

/// `room_detach`.
pub async fn room_detach(broker: &Broker, conn: &ConnHandle, a: &Authed, b: RoomDetach) -> Result<Done, OpError> {
    let _ = conn;
    broker.room_detach(a.who.mesh_id, Some(b.session_id), a.conn_id).await;
    a.detached(b.session_id);
    if !db::viewer_remove(&broker.pool, a.who.mesh_id, Some(b.session_id), &viewer_key(broker, a)).await?.is_empty() {
        publish_state(broker, a.who.mesh_id, b.session_id).await;
    }
    Ok(Done {})
}

/// A connection that attached rooms closed: it leaves them (its wheels start their grace
/// at the sweeper's next pass).
pub async fn connection_closed(broker: &Broker, a: &Authed) {
    let rooms = a.rooms();
    if rooms.is_empty() {
        return;
    }
    broker.room_detach(a.who.mesh_id, None, a.conn_id).await;
    match db::viewer_remove(&broker.pool, a.who.mesh_id, None, &viewer_key(broker, a)).await {
        Ok(left) => {
            for session_id in left {
                publish_state(broker, a.who.mesh_id, session_id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not remove room viewers; the sweeper will"),
    }
}

/// `room_typing`.
pub async fn room_typing(broker: &Broker, a: &Authed, b: RoomTyping) -> Result<Done, OpError> {
    let until = SystemTime::now() + TYPING_FOR;
    if !db::viewer_typing(&broker.pool, a.who.mesh_id, b.session_id, &viewer_key(broker, a), until).await? {
        return Err(OpError::Conflict("attach to the room first".into()));
    }
    publish_state(broker, a.who.mesh_id, b.session_id).await;
    Ok(Done {})
}

/// `wheel`: take, request, pass or release.
pub async fn wheel(broker: &Broker, a: &Authed, b: WheelOp) -> Result<RoomState, OpError> {
    let mesh_id = a.who.mesh_id;
    let owner = session_owner(broker, a, b.session_id).await?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::wheel_for_update(&tx, mesh_id, b.session_id).await?;
    let holds = current.as_ref().is_some_and(|w| w.holder_member == a.who.member_id);
    let me = (a.who.member_id, a.who.session_id, a.who.name.as_str());
    match b.action {
        WheelAction::Take => {
            if !may_drive(broker, a, owner).await? {
                return Err(OpError::Forbidden("only the session's member, members it granted and admins drive it"));
            }
            let overrides = owner == a.who.member_id || a.who.role >= Role::Admin;
            if let Some(w) = &current {
                if !holds && !overrides {
                    return Err(OpError::Conflict(format!(
                        "{} has the wheel (token {}); ask for it with request",
                        w.holder_name, w.token
                    )));
                }
            }
            let viewing = db::viewers(&tx, mesh_id, b.session_id).await?.iter().any(|v| v.member_id == a.who.member_id);
            if !viewing {
                return Err(OpError::Conflict("attach to the room before taking its wheel".into()));
            }
            let token = store::coord::next_number(&tx, mesh_id, "wheel").await?;
            db::wheel_set(&tx, mesh_id, b.session_id, me, token).await?;
            let from = current.as_ref().map(|w| w.holder_name.clone());
            let detail = serde_json::json!({ "token": token, "from": from });
            audit::append(&tx, mesh_id, actor(a), "wheel.taken", &b.session_id.to_string(), detail).await?;
        }
        WheelAction::Request => {
            let Some(w) = &current else {
                return Err(OpError::Conflict("nobody has the wheel; take it".into()));
            };
            if holds {
                return Err(OpError::Conflict("you have the wheel".into()));
            }
            if !may_drive(broker, a, owner).await? {
                return Err(OpError::Forbidden("only the session's member, members it granted and admins drive it"));
            }
            let _ = w;
            db::wheel_requested(&tx, mesh_id, b.session_id, &a.who.name).await?;
        }
        WheelAction::Pass => {
            if !holds {
                return Err(OpError::Forbidden("only the holder passes the wheel"));
            }
            let to = b.to.ok_or(OpError::Invalid("pass needs `to`"))?;
            let viewer = tx
                .query_opt(
                    "SELECT viewer, name FROM room_viewers WHERE mesh_id = $1 AND session_id = $2 AND member_id = $3
                     ORDER BY since DESC LIMIT 1",
                    &[&mesh_id, &b.session_id, &to],
                )
                .await
                .map_err(store::StoreError::from)?
                .ok_or_else(|| OpError::Conflict("that member is not in the room".into()))?;
            let (viewer, name): (String, String) = (viewer.get(0), viewer.get(1));
            let to_session =
                viewer.split(':').next().and_then(|s| s.parse::<Uuid>().ok()).ok_or(OpError::Internal("viewer key"))?;
            let allowed = to == owner
                || meshes::member(&broker.pool, mesh_id, to).await?.is_some_and(|m| m.role >= Role::Admin)
                || db::granted(&tx, mesh_id, owner, to).await?;
            if !allowed {
                return Err(OpError::Forbidden("that member may not drive this session (plexus grant drive)"));
            }
            let token = store::coord::next_number(&tx, mesh_id, "wheel").await?;
            db::wheel_set(&tx, mesh_id, b.session_id, (to, to_session, &name), token).await?;
            let detail = serde_json::json!({ "token": token, "to": name, "to_member": to });
            audit::append(&tx, mesh_id, actor(a), "wheel.passed", &b.session_id.to_string(), detail).await?;
        }
        WheelAction::Release => {
            if current.is_none() {
                return Err(OpError::Conflict("nobody has the wheel".into()));
            }
            if !(holds || owner == a.who.member_id || a.who.role >= Role::Admin) {
                return Err(OpError::Forbidden("only the holder, the session's member or an admin releases the wheel"));
            }
            db::wheel_delete(&tx, mesh_id, b.session_id).await?;
            let detail = serde_json::json!({ "holder": current.as_ref().map(|w| w.holder_name.clone()) });
            audit::append(&tx, mesh_id, actor(a), "wheel.released", &b.session_id.to_string(), detail).await?;
        }
    }
    tx.commit().await.map_err(store::StoreError::from)?;
    let state = room_state(broker, mesh_id, b.session_id).await?;
    broker.fanout.publish(mesh_id, MeshEvent::Room(b.session_id, RoomEvent::State(Box::new(state.clone()))));
    Ok(state)
}

/// `drive_grant`.
pub async fn drive_grant(broker: &Broker, a: &Authed, b: DriveGrant) -> Result<DriveGrants, OpError> {
    let m = meshes::member(&broker.pool, a.who.mesh_id, b.member_id).await?;
    if m.is_none_or(|m| m.removed) {
        return Err(OpError::NotFound("member"));
    }
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let members = db::grant(&tx, a.who.mesh_id, a.who.member_id, b.member_id, b.grant).await?;
    let action = if b.grant { "drive.granted" } else { "drive.revoked" };
    audit::append(&tx, a.who.mesh_id, actor(a), action, &b.member_id.to_string(), serde_json::json!({})).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(DriveGrants { members })
}

/// `session_prompt`: the wheel holder's prompt, delivered to the session as a message of
/// subtype `prompt` (which `send` refuses, so an agent can trust where it came from).
pub async fn session_prompt(broker: &Broker, a: &Authed, b: SessionPrompt) -> Result<Sent, OpError> {
    let mesh_id = a.who.mesh_id;
    broker.limits.check_send(mesh_id, a.who.member_id, a.who.session_id).await?;
    session_owner(broker, a, b.session_id).await?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let wheel = db::wheel_get(&client, mesh_id, b.session_id).await?;
    match wheel {
        Some(w) if w.holder_member == a.who.member_id && w.token == b.token => {}
        Some(w) if w.holder_member == a.who.member_id => {
            return Err(OpError::Conflict(format!("the wheel's token is {}, not {}", w.token, b.token)));
        }
        Some(w) => return Err(OpError::Conflict(format!("{} has the wheel; request it first", w.holder_name))),
        None => return Err(OpError::Forbidden("take the wheel before prompting")),
    }
    drop(client);
    let msg = NewMessage {
        mesh_id,
        id: b.id,
        target: Target::Session(b.session_id),
        priority: Priority::Now,
        reply_to: None,
        subtype: Some(PROMPT_SUBTYPE.into()),
        sender_member: a.who.member_id,
        sender_session: a.who.session_id,
        sender_name: a.who.name.clone(),
        sender_pubkey: a.who.session_pubkey.clone(),
        sender_member_pubkey: a.who.member_pubkey.clone(),
        sealing: Sealing::BoxSession,
        nonce: b.nonce,
        ciphertext: b.ciphertext,
        key_epoch: None,
    };
    broker.log.append(msg).await.map_err(|e| match e {
        store::log::AppendError::Store(_) => OpError::Internal("log write failed; resend with the same id"),
        store::log::AppendError::Stopped => OpError::Internal("log writer stopped"),
        store::log::AppendError::StaleKey(k) => OpError::StaleKey { epoch: k.epoch, rotation_due: k.rotation_due },
    })
}

/// `approval_request`: an agent session asks people.
pub async fn approval_request(broker: &Broker, a: &Authed, b: ApprovalRequest) -> Result<ApprovalInfo, OpError> {
    if session_owner(broker, a, b.session_id).await? != a.who.member_id {
        return Err(OpError::Forbidden("a session's permission requests come from its own member"));
    }
    let info = db::approval_insert(&broker.pool, a.who.mesh_id, &b, a.who.member_id).await?;
    publish_approval(broker, a.who.mesh_id, &info).await;
    Ok(info)
}

/// `approval_decide`: the first decision of an authorised person stands.
pub async fn approval_decide(broker: &Broker, a: &Authed, b: ApprovalDecide) -> Result<ApprovalInfo, OpError> {
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let req = db::approval_get(&client, a.who.mesh_id, b.id).await?.ok_or(OpError::NotFound("permission request"))?;
    drop(client);
    if !may_drive(broker, a, req.member_id).await? {
        return Err(OpError::Forbidden("only the session's member, members it granted and admins answer it"));
    }
    let reason = (b.reason_nonce.as_deref(), b.reason_ciphertext.as_deref());
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let decided =
        db::approval_decide(&tx, a.who.mesh_id, b.id, b.allow, (a.who.member_id, &a.who.name), reason).await?;
    if let Some(info) = &decided {
        let detail = serde_json::json!({ "session": info.session_id, "member": info.member_name, "allowed": b.allow });
        let action = if b.allow { "approval.allowed" } else { "approval.denied" };
        audit::append(&tx, a.who.mesh_id, actor(a), action, &b.id.to_string(), detail).await?;
        tx.commit().await.map_err(store::StoreError::from)?;
    }
    let Some(info) = decided else {
        return Err(OpError::Conflict(match req.allowed {
            Some(true) => format!("already allowed by {}", req.decided_by.unwrap_or_default()),
            Some(false) => format!("already denied by {}", req.decided_by.unwrap_or_default()),
            None => "the request expired; the agent asks locally".into(),
        }));
    };
    publish_approval(broker, a.who.mesh_id, &info).await;
    Ok(info)
}

async fn publish_approval(broker: &Broker, mesh_id: Uuid, info: &ApprovalInfo) {
    let deciders = db::deciders(&broker.pool, mesh_id, info.member_id).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "who may answer is unknown; only the room hears of the request");
        Vec::new()
    });
    broker
        .fanout
        .publish(mesh_id, MeshEvent::Room(info.session_id, RoomEvent::Approval(Box::new(info.clone()), deciders)));
}

/// How often a waiting asker looks for a decision this node may not hear of (no local session
/// of the mesh subscribes it to the mesh's events).
const APPROVAL_POLL: Duration = Duration::from_millis(250);

/// `approval_wait`: the asker waits for a decision (or the end of `wait_ms`): woken when this
/// node hears of a decision, with a slow poll behind it.
pub async fn approval_wait(broker: &Broker, a: &Authed, b: ApprovalWait) -> Result<ApprovalInfo, OpError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms);
    let mut decided = broker.approvals_decided.subscribe();
    loop {
        let client = broker.pool.get().await.map_err(store::StoreError::from)?;
        let info =
            db::approval_get(&client, a.who.mesh_id, b.id).await?.ok_or(OpError::NotFound("permission request"))?;
        drop(client);
        if info.member_id != a.who.member_id {
            return Err(OpError::Forbidden("only the asking member waits for a request"));
        }
        let expired = crate::clock::now_ms() >= info.expires_at_ms;
        if info.allowed.is_some() || expired || tokio::time::Instant::now() >= deadline {
            return Ok(info);
        }
        let poll =
            tokio::time::sleep(APPROVAL_POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now())));
        tokio::pin!(poll);
        loop {
            tokio::select! {
                _ = &mut poll => break,
                id = decided.recv() => match id {
                    Ok(id) if id == b.id => break,
                    Ok(_) => {}
                    // Lagged: something may have been ours; look.
                    Err(_) => break,
                },
            }
        }
    }
}

/// `approval_list`: pending requests the caller may answer.
pub async fn approval_list(broker: &Broker, a: &Authed, _: ApprovalList) -> Result<Approvals, OpError> {
    let admin = a.who.role >= Role::Admin;
    Ok(Approvals { approvals: db::approvals_for(&broker.pool, a.who.mesh_id, a.who.member_id, admin).await? })
}

/// The lock-enforcement setting's key and its values.
pub const LOCK_ENFORCEMENT: &str = "lock_enforcement";

/// `lock_check`: held locks overlapping any of the paths, and whether the mesh enforces them.
pub async fn lock_check(broker: &Broker, a: &Authed, b: LockCheck) -> Result<LockConflicts, OpError> {
    let held: Vec<LockInfo> =
        crate::coord::locks::list(&broker.coord, &a.who, plexus_proto::coord::LockList {}).await?.locks;
    let locks =
        held.into_iter().filter(|l| b.paths.iter().any(|p| crate::coord::glob::overlap(&l.pattern, p))).collect();
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let enforcement = db::setting(&client, a.who.mesh_id, LOCK_ENFORCEMENT).await?.unwrap_or_else(|| "enforce".into());
    Ok(LockConflicts { locks, enforcement })
}

/// `mesh_setting_set` (admins).
pub async fn mesh_setting_set(broker: &Broker, a: &Authed, b: MeshSettingSet) -> Result<Done, OpError> {
    match (b.key.as_str(), b.value.as_str()) {
        (LOCK_ENFORCEMENT, "enforce" | "advisory") => {}
        (LOCK_ENFORCEMENT, _) => return Err(OpError::InvalidValue("value", "enforce or advisory".into())),
        _ => return Err(OpError::InvalidValue("key", "known settings: lock_enforcement".into())),
    }
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    db::set_setting(&tx, a.who.mesh_id, &b.key, &b.value).await?;
    audit::append(&tx, a.who.mesh_id, actor(a), "setting.set", &b.key, serde_json::json!({ "value": b.value })).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(Done {})
}

/// One pass of the room sweeper: viewers of dead nodes leave, wheels start or stop their
/// grace, and wheels past it are freed. Every changed room hears its new state.
pub async fn sweep(broker: &Arc<Broker>) -> Result<(), OpError> {
    let mut changed = Vec::new();
    if let Some(live) = broker.coord.liveness.live_node_ids().await {
        changed.extend(db::viewers_of_dead_nodes(&broker.pool, &live).await?);
    }
    changed.extend(db::wheels_follow_viewers(&broker.pool).await?);
    changed.extend(db::wheels_expired(&broker.pool, Duration::from_secs(broker.cfg.rooms.wheel_grace_secs)).await?);
    changed.sort();
    changed.dedup();
    for (mesh_id, session_id) in changed {
        publish_state(broker, mesh_id, session_id).await;
    }
    Ok(())
}

/// Delete stream entries past retention.
pub async fn apply_retention(broker: &Broker) -> Result<u64, OpError> {
    Ok(db::apply_retention(&broker.pool, Duration::from_secs(broker.cfg.rooms.retention_days * 86_400)).await?)
}
