//! The mesh keys on the client: handing the key to joiners (sealed to their claim key), taking
//! a grant — only when it matches the owner's signed commitment; a forgery is refused, which
//! bars its granter and asks the other key holders again — and key epochs: rotating to a new
//! key when a member goes, and taking rotated keys only when their signed commitment checks
//! out. Keys are the member's, so every adopted key is saved to the profile on disk for every
//! session of this member here; old keys are kept to read history.

use std::{collections::BTreeMap, path::Path};

use plexus_crypto as crypto;
use plexus_proto::{
    keys::{EpochKey, KeyRotate, MeshKeyList, MeshKeys, SealedEpochKey, SealedMemberKey},
    ops,
    push::KeyRequest,
    signing, ErrorCode,
};
use uuid::Uuid;

use crate::{
    connection::{ClientError, Connection},
    profile::{KeyOutcome, Profile},
};

/// Every mesh key a member holds: the current one (which seals) and retired ones (which still
/// open what was sealed with them). A mesh-key nonce names its epoch.
#[derive(Clone)]
pub struct Keyring {
    epoch: u32,
    current: Vec<u8>,
    retired: BTreeMap<u32, Vec<u8>>,
}

impl Keyring {
    /// A ring with `current` at `epoch`.
    pub fn new(epoch: u32, current: Vec<u8>, retired: BTreeMap<u32, Vec<u8>>) -> Keyring {
        Keyring { epoch, current, retired }
    }

    /// The current key's epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The key of `epoch`, if held.
    pub fn key(&self, epoch: u32) -> Option<&[u8]> {
        if epoch == self.epoch {
            Some(&self.current)
        } else {
            self.retired.get(&epoch).map(Vec::as_slice)
        }
    }

    /// Seal with the current key; returns (nonce, ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<([u8; 24], Vec<u8>), crypto::CryptoError> {
        crypto::seal_with_mesh_key(&self.current, self.epoch, plaintext)
    }

    /// Open with the key the nonce names.
    pub fn open(&self, nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, crypto::CryptoError> {
        let key = self.key(crypto::mesh_key_epoch(nonce)).ok_or(crypto::CryptoError::OpenFailed)?;
        crypto::open_with_mesh_key(key, nonce, ciphertext)
    }
}

/// Copy the mesh keys of `from` into `to` (a session's in-memory profile from the one on disk).
fn copy_keys(from: &Profile, to: &mut Profile) {
    to.mesh_key.clone_from(&from.mesh_key);
    to.key_epoch = from.key_epoch;
    to.retired_mesh_keys.clone_from(&from.retired_mesh_keys);
}

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

