//! Lock rows: held locks and the wait queue. Callers serialize every change to one mesh's
//! locks with [`serialize_mesh`] inside their transaction; the policy (overlap, FIFO) is in
//! `crate::coord::locks`.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use plexus_proto::coord::{LockInfo, LockMode, LockWaiter};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{millis, StoreError};

/// A held lock as stored.
pub type LockRow = LockInfo;

/// A queued acquire as stored.
#[derive(Debug, Clone)]
pub struct WaiterRow {
    /// Queue id (FIFO order).
    pub id: i64,
    /// Pattern.
    pub pattern: String,
    /// Mode.
    pub mode: LockMode,
    /// Member.
    pub member_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Name.
    pub holder_name: String,
    /// Reason.
    pub reason: Option<String>,
    /// Lifetime of the grant.
    pub ttl_ms: i64,
    /// Queued at.
    pub queued_at: SystemTime,
    /// Gives up at.
    pub deadline: SystemTime,
}

impl WaiterRow {
    /// As listed.
    pub fn info(&self) -> LockWaiter {
        LockWaiter {
            pattern: self.pattern.clone(),
            mode: self.mode,
            name: self.holder_name.clone(),
            since_ms: millis(self.queued_at),
            deadline_ms: millis(self.deadline),
        }
    }
}

fn mode(exclusive: bool) -> LockMode {
    if exclusive {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    }
}

fn lock_from_row(r: &Row) -> LockRow {
    LockInfo {
        token: r.get::<_, i64>("token") as u64,
        pattern: r.get("pattern"),
        mode: mode(r.get("exclusive")),
        holder_member: r.get("member_id"),
        holder_session: r.get("session_id"),
        holder_name: r.get("holder_name"),
        reason: r.get("reason"),
        acquired_at_ms: millis(r.get("acquired_at")),
        expires_at_ms: millis(r.get("expires_at")),
    }
}

fn waiter_from_row(r: &Row) -> WaiterRow {
    WaiterRow {
        id: r.get("id"),
        pattern: r.get("pattern"),
        mode: mode(r.get("exclusive")),
        member_id: r.get("member_id"),
        session_id: r.get("session_id"),
        holder_name: r.get("holder_name"),
        reason: r.get("reason"),
        ttl_ms: r.get("ttl_ms"),
        queued_at: r.get("queued_at"),
        deadline: r.get("deadline"),
    }
}

/// Take the mesh's lock-table mutex until the transaction ends.
pub async fn serialize_mesh(tx: &Transaction<'_>, mesh_id: Uuid) -> Result<(), StoreError> {
    // Two-key form in its own class (7), apart from the migration lock's one-key space.
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock(7, hashtext($1::text))").await?,
        &[&mesh_id.to_string()],
    )
    .await?;
    Ok(())
}

/// Remove locks past their expiry, or orphaned for longer than `grace`; returns them.
pub async fn remove_expired(tx: &Transaction<'_>, mesh_id: Uuid, grace: Duration) -> Result<Vec<LockRow>, StoreError> {
    let rows = tx
        .query(
            &tx.prepare_cached(
                "DELETE FROM locks WHERE mesh_id = $1
               AND (expires_at <= now() OR orphaned_at <= now() - make_interval(secs => $2))
             RETURNING *",
            )
            .await?,
            &[&mesh_id, &grace.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(lock_from_row).collect())
}

/// Drop queue entries whose wait ran out (their request gives up by itself; this covers one
/// that could not).
pub async fn remove_overdue_waiters(tx: &Transaction<'_>, mesh_id: Uuid) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            &tx.prepare_cached("DELETE FROM lock_waiters WHERE mesh_id = $1 AND deadline <= now()").await?,
            &[&mesh_id],
        )
        .await?)
}

/// Held locks, oldest first.
pub async fn held(db: &impl GenericClient, mesh_id: Uuid) -> Result<Vec<LockRow>, StoreError> {
    let rows = db
        .query(&db.prepare_cached("SELECT * FROM locks WHERE mesh_id = $1 ORDER BY token").await?, &[&mesh_id])
        .await?;
    Ok(rows.iter().map(lock_from_row).collect())
}

/// Queue entries, in queue order.
pub async fn waiting(db: &impl GenericClient, mesh_id: Uuid) -> Result<Vec<WaiterRow>, StoreError> {
    let rows = db
        .query(&db.prepare_cached("SELECT * FROM lock_waiters WHERE mesh_id = $1 ORDER BY id").await?, &[&mesh_id])
        .await?;
    Ok(rows.iter().map(waiter_from_row).collect())
}

/// What a grant is for.
pub struct Grant<'a> {
    /// Pattern.
    pub pattern: &'a str,
    /// Mode.
    pub mode: LockMode,
    /// Member.
    pub member_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Name.
    pub holder_name: &'a str,
    /// Reason.
    pub reason: Option<&'a str>,
    /// Lifetime.
    pub ttl_ms: i64,
}

