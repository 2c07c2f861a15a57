//! Session rooms in Postgres: stream entries (bounded per session), viewers, wheels, drive
//! grants, permission requests and mesh settings. The rules are in `crate::coord::rooms`.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use plexus_proto::room::{ApprovalInfo, Entry, EntryIn, EntryKind, Viewer, Wheel};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{millis, StoreError};

fn entry(mesh_row: &Row, session_id: Uuid) -> Result<Entry, StoreError> {
    let kind: String = mesh_row.get("kind");
    Ok(Entry {
        session_id,
        seq: mesh_row.get::<_, i64>("seq").max(0) as u64,
        kind: EntryKind::parse(&kind).ok_or(StoreError::Corrupt("unknown stream entry kind"))?,
        at_ms: mesh_row.get::<_, i64>("at_ms").max(0) as u64,
        nonce: mesh_row.get("nonce"),
        ciphertext: mesh_row.get("ciphertext"),
    })
}

/// What an append did.
#[derive(Debug, Default)]
pub struct Appended {
    /// The entries that were new, in order.
    pub stored: Vec<Entry>,
    /// How many old entries were dropped to stay within the bound.
    pub pruned: u32,
}

/// Store entries of a session's stream (a resent sequence is kept once) in one statement,
/// then, past `max_bytes`, drop the oldest. `None`: the stream belongs to another member.
pub async fn append(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    member_id: Uuid,
    entries: &[EntryIn],
    max_bytes: i64,
) -> Result<Option<Appended>, StoreError> {
    let mut client = pool.get().await?;
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq as i64).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let ats: Vec<i64> = entries.iter().map(|e| e.at_ms as i64).collect();
    let nonces: Vec<&[u8]> = entries.iter().map(|e| e.nonce.as_slice()).collect();
    let ciphertexts: Vec<&[u8]> = entries.iter().map(|e| e.ciphertext.as_slice()).collect();
    // The stream's row is upserted last, so concurrent appends to one stream serialize on it.
    let stmt = client
        .prepare_cached(
            "WITH ins AS (
                 INSERT INTO stream_entries (mesh_id, session_id, seq, kind, at_ms, nonce, ciphertext)
                 SELECT $1, $2, e.seq, e.kind, e.at_ms, e.nonce, e.ciphertext
                 FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::bytea[], $8::bytea[])
                     AS e(seq, kind, at_ms, nonce, ciphertext)
                 ON CONFLICT DO NOTHING
                 RETURNING seq, octet_length(nonce) + octet_length(ciphertext) AS size)
             INSERT INTO streams AS s (mesh_id, session_id, member_id, head, bytes)
             SELECT $1, $2, $3, coalesce(max(seq), 0), coalesce(sum(size), 0) FROM ins
             ON CONFLICT (mesh_id, session_id) DO UPDATE
                 SET head = GREATEST(s.head, EXCLUDED.head), bytes = s.bytes + EXCLUDED.bytes
                 WHERE s.member_id = EXCLUDED.member_id
             RETURNING s.bytes, (SELECT coalesce(array_agg(seq), '{}') FROM ins)",
        )
        .await?;
    let Some(row) = client
        .query_opt(&stmt, &[&mesh_id, &session_id, &member_id, &seqs, &kinds, &ats, &nonces, &ciphertexts])
        .await?
    else {
        return Ok(None);
    };
    let bytes: i64 = row.get(0);
    let new: Vec<i64> = row.get(1);
    let stored = entries
        .iter()
        .filter(|e| new.contains(&(e.seq as i64)))
        .map(|e| Entry {
            session_id,
            seq: e.seq,
            kind: e.kind,
            at_ms: e.at_ms,
            nonce: e.nonce.clone(),
            ciphertext: e.ciphertext.clone(),
        })
        .collect();
    let mut out = Appended { stored, pruned: 0 };
    if bytes > max_bytes {
        let tx = client.transaction().await?;
        // Oldest first until within the bound.
        let pruned = tx
            .query(
                "WITH ordered AS (
                     SELECT seq, octet_length(nonce) + octet_length(ciphertext) AS size,
                            sum(octet_length(nonce) + octet_length(ciphertext)) OVER (ORDER BY seq) AS running
                     FROM stream_entries WHERE mesh_id = $1 AND session_id = $2)
                 DELETE FROM stream_entries s USING ordered o
                 WHERE s.mesh_id = $1 AND s.session_id = $2 AND s.seq = o.seq AND o.running <= $3
                 RETURNING s.seq, o.size",
                &[&mesh_id, &session_id, &(bytes - max_bytes)],
            )
            .await?;
        let freed: i64 = pruned.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum();
        let below = pruned.iter().map(|r| r.get::<_, i64>(0)).max().unwrap_or(0) + 1;
        tx.execute(
            "UPDATE streams SET bytes = bytes - $3, pruned_below = GREATEST(pruned_below, $4)
             WHERE mesh_id = $1 AND session_id = $2",
            &[&mesh_id, &session_id, &freed, &below],
        )
        .await?;
        tx.commit().await?;
        out.pruned = pruned.len() as u32;
    }
    Ok(Some(out))
}

