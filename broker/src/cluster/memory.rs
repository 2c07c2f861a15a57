//! In-memory fan-out, presence directory and locks, for single-node mode.

use std::{collections::HashMap, sync::Mutex};

use plexus_proto::types::PeerInfo;
use uuid::Uuid;

use super::{EventSink, FanOut, MeshEvent, PresenceDirectory, PushedMark};

/// Fan-out within one process.
#[derive(Default)]
pub struct MemoryFanOut {
    sinks: Mutex<HashMap<Uuid, EventSink>>,
}

impl FanOut for MemoryFanOut {
    fn publish(&self, mesh_id: Uuid, event: MeshEvent) {
        let sink = self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&mesh_id).cloned();
        if let Some(sink) = sink {
            sink(event);
        }
    }

    fn subscribe(&self, mesh_id: Uuid, sink: EventSink) {
        self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(mesh_id, sink);
    }

    fn unsubscribe(&self, mesh_id: Uuid) {
        self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&mesh_id);
    }
}

/// Presence within one process.
#[derive(Default)]
pub struct MemoryPresence {
    meshes: Mutex<HashMap<Uuid, HashMap<Uuid, PeerInfo>>>,
    pushed: Mutex<HashMap<Uuid, HashMap<Uuid, PushedMark>>>,
}

#[async_trait::async_trait]
impl PresenceDirectory for MemoryPresence {
    async fn upsert(&self, mesh_id: Uuid, peer: PeerInfo) -> Option<PeerInfo> {
        let mut m = self.meshes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(mesh_id).or_default().insert(peer.session_id, peer)
    }

    async fn remove(&self, mesh_id: Uuid, session_id: Uuid) -> bool {
        let mut m = self.meshes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(sessions) = m.get_mut(&mesh_id) else { return false };
        let removed = sessions.remove(&session_id).is_some();
        if sessions.is_empty() {
            m.remove(&mesh_id);
        }
        let mut pushed = self.pushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(marks) = pushed.get_mut(&mesh_id) {
            marks.remove(&session_id);
            if marks.is_empty() {
                pushed.remove(&mesh_id);
            }
        }
        removed
    }

    async fn list(&self, mesh_id: Uuid) -> Vec<PeerInfo> {
        let m = self.meshes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut peers: Vec<PeerInfo> = m.get(&mesh_id).map(|s| s.values().cloned().collect()).unwrap_or_default();
        peers.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.session_id.cmp(&b.session_id)));
        peers
    }

    fn mark_pushed(&self, mesh_id: Uuid, session_id: Uuid, mark: PushedMark) {
        let mut pushed = self.pushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pushed.entry(mesh_id).or_default().insert(session_id, mark);
    }

    async fn pushed_marks(&self, mesh_id: Uuid) -> HashMap<Uuid, PushedMark> {
        let pushed = self.pushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pushed.get(&mesh_id).cloned().unwrap_or_default()
    }
}
