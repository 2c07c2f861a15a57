//! The seams between nodes: fan-out of mesh events, the presence directory and node
//! liveness. Each is a small trait with two implementations run through one shared test
//! suite: [`memory`] for single-node mode and [`redis`] for clusters. (Locks are rows in
//! Postgres, `coord::locks`: they must survive a Redis restart and commit with their events.)

pub mod memory;
pub mod redis;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use plexus_proto::{
    push::{KeyRequest, Message, PeerEvent},
    types::PeerInfo,
};
use uuid::Uuid;

/// An event routed to every node that has sessions of the mesh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MeshEvent {
    /// A committed message.
    Message(Arc<Message>),
    /// A presence change.
    Peer(Arc<PeerEvent>),
    /// A member waits for the mesh key.
    KeyRequest(KeyRequest),
    /// A member received the mesh key.
    KeyGranted {
        /// The member.
        member_id: Uuid,
        /// Sealed key.
        sealed_mesh_key: Vec<u8>,
        /// Who granted it.
        granted_by: Option<Uuid>,
    },
    /// A command for one session, wherever it is connected (sent by a control connection of
    /// the same member, e.g. `plexus status set`).
    SessionCommand {
        /// Target session.
        session_id: Uuid,
        /// Its member (the command is dropped if the session belongs to another).
        member_id: Uuid,
        /// What to do.
        command: SessionCommand,
    },
    /// A member's groups changed: its sessions are addressed by the new list.
    MemberGroups {
        /// The member.
        member_id: Uuid,
        /// Its groups now.
        groups: Vec<plexus_proto::types::GroupRole>,
    },
    /// A member's blocks, mutes or subscriptions changed: its sessions apply them.
    MemberControls {
        /// The member.
        member_id: Uuid,
        /// Its controls now.
        controls: plexus_proto::controls::Controls,
    },
    /// A member was removed: close its sessions.
    MemberRemoved {
        /// The member.
        member_id: Uuid,
    },
    /// The mesh key was rotated, or a rotation became due: every session is told.
    KeyEpoch(plexus_proto::keys::KeyEpoch),
    /// The fan-out may have lost events (its connection was down): catch up from the log.
    Resync,
    /// A session room changed (the agent session's id, what changed).
    Room(Uuid, crate::rooms::RoomEvent),
}

/// A command for a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SessionCommand {
    /// Report a status.
    SetStatus(plexus_proto::types::Status, plexus_proto::types::StatusSource),
    /// Change the profile.
    SetProfile(plexus_proto::ops::SetProfile),
    /// Drop acknowledged sequences from the session's pending set.
    Acked(Vec<u64>),
}

/// Receives the events of one mesh on this node.
pub type EventSink = Arc<dyn Fn(MeshEvent) + Send + Sync>;

/// Delivers mesh events to every node with local sessions of the mesh.
pub trait FanOut: Send + Sync {
    /// Publish to every subscriber of the mesh (this node's included). Never blocks.
    fn publish(&self, mesh_id: Uuid, event: MeshEvent);
    /// Route the mesh's events to `sink` on this node (replacing any previous sink).
    fn subscribe(&self, mesh_id: Uuid, sink: EventSink);
    /// Stop routing the mesh's events to this node.
    fn unsubscribe(&self, mesh_id: Uuid);
    /// Wake the queued lock acquires of every other node (a lock was released, expired or its
    /// queue moved). Never blocks; single-node fan-outs have no other node.
    fn wake_lock_waiters(&self) {}
    /// Where wakes from other nodes go: this node's waiters.
    fn on_lock_wake(&self, _wake: Arc<tokio::sync::Notify>) {}
    /// Whether the fan-out has been established once (the node may then report ready; later
    /// outages degrade to catch-up from the log instead of failing readiness).
    fn ready(&self) -> bool {
        true
    }
}

