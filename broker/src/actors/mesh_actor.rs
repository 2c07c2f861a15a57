//! MeshActor: this node's router for one mesh. Knows the local sessions (by id, with their
//! addressing) and watch-mode connections, receives the mesh's events from the fan-out and
//! hands each to the sessions it is addressed to.
//!
//! Messages are routed in sequence order. Because commit order equals sequence order, a
//! message arriving with a sequence above the next expected one proves that everything in
//! between is already committed (or never will be: an id conflict leaves a gap), so the
//! router reads the gap back from Postgres at once instead of waiting. Events can arrive out
//! of order from different nodes, or be lost while Redis is down; a periodic check against the
//! mesh's head sequence and a `Resync` after a pub/sub reconnect close those gaps too.

use std::{collections::HashMap, sync::Arc, time::Duration};

use plexus_proto::{push::Routed, CloseCode};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::{env::LogReader, presence_session::SessionMsg, ConnHandle};
use crate::{cluster::MeshEvent, routing::Addressing};

/// Messages to the router.
pub enum MeshMsg {
    /// An event from the fan-out.
    Event(MeshEvent),
    /// A session became present here (replacing any older actor of the same session id).
    Register {
        /// Its addressing.
        addressing: Addressing,
        /// Its actor.
        actor: ActorRef<SessionMsg>,
    },
    /// A session's groups or visibility changed.
    Readdress(Addressing),
    /// A session left (only if `actor` is still the registered one).
    Unregister {
        /// Session.
        session_id: Uuid,
        /// The actor that is leaving.
        actor: ActorId,
    },
    /// A watch-mode connection.
    Watch {
        /// Connection id.
        conn_id: u64,
        /// Its member.
        member_id: Uuid,
        /// Outbound side.
        conn: ConnHandle,
    },
    /// A watch-mode connection ended.
    Unwatch(u64),
    /// A connection attached to a session room.
    RoomAttach {
        /// The agent session.
        session_id: Uuid,
        /// Connection id.
        conn_id: u64,
        /// Outbound side.
        conn: ConnHandle,
    },
    /// A connection left a room (`None`: every room).
    RoomDetach {
        /// The agent session.
        session_id: Option<Uuid>,
        /// Connection id.
        conn_id: u64,
    },
    /// Compare with the log's head and catch up if behind.
    CheckHead,
}

/// How often the router compares its position with the log's head.
pub const HEAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const CATCHUP_BATCH: u32 = 500;

/// The router.
pub struct MeshActor;

/// State.
pub struct MeshState {
    mesh_id: Uuid,
    log: Arc<dyn LogReader>,
    /// Every message with `seq <= routed_through` has been routed (or never existed).
    routed_through: u64,
    sessions: HashMap<Uuid, (Addressing, ActorRef<SessionMsg>)>,
    watchers: HashMap<u64, (Uuid, ConnHandle)>,
    /// Connections attached to each session room.
    rooms: HashMap<Uuid, HashMap<u64, ConnHandle>>,
}

impl Actor for MeshActor {
    type Msg = MeshMsg;
    type State = MeshState;
    type Arguments = (Uuid, Arc<dyn LogReader>);

