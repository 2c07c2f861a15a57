//! Pushes: what the broker sends without being asked. One body struct per kind.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{PeerInfo, Priority, Sealing, Target};

/// A push body and its wire kind.
pub trait PushBody: Serialize + DeserializeOwned {
    /// Wire kind.
    const KIND: &'static str;
}

/// A message addressed to this session (also the item type of an inbox pull).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Mesh sequence; acknowledge it with the `ack` op.
    pub seq: u64,
    /// Sender-chosen message id.
    pub id: Uuid,
    /// Sending member.
    pub sender_member: Uuid,
    /// Sending session (replies go exactly there).
    pub sender_session: Uuid,
    /// Sender's display name as the broker knows it.
    pub sender_name: String,
    /// Sender session's x25519 public key (to open `crypto_box` bodies).
    #[serde(with = "serde_bytes")]
    pub sender_pubkey: Vec<u8>,
    /// Sender member's ed25519 public key (identity; fingerprint shown to agents).
    #[serde(with = "serde_bytes")]
    pub sender_member_pubkey: Vec<u8>,
    /// What it was sent to.
    pub target: Target,
    /// Priority.
    pub priority: Priority,
    /// The message it replies to.
    #[serde(default)]
    pub reply_to: Option<Uuid>,
    /// Application subtype (e.g. `reminder`).
    #[serde(default)]
    pub subtype: Option<String>,
    /// How the body is sealed.
    pub sealing: Sealing,
    /// Sealing nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sealed body.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// Commit time, ms since the epoch.
    pub sent_at_ms: u64,
}

impl PushBody for Message {
    const KIND: &'static str = "message";
}

/// Announces unread `low` messages when the session is idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Unacknowledged low-priority messages waiting in the inbox.
    pub low_unread: u32,
    /// Distinct sender names among them (at most 10).
    pub senders: Vec<String>,
}

impl PushBody for Digest {
    const KIND: &'static str = "digest";
}

/// What happened to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerChange {
    /// Came online.
    Joined,
    /// Went offline.
    Left,
    /// Changed status or profile.
    Updated,
}

/// A presence event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEvent {
    /// What happened.
    pub change: PeerChange,
    /// The peer as it is now.
    pub peer: PeerInfo,
}

impl PushBody for PeerEvent {
    const KIND: &'static str = "peer";
}

/// A member claimed an invite and waits for the mesh key. Any member holding it answers with
/// the `key_grant` op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    /// The new member.
    pub member_id: Uuid,
    /// Its display name.
    pub display_name: String,
    /// Its ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub member_pubkey: Vec<u8>,
    /// The x25519 key to seal the mesh key to.
    #[serde(with = "serde_bytes")]
    pub claim_pubkey: Vec<u8>,
}

impl PushBody for KeyRequest {
    const KIND: &'static str = "key_request";
}

/// The mesh key arrived for this member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshKey {
    /// `crypto_box_seal(mesh_key, claim_pubkey)`.
    #[serde(with = "serde_bytes")]
    pub sealed_mesh_key: Vec<u8>,
    /// The member who granted it.
    #[serde(default)]
    pub granted_by: Option<Uuid>,
}

impl PushBody for MeshKey {
    const KIND: &'static str = "mesh_key";
}

/// A message was sent in the mesh (watch mode only): metadata, body still sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    /// The message.
    pub message: Message,
}

impl PushBody for Routed {
    const KIND: &'static str = "routed";
}

/// Every push kind this protocol version defines.
pub const ALL_PUSHES: &[&str] = &[
    Message::KIND,
    Digest::KIND,
    PeerEvent::KIND,
    KeyRequest::KIND,
    MeshKey::KIND,
    crate::keys::KeyEpoch::KIND,
    Routed::KIND,
    crate::room::StreamPush::KIND,
    crate::room::RoomState::KIND,
    crate::room::ApprovalPush::KIND,
];
