//! Reminder rows: creation, listing, cancelling, claiming due ones for this node's actors, and
//! the compare-and-set that advances a reminder after it fired.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use plexus_proto::{
    coord::{Reminder, Schedule},
    types::{Priority, Sealing, Target},
};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    millis, priority_from_i16, priority_to_i16, sealing_from_i16, sealing_to_i16, target_from_row, target_to_row,
    StoreError,
};

/// A reminder as stored, with what firing needs.
#[derive(Debug, Clone)]
pub struct ReminderRow {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Number.
    pub number: u64,
    /// Creator member.
    pub creator_member: Uuid,
    /// Creator session (the sender of each delivery).
    pub creator_session: Uuid,
    /// Creator name.
    pub creator_name: String,
    /// Creator session key.
    pub creator_session_pubkey: Vec<u8>,
    /// Creator member key.
    pub creator_member_pubkey: Vec<u8>,
    /// Label.
    pub label: Option<String>,
    /// Target.
    pub target: Target,
    /// Priority.
    pub priority: Priority,
    /// Sealing.
    pub sealing: Sealing,
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Body.
    pub ciphertext: Vec<u8>,
    /// Cron expression (None: one-shot).
    pub cron: Option<String>,
    /// Time zone of the cron expression.
    pub tz: Option<String>,
    /// Next firing.
    pub next_fire_at: Option<SystemTime>,
    /// Times fired.
    pub fire_count: i64,
    /// Cancelled.
    pub cancelled: bool,
}

impl ReminderRow {
    /// As shown on the wire.
    pub fn info(&self) -> Reminder {
        let schedule = match (&self.cron, &self.tz) {
            (Some(expr), tz) => Schedule::Cron { expr: expr.clone(), tz: tz.clone().unwrap_or_else(|| "UTC".into()) },
            (None, _) => Schedule::At { at_ms: self.next_fire_at.map(millis).unwrap_or(0) },
        };
        Reminder {
            number: self.number,
            id: self.id,
            schedule,
            target: self.target.clone(),
            priority: self.priority,
            label: self.label.clone(),
            creator: self.creator_member,
            creator_name: self.creator_name.clone(),
            next_fire_at_ms: self.next_fire_at.map(millis),
            fire_count: self.fire_count.max(0) as u64,
            cancelled: self.cancelled,
        }
    }
}

fn from_row(r: &Row) -> Result<ReminderRow, StoreError> {
    Ok(ReminderRow {
        mesh_id: r.get("mesh_id"),
        id: r.get("id"),
        number: r.get::<_, i64>("number") as u64,
        creator_member: r.get("creator_member"),
        creator_session: r.get("creator_session"),
        creator_name: r.get("creator_name"),
        creator_session_pubkey: r.get("creator_session_pubkey"),
        creator_member_pubkey: r.get("creator_member_pubkey"),
        label: r.get("label"),
        target: target_from_row(r.get("target_kind"), r.get("target_id"), r.get("target_group"))?,
        priority: priority_from_i16(r.get("priority"))?,
        sealing: sealing_from_i16(r.get("sealing"))?,
        nonce: r.get("nonce"),
        ciphertext: r.get("ciphertext"),
        cron: r.get("cron"),
        tz: r.get("tz"),
        next_fire_at: r.get("next_fire_at"),
        fire_count: r.get("fire_count"),
        cancelled: r.get::<_, Option<SystemTime>>("cancelled_at").is_some(),
    })
}

/// Store a new reminder (its number is taken from the mesh's counter).
pub async fn insert(tx: &Transaction<'_>, r: &ReminderRow) -> Result<ReminderRow, StoreError> {
    let number = super::coord::next_number(tx, r.mesh_id, "reminder").await? as i64;
    let (tk, tid, tg) = target_to_row(&r.target);
    let row = tx
        .query_one(
            "INSERT INTO reminders (mesh_id, id, number, creator_member, creator_session, creator_name,
                 creator_session_pubkey, creator_member_pubkey, label, target_kind, target_id, target_group, priority,
                 sealing, nonce, ciphertext, cron, tz, next_fire_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
             RETURNING *",
            &[
                &r.mesh_id,
                &r.id,
                &number,
                &r.creator_member,
                &r.creator_session,
                &r.creator_name,
                &r.creator_session_pubkey,
                &r.creator_member_pubkey,
                &r.label,
                &tk,
                &tid,
                &tg,
                &priority_to_i16(r.priority),
                &sealing_to_i16(r.sealing),
                &r.nonce,
                &r.ciphertext,
                &r.cron,
                &r.tz,
                &r.next_fire_at,
            ],
        )
        .await?;
    from_row(&row)
}

