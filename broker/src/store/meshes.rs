//! Meshes, members, invites, sessions and hello nonces.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool};
use plexus_proto::{
    ops::InviteInfo,
    types::{MemberInfo, Role},
};
use uuid::Uuid;

use super::{from_millis, millis, StoreError};

/// A member as the broker needs it for authorization.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// Member id.
    pub id: Uuid,
    /// ed25519 public key.
    pub pubkey: Vec<u8>,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Log sequence when it joined.
    pub joined_seq: i64,
    /// x25519 key its mesh key is to be sealed to.
    pub claim_pubkey: Option<Vec<u8>>,
    /// The mesh key, sealed to `claim_pubkey`, once granted.
    pub sealed_mesh_key: Option<Vec<u8>>,
    /// Who granted it.
    pub key_granted_by: Option<Uuid>,
    /// Whether it was removed.
    pub removed: bool,
    /// Join time.
    pub joined_at: SystemTime,
}

fn member_from_row(r: &tokio_postgres::Row) -> Result<MemberRow, StoreError> {
    Ok(MemberRow {
        id: r.get("id"),
        pubkey: r.get("pubkey"),
        display_name: r.get("display_name"),
        role: Role::from_u8(r.get::<_, i16>("role") as u8).ok_or(StoreError::Corrupt("role"))?,
        joined_seq: r.get("joined_seq"),
        claim_pubkey: r.get("claim_pubkey"),
        sealed_mesh_key: r.get("sealed_mesh_key"),
        key_granted_by: r.get("key_granted_by"),
        removed: r.get::<_, Option<SystemTime>>("removed_at").is_some(),
        joined_at: r.get("joined_at"),
    })
}

impl MemberRow {
    /// As listed on the wire.
    pub fn info(&self) -> MemberInfo {
        MemberInfo {
            member_id: self.id,
            display_name: self.display_name.clone(),
            role: self.role,
            pubkey: self.pubkey.clone(),
            joined_at_ms: millis(self.joined_at),
        }
    }
}

const MEMBER_COLS: &str =
    "id, pubkey, display_name, role, joined_seq, claim_pubkey, sealed_mesh_key, key_granted_by, removed_at, joined_at";

/// Outcome of creating a mesh.
pub enum CreateMesh {
    /// Created.
    Created,
    /// The id is taken.
    Exists,
}

/// The owner's signed commitment to the mesh key.
#[derive(Debug, Clone)]
pub struct KeyCommitment {
    /// BLAKE2b-256 commitment.
    pub commitment: Vec<u8>,
    /// Owner's signature over it.
    pub signature: Vec<u8>,
}

/// Create a mesh and its owner.
pub async fn create_mesh(
    pool: &Pool,
    mesh_id: Uuid,
    name: &str,
    owner_id: Uuid,
    owner_pubkey: &[u8],
    owner_name: &str,
    commitment: Option<&KeyCommitment>,
) -> Result<CreateMesh, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let n = tx
        .execute(
            "INSERT INTO meshes (id, name, owner_member_id, key_commitment, key_commitment_signature)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &mesh_id,
                &name,
                &owner_id,
                &commitment.map(|c| c.commitment.as_slice()),
                &commitment.map(|c| c.signature.as_slice()),
            ],
        )
        .await?;
    if n == 0 {
        return Ok(CreateMesh::Exists);
    }
    tx.execute(
        "INSERT INTO members (mesh_id, id, pubkey, display_name, role) VALUES ($1, $2, $3, $4, $5)",
        &[&mesh_id, &owner_id, &owner_pubkey, &owner_name, &(Role::Owner.as_u8() as i16)],
    )
    .await?;
    tx.commit().await?;
    Ok(CreateMesh::Created)
}

/// Mesh name and head sequence.
pub async fn mesh_head(pool: &Pool, mesh_id: Uuid) -> Result<Option<(String, i64)>, StoreError> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT name, head_seq FROM meshes WHERE id = $1", &[&mesh_id]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// What a hello tells the client about the mesh: name, head, and the owner's key commitment.
pub struct MeshIntro {
    /// Mesh name.
    pub name: String,
    /// Head sequence.
    pub head: i64,
    /// The owner's signed key commitment, if the mesh has one.
    pub commitment: Option<KeyCommitment>,
    /// The owner's ed25519 key.
    pub owner_pubkey: Option<Vec<u8>>,
    /// The mesh key's epoch and whether a rotation is due.
    pub key: super::keys::KeyState,
}

