//! The audit log in Postgres: appending to a mesh's chain inside the caller's transaction
//! (the head row is locked, so writers on every node extend one chain), reading it, and
//! retention behind a checkpoint. The entry format and hash are `plexus_proto::audit`'s.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool, Transaction};
use plexus_proto::audit::{entry_bytes, genesis_bytes, AuditEntries, AuditEntry, AuditList};
use uuid::Uuid;

use super::StoreError;

/// Who did an audited action.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Member (`None`: the broker).
    pub member: Option<Uuid>,
    /// Name.
    pub name: &'a str,
}

/// Append an entry to the mesh's chain, in `tx` (committed with the change it records).
pub async fn append(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    actor: Actor<'_>,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<u64, StoreError> {
    let genesis = plexus_crypto::hash32(&genesis_bytes(mesh_id)).to_vec();
    tx.execute(
        "INSERT INTO audit_heads (mesh_id, seq, hash, checkpoint_hash) VALUES ($1, 0, $2, $2) ON CONFLICT DO NOTHING",
        &[&mesh_id, &genesis],
    )
    .await?;
    let head = tx.query_one("SELECT seq, hash FROM audit_heads WHERE mesh_id = $1 FOR UPDATE", &[&mesh_id]).await?;
    let (prev_seq, prev_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
    let mut entry = AuditEntry {
        seq: prev_seq as u64 + 1,
        at_ms: crate::clock::now_ms(),
        actor_member: actor.member,
        actor_name: actor.name.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_string(),
        hash: Vec::new(),
    };
    entry.hash = plexus_crypto::hash32(&entry_bytes(mesh_id, &prev_hash, &entry)).to_vec();
    let seq = entry.seq as i64;
    tx.execute(
        "INSERT INTO audit_log (mesh_id, seq, at_ms, actor_member, actor_name, action, subject, detail, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &mesh_id,
            &seq,
            &(entry.at_ms as i64),
            &entry.actor_member,
            &entry.actor_name,
            &entry.action,
            &entry.subject,
            &entry.detail,
            &entry.hash,
        ],
    )
    .await?;
    tx.execute("UPDATE audit_heads SET seq = $2, hash = $3 WHERE mesh_id = $1", &[&mesh_id, &seq, &entry.hash]).await?;
    Ok(entry.seq)
}

/// Read entries (see [`AuditList`]).
pub async fn list(pool: &Pool, mesh_id: Uuid, q: &AuditList) -> Result<AuditEntries, StoreError> {
    let client = pool.get().await?;
    let since = q.since_ms.map(|s| s as i64);
    let rows = client
        .query(
            "SELECT seq, at_ms, actor_member, actor_name, action, subject, detail, hash FROM audit_log
             WHERE mesh_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR at_ms >= $3)
               AND ($4::uuid IS NULL OR actor_member = $4)
             ORDER BY seq LIMIT $5",
            &[&mesh_id, &(q.after as i64), &since, &q.actor, &(i64::from(q.limit) + 1)],
        )
        .await?;
    let more = rows.len() > q.limit as usize;
    let entries = rows
        .iter()
        .take(q.limit as usize)
        .map(|r| AuditEntry {
            seq: r.get::<_, i64>(0).max(0) as u64,
            at_ms: r.get::<_, i64>(1).max(0) as u64,
            actor_member: r.get(2),
            actor_name: r.get(3),
            action: r.get(4),
            subject: r.get(5),
            detail: r.get(6),
            hash: r.get(7),
        })
        .collect();
    let head = client
        .query_opt("SELECT seq, checkpoint_seq, checkpoint_hash FROM audit_heads WHERE mesh_id = $1", &[&mesh_id])
        .await?;
    let (head_seq, checkpoint_seq, checkpoint_hash) = match head {
        Some(h) => (h.get::<_, i64>(0).max(0) as u64, h.get::<_, i64>(1).max(0) as u64, h.get(2)),
        None => (0, 0, plexus_crypto::hash32(&genesis_bytes(mesh_id)).to_vec()),
    };
    Ok(AuditEntries { entries, more, checkpoint_seq, checkpoint_hash, head_seq })
}

/// Delete entries older than `max_age`, moving each chain's checkpoint to the last deleted
/// entry (so verification still starts from a known hash). Returns how many chains moved.
pub async fn apply_retention(pool: &Pool, max_age: Duration) -> Result<u64, StoreError> {
    prune_before(pool, crate::clock::now_ms().saturating_sub(max_age.as_millis() as u64)).await
}

/// Delete entries written before `cutoff_ms` behind a checkpoint (see [`apply_retention`]).
pub async fn prune_before(pool: &Pool, cutoff_ms: u64) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let cutoff = cutoff_ms as i64;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "WITH gone AS (DELETE FROM audit_log WHERE at_ms < $1 RETURNING mesh_id, seq, hash),
                  last AS (SELECT DISTINCT ON (mesh_id) mesh_id, seq, hash FROM gone ORDER BY mesh_id, seq DESC)
             UPDATE audit_heads h SET checkpoint_seq = last.seq, checkpoint_hash = last.hash
             FROM last WHERE h.mesh_id = last.mesh_id AND last.seq > h.checkpoint_seq
             RETURNING last.seq - h.checkpoint_seq",
            &[&cutoff],
        )
        .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// The head of a mesh's chain (for tests and `audit verify`).
pub async fn head(db: &impl GenericClient, mesh_id: Uuid) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    Ok(db
        .query_opt("SELECT seq, hash FROM audit_heads WHERE mesh_id = $1", &[&mesh_id])
        .await?
        .map(|r| (r.get::<_, i64>(0).max(0) as u64, r.get(1))))
}