/// Seal the mesh key to a new member's claim key, if this profile holds it: the owner's key
/// (epoch 0, which the joiner checks against the owner's commitment) and, once rotated, the
/// current key sealed to the joiner's member key (which it checks against its rotation).
pub async fn grant(profile: &Profile, conn: &Connection, req: &KeyRequest) -> Result<bool, ClientError> {
    let Some(ring) = profile.keyring() else { return Ok(false) };
    let Some(owners) = ring.key(0) else { return Ok(false) };
    let sealed = crypto::seal_anonymous(&req.claim_pubkey, owners)?;
    let mut epoch_keys = Vec::new();
    if ring.epoch() > 0 {
        let to = crypto::ed25519_to_x25519_public(&req.member_pubkey)?;
        epoch_keys
            .push(SealedEpochKey { epoch: ring.epoch(), sealed_key: crypto::seal_anonymous(&to, &ring.current)? });
    }
    conn.call(&ops::KeyGrant { member_id: req.member_id, sealed_mesh_key: sealed, epoch_keys }).await?;
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
        copy_keys(&on_disk, profile);
        return Ok(Adopted::Stored);
    }
    on_disk.key_commitment = on_disk.key_commitment.or_else(|| profile.key_commitment.clone());
    match on_disk.accept_sealed_mesh_key(sealed) {
        KeyOutcome::Stored => {
            on_disk.save(home)?;
            copy_keys(&on_disk, profile);
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

/// Open and check one rotated key: it must open with the member's own key, match its
/// commitment, and the commitment must carry the rotating member's signature.
fn check_epoch_key(profile: &Profile, k: &EpochKey) -> Result<Vec<u8>, String> {
    let member = profile.member_key()?;
    let key = member.to_box_keypair().and_then(|b| b.open_sealed(&k.sealed_key)).map_err(|e| e.to_string())?;
    if key.len() != crypto::MESH_KEY_LEN {
        return Err("not a mesh key".into());
    }
    let commitment = crypto::hash32(&signing::epoch_key_commitment_input(profile.mesh_id, k.epoch, &key));
    if !crypto::equal(&commitment, &k.commitment) {
        return Err("does not match its commitment".into());
    }
    let signed = signing::key_rotation_bytes(profile.mesh_id, k.epoch, &k.commitment);
    crypto::verify(&k.rotated_by_pubkey, &signed, &k.signature)
        .map_err(|_| "the rotation's signature does not verify")?;
    Ok(key)
}

/// Fetch this member's rotated keys and keep every new one that checks out (saved to disk).
/// Returns the mesh's key state.
pub async fn refresh(home: &Path, profile: &mut Profile, conn: &Connection) -> Result<MeshKeyList, ClientError> {
    let list = conn.call(&MeshKeys {}).await?;
    let mut on_disk = Profile::load(home, Some(&profile.name))?;
    let mut changed = false;
    for k in &list.keys {
        match check_epoch_key(&on_disk, k) {
            Ok(key) => changed |= on_disk.keep_epoch_key(k.epoch, &key),
            Err(why) => tracing::warn!(epoch = k.epoch, rotated_by = %k.rotated_by, why, "refused a rotated mesh key"),
        }
    }
    if changed {
        on_disk.save(home)?;
        tracing::info!(epoch = on_disk.key_epoch, "took the rotated mesh key");
    }
    copy_keys(&on_disk, profile);
    Ok(list)
}

/// Rotate the mesh key: a new key for the next epoch, committed to, signed, and sealed to
/// every current member. `Ok(None)` when someone else rotated first or the members changed
/// meanwhile (refresh and look again); the new epoch otherwise.
pub async fn rotate(home: &Path, profile: &mut Profile, conn: &Connection) -> Result<Option<u32>, ClientError> {
    let list = refresh(home, profile, conn).await?;
    rotate_from(home, profile, conn, &list).await
}

/// Rotate from the key state in `list` (to its epoch + 1): a rotation someone else made since
/// is refused by the broker as a conflict, so a due rotation happens once however many rotate.
async fn rotate_from(
    home: &Path,
    profile: &mut Profile,
    conn: &Connection,
    list: &MeshKeyList,
) -> Result<Option<u32>, ClientError> {
    let ring = profile.keyring().ok_or_else(|| ClientError::Keys("this member holds no mesh key to rotate".into()))?;
    if ring.epoch() != list.epoch {
        return Err(ClientError::Keys(format!(
            "this member holds the key of epoch {}, not the current {}; a holder of the current key must rotate",
            ring.epoch(),
            list.epoch
        )));
    }
    let members = conn.call(&ops::Members {}).await?.members;
    let epoch = list.epoch + 1;
    let key = crypto::generate_mesh_key();
    let commitment = crypto::hash32(&signing::epoch_key_commitment_input(profile.mesh_id, epoch, &key));
    let member = profile.member_key().map_err(ClientError::Keys)?;
    let signature = member.sign(&signing::key_rotation_bytes(profile.mesh_id, epoch, &commitment)).to_vec();
    let sealed = members
        .iter()
        .map(|m| {
            let to = crypto::ed25519_to_x25519_public(&m.pubkey)?;
            Ok(SealedMemberKey { member_id: m.member_id, sealed_key: crypto::seal_anonymous(&to, &key)? })
        })
        .collect::<Result<Vec<_>, crypto::CryptoError>>()?;
    match conn.call(&KeyRotate { epoch, commitment: commitment.to_vec(), signature, sealed }).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::Conflict) => {
            tracing::info!(error = %e, "the key rotation lost a race; looking again");
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let mut on_disk = Profile::load(home, Some(&profile.name))?;
    on_disk.keep_epoch_key(epoch, &key);
    on_disk.save(home)?;
    copy_keys(&on_disk, profile);
    tracing::info!(epoch, members = members.len(), "rotated the mesh key");
    Ok(Some(epoch))
}

/// Make this member's keys current: take rotated keys, and rotate when a rotation is due and
/// this member holds the current key (a few tries: others may be rotating at the same time).
/// Returns the current epoch and whether a rotation is still due.
pub async fn catch_up(home: &Path, profile: &mut Profile, conn: &Connection) -> Result<(u32, bool), ClientError> {
    for _ in 0..4 {
        let list = refresh(home, profile, conn).await?;
        let holds_current = profile.keyring().is_some_and(|r| r.epoch() == list.epoch);
        if !list.rotation_due || !holds_current {
            return Ok((list.epoch, list.rotation_due));
        }
        if let Some(epoch) = rotate_from(home, profile, conn, &list).await? {
            return Ok((epoch, false));
        }
    }
    let list = refresh(home, profile, conn).await?;
    Ok((list.epoch, list.rotation_due))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member_profile(member: &crypto::SigningKey) -> Profile {
        Profile {
            name: "t".into(),
            brokers: vec![],
            ca_file: None,
            mesh_id: Uuid::from_u128(7),
            mesh_name: "t".into(),
            member_id: Uuid::from_u128(8),
            display_name: "t".into(),
            member_secret: crypto::hex(member.secret_bytes()),
            session_id: Uuid::from_u128(9),
            session_secret: crypto::hex(crypto::BoxKeypair::generate().unwrap().secret_bytes()),
            mesh_key: None,
            key_epoch: 0,
            retired_mesh_keys: BTreeMap::new(),
            claim_secret: None,
            key_commitment: None,
        }
    }

    /// A rotated key as a rotating member makes it for `to`, signed by `signer`.
    fn rotated(
        mesh: Uuid,
        epoch: u32,
        key: &[u8],
        sealed_key: &[u8],
        to: &[u8],
        signer: &crypto::SigningKey,
    ) -> EpochKey {
        let commitment = crypto::hash32(&signing::epoch_key_commitment_input(mesh, epoch, key)).to_vec();
        let signature = signer.sign(&signing::key_rotation_bytes(mesh, epoch, &commitment)).to_vec();
        let x = crypto::ed25519_to_x25519_public(to).unwrap();
        EpochKey {
            epoch,
            sealed_key: crypto::seal_anonymous(&x, sealed_key).unwrap(),
            commitment,
            signature,
            rotated_by: Uuid::from_u128(1),
            rotated_by_pubkey: signer.public_key().to_vec(),
        }
    }

    #[test]
    fn a_rotated_key_is_taken_only_with_its_commitment_and_the_rotators_signature() {
        let me = crypto::SigningKey::generate().unwrap();
        let rotator = crypto::SigningKey::generate().unwrap();
        let p = member_profile(&me);
        let key = crypto::generate_mesh_key();
        let good = rotated(p.mesh_id, 1, &key, &key, me.public_key(), &rotator);
        assert_eq!(check_epoch_key(&p, &good).unwrap(), key);

        // Signed by someone other than the member it names.
        let impostor = crypto::SigningKey::generate().unwrap();
        let mut forged = rotated(p.mesh_id, 1, &key, &key, me.public_key(), &impostor);
        forged.rotated_by_pubkey = rotator.public_key().to_vec();
        assert!(check_epoch_key(&p, &forged).is_err(), "a signature by another key was accepted");

        // The sealed key is not the committed one (a broker swapping in its own key).
        let swapped = rotated(p.mesh_id, 1, &key, &crypto::generate_mesh_key(), me.public_key(), &rotator);
        assert!(check_epoch_key(&p, &swapped).is_err(), "a key not matching its commitment was accepted");

        // A commitment for another epoch does not carry over.
        let mut replayed = good.clone();
        replayed.epoch = 2;
        assert!(check_epoch_key(&p, &replayed).is_err(), "a rotation was replayed as another epoch");

        // Sealed to another member: it does not open.
        let other = crypto::SigningKey::generate().unwrap();
        let not_mine = rotated(p.mesh_id, 1, &key, &key, other.public_key(), &rotator);
        assert!(check_epoch_key(&p, &not_mine).is_err());
    }

    #[test]
    fn the_ring_opens_each_epoch_with_its_own_key_and_seals_with_the_current_one() {
        let (k0, k1) = (crypto::generate_mesh_key(), crypto::generate_mesh_key());
        let old = Keyring::new(0, k0.to_vec(), BTreeMap::new()).seal(b"before").unwrap();
        let ring = Keyring::new(1, k1.to_vec(), BTreeMap::from([(0, k0.to_vec())]));
        let new = ring.seal(b"after").unwrap();
        assert_eq!(crypto::mesh_key_epoch(&new.0), 1);
        assert_eq!(ring.open(&old.0, &old.1).unwrap(), b"before");
        assert_eq!(ring.open(&new.0, &new.1).unwrap(), b"after");
        let only_old = Keyring::new(0, k0.to_vec(), BTreeMap::new());
        assert!(only_old.open(&new.0, &new.1).is_err(), "the old key opened a body of the new epoch");
    }
}
