//! Postgres: the one durable store. Owns the pool, migrations and every query; nothing else
//! in the broker writes SQL.
//!
//! - [`migrate`] — numbered plain-SQL migrations under an advisory lock.
//! - [`meshes`] — meshes, members, invites, sessions, hello nonces.
//! - [`log`] — the event log: the group-committing writer, replay and inbox queries.
//! - [`audit`] — the audit log: one hash chain per mesh, retention behind a checkpoint.
//! - [`keys`] — mesh-key epochs: rotations, each member's copy of each rotated key.
//! - [`controls`] — per-peer controls: blocks, mutes, event subscriptions.
//! - [`coord`] — coordination rows: state, tasks, threads, memories, search.
//! - [`locks`] — held locks and the lock wait queue.
//! - [`reminders`] — scheduled reminders, claiming and the firing compare-and-set.
//! - [`cursors`] — sessions' acknowledgements as cursors and "read" receipts, written in batches.
//! - [`links`] — pending device links (a browser linked to a member).
//! - [`rooms`] — session streams, room viewers, wheels, drive grants, approvals, settings.
//! - [`webhooks`] — registered webhooks and the signatures already accepted.

pub mod audit;
pub mod controls;
pub mod coord;
pub mod cursors;
pub mod keys;
pub mod links;
pub mod locks;
pub mod log;
pub mod meshes;
pub mod migrate;
pub mod reminders;
pub mod rooms;
pub mod webhooks;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use plexus_proto::types::{Priority, Sealing, Target};
use uuid::Uuid;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The connection string does not parse.
    #[error("database url: {0}")]
    Url(String),
    /// The database holds a schema newer than this binary knows.
    #[error("database schema version {found} is newer than this binary's {known}; upgrade the broker")]
    SchemaTooNew {
        /// In the database.
        found: i64,
        /// In the binary.
        known: i64,
    },
    /// A row holds a value this binary cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(&'static str),
    /// The batched write this was part of failed.
    #[error("batched write: {0}")]
    Batch(std::sync::Arc<StoreError>),
}

/// Build the connection pool.
pub fn connect(url: &str, size: usize) -> Result<Pool, StoreError> {
    let pg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| StoreError::Url(e.to_string()))?;
    let mgr =
        Manager::from_config(pg, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Url(e.to_string()))
}

pub use crate::clock::{from_millis, millis, now_ms};

pub(crate) fn priority_to_i16(p: Priority) -> i16 {
    match p {
        Priority::Now => 0,
        Priority::Next => 1,
        Priority::Low => 2,
    }
}

pub(crate) fn priority_from_i16(n: i16) -> Result<Priority, StoreError> {
    Ok(match n {
        0 => Priority::Now,
        1 => Priority::Next,
        2 => Priority::Low,
        _ => return Err(StoreError::Corrupt("priority")),
    })
}

pub(crate) fn sealing_to_i16(s: Sealing) -> i16 {
    match s {
        Sealing::BoxSession => 0,
        Sealing::BoxMember => 1,
        Sealing::MeshKey => 2,
        Sealing::Plain => 3,
    }
}

pub(crate) fn sealing_from_i16(n: i16) -> Result<Sealing, StoreError> {
    Ok(match n {
        0 => Sealing::BoxSession,
        1 => Sealing::BoxMember,
        2 => Sealing::MeshKey,
        3 => Sealing::Plain,
        _ => return Err(StoreError::Corrupt("sealing")),
    })
}

/// Target as stored: (kind, id, group).
pub(crate) fn target_to_row(t: &Target) -> (i16, Option<Uuid>, Option<String>) {
    match t {
        Target::Session(id) => (0, Some(*id), None),
        Target::Member(id) => (1, Some(*id), None),
        Target::Group(g) => (2, None, Some(g.clone())),
        Target::All => (3, None, None),
    }
}

pub(crate) fn target_from_row(kind: i16, id: Option<Uuid>, group: Option<String>) -> Result<Target, StoreError> {
    Ok(match (kind, id, group) {
        (0, Some(id), _) => Target::Session(id),
        (1, Some(id), _) => Target::Member(id),
        (2, _, Some(g)) => Target::Group(g),
        (3, _, _) => Target::All,
        _ => return Err(StoreError::Corrupt("target")),
    })
}