/// Insert a granted lock with the mesh's next fencing token.
pub async fn insert(tx: &Transaction<'_>, mesh_id: Uuid, g: &Grant<'_>) -> Result<LockRow, StoreError> {
    let token = super::coord::next_number(tx, mesh_id, "lock").await? as i64;
    let row = tx.query_one(&tx.prepare_cached("INSERT INTO locks (mesh_id, token, pattern, exclusive, member_id, session_id, holder_name, reason, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9)) RETURNING *").await?,
            &[
                &mesh_id,
                &token,
                &g.pattern,
                &(g.mode == LockMode::Exclusive),
                &g.member_id,
                &g.session_id,
                &g.holder_name,
                &g.reason,
                &(g.ttl_ms as f64 / 1000.0),
            ],
        )
        .await?;
    Ok(lock_from_row(&row))
}

/// Queue an acquire for a request served by `node_id`; returns its queue id.
pub async fn enqueue(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    g: &Grant<'_>,
    wait: Duration,
    node_id: &str,
) -> Result<i64, StoreError> {
    let row = tx.query_one(&tx.prepare_cached("INSERT INTO lock_waiters (mesh_id, pattern, exclusive, member_id, session_id, holder_name, reason, ttl_ms,
                                       deadline, node_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10) RETURNING id").await?,
            &[
                &mesh_id,
                &g.pattern,
                &(g.mode == LockMode::Exclusive),
                &g.member_id,
                &g.session_id,
                &g.holder_name,
                &g.reason,
                &g.ttl_ms,
                &wait.as_secs_f64(),
                &node_id,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Remove a waiter; false when it was already gone.
pub async fn remove_waiter(db: &impl GenericClient, waiter: i64) -> Result<bool, StoreError> {
    Ok(db.execute(&db.prepare_cached("DELETE FROM lock_waiters WHERE id = $1").await?, &[&waiter]).await? == 1)
}

/// Remove the waiters whose request is served by a node not in `live` (a dead node's requests
/// are gone with it); returns the meshes they were queued in.
pub async fn remove_waiters_of_dead_nodes(pool: &Pool, live: &[String]) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &client
                .prepare_cached("DELETE FROM lock_waiters WHERE node_id <> ALL($1::text[]) RETURNING mesh_id")
                .await?,
            &[&live],
        )
        .await?;
    let mut meshes: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    meshes.sort();
    meshes.dedup();
    Ok(meshes)
}

/// One held lock.
pub async fn get(db: &impl GenericClient, mesh_id: Uuid, token: u64) -> Result<Option<LockRow>, StoreError> {
    let row = db
        .query_opt(
            &db.prepare_cached("SELECT * FROM locks WHERE mesh_id = $1 AND token = $2").await?,
            &[&mesh_id, &(token as i64)],
        )
        .await?;
    Ok(row.as_ref().map(lock_from_row))
}

/// Extend a held lock from now.
pub async fn renew(tx: &Transaction<'_>, mesh_id: Uuid, token: u64, ttl_ms: u64) -> Result<LockRow, StoreError> {
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "UPDATE locks SET expires_at = now() + make_interval(secs => $3) WHERE mesh_id = $1 AND token = $2
             RETURNING *",
            )
            .await?,
            &[&mesh_id, &(token as i64), &(ttl_ms as f64 / 1000.0)],
        )
        .await?;
    Ok(lock_from_row(&row))
}

/// Remove a held lock.
pub async fn remove(tx: &Transaction<'_>, mesh_id: Uuid, token: u64) -> Result<(), StoreError> {
    tx.execute(
        &tx.prepare_cached("DELETE FROM locks WHERE mesh_id = $1 AND token = $2").await?,
        &[&mesh_id, &(token as i64)],
    )
    .await?;
    Ok(())
}

/// The session's presence ended: its locks start their grace.
pub async fn orphan_session(pool: &Pool, mesh_id: Uuid, session_id: Uuid) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client.execute(&client.prepare_cached("UPDATE locks SET orphaned_at = now() WHERE mesh_id = $1 AND session_id = $2 AND orphaned_at IS NULL").await?,
            &[&mesh_id, &session_id],
        )
        .await?)
}

/// The session is present again: its surviving locks are its own again.
pub async fn adopt_session(pool: &Pool, mesh_id: Uuid, session_id: Uuid) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client.execute(&client.prepare_cached("UPDATE locks SET orphaned_at = NULL WHERE mesh_id = $1 AND session_id = $2 AND orphaned_at IS NOT NULL").await?,
            &[&mesh_id, &session_id],
        )
        .await?)
}

/// Meshes with locks past expiry or grace, or queue entries past their deadline.
pub async fn meshes_due(pool: &Pool, grace: Duration) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let rows = client.query(&client.prepare_cached("SELECT mesh_id FROM locks WHERE expires_at <= now() OR orphaned_at <= now() - make_interval(secs => $1)
             UNION
             SELECT mesh_id FROM lock_waiters WHERE deadline <= now()").await?,
            &[&grace.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