    async fn pre_start(
        &self,
        myself: ActorRef<MeshMsg>,
        (mesh_id, log): (Uuid, Arc<dyn LogReader>),
    ) -> Result<MeshState, ActorProcessingErr> {
        // Sessions replay everything up to the head from the log themselves; the router starts
        // from the head.
        let head = log.head(mesh_id).await?.ok_or("mesh vanished")?;
        myself.send_interval(HEAD_CHECK_INTERVAL, || MeshMsg::CheckHead);
        Ok(MeshState {
            mesh_id,
            log,
            routed_through: head,
            sessions: HashMap::new(),
            watchers: HashMap::new(),
            rooms: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<MeshMsg>,
        msg: MeshMsg,
        state: &mut MeshState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MeshMsg::Event(MeshEvent::Message(msg)) => {
                if msg.seq <= state.routed_through {
                    return Ok(());
                }
                if msg.seq > state.routed_through + 1 {
                    catch_up(state, Some(msg.seq)).await;
                }
                route_message(state, &msg);
                state.routed_through = msg.seq;
            }
            MeshMsg::Event(MeshEvent::Resync) | MeshMsg::CheckHead => {
                if let Ok(Some(head)) = state.log.head(state.mesh_id).await {
                    if head > state.routed_through {
                        // Everything up to this head is committed: what is not found is a gap.
                        catch_up(state, Some(head + 1)).await;
                    }
                }
            }
            MeshMsg::Event(event) => on_event(state, event),
            MeshMsg::Register { addressing, actor } => {
                if let Some((_, old)) = state.sessions.insert(addressing.session_id, (addressing, actor.clone())) {
                    if old.get_id() != actor.get_id() {
                        let _ = old.cast(SessionMsg::Replaced);
                    }
                }
            }
            MeshMsg::Readdress(addressing) => {
                if let Some(entry) = state.sessions.get_mut(&addressing.session_id) {
                    entry.0 = addressing;
                }
            }
            MeshMsg::Unregister { session_id, actor } => {
                if state.sessions.get(&session_id).is_some_and(|(_, a)| a.get_id() == actor) {
                    state.sessions.remove(&session_id);
                }
            }
            MeshMsg::Watch { conn_id, member_id, conn } => {
                state.watchers.insert(conn_id, (member_id, conn));
            }
            MeshMsg::Unwatch(conn_id) => {
                state.watchers.remove(&conn_id);
            }
            MeshMsg::RoomAttach { session_id, conn_id, conn } => {
                state.rooms.entry(session_id).or_default().insert(conn_id, conn);
            }
            MeshMsg::RoomDetach { session_id, conn_id } => {
                state.rooms.retain(|room, viewers| {
                    if session_id.is_none_or(|only| only == *room) {
                        viewers.remove(&conn_id);
                    }
                    !viewers.is_empty()
                });
            }
        }
        Ok(())
    }
}

fn route_message(state: &MeshState, msg: &Arc<plexus_proto::push::Message>) {
    // Encoded once for every local recipient (a group body is sealed with the mesh key, the
    // same bytes for all), and only when someone here gets it.
    let mut frame: Option<Option<bytes::Bytes>> = None;
    for (addressing, actor) in state.sessions.values() {
        if addressing.wants(msg) {
            let frame = frame.get_or_insert_with(|| crate::actors::encode_push(&**msg)).clone();
            let _ = actor.cast(SessionMsg::Deliver(msg.clone(), frame));
        }
    }
    if !state.watchers.is_empty() {
        let routed = Routed { message: (**msg).clone() };
        for (_, conn) in state.watchers.values() {
            conn.push(&routed);
        }
    }
}

/// Route every logged message after `routed_through` (and before `until`, if given).
async fn catch_up(state: &mut MeshState, until: Option<u64>) {
    loop {
        let batch = match state.log.messages_between(state.mesh_id, state.routed_through, until, CATCHUP_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                // Leave the gap open: the next message, head check or resync tries again, and
                // sessions replay from the log on reconnect regardless.
                tracing::warn!(mesh_id = %state.mesh_id, error = %e, "catch-up from the log failed");
                return;
            }
        };
        let n = batch.len();
        crate::metrics::catchup_messages().inc_by(n as u64);
        for m in batch {
            let seq = m.seq;
            route_message(state, &Arc::new(m));
            state.routed_through = seq;
        }
        if n < CATCHUP_BATCH as usize {
            break;
        }
    }
    if let Some(until) = until {
        state.routed_through = state.routed_through.max(until - 1);
    }
}