/// Name, head and key commitment of a mesh.
pub async fn mesh_intro(pool: &Pool, mesh_id: Uuid) -> Result<Option<MeshIntro>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT m.name, m.head_seq, m.key_commitment, m.key_commitment_signature, o.pubkey,
                    m.key_epoch, m.key_rotation_due
             FROM meshes m LEFT JOIN members o ON o.mesh_id = m.id AND o.id = m.owner_member_id
             WHERE m.id = $1",
            &[&mesh_id],
        )
        .await?;
    row.map(|r| {
        Ok(MeshIntro {
            name: r.get(0),
            head: r.get(1),
            commitment: match (r.get::<_, Option<Vec<u8>>>(2), r.get::<_, Option<Vec<u8>>>(3)) {
                (Some(commitment), Some(signature)) => Some(KeyCommitment { commitment, signature }),
                _ => None,
            },
            owner_pubkey: r.get(4),
            key: super::keys::KeyState {
                epoch: u32::try_from(r.get::<_, i32>(5)).map_err(|_| StoreError::Corrupt("negative key epoch"))?,
                rotation_due: r.get(6),
            },
        })
    })
    .transpose()
}

/// One member (removed ones included, flagged).
pub async fn member(pool: &Pool, mesh_id: Uuid, member_id: Uuid) -> Result<Option<MemberRow>, StoreError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {MEMBER_COLS} FROM members WHERE mesh_id = $1 AND id = $2");
    let row = client.query_opt(&sql, &[&mesh_id, &member_id]).await?;
    row.as_ref().map(member_from_row).transpose()
}

/// Current members.
pub async fn members(pool: &Pool, mesh_id: Uuid) -> Result<Vec<MemberRow>, StoreError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {MEMBER_COLS} FROM members WHERE mesh_id = $1 AND removed_at IS NULL ORDER BY joined_at");
    client.query(&sql, &[&mesh_id]).await?.iter().map(member_from_row).collect()
}

/// Record a hello nonce; false when it was seen before (a replay).
pub async fn record_nonce(pool: &Pool, nonce: &[u8]) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client.execute("INSERT INTO hello_nonces (nonce) VALUES ($1) ON CONFLICT DO NOTHING", &[&nonce]).await?;
    Ok(n == 1)
}

/// Forget nonces older than the clock-skew window (a replay that old fails the timestamp check).
pub async fn prune_nonces(pool: &Pool, older_than: Duration) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let cutoff = SystemTime::now() - older_than;
    Ok(client.execute("DELETE FROM hello_nonces WHERE seen_at < $1", &[&cutoff]).await?)
}

/// A session's durable identity and addressing.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Its cursor.
    pub cursor: super::cursors::StoredCursor,
    /// Head of the log when the session was first seen.
    pub created_seq: i64,
}

/// What a client says it has in a hello: the broker-reported watermark and the sequences it
/// acknowledged above it.
#[derive(Debug, Clone, Default)]
pub struct ClientCursor {
    /// Everything addressed at or below it is acknowledged (clamped to the head).
    pub watermark: Option<u64>,
    /// Acknowledged above the watermark (at or below the head).
    pub acked: Vec<u64>,
}

