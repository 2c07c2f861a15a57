//! Mesh-key epochs: the mesh's current epoch and whether a rotation is due, each rotation's
//! signed commitment, and each member's copy of each rotated key. The broker stores sealed
//! copies only; it can neither open them nor make one a member would accept.

use deadpool_postgres::{GenericClient, Pool};
use plexus_proto::{
    keys::{EpochKey, KeyRotate, MeshKeyList, SealedEpochKey},
    types::Role,
};
use uuid::Uuid;

use super::StoreError;

/// A mesh's key epoch and whether a rotation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyState {
    /// The current epoch.
    pub epoch: u32,
    /// A member went since the last rotation.
    pub rotation_due: bool,
}

fn epoch_of(n: i32) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt("negative key epoch"))
}

/// The mesh's key state; `lock` takes the mesh row until the transaction ends, so a rotation
/// and the messages checked against it are ordered.
pub async fn state(db: &impl GenericClient, mesh_id: Uuid, lock: bool) -> Result<Option<KeyState>, StoreError> {
    let sql = if lock {
        "SELECT key_epoch, key_rotation_due FROM meshes WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT key_epoch, key_rotation_due FROM meshes WHERE id = $1"
    };
    let row = db.query_opt(sql, &[&mesh_id]).await?;
    row.map(|r| Ok(KeyState { epoch: epoch_of(r.get(0))?, rotation_due: r.get(1) })).transpose()
}

/// A member went: the key must be rotated before new mesh-key traffic. Returns the state.
pub async fn mark_rotation_due(db: &impl GenericClient, mesh_id: Uuid) -> Result<KeyState, StoreError> {
    let row = db
        .query_one("UPDATE meshes SET key_rotation_due = true WHERE id = $1 RETURNING key_epoch", &[&mesh_id])
        .await?;
    Ok(KeyState { epoch: epoch_of(row.get(0))?, rotation_due: true })
}

/// Whether `member_id` holds the key of `epoch`: epoch 0 by ownership or grant, later ones
/// by a sealed copy.
pub async fn holds(db: &impl GenericClient, mesh_id: Uuid, member_id: Uuid, epoch: u32) -> Result<bool, StoreError> {
    let row = if epoch == 0 {
        db.query_opt(
            "SELECT 1 FROM members WHERE mesh_id = $1 AND id = $2 AND removed_at IS NULL
               AND (role = $3 OR sealed_mesh_key IS NOT NULL)",
            &[&mesh_id, &member_id, &(Role::Owner.as_u8() as i16)],
        )
        .await?
    } else {
        db.query_opt(
            "SELECT 1 FROM member_epoch_keys k JOIN members m ON m.mesh_id = k.mesh_id AND m.id = k.member_id
             WHERE k.mesh_id = $1 AND k.member_id = $2 AND k.epoch = $3 AND m.removed_at IS NULL",
            &[&mesh_id, &member_id, &(epoch as i32)],
        )
        .await?
    };
    Ok(row.is_some())
}

/// What became of a rotation.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotated {
    /// Stored; the mesh is at the new epoch.
    Done,
    /// The mesh is not at `epoch - 1` (someone rotated first).
    WrongEpoch(u32),
    /// The copies do not cover exactly the current members.
    MembersChanged,
    /// The caller does not hold the current key.
    NotHolder,
}

/// Apply a rotation in `tx` (the caller has checked the signature). Locks the mesh row.
pub async fn rotate(
    tx: &deadpool_postgres::Transaction<'_>,
    mesh_id: Uuid,
    rotated_by: Uuid,
    r: &KeyRotate,
) -> Result<Rotated, StoreError> {
    let Some(current) = state(tx, mesh_id, true).await? else { return Ok(Rotated::WrongEpoch(0)) };
    if r.epoch != current.epoch + 1 {
        return Ok(Rotated::WrongEpoch(current.epoch));
    }
    if !holds(tx, mesh_id, rotated_by, current.epoch).await? {
        return Ok(Rotated::NotHolder);
    }
    let mut members: Vec<Uuid> = tx
        .query("SELECT id FROM members WHERE mesh_id = $1 AND removed_at IS NULL", &[&mesh_id])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut sealed_for: Vec<Uuid> = r.sealed.iter().map(|k| k.member_id).collect();
    members.sort();
    sealed_for.sort();
    if members != sealed_for {
        return Ok(Rotated::MembersChanged);
    }
    let epoch = r.epoch as i32;
    tx.execute(
        "INSERT INTO key_rotations (mesh_id, epoch, rotated_by, commitment, signature) VALUES ($1, $2, $3, $4, $5)",
        &[&mesh_id, &epoch, &rotated_by, &r.commitment, &r.signature],
    )
    .await?;
    let ids: Vec<Uuid> = r.sealed.iter().map(|k| k.member_id).collect();
    let keys: Vec<Vec<u8>> = r.sealed.iter().map(|k| k.sealed_key.clone()).collect();
    tx.execute(
        "INSERT INTO member_epoch_keys (mesh_id, member_id, epoch, sealed_key)
         SELECT $1, m, $2, k FROM unnest($3::uuid[], $4::bytea[]) AS s(m, k)",
        &[&mesh_id, &epoch, &ids, &keys],
    )
    .await?;
    tx.execute("UPDATE meshes SET key_epoch = $2, key_rotation_due = false WHERE id = $1", &[&mesh_id, &epoch]).await?;
    Ok(Rotated::Done)
}

/// Store the rotated keys a granter sealed to a new member. Every one must be of an epoch that
/// exists and the current one must be among them (else the new member could not read or send
/// group traffic); false when it is not.
pub async fn grant_epoch_keys(
    db: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    keys: &[SealedEpochKey],
) -> Result<bool, StoreError> {
    let Some(current) = state(db, mesh_id, false).await? else { return Ok(false) };
    if current.epoch == 0 {
        return Ok(true);
    }
    if !keys.iter().any(|k| k.epoch == current.epoch) || keys.iter().any(|k| k.epoch > current.epoch || k.epoch == 0) {
        return Ok(false);
    }
    for k in keys {
        db.execute(
            "INSERT INTO member_epoch_keys (mesh_id, member_id, epoch, sealed_key) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&mesh_id, &member_id, &(k.epoch as i32), &k.sealed_key],
        )
        .await?;
    }
    Ok(true)
}

/// A member's rotated keys with their proofs, and the mesh's key state.
pub async fn member_keys(pool: &Pool, mesh_id: Uuid, member_id: Uuid) -> Result<MeshKeyList, StoreError> {
    let client = pool.get().await?;
    let current = state(&client, mesh_id, false).await?.unwrap_or(KeyState { epoch: 0, rotation_due: false });
    let rows = client
        .query(
            "SELECT k.epoch, k.sealed_key, r.commitment, r.signature, r.rotated_by, m.pubkey
             FROM member_epoch_keys k
             JOIN key_rotations r ON r.mesh_id = k.mesh_id AND r.epoch = k.epoch
             JOIN members m ON m.mesh_id = r.mesh_id AND m.id = r.rotated_by
             WHERE k.mesh_id = $1 AND k.member_id = $2 ORDER BY k.epoch",
            &[&mesh_id, &member_id],
        )
        .await?;
    let keys = rows
        .iter()
        .map(|r| {
            Ok(EpochKey {
                epoch: epoch_of(r.get(0))?,
                sealed_key: r.get(1),
                commitment: r.get(2),
                signature: r.get(3),
                rotated_by: r.get(4),
                rotated_by_pubkey: r.get(5),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(MeshKeyList { epoch: current.epoch, rotation_due: current.rotation_due, keys })
}
