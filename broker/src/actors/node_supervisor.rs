//! NodeSupervisor: the root of a node's actor tree. Owns the registry `mesh_id →
//! MeshSupervisor`, starting one when the first local session of a mesh appears and dropping it
//! when that supervisor stops (its mesh went idle) or fails.

use std::{collections::HashMap, sync::Arc};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use uuid::Uuid;

use super::{
    env::MeshEnv,
    mesh_supervisor::{MeshSupervisor, MeshSupervisorArgs, MeshSupervisorMsg},
};

/// Messages to the node supervisor.
pub enum NodeMsg {
    /// Get (starting if needed) the supervisor of a mesh.
    MeshFor(Uuid, RpcReplyPort<Result<ActorRef<MeshSupervisorMsg>, String>>),
    /// How many meshes are live on this node.
    MeshCount(RpcReplyPort<usize>),
}

/// The root actor.
pub struct NodeSupervisor;

/// State: the registry.
pub struct NodeState {
    env: Arc<MeshEnv>,
    meshes: HashMap<Uuid, ActorRef<MeshSupervisorMsg>>,
}

impl Actor for NodeSupervisor {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = Arc<MeshEnv>;

    async fn pre_start(&self, _myself: ActorRef<NodeMsg>, env: Arc<MeshEnv>) -> Result<NodeState, ActorProcessingErr> {
        Ok(NodeState { env, meshes: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::MeshFor(mesh_id, reply) => {
                let result = self.on_mesh_for(&myself, state, mesh_id).await;
                let _ = reply.send(result);
            }
            NodeMsg::MeshCount(reply) => {
                let _ = reply.send(state.meshes.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<NodeMsg>,
        evt: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        let gone = match &evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => Some(cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(error = %err, "mesh supervisor failed");
                Some(cell.get_id())
            }
            _ => None,
        };
        if let Some(id) = gone {
            state.meshes.retain(|_, sup| sup.get_id() != id);
        }
        Ok(())
    }
}

impl NodeSupervisor {
    async fn on_mesh_for(
        &self,
        myself: &ActorRef<NodeMsg>,
        state: &mut NodeState,
        mesh_id: Uuid,
    ) -> Result<ActorRef<MeshSupervisorMsg>, String> {
        if let Some(sup) = state.meshes.get(&mesh_id) {
            return Ok(sup.clone());
        }
        let args = MeshSupervisorArgs { mesh_id, env: state.env.clone() };
        let (sup, _) =
            Actor::spawn_linked(None, MeshSupervisor, args, myself.get_cell()).await.map_err(|e| e.to_string())?;
        state.meshes.insert(mesh_id, sup.clone());
        Ok(sup)
    }
}
