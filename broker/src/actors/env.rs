//! What the actors get: each the few handles it uses, behind small traits where they touch the
//! database, so an actor can be unit-tested on paused time with in-memory stand-ins (see
//! `tests` in each actor's file) while the node wires in Postgres ([`PgStore`]), Redis and
//! its writers.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use plexus_proto::push::Message;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    clock::Clock,
    cluster::{FanOut, Liveness, PresenceDirectory},
    coord::{
        reminders::{Fired, Firer},
        Coord,
    },
    error::OpError,
    metrics::Backlog,
    status::StatusRules,
    store::{
        cursors::{CursorWriter, StoredCursor},
        log::Addressee,
        meshes::MemberRow,
        reminders::ReminderRow,
        StoreError,
    },
};

/// What a presence session reads and writes in the store.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Messages addressed to the session above `after`, not acknowledged, in order.
    async fn unacked_for(&self, who: &Addressee, after: u64, limit: u32) -> Result<Vec<Message>, StoreError>;
    /// One member (for its granted mesh key).
    async fn member(&self, mesh_id: Uuid, member_id: Uuid) -> Result<Option<MemberRow>, StoreError>;
    /// Members still waiting for the mesh key.
    async fn pending_key_requests(&self, mesh_id: Uuid) -> Result<Vec<MemberRow>, StoreError>;
    /// Merge what the session acknowledged into its stored cursor.
    async fn save_cursor(&self, mesh_id: Uuid, session_id: Uuid, cursor: StoredCursor) -> Result<(), StoreError>;
    /// A member's blocks, mutes and subscriptions.
    async fn controls(&self, mesh_id: Uuid, member_id: Uuid) -> Result<plexus_proto::controls::Controls, StoreError>;
}

/// A session's locks follow its presence: kept while present, released after a grace when
/// it is gone.
#[async_trait]
pub trait SessionLocks: Send + Sync {
    /// The session is present (again): its locks are its own.
    async fn session_started(&self, mesh_id: Uuid, session_id: Uuid);
    /// The session's presence ended here: its locks start their grace.
    async fn session_ended(&self, mesh_id: Uuid, session_id: Uuid);
}

/// What the mesh router reads of the log.
#[async_trait]
pub trait LogReader: Send + Sync {
    /// The mesh's head sequence (`None`: no such mesh).
    async fn head(&self, mesh_id: Uuid) -> Result<Option<u64>, StoreError>;
    /// Messages with `after < seq < before` (or no upper bound), in order.
    async fn messages_between(
        &self,
        mesh_id: Uuid,
        after: u64,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;
}

/// Everything a presence session uses.
pub struct SessionEnv {
    /// Replay, the member's key, the cursor.
    pub store: Arc<dyn SessionStore>,
    /// Who is present, cluster-wide.
    pub presence: Arc<dyn PresenceDirectory>,
    /// Presence events to the mesh.
    pub fanout: Arc<dyn FanOut>,
    /// Lock hand-off on presence.
    pub locks: Arc<dyn SessionLocks>,
    /// The node's backlog gauges.
    pub backlog: Arc<Backlog>,
    /// The status engine's timing.
    pub rules: StatusRules,
    /// Messages per replay batch.
    pub replay_batch: u32,
    /// Replay batches allowed at once on this node.
    pub replay_slots: Arc<Semaphore>,
    /// How often the TTL sweep runs.
    pub sweep_every: Duration,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
}

/// Everything a mesh supervisor and its children use.
pub struct MeshEnv {
    /// The mesh's channel.
    pub fanout: Arc<dyn FanOut>,
    /// What the router reads.
    pub log: Arc<dyn LogReader>,
    /// What sessions use.
    pub sessions: Arc<SessionEnv>,
    /// Ids of permission requests decided (heard on this node), for the askers waiting here.
    pub approvals_decided: tokio::sync::broadcast::Sender<uuid::Uuid>,
}

/// What the reminder scheduler reads of the store.
#[async_trait]
pub trait ReminderStore: Send + Sync {
    /// This node's own reminders due within `horizon`.
    async fn own_due(&self, node_id: &str, horizon: Duration, limit: i64) -> Result<Vec<ReminderRow>, StoreError>;
    /// Claim reminders due within `horizon` that no live node owns.
    async fn claim_due(
        &self,
        node_id: &str,
        live: &[String],
        horizon: Duration,
        limit: i64,
    ) -> Result<Vec<ReminderRow>, StoreError>;
}

/// Fires a due reminder (exactly once cluster-wide; see `coord::reminders`).
#[async_trait]
pub trait Fire: Send + Sync {
    /// Fire `row` if it is still due as the caller saw it.
    async fn fire(&self, row: ReminderRow) -> Result<Fired, OpError>;
}

#[async_trait]
impl Fire for Firer {
    async fn fire(&self, row: ReminderRow) -> Result<Fired, OpError> {
        Firer::fire(self, row).await
    }
}

/// Everything the reminder scheduler and its actors use.
pub struct ReminderEnv {
    /// Claims.
    pub store: Arc<dyn ReminderStore>,
    /// Firing.
    pub firer: Arc<dyn Fire>,
    /// This node.
    pub node_id: String,
    /// Which nodes are alive (whose reminders are theirs).
    pub liveness: Arc<dyn Liveness>,
    /// Reminders due within this get an actor.
    pub horizon: Duration,
    /// How often the scheduler claims.
    pub claim_every: Duration,
    /// Most reminders per claim.
    pub claim_batch: i64,
    /// Wall-clock time (due times).
    pub clock: Arc<dyn Clock>,
    /// Poked when a reminder due soon was created on this node.
    pub due_soon: Arc<tokio::sync::Notify>,
}

// ---------------------------------------------------------------------------------------------
// The production implementations: Postgres.

/// The node's Postgres, as the actors see it.
#[derive(Clone)]
pub struct PgStore {
    /// The pool.
    pub pool: Pool,
    /// The node's cursor writer.
    pub cursors: CursorWriter,
}

#[async_trait]
impl SessionStore for PgStore {
    async fn unacked_for(&self, who: &Addressee, after: u64, limit: u32) -> Result<Vec<Message>, StoreError> {
        crate::store::log::unacked_for(&self.pool, who, after, limit).await
    }