/// Insert or refresh a session row, merging the client's cursor into the stored one; returns
/// the result, or `None` when the session id is taken by another member. A new session starts
/// where the member's most advanced session is (or at the member's join sequence for its
/// first): it receives what reached the member after any of its sessions last caught up — a
/// message sent while the member was offline is not lost to the agent that starts next —
/// without inheriting history a sibling already read. The client's watermark is clamped to the
/// mesh head: a cursor from the future (a bug, or a broker whose database was reset) must not
/// silence the session.
#[allow(clippy::too_many_arguments)]
pub async fn upsert_session(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    member_id: Uuid,
    pubkey: &[u8],
    display_name: &str,
    groups: &[String],
    visible: bool,
    client_cursor: &ClientCursor,
) -> Result<Option<SessionRow>, StoreError> {
    let client = pool.get().await?;
    let client_watermark = client_cursor.watermark.map(|w| w.min(i64::MAX as u64) as i64);
    let client_acked: Vec<i64> = client_cursor.acked.iter().map(|s| (*s).min(i64::MAX as u64) as i64).collect();
    let row = client
        .query_opt(
            "WITH head AS (SELECT head_seq FROM meshes WHERE id = $1)
             INSERT INTO sessions (mesh_id, id, member_id, pubkey, display_name, groups, visible, watermark,
                                   acked_above, created_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, least((SELECT head_seq FROM head), coalesce($8,
                (SELECT max(CASE WHEN cardinality(unacked) > 0 THEN unacked[1] - 1 ELSE watermark END)
                   FROM sessions WHERE mesh_id = $1 AND member_id = $3),
                (SELECT joined_seq FROM members WHERE mesh_id = $1 AND id = $3))),
                $9, (SELECT head_seq FROM head))
             ON CONFLICT (mesh_id, id) DO UPDATE SET
                pubkey = EXCLUDED.pubkey, display_name = EXCLUDED.display_name,
                groups = EXCLUDED.groups, visible = EXCLUDED.visible, last_seen_at = now(),
                (watermark, unacked, acked_above) = (SELECT * FROM cursor_merge(
                    sessions.watermark, sessions.unacked, sessions.acked_above,
                    least((SELECT head_seq FROM head), coalesce($8, 0)), '{}', $9))
             WHERE sessions.member_id = $3
             RETURNING watermark, unacked, acked_above, created_seq",
            &[
                &mesh_id,
                &session_id,
                &member_id,
                &pubkey,
                &display_name,
                &groups,
                &visible,
                &client_watermark,
                &client_acked,
            ],
        )
        .await?;
    // No row: the upsert's WHERE filtered it out, so the session id belongs to another member.
    Ok(row
        .map(|r| SessionRow { cursor: super::cursors::from_row(r.get(0), r.get(1), r.get(2)), created_seq: r.get(3) }))
}

/// Update a session's visibility.
pub async fn update_session_visibility(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
    visible: bool,
) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute("UPDATE sessions SET visible = $3 WHERE mesh_id = $1 AND id = $2", &[&mesh_id, &session_id, &visible])
        .await?;
    Ok(())
}

/// The member owning a session of this mesh.
pub async fn session_member(pool: &Pool, mesh_id: Uuid, session_id: Uuid) -> Result<Option<Uuid>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT member_id FROM sessions WHERE mesh_id = $1 AND id = $2", &[&mesh_id, &session_id])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// An invite code as the audit log names it: enough to tell invites apart, not to claim one.
pub fn invite_hint(code: &str) -> String {
    format!("{}…", code.chars().take(4).collect::<String>())
}

/// Store an invite.
#[allow(clippy::too_many_arguments)]
pub async fn create_invite(
    db: &impl GenericClient,
    mesh_id: Uuid,
    code: &str,
    role: Role,
    max_uses: u32,
    expires_at_ms: u64,
    issued_by: Uuid,
    signature: &[u8],
    groups: &[String],
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "INSERT INTO invites (mesh_id, code, role, max_uses, expires_at, issued_by, signature, groups)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING",
            &[
                &mesh_id,
                &code,
                &(role.as_u8() as i16),
                &(max_uses.min(i32::MAX as u32) as i32),
                &from_millis(expires_at_ms),
                &issued_by,
                &signature,
                &groups,
            ],
        )
        .await?;
    Ok(n == 1)
}

fn invite_from_row(r: &tokio_postgres::Row) -> Result<InviteInfo, StoreError> {
    Ok(InviteInfo {
        code: r.get("code"),
        role: Role::from_u8(r.get::<_, i16>("role") as u8).ok_or(StoreError::Corrupt("role"))?,
        max_uses: r.get::<_, i32>("max_uses") as u32,
        uses: r.get::<_, i32>("uses") as u32,
        expires_at_ms: millis(r.get("expires_at")),
        revoked: r.get::<_, Option<SystemTime>>("revoked_at").is_some(),
        issued_by: r.get("issued_by"),
        groups: r.get("groups"),
    })
}

/// A mesh's invites, newest first.
pub async fn list_invites(pool: &Pool, mesh_id: Uuid) -> Result<Vec<InviteInfo>, StoreError> {
    let client = pool.get().await?;
    client
        .query(
            "SELECT code, role, max_uses, uses, expires_at, revoked_at, issued_by, groups FROM invites
             WHERE mesh_id = $1 ORDER BY created_at DESC LIMIT 500",
            &[&mesh_id],
        )
        .await?
        .iter()
        .map(invite_from_row)
        .collect()
}

/// Revoke an invite of this mesh; false when there is none.
pub async fn revoke_invite(db: &impl GenericClient, mesh_id: Uuid, code: &str) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE invites SET revoked_at = coalesce(revoked_at, now()) WHERE mesh_id = $1 AND code = $2",
            &[&mesh_id, &code],
        )
        .await?;
    Ok(n == 1)
}