/// Entries after `after`, up to `limit`, and where pruning left off.
pub async fn read(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    after: u64,
    limit: u32,
) -> Result<(Vec<Entry>, bool, u64), StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT seq, kind, at_ms, nonce, ciphertext FROM stream_entries
             WHERE mesh_id = $1 AND session_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            &[&mesh_id, &session_id, &(after as i64), &(i64::from(limit) + 1)],
        )
        .await?;
    let more = rows.len() > limit as usize;
    let entries = rows.iter().take(limit as usize).map(|r| entry(r, session_id)).collect::<Result<_, _>>()?;
    let pruned: Option<i64> = client
        .query_opt("SELECT pruned_below FROM streams WHERE mesh_id = $1 AND session_id = $2", &[&mesh_id, &session_id])
        .await?
        .map(|r| r.get(0));
    Ok((entries, more, pruned.unwrap_or(0).max(0) as u64))
}

/// A stream's head (0: nothing published yet).
pub async fn head(db: &impl GenericClient, mesh_id: Uuid, session_id: Uuid) -> Result<u64, StoreError> {
    let row = db
        .query_opt("SELECT head FROM streams WHERE mesh_id = $1 AND session_id = $2", &[&mesh_id, &session_id])
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64).unwrap_or(0))
}

/// Delete entries stored longer ago than `max_age`.
pub async fn apply_retention(pool: &Pool, max_age: Duration) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM stream_entries WHERE stored_at < now() - make_interval(secs => $1)",
            &[&max_age.as_secs_f64()],
        )
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Viewers

/// Add a viewer (a connection) to a room.
pub async fn viewer_add(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    viewer: &str,
    node: &str,
    member_id: Uuid,
    name: &str,
) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO room_viewers (mesh_id, session_id, viewer, node, member_id, name)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&mesh_id, &session_id, &viewer, &node, &member_id, &name],
        )
        .await?;
    Ok(())
}

/// Remove a viewer from one room (or, with `None`, from every room); the rooms it left.
pub async fn viewer_remove(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Option<Uuid>,
    viewer: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "DELETE FROM room_viewers WHERE mesh_id = $1 AND viewer = $2 AND ($3::uuid IS NULL OR session_id = $3)
             RETURNING session_id",
            &[&mesh_id, &viewer, &session_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Remove the viewers of nodes not in `live`; the (mesh, room) pairs that lost some.
pub async fn viewers_of_dead_nodes(pool: &Pool, live: &[String]) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query("DELETE FROM room_viewers WHERE NOT node = ANY($1) RETURNING mesh_id, session_id", &[&live])
        .await?;
    let mut out: Vec<(Uuid, Uuid)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A viewer is typing: shown as such until `until`.
pub async fn viewer_typing(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    viewer: &str,
    until: SystemTime,
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "UPDATE room_viewers SET typing_until = $4 WHERE mesh_id = $1 AND session_id = $2 AND viewer = $3",
            &[&mesh_id, &session_id, &viewer, &until],
        )
        .await?
        == 1)
}