    async fn member(&self, mesh_id: Uuid, member_id: Uuid) -> Result<Option<MemberRow>, StoreError> {
        crate::store::meshes::member(&self.pool, mesh_id, member_id).await
    }

    async fn pending_key_requests(&self, mesh_id: Uuid) -> Result<Vec<MemberRow>, StoreError> {
        crate::store::meshes::pending_key_requests(&self.pool, mesh_id).await
    }

    async fn save_cursor(&self, mesh_id: Uuid, session_id: Uuid, cursor: StoredCursor) -> Result<(), StoreError> {
        self.cursors.save(mesh_id, session_id, cursor).await.map_err(StoreError::Batch)
    }

    async fn controls(&self, mesh_id: Uuid, member_id: Uuid) -> Result<plexus_proto::controls::Controls, StoreError> {
        let client = self.pool.get().await?;
        crate::store::controls::get(&client, mesh_id, member_id).await
    }
}

#[async_trait]
impl LogReader for PgStore {
    async fn head(&self, mesh_id: Uuid) -> Result<Option<u64>, StoreError> {
        Ok(crate::store::meshes::mesh_head(&self.pool, mesh_id).await?.map(|(_, head)| head.max(0) as u64))
    }

    async fn messages_between(
        &self,
        mesh_id: Uuid,
        after: u64,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        crate::store::log::messages_between(&self.pool, mesh_id, after, before, limit).await
    }
}

#[async_trait]
impl ReminderStore for PgStore {
    async fn own_due(&self, node_id: &str, horizon: Duration, limit: i64) -> Result<Vec<ReminderRow>, StoreError> {
        crate::store::reminders::own_due(&self.pool, node_id, horizon, limit).await
    }

    async fn claim_due(
        &self,
        node_id: &str,
        live: &[String],
        horizon: Duration,
        limit: i64,
    ) -> Result<Vec<ReminderRow>, StoreError> {
        crate::store::reminders::claim_due(&self.pool, node_id, live, horizon, limit).await
    }
}

#[async_trait]
impl SessionLocks for Coord {
    async fn session_started(&self, mesh_id: Uuid, session_id: Uuid) {
        crate::coord::locks::session_started(self, mesh_id, session_id).await;
    }

    async fn session_ended(&self, mesh_id: Uuid, session_id: Uuid) {
        crate::coord::locks::session_ended(self, mesh_id, session_id).await;
    }
}
