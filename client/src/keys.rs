//! The mesh key on the client: handing it to joiners (sealed to their claim key), and taking a
//! grant — only when it matches the owner's signed commitment; a forgery is refused, which
//! bars its granter and asks the other key holders again. The key is the member's, so an
//! adopted key is saved to the profile on disk for every session of this member here.

use std::path::Path;

use plexus_crypto as crypto;
use plexus_proto::{ops, push::KeyRequest};
use uuid::Uuid;

use crate::{
    connection::{ClientError, Connection},
    profile::{KeyOutcome, Profile},
};

/// What became of a key handed to this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// Stored (it matched the commitment, or the mesh has none).
    Stored,
    /// A forgery: refused with `key_reject`; the real one is asked for again.
    Refused {
        /// The member who granted it.
        granted_by: Option<Uuid>,
    },
    /// Nothing to do (already held, or not for this member).
    Nothing,
}

/// Seal the mesh key to a new member's claim key, if this profile holds it.
pub async fn grant(profile: &Profile, conn: &Connection, req: &KeyRequest) -> Result<bool, ClientError> {
    let Some(key) = profile.mesh_key() else { return Ok(false) };
    let sealed = crypto::seal_anonymous(&req.claim_pubkey, &key)?;
    conn.call(&ops::KeyGrant { member_id: req.member_id, sealed_mesh_key: sealed }).await?;
    tracing::info!(member = %req.display_name, "handed the mesh key to a new member");
    Ok(true)
}

/// Learn the owner's key commitment from a hello reply (saving the profile when new).
pub fn learn_commitment(home: &Path, profile: &mut Profile, welcome: &ops::Welcome) -> Result<(), ClientError> {
    if profile.learn_commitment(welcome) {
        // Stored in the member's profile on disk, under its own session id and key.
        let mut on_disk = Profile::load(home, Some(&profile.name))?;
        on_disk.key_commitment = profile.key_commitment.clone();
        on_disk.save(home)?;
    }
    Ok(())
}

/// Take a sealed mesh key granted to this member. `profile` may carry an agent session's own
/// id and key; the key itself is saved to the member's profile on disk.
pub async fn adopt(
    home: &Path,
    profile: &mut Profile,
    sealed: &[u8],
    granted_by: Option<Uuid>,
    conn: &Connection,
) -> Result<Adopted, ClientError> {
    if profile.mesh_key.is_some() {
        return Ok(Adopted::Nothing);
    }
    let mut on_disk = Profile::load(home, Some(&profile.name))?;
    if on_disk.mesh_key.is_some() {
        profile.mesh_key = on_disk.mesh_key;
        return Ok(Adopted::Stored);
    }
    on_disk.key_commitment = on_disk.key_commitment.or_else(|| profile.key_commitment.clone());
    match on_disk.accept_sealed_mesh_key(sealed) {
        KeyOutcome::Stored => {
            on_disk.save(home)?;
            profile.mesh_key = on_disk.mesh_key;
            profile.claim_secret = None;
            Ok(Adopted::Stored)
        }
        KeyOutcome::Forged => {
            tracing::warn!(granted_by = ?granted_by, "refused a mesh key that is not the one the owner committed to");
            conn.call(&ops::KeyReject {}).await?;
            Ok(Adopted::Refused { granted_by })
        }
        KeyOutcome::Unusable => Ok(Adopted::Nothing),
    }
}