/// Who is present in each mesh, across the cluster.
#[async_trait::async_trait]
pub trait PresenceDirectory: Send + Sync {
    /// Insert or replace a session's entry; returns the entry it replaced (`None`: new).
    async fn upsert(&self, mesh_id: Uuid, peer: PeerInfo) -> Option<PeerInfo>;
    /// Remove a session; true when it was present.
    async fn remove(&self, mesh_id: Uuid, session_id: Uuid) -> bool;
    /// Every present session of the mesh.
    async fn list(&self, mesh_id: Uuid) -> Vec<PeerInfo>;
    /// What the session (present on this node) has been pushed. Transient by nature, so it is
    /// kept in memory — the cluster's, in Redis — and written in batches; never blocks.
    fn mark_pushed(&self, mesh_id: Uuid, session_id: Uuid, mark: PushedMark);
    /// The pushed marks of the mesh's sessions (those not present may linger; ask `list`).
    async fn pushed_marks(&self, mesh_id: Uuid) -> std::collections::HashMap<Uuid, PushedMark>;
}

/// Every message addressed to a session at or below `through` and not acknowledged has been
/// pushed to it, except those in `waiting` (held, or in its inbox).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushedMark {
    /// See the type.
    pub through: u64,
    /// Not pushed, at or below `through` (ascending).
    pub waiting: Vec<u64>,
}

impl PushedMark {
    /// Whether `seq` (addressed to the session, not acknowledged) was pushed.
    pub fn pushed(&self, seq: u64) -> bool {
        seq <= self.through && self.waiting.binary_search(&seq).is_err()
    }

    /// As stored: `through` then the waiting sequences, comma-separated.
    pub fn encode(&self) -> String {
        std::iter::once(self.through)
            .chain(self.waiting.iter().copied())
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Inverse of [`PushedMark::encode`] (`None` for anything else).
    pub fn decode(s: &str) -> Option<PushedMark> {
        let mut seqs = s.split(',').map(|p| p.parse::<u64>().ok());
        let through = seqs.next()??;
        let waiting = seqs.collect::<Option<Vec<u64>>>()?;
        Some(PushedMark { through, waiting })
    }
}

/// Which nodes of the cluster are alive.
#[async_trait::async_trait]
pub trait Liveness: Send + Sync {
    /// Ids of the live nodes (their lease is current); `None` when that cannot be known now
    /// (Redis unreachable).
    async fn live_node_ids(&self) -> Option<Vec<String>>;
}

/// One node alone: it is the cluster.
pub struct SingleNode(pub String);

#[async_trait::async_trait]
impl Liveness for SingleNode {
    async fn live_node_ids(&self) -> Option<Vec<String>> {
        Some(vec![self.0.clone()])
    }
}

#[async_trait::async_trait]
impl Liveness for redis::RedisPresence {
    async fn live_node_ids(&self) -> Option<Vec<String>> {
        redis::RedisPresence::live_node_ids(self).await.ok()
    }
}

/// The seams of one node, in-memory or Redis-backed per configuration.
pub struct Seams {
    /// Fan-out.
    pub fanout: Arc<dyn FanOut>,
    /// Presence directory.
    pub presence: Arc<dyn PresenceDirectory>,
    /// The Redis presence directory (for heartbeats and reaping), in cluster mode.
    pub cluster: Option<Arc<redis::RedisPresence>>,
    /// Shared rate budgets.
    pub rates: Box<dyn crate::limits::RateStore>,
}

impl Seams {
    /// In-memory seams when no Redis URL is configured, Redis-backed ones otherwise.
    pub async fn build(cfg: &crate::config::RedisConfig, node_id: &str) -> Result<Seams, redis::RedisSeamError> {
        if cfg.url.is_empty() {
            tracing::info!("single-node mode (no redis.url)");
            return Ok(Seams {
                fanout: Arc::new(memory::MemoryFanOut::default()),
                presence: Arc::new(memory::MemoryPresence::default()),
                cluster: None,
                rates: Box::<crate::limits::MemoryRateStore>::default(),
            });
        }
        let (client, conn) = redis::connect(&cfg.url).await?;
        tracing::info!(%node_id, "cluster mode (redis)");
        let presence = Arc::new(redis::RedisPresence::new(conn.clone(), cfg.prefix.clone(), node_id.to_owned()));
        // Alive before serving anyone, so no survivor reaps sessions this node is about to take.
        presence.heartbeat(Duration::from_secs(cfg.node_ttl_secs)).await?;
        Ok(Seams {
            fanout: Arc::new(redis::RedisFanOut::start(client, conn.clone(), node_id.to_owned(), cfg.prefix.clone())),
            presence: presence.clone(),
            cluster: Some(presence),
            rates: Box::new(redis::RedisRateStore { conn, prefix: cfg.prefix.clone() }),
        })
    }
}