/// Why a claim failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// No such code.
    NotFound,
    /// Past expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// No uses left.
    Exhausted,
    /// The member id or key is already a member.
    AlreadyMember,
    /// A current member has this display name; a free one is suggested.
    NameTaken(String),
}

/// A successful claim.
pub struct Claimed {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Mesh name.
    pub mesh_name: String,
    /// Role granted.
    pub role: Role,
    /// Issuer's public key.
    pub issuer_pubkey: Vec<u8>,
    /// Invite signature.
    pub signature: Vec<u8>,
    /// Expiry.
    pub expires_at_ms: u64,
    /// Max uses.
    pub max_uses: u32,
}

/// Claim an invite atomically: check it under a row lock, consume one use, add the member.
pub async fn claim_invite(
    pool: &Pool,
    code: &str,
    member_id: Uuid,
    member_pubkey: &[u8],
    claim_pubkey: &[u8],
    display_name: &str,
) -> Result<Result<Claimed, ClaimRefusal>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(inv) = tx
        .query_opt(
            "SELECT i.mesh_id, i.role, i.max_uses, i.uses, i.expires_at, i.revoked_at, i.signature, i.groups,
                    m.name, im.pubkey AS issuer_pubkey
             FROM invites i JOIN meshes m ON m.id = i.mesh_id
             JOIN members im ON im.mesh_id = i.mesh_id AND im.id = i.issued_by
             WHERE i.code = $1 FOR UPDATE OF i",
            &[&code],
        )
        .await?
    else {
        return Ok(Err(ClaimRefusal::NotFound));
    };
    if inv.get::<_, Option<SystemTime>>("revoked_at").is_some() {
        return Ok(Err(ClaimRefusal::Revoked));
    }
    let expires_at: SystemTime = inv.get("expires_at");
    if expires_at <= SystemTime::now() {
        return Ok(Err(ClaimRefusal::Expired));
    }
    let max_uses: i32 = inv.get("max_uses");
    if inv.get::<_, i32>("uses") >= max_uses {
        return Ok(Err(ClaimRefusal::Exhausted));
    }
    let mesh_id: Uuid = inv.get("mesh_id");
    if let Some(free) = name_taken(&tx, mesh_id, display_name).await? {
        return Ok(Err(ClaimRefusal::NameTaken(free)));
    }
    let role_n: i16 = inv.get("role");
    let role = Role::from_u8(role_n as u8).ok_or(StoreError::Corrupt("role"))?;
    let n = tx
        .execute(
            "INSERT INTO members (mesh_id, id, pubkey, display_name, role, joined_seq, claim_pubkey, invited_with)
             VALUES ($1, $2, $3, $4, $5, (SELECT head_seq FROM meshes WHERE id = $1), $6, $7)
             ON CONFLICT DO NOTHING",
            &[&mesh_id, &member_id, &member_pubkey, &display_name, &role_n, &claim_pubkey, &code],
        )
        .await?;
    if n == 0 {
        return Ok(Err(ClaimRefusal::AlreadyMember));
    }
    tx.execute("UPDATE invites SET uses = uses + 1 WHERE code = $1", &[&code]).await?;
    super::audit::append(
        &tx,
        mesh_id,
        super::audit::Actor { member: Some(member_id), name: display_name },
        "invite.claimed",
        &member_id.to_string(),
        serde_json::json!({ "invite": invite_hint(code), "role": role.as_str() }),
    )
    .await?;
    let groups: Vec<String> = inv.get("groups");
    if !groups.is_empty() {
        tx.execute(
            "INSERT INTO member_groups (mesh_id, member_id, name, joined_seq)
             SELECT $1, $2, g, (SELECT head_seq FROM meshes WHERE id = $1) FROM unnest($3::text[]) g
             ON CONFLICT DO NOTHING",
            &[&mesh_id, &member_id, &groups],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(Claimed {
        mesh_id,
        mesh_name: inv.get("name"),
        role,
        issuer_pubkey: inv.get("issuer_pubkey"),
        signature: inv.get("signature"),
        expires_at_ms: millis(expires_at),
        max_uses: max_uses as u32,
    }))
}