/// The viewers of a room, one per member (typing if any of its connections is).
pub async fn viewers(db: &impl GenericClient, mesh_id: Uuid, session_id: Uuid) -> Result<Vec<Viewer>, StoreError> {
    let rows = db
        .query(
            "SELECT member_id, min(name), bool_or(coalesce(typing_until > now(), false))
             FROM room_viewers WHERE mesh_id = $1 AND session_id = $2
             GROUP BY member_id ORDER BY min(name)",
            &[&mesh_id, &session_id],
        )
        .await?;
    Ok(rows.iter().map(|r| Viewer { member_id: r.get(0), display_name: r.get(1), typing: r.get(2) }).collect())
}

// ---------------------------------------------------------------------------------------------
// Wheels

fn wheel(r: &Row) -> Wheel {
    let since: SystemTime = r.get("since");
    Wheel {
        holder_member: r.get("holder_member"),
        holder_name: r.get("holder_name"),
        holder_session: r.get("holder_session"),
        token: r.get::<_, i64>("token").max(0) as u64,
        since_ms: millis(since),
        requested_by: r.get("requested_by"),
    }
}

/// The wheel of a session, locked for update within `tx`.
pub async fn wheel_for_update(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    session_id: Uuid,
) -> Result<Option<Wheel>, StoreError> {
    let row = tx
        .query_opt("SELECT * FROM wheels WHERE mesh_id = $1 AND session_id = $2 FOR UPDATE", &[&mesh_id, &session_id])
        .await?;
    Ok(row.as_ref().map(wheel))
}

/// The wheel of a session.
pub async fn wheel_get(db: &impl GenericClient, mesh_id: Uuid, session_id: Uuid) -> Result<Option<Wheel>, StoreError> {
    let row =
        db.query_opt("SELECT * FROM wheels WHERE mesh_id = $1 AND session_id = $2", &[&mesh_id, &session_id]).await?;
    Ok(row.as_ref().map(wheel))
}

/// Give the wheel to a holder with a new token.
pub async fn wheel_set(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    session_id: Uuid,
    holder: (Uuid, Uuid, &str),
    token: u64,
) -> Result<(), StoreError> {
    let (member, session, name) = holder;
    tx.execute(
        "INSERT INTO wheels (mesh_id, session_id, holder_member, holder_session, holder_name, token)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (mesh_id, session_id) DO UPDATE SET holder_member = $3, holder_session = $4, holder_name = $5,
             token = $6, since = now(), orphaned_at = NULL, requested_by = NULL",
        &[&mesh_id, &session_id, &member, &session, &name, &(token as i64)],
    )
    .await?;
    Ok(())
}

/// Let go of a wheel.
pub async fn wheel_delete(tx: &Transaction<'_>, mesh_id: Uuid, session_id: Uuid) -> Result<(), StoreError> {
    tx.execute("DELETE FROM wheels WHERE mesh_id = $1 AND session_id = $2", &[&mesh_id, &session_id]).await?;
    Ok(())
}

/// Note that someone asked for the wheel.
pub async fn wheel_requested(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    session_id: Uuid,
    by: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE wheels SET requested_by = $3 WHERE mesh_id = $1 AND session_id = $2",
        &[&mesh_id, &session_id, &by],
    )
    .await?;
    Ok(())
}

