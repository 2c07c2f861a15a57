//! The audit log: one append-only, hash-chained record per mesh of every admin and trust
//! action. Each entry's hash covers the previous entry's hash, so any change to a stored row,
//! a row removed from the middle, or a fork shows when the chain is recomputed
//! ([`entry_bytes`], hashed with BLAKE2b-256). Entries older than the retention are deleted
//! behind a checkpoint (the last deleted entry's sequence and hash), from which verification
//! starts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ops::Op, ProtoError};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the mesh's chain (1, 2, …).
    pub seq: u64,
    /// When (ms since the epoch, the broker's clock).
    pub at_ms: u64,
    /// Who did it (`None`: the broker itself, e.g. an expiry).
    #[serde(default)]
    pub actor_member: Option<Uuid>,
    /// Their name at the time.
    pub actor_name: String,
    /// What (`invite.created`, `member.removed`, `key.granted`, `lock.force_released`, …).
    pub action: String,
    /// To what (a member id, a lock pattern, a session id, …).
    pub subject: String,
    /// Details, as compact JSON.
    pub detail: String,
    /// This entry's hash (see [`entry_bytes`]).
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}

fn lv(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// What is hashed for the chain's start (its "previous hash" before entry 1).
pub fn genesis_bytes(mesh_id: Uuid) -> Vec<u8> {
    let mut out = b"plexus/audit/genesis/v1\0".to_vec();
    out.extend_from_slice(mesh_id.as_bytes());
    out
}

/// What is hashed for an entry: `"plexus/audit/v1\0" ‖ mesh ‖ seq u64 ‖ at_ms u64 ‖
/// lv(actor or empty) ‖ lv(actor_name) ‖ lv(action) ‖ lv(subject) ‖ lv(detail) ‖ lv(prev_hash)`.
pub fn entry_bytes(mesh_id: Uuid, prev_hash: &[u8], e: &AuditEntry) -> Vec<u8> {
    let mut out = b"plexus/audit/v1\0".to_vec();
    out.extend_from_slice(mesh_id.as_bytes());
    out.extend_from_slice(&e.seq.to_be_bytes());
    out.extend_from_slice(&e.at_ms.to_be_bytes());
    lv(&mut out, e.actor_member.as_ref().map_or(&[][..], |m| m.as_bytes()));
    lv(&mut out, e.actor_name.as_bytes());
    lv(&mut out, e.action.as_bytes());
    lv(&mut out, e.subject.as_bytes());
    lv(&mut out, e.detail.as_bytes());
    lv(&mut out, prev_hash);
    out
}

/// Read the audit log (admins): entries after a sequence, optionally filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditList {
    /// Entries with `seq > after`.
    #[serde(default)]
    pub after: u64,
    /// Most entries (1..=1000, default 500).
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Only entries at or after this time.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only this member's actions.
    #[serde(default)]
    pub actor: Option<Uuid>,
}

fn default_limit() -> u32 {
    500
}

/// Reply to [`AuditList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntries {
    /// Entries in order.
    pub entries: Vec<AuditEntry>,
    /// Whether more follow.
    pub more: bool,
    /// The chain's checkpoint: entries up to this sequence were deleted by retention…
    pub checkpoint_seq: u64,
    /// …and this was the hash of the last of them (the genesis hash when none were).
    #[serde(with = "serde_bytes")]
    pub checkpoint_hash: Vec<u8>,
    /// The chain's head sequence.
    pub head_seq: u64,
}

impl Op for AuditList {
    const NAME: &'static str = "audit_list";
    type Reply = AuditEntries;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.limit == 0 || self.limit > 1000 {
            return Err(ProtoError::Invalid { field: "limit", reason: "1..=1000" });
        }
        Ok(())
    }
}