/// When a current member of the mesh is called `name` (ignoring case), a free name to suggest.
async fn name_taken(
    tx: &deadpool_postgres::Transaction<'_>,
    mesh_id: Uuid,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let taken = |n: String| async move {
        let row = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM members WHERE mesh_id = $1 AND removed_at IS NULL
                                AND lower(display_name) = lower($2))",
                &[&mesh_id, &n],
            )
            .await?;
        Ok::<bool, StoreError>(row.get(0))
    };
    if !taken(name.to_owned()).await? {
        return Ok(None);
    }
    for i in 2..1000 {
        let candidate = format!("{name}-{i}");
        if candidate.len() <= plexus_proto::limits::MAX_NAME && !taken(candidate.clone()).await? {
            return Ok(Some(candidate));
        }
    }
    Ok(Some(format!("{name}-{}", &Uuid::new_v4().simple().to_string()[..6])))
}

/// Mark a member removed; false when there is no such current member.
pub async fn remove_member(db: &impl GenericClient, mesh_id: Uuid, member_id: Uuid) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE members SET removed_at = now() WHERE mesh_id = $1 AND id = $2 AND removed_at IS NULL AND role <> $3",
            &[&mesh_id, &member_id, &(Role::Owner.as_u8() as i16)],
        )
        .await?;
    Ok(n == 1)
}

/// Outcome of a key grant.
#[derive(Debug, PartialEq, Eq)]
pub enum Granted {
    /// Stored.
    Stored,
    /// The member already had a key (the first grant wins).
    AlreadyHeld,
    /// No such current member waiting for a key in this mesh.
    NoSuchMember,
    /// The member refused an earlier grant of this granter as forged.
    Refused,
}

/// Store a sealed mesh key for a member that has none yet, recording who granted it.
pub async fn grant_mesh_key(
    db: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    sealed: &[u8],
    granted_by: Uuid,
) -> Result<Granted, StoreError> {
    let row = db
        .query_opt(
            "SELECT sealed_mesh_key IS NOT NULL, $3 = ANY(key_refused_granters) FROM members
             WHERE mesh_id = $1 AND id = $2 AND claim_pubkey IS NOT NULL AND removed_at IS NULL",
            &[&mesh_id, &member_id, &granted_by],
        )
        .await?;
    let Some(row) = row else { return Ok(Granted::NoSuchMember) };
    if row.get::<_, bool>(1) {
        return Ok(Granted::Refused);
    }
    if row.get::<_, bool>(0) {
        return Ok(Granted::AlreadyHeld);
    }
    let n = db
        .execute(
            "UPDATE members SET sealed_mesh_key = $3, key_granted_by = $4
             WHERE mesh_id = $1 AND id = $2 AND sealed_mesh_key IS NULL AND claim_pubkey IS NOT NULL AND removed_at IS NULL",
            &[&mesh_id, &member_id, &sealed, &granted_by],
        )
        .await?;
    Ok(if n == 1 { Granted::Stored } else { Granted::AlreadyHeld })
}

/// The member refuses the key it was granted: clear it and bar its granter. `None` when there
/// was no grant to refuse, else the granter (when known).
pub async fn refuse_mesh_key(pool: &Pool, mesh_id: Uuid, member_id: Uuid) -> Result<Option<Option<Uuid>>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "WITH old AS (SELECT key_granted_by FROM members
                          WHERE mesh_id = $1 AND id = $2 AND sealed_mesh_key IS NOT NULL AND removed_at IS NULL
                          FOR UPDATE)
             UPDATE members m SET sealed_mesh_key = NULL, key_granted_by = NULL,
                key_refused_granters = CASE WHEN old.key_granted_by IS NULL THEN m.key_refused_granters
                                            ELSE array_append(m.key_refused_granters, old.key_granted_by) END
             FROM old WHERE m.mesh_id = $1 AND m.id = $2
             RETURNING old.key_granted_by",
            &[&mesh_id, &member_id],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, Option<Uuid>>(0)))
}

/// Members still waiting for the mesh key.
pub async fn pending_key_requests(pool: &Pool, mesh_id: Uuid) -> Result<Vec<MemberRow>, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM members WHERE mesh_id = $1 AND removed_at IS NULL
         AND claim_pubkey IS NOT NULL AND sealed_mesh_key IS NULL"
    );
    client.query(&sql, &[&mesh_id]).await?.iter().map(member_from_row).collect()
}