/// Wheels follow their holders' viewing: a wheel whose holder session watches no room any
/// more starts its grace, one whose holder is back stops it. The (mesh, room) pairs changed.
pub async fn wheels_follow_viewers(pool: &Pool) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let client = pool.get().await?;
    let mut rows = client
        .query(
            "UPDATE wheels w SET orphaned_at = now() WHERE orphaned_at IS NULL AND NOT EXISTS
                 (SELECT 1 FROM room_viewers v WHERE v.mesh_id = w.mesh_id AND split_part(v.viewer, ':', 1) = w.holder_session::text)
             RETURNING mesh_id, session_id",
            &[],
        )
        .await?;
    rows.extend(
        client
            .query(
                "UPDATE wheels w SET orphaned_at = NULL WHERE orphaned_at IS NOT NULL AND EXISTS
                     (SELECT 1 FROM room_viewers v WHERE v.mesh_id = w.mesh_id AND split_part(v.viewer, ':', 1) = w.holder_session::text)
                 RETURNING mesh_id, session_id",
                &[],
            )
            .await?,
    );
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Free the wheels whose holders have been gone longer than `grace`; the rooms freed.
pub async fn wheels_expired(pool: &Pool, grace: Duration) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "DELETE FROM wheels WHERE orphaned_at IS NOT NULL AND orphaned_at < now() - make_interval(secs => $1)
             RETURNING mesh_id, session_id",
            &[&grace.as_secs_f64()],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

// ---------------------------------------------------------------------------------------------
// Drive grants

