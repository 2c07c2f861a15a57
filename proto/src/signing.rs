//! Canonical byte strings that signatures cover. Fixed-width fields, a domain tag first, so
//! a signature for one purpose can never be replayed as another.

use uuid::Uuid;

use crate::types::Role;

/// What a hello signature covers.
pub fn hello_bytes(
    version: u16,
    mesh_id: Uuid,
    member_id: Uuid,
    session_id: Uuid,
    session_pubkey: &[u8],
    timestamp_ms: u64,
    nonce: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"plexus/hello/v1\0");
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(mesh_id.as_bytes());
    out.extend_from_slice(member_id.as_bytes());
    out.extend_from_slice(session_id.as_bytes());
    push_lv(&mut out, session_pubkey);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    push_lv(&mut out, nonce);
    out
}

/// What an invite capability signature covers.
pub fn invite_bytes(mesh_id: Uuid, code: &str, role: Role, max_uses: u32, expires_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"plexus/invite/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    push_lv(&mut out, code.as_bytes());
    out.push(role.as_u8());
    out.extend_from_slice(&max_uses.to_be_bytes());
    out.extend_from_slice(&expires_at_ms.to_be_bytes());
    out
}

/// What a claimer's proof-of-possession signature covers.
pub fn claim_bytes(code: &str, member_id: Uuid, member_pubkey: &[u8], claim_pubkey: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"plexus/claim/v1\0");
    push_lv(&mut out, code.as_bytes());
    out.extend_from_slice(member_id.as_bytes());
    push_lv(&mut out, member_pubkey);
    push_lv(&mut out, claim_pubkey);
    out
}

/// What a mesh-creation signature covers.
pub fn mesh_create_bytes(mesh_id: Uuid, name: &str, owner_member_id: Uuid, owner_pubkey: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"plexus/mesh-create/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    push_lv(&mut out, name.as_bytes());
    out.extend_from_slice(owner_member_id.as_bytes());
    push_lv(&mut out, owner_pubkey);
    out
}

/// What the commitment to the mesh key of a rotated epoch hashes (BLAKE2b-256): mesh, epoch
/// and key. Epoch 0 is the owner's key and uses [`mesh_key_commitment_input`].
pub fn epoch_key_commitment_input(mesh_id: Uuid, epoch: u32, mesh_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    out.extend_from_slice(b"plexus/epoch-key/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    push_lv(&mut out, mesh_key);
    out
}

/// What a rotating member's signature over a rotated key's commitment covers.
pub fn key_rotation_bytes(mesh_id: Uuid, epoch: u32, commitment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    out.extend_from_slice(b"plexus/key-rotation/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    push_lv(&mut out, commitment);
    out
}

fn push_lv(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// What the mesh-key commitment hashes (BLAKE2b-256): the mesh and the key. Published by the
/// owner, signed ([`key_commitment_bytes`]), so a joiner can tell the real mesh key from a
/// forged one whoever grants it.
pub fn mesh_key_commitment_input(mesh_id: Uuid, mesh_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"plexus/mesh-key/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    push_lv(&mut out, mesh_key);
    out
}

/// What the owner's signature over a mesh-key commitment covers.
pub fn key_commitment_bytes(mesh_id: Uuid, commitment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"plexus/key-commitment/v1\0");
    out.extend_from_slice(mesh_id.as_bytes());
    push_lv(&mut out, commitment);
    out
}