/// A session's addressing and cursor as stored.
pub async fn session_addressee(
    pool: &Pool,
    mesh_id: Uuid,
    session_id: Uuid,
) -> Result<Option<super::log::Addressee>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT member_id, visible, watermark, unacked, acked_above, created_seq FROM sessions
             WHERE mesh_id = $1 AND id = $2",
            &[&mesh_id, &session_id],
        )
        .await?;
    Ok(row.map(|r| super::log::Addressee {
        mesh_id,
        session_id,
        member_id: r.get(0),
        visible: r.get(1),
        cursor: super::cursors::from_row(r.get(2), r.get(3), r.get(4)),
        created_seq: r.get::<_, i64>(5).max(0) as u64,
    }))
}

// ---------------------------------------------------------------------------------------------
// Groups: durable membership of members.

/// A member's groups, by name.
pub async fn member_groups(
    pool: &Pool,
    mesh_id: Uuid,
    member_id: Uuid,
) -> Result<Vec<plexus_proto::types::GroupRole>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT name, role FROM member_groups WHERE mesh_id = $1 AND member_id = $2 ORDER BY name",
            &[&mesh_id, &member_id],
        )
        .await?;
    Ok(rows.iter().map(|r| plexus_proto::types::GroupRole { name: r.get(0), role: r.get(1) }).collect())
}

/// Join groups (a role given replaces the old one; joining again keeps the join point).
pub async fn join_groups(
    pool: &Pool,
    mesh_id: Uuid,
    member_id: Uuid,
    groups: &[plexus_proto::types::GroupRole],
) -> Result<(), StoreError> {
    if groups.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let roles: Vec<Option<&str>> = groups.iter().map(|g| g.role.as_deref()).collect();
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO member_groups (mesh_id, member_id, name, role, joined_seq)
             SELECT $1, $2, g.name, g.role, (SELECT head_seq FROM meshes WHERE id = $1)
             FROM unnest($3::text[], $4::text[]) AS g(name, role)
             ON CONFLICT (mesh_id, member_id, name) DO UPDATE
                SET role = coalesce(EXCLUDED.role, member_groups.role)",
            &[&mesh_id, &member_id, &names, &roles],
        )
        .await?;
    Ok(())
}

/// Leave a group; false when the member was not in it.
pub async fn leave_group(pool: &Pool, mesh_id: Uuid, member_id: Uuid, name: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "DELETE FROM member_groups WHERE mesh_id = $1 AND member_id = $2 AND name = $3",
            &[&mesh_id, &member_id, &name],
        )
        .await?;
    Ok(n == 1)
}

/// Replace a member's groups with exactly these (kept groups keep their join point).
pub async fn set_groups(
    pool: &Pool,
    mesh_id: Uuid,
    member_id: Uuid,
    groups: &[plexus_proto::types::GroupRole],
) -> Result<(), StoreError> {
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    {
        let client = pool.get().await?;
        client
            .execute(
                "DELETE FROM member_groups WHERE mesh_id = $1 AND member_id = $2 AND name <> ALL($3::text[])",
                &[&mesh_id, &member_id, &names],
            )
            .await?;
    }
    join_groups(pool, mesh_id, member_id, groups).await
}

/// Every group of the mesh with its members (current members only).
pub async fn list_groups(pool: &Pool, mesh_id: Uuid) -> Result<Vec<plexus_proto::ops::GroupInfo>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT g.name, g.member_id, m.display_name, g.role FROM member_groups g
             JOIN members m ON m.mesh_id = g.mesh_id AND m.id = g.member_id AND m.removed_at IS NULL
             WHERE g.mesh_id = $1 ORDER BY g.name, m.display_name",
            &[&mesh_id],
        )
        .await?;
    let mut out: Vec<plexus_proto::ops::GroupInfo> = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let member = plexus_proto::ops::GroupMember { member_id: r.get(1), display_name: r.get(2), role: r.get(3) };
        match out.last_mut() {
            Some(g) if g.name == name => g.members.push(member),
            _ => out.push(plexus_proto::ops::GroupInfo { name, members: vec![member] }),
        }
    }
    Ok(out)
}

/// Whether any current member is in `group` or one of its sub-groups.
pub async fn group_has_members(pool: &Pool, mesh_id: Uuid, group: &str) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM member_groups g JOIN members m ON m.mesh_id = g.mesh_id AND m.id = g.member_id
                            WHERE g.mesh_id = $1 AND m.removed_at IS NULL
                              AND (g.name = $2 OR left(g.name, length($2) + 1) = $2 || '/'))",
            &[&mesh_id, &group],
        )
        .await?;
    Ok(row.get(0))
}