/// A room change goes to the room's viewers here; a permission request also to the sessions
/// and watchers of its member (the person's other devices).
fn route_room(state: &MeshState, session_id: Uuid, event: &crate::rooms::RoomEvent) {
    use crate::rooms::RoomEvent;
    use plexus_proto::room::{ApprovalPush, StreamPush};
    let viewers = state.rooms.get(&session_id);
    match event {
        RoomEvent::Entries(entries) => {
            for conn in viewers.into_iter().flat_map(|v| v.values()) {
                for entry in entries {
                    conn.push(&StreamPush { entry: entry.clone() });
                }
            }
        }
        RoomEvent::State(room) => {
            for conn in viewers.into_iter().flat_map(|v| v.values()) {
                conn.push(&**room);
            }
        }
        RoomEvent::Approval(info, deciders) => {
            let push = Arc::new(ApprovalPush { approval: (**info).clone() });
            let viewing: Vec<u64> = viewers.into_iter().flat_map(|v| v.keys().copied()).collect();
            for conn in viewers.into_iter().flat_map(|v| v.values()) {
                conn.push(&*push);
            }
            // The deciders' sessions (not the asking agent itself; a viewer already has it).
            for (addressing, actor) in state.sessions.values() {
                if deciders.contains(&addressing.member_id) && addressing.session_id != info.session_id {
                    let _ = actor.cast(SessionMsg::Approval(push.clone()));
                }
            }
            for (conn_id, (member_id, conn)) in &state.watchers {
                if deciders.contains(member_id) && !viewing.contains(conn_id) {
                    conn.push(&*push);
                }
            }
        }
    }
}

fn on_event(state: &mut MeshState, event: MeshEvent) {
    match event {
        MeshEvent::Message(msg) => route_message(state, &msg),
        MeshEvent::Resync => {}
        MeshEvent::Peer(ev) => {
            // A hidden session is announced only to its own member (peers hides it too).
            let hidden = !ev.peer.profile.visible;
            for (addressing, actor) in state.sessions.values() {
                if !hidden || addressing.member_id == ev.peer.member_id {
                    let _ = actor.cast(SessionMsg::PeerEvent(ev.clone()));
                }
            }
            for (member_id, conn) in state.watchers.values() {
                if !hidden || *member_id == ev.peer.member_id {
                    conn.push(&*ev);
                }
            }
        }
        MeshEvent::KeyRequest(req) => {
            for (_, actor) in state.sessions.values() {
                let _ = actor.cast(SessionMsg::KeyRequest(req.clone()));
            }
        }
        MeshEvent::KeyGranted { member_id, sealed_mesh_key, granted_by } => {
            for (addressing, actor) in state.sessions.values() {
                if addressing.member_id == member_id {
                    let _ = actor.cast(SessionMsg::MeshKey(sealed_mesh_key.clone(), granted_by));
                }
            }
        }
        MeshEvent::SessionCommand { session_id, member_id, command } => {
            if let Some((addressing, actor)) = state.sessions.get(&session_id) {
                if addressing.member_id == member_id {
                    let _ = actor.cast(SessionMsg::Command(command));
                }
            }
        }
        MeshEvent::MemberGroups { member_id, groups } => {
            let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
            for (addressing, actor) in state.sessions.values_mut() {
                if addressing.member_id == member_id {
                    addressing.groups = names.clone();
                    let _ = actor.cast(SessionMsg::Groups(groups.clone()));
                }
            }
        }
        MeshEvent::Room(session_id, event) => route_room(state, session_id, &event),
        MeshEvent::MemberControls { member_id, controls } => {
            for (addressing, actor) in state.sessions.values() {
                if addressing.member_id == member_id {
                    let _ = actor.cast(SessionMsg::Controls(controls.clone()));
                }
            }
        }
        MeshEvent::KeyEpoch(epoch) => {
            for (_, actor) in state.sessions.values() {
                let _ = actor.cast(SessionMsg::KeyEpoch(epoch.clone()));
            }
            for (_, conn) in state.watchers.values() {
                conn.push(&epoch);
            }
        }
        MeshEvent::MemberRemoved { member_id } => {
            tracing::info!(mesh_id = %state.mesh_id, %member_id, "closing sessions of removed member");
            for (addressing, actor) in state.sessions.values() {
                if addressing.member_id == member_id {
                    let _ = actor.cast(SessionMsg::Close(CloseCode::MemberRemoved));
                }
            }
            for (m, conn) in state.watchers.values() {
                if *m == member_id {
                    conn.close(CloseCode::MemberRemoved);
                }
            }
        }
    }
}
