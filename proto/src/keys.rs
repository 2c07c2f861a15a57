//! Mesh-key epochs. The mesh key starts at epoch 0 (the owner's, committed at creation). When a
//! member leaves or is removed, a remaining key holder rotates: it makes a new key for the next
//! epoch, commits to it, signs the commitment and seals the key to every remaining member's own
//! key. Every mesh-key ciphertext names its epoch in the first four bytes of its nonce, so old
//! history still opens with old keys and the broker refuses new traffic under a retired key.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ops::{Done, Op},
    push::PushBody,
    ProtoError,
};

/// Most members one rotation seals to (a mesh larger than this cannot rotate in one frame).
pub const MAX_ROTATION_MEMBERS: usize = 2_000;
/// Most rotated keys one grant carries.
pub const MAX_EPOCH_KEYS_PER_GRANT: usize = 8;

/// Bytes of a key sealed with `crypto_box_seal`: 32-byte key + 48 bytes of seal overhead.
const SEALED_KEY_LEN: usize = 80;

fn check_len(field: &'static str, bytes: &[u8], len: usize) -> Result<(), ProtoError> {
    if bytes.len() != len {
        return Err(ProtoError::Invalid { field, reason: "wrong length" });
    }
    Ok(())
}

/// One member's copy of a rotated key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedMemberKey {
    /// The member.
    pub member_id: Uuid,
    /// `crypto_box_seal(key, x25519(member_pubkey))`.
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
}

/// A rotated key of one epoch, sealed to the recipient member's own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEpochKey {
    /// Its epoch.
    pub epoch: u32,
    /// `crypto_box_seal(key, x25519(member_pubkey))`.
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
}

/// Rotate the mesh key to `epoch` (the current epoch + 1). Only a member holding the current
/// key may; `sealed` must hold a copy for exactly the current members (the caller included),
/// else `conflict` (someone joined or left meanwhile: list the members and rotate again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotate {
    /// The new epoch.
    pub epoch: u32,
    /// BLAKE2b-256 over [`crate::signing::epoch_key_commitment_input`].
    #[serde(with = "serde_bytes")]
    pub commitment: Vec<u8>,
    /// The caller's member signature over [`crate::signing::key_rotation_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The new key, for every current member.
    pub sealed: Vec<SealedMemberKey>,
}

impl Op for KeyRotate {
    const NAME: &'static str = "key_rotate";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.epoch == 0 {
            return Err(ProtoError::Invalid { field: "epoch", reason: "epoch 0 is the owner's key" });
        }
        check_len("commitment", &self.commitment, 32)?;
        check_len("signature", &self.signature, 64)?;
        if self.sealed.is_empty() || self.sealed.len() > MAX_ROTATION_MEMBERS {
            return Err(ProtoError::Invalid { field: "sealed", reason: "empty or too many members" });
        }
        self.sealed.iter().try_for_each(|k| check_len("sealed.sealed_key", &k.sealed_key, SEALED_KEY_LEN))
    }
}

/// The caller's member's rotated keys, with what proves each one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshKeys {}

impl Op for MeshKeys {
    const NAME: &'static str = "mesh_keys";
    type Reply = MeshKeyList;
}

/// One rotated key as its holder receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochKey {
    /// Its epoch (1 and up).
    pub epoch: u32,
    /// `crypto_box_seal(key, x25519(member_pubkey))`.
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
    /// The rotation's commitment.
    #[serde(with = "serde_bytes")]
    pub commitment: Vec<u8>,
    /// The rotating member's signature over [`crate::signing::key_rotation_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Who rotated.
    pub rotated_by: Uuid,
    /// Their ed25519 key.
    #[serde(with = "serde_bytes")]
    pub rotated_by_pubkey: Vec<u8>,
}

/// Reply to [`MeshKeys`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshKeyList {
    /// The mesh's current epoch.
    pub epoch: u32,
    /// A member went and the key has not been rotated since.
    pub rotation_due: bool,
    /// The caller's rotated keys, oldest first.
    pub keys: Vec<EpochKey>,
}

/// The mesh key's epoch changed, or a rotation became due (pushed to every session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEpoch {
    /// The current epoch.
    pub epoch: u32,
    /// A member went and a key holder should rotate.
    pub rotation_due: bool,
}

impl PushBody for KeyEpoch {
    const KIND: &'static str = "key_epoch";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_needs_a_new_epoch_and_well_formed_copies() {
        let good = KeyRotate {
            epoch: 1,
            commitment: vec![0; 32],
            signature: vec![0; 64],
            sealed: vec![SealedMemberKey { member_id: Uuid::nil(), sealed_key: vec![0; 80] }],
        };
        assert!(good.validate().is_ok());
        assert!(KeyRotate { epoch: 0, ..good.clone() }.validate().is_err());
        assert!(KeyRotate { sealed: vec![], ..good.clone() }.validate().is_err());
        let short = vec![SealedMemberKey { member_id: Uuid::nil(), sealed_key: vec![0; 79] }];
        assert!(KeyRotate { sealed: short, ..good.clone() }.validate().is_err());
        assert!(KeyRotate { commitment: vec![0; 31], ..good }.validate().is_err());
    }
}
