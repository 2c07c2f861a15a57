//! MeshSupervisor: one per mesh with local sessions on this node. Spawns the MeshActor and
//! every PresenceSession of the mesh as linked children. A failed MeshActor is restarted and
//! the live sessions register with the new one; a failed session is cleaned up here (presence
//! removed, leave published) and its connection closed so the peer resumes elsewhere. When
//! the mesh has had no local session or watcher for [`IDLE_LINGER`], the supervisor stops.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use uuid::Uuid;

use super::{
    env::MeshEnv,
    mesh_actor::{MeshActor, MeshMsg},
    presence_session::{PresenceSession, SessionArgs, SessionMsg, SessionSpec},
    ConnHandle,
};

/// How long an idle mesh keeps its actors (avoids churn when one peer reconnects).
pub const IDLE_LINGER: Duration = Duration::from_secs(30);

/// Messages to a mesh supervisor.
pub enum MeshSupervisorMsg {
    /// Start a presence session; replies with its actor.
    Attach(Box<SessionSpec>, RpcReplyPort<Result<ActorRef<SessionMsg>, String>>),
    /// Register a watch-mode connection.
    Watch {
        /// Connection id.
        conn_id: u64,
        /// Watching member (closed if removed).
        member_id: Uuid,
        /// Its outbound side.
        conn: ConnHandle,
    },
    /// Unregister a watch-mode connection.
    Unwatch(u64),
    /// A connection attached to a session room.
    RoomAttach {
        /// The agent session.
        session_id: Uuid,
        /// Connection id.
        conn_id: u64,
        /// Its outbound side.
        conn: ConnHandle,
    },
    /// A connection left a room (`None`: every room).
    RoomDetach {
        /// The agent session.
        session_id: Option<Uuid>,
        /// Connection id.
        conn_id: u64,
    },
    /// Periodic check for idleness.
    IdleCheck,
}

/// The supervisor.
pub struct MeshSupervisor;

/// Start-up arguments.
pub struct MeshSupervisorArgs {
    /// Mesh.
    pub mesh_id: Uuid,
    /// What the mesh's actors use of the node.
    pub env: Arc<MeshEnv>,
}

/// State.
pub struct MeshSupervisorState {
    mesh_id: Uuid,
    env: Arc<MeshEnv>,
    router: ActorRef<MeshMsg>,
    sessions: HashMap<ActorId, (ActorRef<SessionMsg>, Arc<SessionSpec>)>,
    watchers: HashMap<u64, (Uuid, ConnHandle)>,
    rooms: HashMap<(Uuid, u64), ConnHandle>,
    idle_checks: u32,
}