/// Grant or revoke; the grantees now.
pub async fn grant(
    client: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    grantee: Uuid,
    on: bool,
) -> Result<Vec<Uuid>, StoreError> {
    if on {
        client
            .execute(
                "INSERT INTO drive_grants (mesh_id, member_id, grantee) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&mesh_id, &member_id, &grantee],
            )
            .await?;
    } else {
        client
            .execute(
                "DELETE FROM drive_grants WHERE mesh_id = $1 AND member_id = $2 AND grantee = $3",
                &[&mesh_id, &member_id, &grantee],
            )
            .await?;
    }
    let rows = client
        .query(
            "SELECT grantee FROM drive_grants WHERE mesh_id = $1 AND member_id = $2 ORDER BY grantee",
            &[&mesh_id, &member_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who may answer `member_id`'s permission requests: itself, its grantees, the admins.
pub async fn deciders(pool: &Pool, mesh_id: Uuid, member_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id FROM members WHERE mesh_id = $1 AND removed_at IS NULL AND (id = $2 OR role >= $3
                 OR id IN (SELECT grantee FROM drive_grants WHERE mesh_id = $1 AND member_id = $2))",
            &[&mesh_id, &member_id, &(plexus_proto::types::Role::Admin.as_u8() as i16)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether `member_id` let `grantee` drive its sessions.
pub async fn granted(
    db: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    grantee: Uuid,
) -> Result<bool, StoreError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM drive_grants WHERE mesh_id = $1 AND member_id = $2 AND grantee = $3",
            &[&mesh_id, &member_id, &grantee],
        )
        .await?
        .is_some())
}

// ---------------------------------------------------------------------------------------------
// Approvals

const APPROVAL: &str = "SELECT a.*, m.display_name AS member_name FROM approvals a
     JOIN members m ON m.mesh_id = a.mesh_id AND m.id = a.member_id";

fn approval(r: &Row) -> ApprovalInfo {
    let requested: SystemTime = r.get("requested_at");
    let expires: SystemTime = r.get("expires_at");
    ApprovalInfo {
        id: r.get("id"),
        session_id: r.get("session_id"),
        member_id: r.get("member_id"),
        member_name: r.get("member_name"),
        requested_at_ms: millis(requested),
        expires_at_ms: millis(expires),
        nonce: r.get("nonce"),
        ciphertext: r.get("ciphertext"),
        allowed: r.get("allowed"),
        decided_by: r.get("decided_by_name"),
        reason_nonce: r.get("reason_nonce"),
        reason_ciphertext: r.get("reason_ciphertext"),
    }
}

/// Store a request (a resent id is kept once); returns it as stored.
pub async fn approval_insert(
    pool: &Pool,
    mesh_id: Uuid,
    req: &plexus_proto::room::ApprovalRequest,
    member_id: Uuid,
) -> Result<ApprovalInfo, StoreError> {
    let client = pool.get().await?;
    let expires = SystemTime::now() + Duration::from_millis(req.wait_ms);
    client
        .execute(
            "INSERT INTO approvals (mesh_id, id, session_id, member_id, expires_at, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[&mesh_id, &req.id, &req.session_id, &member_id, &expires, &req.nonce, &req.ciphertext],
        )
        .await?;
    approval_get(&client, mesh_id, req.id).await?.ok_or(StoreError::Corrupt("approval vanished"))
}

/// One request.
pub async fn approval_get(
    db: &impl GenericClient,
    mesh_id: Uuid,
    id: Uuid,
) -> Result<Option<ApprovalInfo>, StoreError> {
    let row = db.query_opt(&format!("{APPROVAL} WHERE a.mesh_id = $1 AND a.id = $2"), &[&mesh_id, &id]).await?;
    Ok(row.as_ref().map(approval))
}

/// Decide a pending, unexpired request; `None` when it was decided or expired already.
pub async fn approval_decide(
    client: &impl GenericClient,
    mesh_id: Uuid,
    id: Uuid,
    allowed: bool,
    by: (Uuid, &str),
    reason: (Option<&[u8]>, Option<&[u8]>),
) -> Result<Option<ApprovalInfo>, StoreError> {
    let n = client
        .execute(
            "UPDATE approvals SET allowed = $3, decided_by = $4, decided_by_name = $5, reason_nonce = $6,
                 reason_ciphertext = $7, decided_at = now()
             WHERE mesh_id = $1 AND id = $2 AND allowed IS NULL AND expires_at > now()",
            &[&mesh_id, &id, &allowed, &by.0, &by.1, &reason.0, &reason.1],
        )
        .await?;
    if n == 0 {
        return Ok(None);
    }
    approval_get(client, mesh_id, id).await
}

/// Pending (undecided, unexpired) requests of one session.
pub async fn approvals_pending(
    db: &impl GenericClient,
    mesh_id: Uuid,
    session_id: Uuid,
) -> Result<Vec<ApprovalInfo>, StoreError> {
    let rows = db
        .query(
            &format!(
                "{APPROVAL} WHERE a.mesh_id = $1 AND a.session_id = $2 AND a.allowed IS NULL AND a.expires_at > now()
                      ORDER BY a.requested_at"
            ),
            &[&mesh_id, &session_id],
        )
        .await?;
    Ok(rows.iter().map(approval).collect())
}

/// Pending requests `decider` may answer: of its own sessions, of members that granted it,
/// or every one for an admin.
pub async fn approvals_for(
    pool: &Pool,
    mesh_id: Uuid,
    decider: Uuid,
    admin: bool,
) -> Result<Vec<ApprovalInfo>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{APPROVAL} WHERE a.mesh_id = $1 AND a.allowed IS NULL AND a.expires_at > now()
                   AND ($3 OR a.member_id = $2 OR EXISTS (SELECT 1 FROM drive_grants g
                        WHERE g.mesh_id = a.mesh_id AND g.member_id = a.member_id AND g.grantee = $2))
                 ORDER BY a.requested_at"
            ),
            &[&mesh_id, &decider, &admin],
        )
        .await?;
    Ok(rows.iter().map(approval).collect())
}

// ---------------------------------------------------------------------------------------------
// Mesh settings

/// A mesh setting.
pub async fn setting(db: &impl GenericClient, mesh_id: Uuid, key: &str) -> Result<Option<String>, StoreError> {
    Ok(db
        .query_opt("SELECT value FROM mesh_settings WHERE mesh_id = $1 AND key = $2", &[&mesh_id, &key])
        .await?
        .map(|r| r.get(0)))
}

/// Set a mesh setting.
pub async fn set_setting(client: &impl GenericClient, mesh_id: Uuid, key: &str, value: &str) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO mesh_settings (mesh_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (mesh_id, key) DO UPDATE SET value = $3",
            &[&mesh_id, &key, &value],
        )
        .await?;
    Ok(())
}
