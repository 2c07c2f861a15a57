//! In-memory fan-out, presence directory and locks, for single-node mode.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use plexus_proto::types::PeerInfo;
use uuid::Uuid;

use super::{EventSink, FanOut, LockGrant, LockService, MeshEvent, PresenceDirectory};

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
        removed
    }

    async fn list(&self, mesh_id: Uuid) -> Vec<PeerInfo> {
        let m = self.meshes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut peers: Vec<PeerInfo> = m.get(&mesh_id).map(|s| s.values().cloned().collect()).unwrap_or_default();
        peers.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.session_id.cmp(&b.session_id)));
        peers
    }
}

struct Held {
    holder: String,
    token: u64,
    expires: Instant,
}

/// Locks within one process.
#[derive(Default)]
pub struct MemoryLocks {
    inner: Mutex<LocksInner>,
}

#[derive(Default)]
struct LocksInner {
    held: HashMap<String, Held>,
    fencing: HashMap<Uuid, u64>,
}

#[async_trait::async_trait]
impl LockService for MemoryLocks {
    async fn try_acquire(&self, scope: Uuid, key: &str, holder: &str, ttl: Duration) -> Option<LockGrant> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(h) = inner.held.get(key) {
            if h.expires > now {
                return None;
            }
        }
        let counter = inner.fencing.entry(scope).or_insert(0);
        *counter += 1;
        let token = *counter;
        inner.held.insert(key.to_owned(), Held { holder: holder.to_owned(), token, expires: now + ttl });
        Some(LockGrant { fencing_token: token })
    }

    async fn renew(&self, key: &str, holder: &str, token: u64, ttl: Duration) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match inner.held.get_mut(key) {
            Some(h) if h.holder == holder && h.token == token && h.expires > now => {
                h.expires = now + ttl;
                true
            }
            _ => false,
        }
    }

    async fn release(&self, key: &str, holder: &str, token: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match inner.held.get(key) {
            Some(h) if h.holder == holder && h.token == token => {
                inner.held.remove(key);
                true
            }
            _ => false,
        }
    }
}
