//! MeshActor: this node's router for one mesh. Knows the local sessions (by id, with their
//! addressing) and watch-mode connections, receives the mesh's events from the fan-out and
//! hands each to the sessions it is addressed to.

use std::{collections::HashMap, sync::Arc};

use plexus_proto::{push::Routed, CloseCode};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::{presence_session::SessionMsg, ConnHandle};
use crate::{app::Broker, cluster::MeshEvent, routing::Addressing};

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
}

/// The router.
pub struct MeshActor;

/// State.
pub struct MeshState {
    mesh_id: Uuid,
    sessions: HashMap<Uuid, (Addressing, ActorRef<SessionMsg>)>,
    watchers: HashMap<u64, (Uuid, ConnHandle)>,
}

impl Actor for MeshActor {
    type Msg = MeshMsg;
    type State = MeshState;
    type Arguments = (Uuid, Arc<Broker>);

    async fn pre_start(
        &self,
        _myself: ActorRef<MeshMsg>,
        (mesh_id, _broker): (Uuid, Arc<Broker>),
    ) -> Result<MeshState, ActorProcessingErr> {
        Ok(MeshState { mesh_id, sessions: HashMap::new(), watchers: HashMap::new() })
    }

    async fn handle(
        &self,
        _myself: ActorRef<MeshMsg>,
        msg: MeshMsg,
        state: &mut MeshState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
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
        }
        Ok(())
    }
}

fn on_event(state: &mut MeshState, event: MeshEvent) {
    match event {
        MeshEvent::Message(msg) => {
            for (addressing, actor) in state.sessions.values() {
                if addressing.wants(&msg) {
                    let _ = actor.cast(SessionMsg::Deliver(msg.clone()));
                }
            }
            if !state.watchers.is_empty() {
                let routed = Routed { message: (*msg).clone() };
                for (_, conn) in state.watchers.values() {
                    conn.push(&routed);
                }
            }
        }
        MeshEvent::Peer(ev) => {
            for (_, actor) in state.sessions.values() {
                let _ = actor.cast(SessionMsg::PeerEvent(ev.clone()));
            }
            for (_, conn) in state.watchers.values() {
                conn.push(&*ev);
            }
        }
        MeshEvent::KeyRequest(req) => {
            for (_, actor) in state.sessions.values() {
                let _ = actor.cast(SessionMsg::KeyRequest(req.clone()));
            }
        }
        MeshEvent::KeyGranted { member_id, sealed_mesh_key } => {
            for (addressing, actor) in state.sessions.values() {
                if addressing.member_id == member_id {
                    let _ = actor.cast(SessionMsg::MeshKey(sealed_mesh_key.clone()));
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