impl Actor for MeshSupervisor {
    type Msg = MeshSupervisorMsg;
    type State = MeshSupervisorState;
    type Arguments = MeshSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MeshSupervisorMsg>,
        args: MeshSupervisorArgs,
    ) -> Result<MeshSupervisorState, ActorProcessingErr> {
        let router = spawn_router(&myself, args.mesh_id, &args.env).await?;
        myself.send_interval(IDLE_LINGER / 3, || MeshSupervisorMsg::IdleCheck);
        Ok(MeshSupervisorState {
            mesh_id: args.mesh_id,
            env: args.env,
            router,
            sessions: HashMap::new(),
            watchers: HashMap::new(),
            rooms: HashMap::new(),
            idle_checks: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<MeshSupervisorMsg>,
        state: &mut MeshSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.env.fanout.unsubscribe(state.mesh_id);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MeshSupervisorMsg>,
        msg: MeshSupervisorMsg,
        state: &mut MeshSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MeshSupervisorMsg::Attach(spec, reply) => {
                let spec: Arc<SessionSpec> = Arc::from(spec);
                let args =
                    SessionArgs { spec: spec.clone(), router: state.router.clone(), env: state.env.sessions.clone() };
                let result = Actor::spawn_linked(None, PresenceSession, args, myself.get_cell())
                    .await
                    .map(|(session, _)| session)
                    .map_err(|e| e.to_string());
                if let Ok(session) = &result {
                    state.sessions.insert(session.get_id(), (session.clone(), spec));
                }
                let _ = reply.send(result);
            }
            MeshSupervisorMsg::Watch { conn_id, member_id, conn } => {
                state.watchers.insert(conn_id, (member_id, conn.clone()));
                let _ = state.router.cast(MeshMsg::Watch { conn_id, member_id, conn });
            }
            MeshSupervisorMsg::Unwatch(conn_id) => {
                state.watchers.remove(&conn_id);
                let _ = state.router.cast(MeshMsg::Unwatch(conn_id));
            }
            MeshSupervisorMsg::RoomAttach { session_id, conn_id, conn } => {
                state.rooms.insert((session_id, conn_id), conn.clone());
                let _ = state.router.cast(MeshMsg::RoomAttach { session_id, conn_id, conn });
            }
            MeshSupervisorMsg::RoomDetach { session_id, conn_id } => {
                state.rooms.retain(|(s, c), _| !(*c == conn_id && session_id.is_none_or(|only| only == *s)));
                let _ = state.router.cast(MeshMsg::RoomDetach { session_id, conn_id });
            }
            MeshSupervisorMsg::IdleCheck => {
                if state.sessions.is_empty() && state.watchers.is_empty() && state.rooms.is_empty() {
                    state.idle_checks += 1;
                    if state.idle_checks >= 3 {
                        myself.stop(Some("idle".into()));
                    }
                } else {
                    state.idle_checks = 0;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<MeshSupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut MeshSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.sessions.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let id = cell.get_id();
                if id == state.router.get_id() {
                    tracing::error!(mesh_id = %state.mesh_id, error = %err, "mesh router failed; restarting");
                    state.router = spawn_router(&myself, state.mesh_id, &state.env).await?;
                    for (session, _) in state.sessions.values() {
                        let _ = session.cast(SessionMsg::Reregister(state.router.clone()));
                    }
                    for (conn_id, (member_id, conn)) in &state.watchers {
                        let _ = state.router.cast(MeshMsg::Watch {
                            conn_id: *conn_id,
                            member_id: *member_id,
                            conn: conn.clone(),
                        });
                    }
                    for ((session_id, conn_id), conn) in &state.rooms {
                        let _ = state.router.cast(MeshMsg::RoomAttach {
                            session_id: *session_id,
                            conn_id: *conn_id,
                            conn: conn.clone(),
                        });
                    }
                } else if let Some((_, spec)) = state.sessions.remove(&id) {
                    tracing::error!(mesh_id = %state.mesh_id, session_id = %spec.session_id, error = %err, "presence session failed");
                    let _ = state.router.cast(MeshMsg::Unregister { session_id: spec.session_id, actor: id });
                    super::presence_session::announce_gone(&state.env.sessions, &spec, &spec.profile).await;
                    spec.conn.close(plexus_proto::CloseCode::ServerShutdown);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn spawn_router(
    myself: &ActorRef<MeshSupervisorMsg>,
    mesh_id: Uuid,
    env: &Arc<MeshEnv>,
) -> Result<ActorRef<MeshMsg>, ActorProcessingErr> {
    let (router, _) = Actor::spawn_linked(None, MeshActor, (mesh_id, env.log.clone()), myself.get_cell()).await?;
    let sink_ref = router.clone();
    let decided = env.approvals_decided.clone();
    env.fanout.subscribe(
        mesh_id,
        Arc::new(move |event| {
            if let crate::cluster::MeshEvent::Room(_, crate::rooms::RoomEvent::Approval(info, _)) = &event {
                if info.allowed.is_some() {
                    let _ = decided.send(info.id);
                }
            }
            let _ = sink_ref.cast(MeshMsg::Event(event));
        }),
    );
    Ok(router)
}