/// Reminders of a mesh (of one creator, unless `None`), soonest first.
pub async fn list(
    db: &impl GenericClient,
    mesh_id: Uuid,
    creator: Option<Uuid>,
    include_done: bool,
) -> Result<Vec<ReminderRow>, StoreError> {
    let rows = db
        .query(
            "SELECT * FROM reminders WHERE mesh_id = $1 AND ($2::uuid IS NULL OR creator_member = $2)
               AND ($3 OR next_fire_at IS NOT NULL)
             ORDER BY next_fire_at NULLS LAST, number LIMIT 1000",
            &[&mesh_id, &creator, &include_done],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// One reminder by number, locked until the transaction ends.
pub async fn lock(tx: &Transaction<'_>, mesh_id: Uuid, number: u64) -> Result<Option<ReminderRow>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT * FROM reminders WHERE mesh_id = $1 AND number = $2 FOR UPDATE",
            &[&mesh_id, &(number as i64)],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Cancel a locked reminder.
pub async fn cancel(tx: &Transaction<'_>, mesh_id: Uuid, id: Uuid) -> Result<ReminderRow, StoreError> {
    let row = tx
        .query_one(
            "UPDATE reminders SET cancelled_at = now(), next_fire_at = NULL WHERE mesh_id = $1 AND id = $2 RETURNING *",
            &[&mesh_id, &id],
        )
        .await?;
    from_row(&row)
}

/// Take over reminders due within `horizon` that are unowned or owned by a node whose lease
/// lapsed (not in `live`); returns them, soonest first. Rows this node already owns are not
/// rewritten (see [`own_due`]), so a steady state claims nothing and writes nothing.
pub async fn claim_due(
    pool: &Pool,
    node: &str,
    live: &[String],
    horizon: Duration,
    limit: i64,
) -> Result<Vec<ReminderRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "UPDATE reminders SET owner_node = $1 WHERE (mesh_id, id) IN (
                 SELECT mesh_id, id FROM reminders
                 WHERE next_fire_at IS NOT NULL AND next_fire_at <= now() + make_interval(secs => $3)
                   AND (owner_node IS NULL OR NOT owner_node = ANY($2))
                   AND owner_node IS DISTINCT FROM $1
                 ORDER BY next_fire_at LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             RETURNING *",
            &[&node, &live, &horizon.as_secs_f64(), &limit],
        )
        .await?;
    let mut out: Vec<ReminderRow> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    out.sort_by_key(|r| r.next_fire_at);
    Ok(out)
}

/// Give up this node's reminders (on drain), so other nodes claim them at their next pass
/// instead of after this node's lease lapses.
pub async fn release_owned(pool: &Pool, node: &str) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client.execute("UPDATE reminders SET owner_node = NULL WHERE owner_node = $1", &[&node]).await?)
}

/// Reminders this node owns that are due within `horizon` (read-only: for re-arming after a
/// restart, or a cron run that was beyond the horizon when it last fired).
pub async fn own_due(pool: &Pool, node: &str, horizon: Duration, limit: i64) -> Result<Vec<ReminderRow>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT * FROM reminders WHERE owner_node = $1 AND next_fire_at IS NOT NULL
               AND next_fire_at <= now() + make_interval(secs => $2)
             ORDER BY next_fire_at LIMIT $3",
            &[&node, &horizon.as_secs_f64(), &limit],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// The current firing state — (next_fire_at, fire_count) — of each reminder that is neither
/// cancelled nor done.
pub async fn firing_states(
    pool: &Pool,
    keys: &[(Uuid, Uuid)],
) -> Result<std::collections::HashMap<(Uuid, Uuid), (SystemTime, i64)>, StoreError> {
    let client = pool.get().await?;
    let (meshes, ids): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    let stmt = client
        .prepare_cached(
            "SELECT r.mesh_id, r.id, r.next_fire_at, r.fire_count
             FROM unnest($1::uuid[], $2::uuid[]) AS k(mesh_id, id)
             JOIN reminders r ON r.mesh_id = k.mesh_id AND r.id = k.id
             WHERE r.cancelled_at IS NULL AND r.next_fire_at IS NOT NULL",
        )
        .await?;
    let rows = client.query(&stmt, &[&meshes, &ids]).await?;
    Ok(rows.iter().map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3)))).collect())
}

/// One compare-and-set after a firing.
pub struct Advance {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Reminder.
    pub id: Uuid,
    /// The due time that fired.
    pub due: SystemTime,
    /// Its firing number.
    pub count: i64,
    /// The next due time (None: done).
    pub next: Option<SystemTime>,
}

/// Compare-and-set a batch of firings in one statement: each reminder moves to its `next` only
/// if it is still at (`due`, `count`). Returns the ones that moved (the others were advanced
/// by another node first).
pub async fn advance_all(
    pool: &Pool,
    batch: &[Advance],
) -> Result<std::collections::HashSet<(Uuid, Uuid)>, StoreError> {
    if batch.is_empty() {
        return Ok(Default::default());
    }
    let client = pool.get().await?;
    let meshes: Vec<Uuid> = batch.iter().map(|a| a.mesh_id).collect();
    let ids: Vec<Uuid> = batch.iter().map(|a| a.id).collect();
    let dues: Vec<SystemTime> = batch.iter().map(|a| a.due).collect();
    let counts: Vec<i64> = batch.iter().map(|a| a.count).collect();
    let nexts: Vec<Option<SystemTime>> = batch.iter().map(|a| a.next).collect();
    let stmt = client
        .prepare_cached(
            "UPDATE reminders r SET next_fire_at = u.next, fire_count = r.fire_count + 1, last_fired_at = now()
             FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bigint[], $5::timestamptz[])
                  AS u(mesh_id, id, due, count, next)
             WHERE r.mesh_id = u.mesh_id AND r.id = u.id AND r.next_fire_at = u.due AND r.fire_count = u.count
             RETURNING r.mesh_id, r.id",
        )
        .await?;
    let rows = client.query(&stmt, &[&meshes, &ids, &dues, &counts, &nexts]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
