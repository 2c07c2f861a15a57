//! Request ops: one body struct per op, its reply type and its validation.
//!
//! Ops marked *anonymous* may be sent before a hello; every other op needs a completed
//! hello on the connection. The broker's dispatcher matches on [`Op::NAME`].

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::ProtoError,
    limits,
    types::{
        check_len, check_opt, validate_groups, Cursor, DeliveryState, GroupRole, MemberInfo, PeerInfo, Priority, Role,
        Sealing, SessionMode, SessionProfile, Status, StatusSource, Target,
    },
};

/// A request op: its wire name, reply type and field validation.
pub trait Op: Serialize + DeserializeOwned {
    /// Wire name.
    const NAME: &'static str;
    /// What a successful call returns.
    type Reply: Serialize + DeserializeOwned;
    /// Check every field against its limit; called by the broker before handling.
    fn validate(&self) -> Result<(), ProtoError> {
        Ok(())
    }
}

/// Reply for ops that return nothing but success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

fn check_key(field: &'static str, key: &[u8], len: usize) -> Result<(), ProtoError> {
    if key.len() != len {
        return Err(ProtoError::Invalid { field, reason: "wrong length" });
    }
    Ok(())
}

fn check_name(field: &'static str, name: &str) -> Result<(), ProtoError> {
    check_len(field, name, limits::MAX_NAME)?;
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(ProtoError::Invalid { field, reason: "empty or has control characters" });
    }
    Ok(())
}

/// *Anonymous.* Create a mesh owned by the caller's member key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshCreate {
    /// Client-chosen mesh id.
    pub mesh_id: Uuid,
    /// Human name of the mesh.
    pub name: String,
    /// Client-chosen member id for the owner.
    pub owner_member_id: Uuid,
    /// Owner's ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub owner_pubkey: Vec<u8>,
    /// Owner's display name.
    pub owner_display_name: String,
    /// Operator token, when the broker gates mesh creation.
    #[serde(default)]
    pub operator_token: Option<String>,
    /// Owner's signature over [`crate::signing::mesh_create_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// BLAKE2b-256 over [`crate::signing::mesh_key_commitment_input`]: the owner's commitment to
    /// the mesh key, against which joiners check the key they are granted.
    #[serde(default, with = "serde_bytes")]
    pub key_commitment: Option<Vec<u8>>,
    /// Owner's signature over [`crate::signing::key_commitment_bytes`].
    #[serde(default, with = "serde_bytes")]
    pub key_commitment_signature: Option<Vec<u8>>,
}

/// Reply to [`MeshCreate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshCreated {
    /// The mesh id.
    pub mesh_id: Uuid,
    /// The owner's member id.
    pub member_id: Uuid,
}

impl Op for MeshCreate {
    const NAME: &'static str = "mesh_create";
    type Reply = MeshCreated;
    fn validate(&self) -> Result<(), ProtoError> {
        check_name("name", &self.name)?;
        check_name("owner_display_name", &self.owner_display_name)?;
        check_opt("operator_token", &self.operator_token, limits::MAX_TOKEN)?;
        check_key("owner_pubkey", &self.owner_pubkey, 32)?;
        check_key("signature", &self.signature, 64)?;
        match (&self.key_commitment, &self.key_commitment_signature) {
            (None, None) => Ok(()),
            (Some(c), Some(sig)) => {
                check_key("key_commitment", c, 32)?;
                check_key("key_commitment_signature", sig, 64)
            }
            _ => Err(ProtoError::Invalid { field: "key_commitment", reason: "needs both commitment and signature" }),
        }
    }
}

/// *Anonymous.* Claim an invite code: become a member of its mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteClaim {
    /// The short invite code.
    pub code: String,
    /// Client-chosen member id.
    pub member_id: Uuid,
    /// The claimer's ed25519 public key (its member identity).
    #[serde(with = "serde_bytes")]
    pub member_pubkey: Vec<u8>,
    /// A fresh x25519 public key the mesh key will be sealed to.
    #[serde(with = "serde_bytes")]
    pub claim_pubkey: Vec<u8>,
    /// Display name.
    pub display_name: String,
    /// Signature by the member key over [`crate::signing::claim_bytes`] (proof of possession).
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Reply to [`InviteClaim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteClaimed {
    /// The mesh joined.
    pub mesh_id: Uuid,
    /// Its name.
    pub mesh_name: String,
    /// The new member's id.
    pub member_id: Uuid,
    /// The role granted.
    pub role: Role,
    /// Public key of the member who issued the invite.
    #[serde(with = "serde_bytes")]
    pub issuer_pubkey: Vec<u8>,
    /// The issuer's signature over the invite capability, for the claimer to verify.
    #[serde(with = "serde_bytes")]
    pub invite_signature: Vec<u8>,
    /// Expiry of the invite, ms since the epoch (part of the signed capability).
    pub expires_at_ms: u64,
    /// Max uses (part of the signed capability).
    pub max_uses: u32,
}

impl Op for InviteClaim {
    const NAME: &'static str = "invite_claim";
    type Reply = InviteClaimed;
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("code", &self.code, limits::MAX_INVITE_CODE)?;
        check_name("display_name", &self.display_name)?;
        check_key("member_pubkey", &self.member_pubkey, 32)?;
        check_key("claim_pubkey", &self.claim_pubkey, 32)?;
        check_key("signature", &self.signature, 64)
    }
}

/// *Anonymous.* Prove a member identity and open a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Member.
    pub member_id: Uuid,
    /// Session id, stable across reconnects of one session.
    pub session_id: Uuid,
    /// The session's x25519 public key.
    #[serde(with = "serde_bytes")]
    pub session_pubkey: Vec<u8>,
    /// Milliseconds since the epoch at signing.
    pub timestamp_ms: u64,
    /// 16 random bytes, never reused.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Member's ed25519 signature over [`crate::signing::hello_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// What the connection is for.
    #[serde(default)]
    pub mode: SessionMode,
    /// Where to resume; `None` for a new session.
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// Profile for presence.
    #[serde(default)]
    pub profile: SessionProfile,
}

/// Reply to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Mesh name.
    pub mesh_name: String,
    /// The caller's role.
    pub role: Role,
    /// The caller's display name.
    pub display_name: String,
    /// Highest sequence in the mesh log at hello.
    pub head_seq: u64,
    /// The cursor the broker will replay from (merged from the peer's and its own).
    pub cursor: Cursor,
    /// The mesh key sealed to the member's claim key, once a member has granted it.
    #[serde(default, with = "serde_bytes")]
    pub sealed_mesh_key: Option<Vec<u8>>,
    /// Id of the broker node that took the connection.
    pub node_id: String,
    /// Broker's clock at reply, ms since the epoch (for skew checks).
    pub server_time_ms: u64,
    /// The owner's commitment to the mesh key (absent for meshes created before commitments).
    #[serde(default, with = "serde_bytes")]
    pub key_commitment: Option<Vec<u8>>,
    /// The owner's signature over [`crate::signing::key_commitment_bytes`].
    #[serde(default, with = "serde_bytes")]
    pub key_commitment_signature: Option<Vec<u8>>,
    /// The owner's ed25519 key, which signed the commitment.
    #[serde(default, with = "serde_bytes")]
    pub owner_pubkey: Option<Vec<u8>>,
    /// The mesh key's current epoch (0 until the first rotation); a member holding an older
    /// one fetches the newer keys with `mesh_keys`.
    #[serde(default)]
    pub key_epoch: u32,
    /// A member left or was removed and the key has not been rotated since: a key holder
    /// rotates before sealing anything new with the mesh key.
    #[serde(default)]
    pub key_rotation_due: bool,
}

impl Op for Hello {
    const NAME: &'static str = "hello";
    type Reply = Welcome;
    fn validate(&self) -> Result<(), ProtoError> {
        check_key("session_pubkey", &self.session_pubkey, 32)?;
        check_key("nonce", &self.nonce, 16)?;
        check_key("signature", &self.signature, 64)?;
        if let Some(c) = &self.cursor {
            if c.acked.len() > limits::MAX_ACKS {
                return Err(ProtoError::FieldTooLarge { field: "cursor.acked", max: limits::MAX_ACKS });
            }
        }
        self.profile.validate()
    }
}

/// Send a message. Idempotent on `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Send {
    /// Sender-chosen message id; resending the same id is a no-op.
    pub id: Uuid,
    /// Recipient.
    pub target: Target,
    /// Priority.
    #[serde(default)]
    pub priority: Priority,
    /// Message this replies to; the reply then goes to exactly the session that sent it.
    #[serde(default)]
    pub reply_to: Option<Uuid>,
    /// Application subtype (e.g. `reminder`), shown to the recipient.
    #[serde(default)]
    pub subtype: Option<String>,
    /// How the body is sealed.
    pub sealing: Sealing,
    /// Nonce used by the sealing.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The sealed body.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Reply to [`Send`]: sent only after the message is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The message's mesh sequence.
    pub seq: u64,
    /// True when this id was already stored (the resend changed nothing).
    pub duplicate: bool,
}

impl Op for Send {
    const NAME: &'static str = "send";
    type Reply = Sent;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.ciphertext.len() > limits::MAX_CIPHERTEXT_BYTES {
            return Err(ProtoError::FieldTooLarge { field: "ciphertext", max: limits::MAX_CIPHERTEXT_BYTES });
        }
        check_key("nonce", &self.nonce, 24)?;
        check_opt("subtype", &self.subtype, limits::MAX_NAME)?;
        if let Target::Group(g) = &self.target {
            if !crate::types::valid_group_name(g) {
                return Err(ProtoError::Invalid { field: "target", reason: "bad group name" });
            }
        }
        let multicast = self.target.is_multicast();
        let ok = match self.sealing {
            Sealing::MeshKey => multicast,
            Sealing::BoxSession => matches!(self.target, Target::Session(_)) || self.reply_to.is_some(),
            Sealing::BoxMember => matches!(self.target, Target::Member(_)),
            // Only the broker writes unsealed (coordination) events.
            Sealing::Plain => false,
        };
        if !ok {
            return Err(ProtoError::Invalid { field: "sealing", reason: "does not fit the target" });
        }
        Ok(())
    }
}

/// Acknowledge messages the client has surfaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Sequences acknowledged.
    pub seqs: Vec<u64>,
    /// Also mark them read (the agent or person read them, not only received them).
    #[serde(default)]
    pub read: bool,
}

/// Reply to [`Ack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    /// The session's cursor after the ack.
    pub cursor: Cursor,
}

impl Op for Ack {
    const NAME: &'static str = "ack";
    type Reply = Acked;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.seqs.len() > limits::MAX_ACKS {
            return Err(ProtoError::FieldTooLarge { field: "seqs", max: limits::MAX_ACKS });
        }
        Ok(())
    }
}

/// Pull unacknowledged messages addressed to this session (including held `next` and `low`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// Most messages to return.
    #[serde(default = "default_inbox_limit")]
    pub limit: u32,
}

fn default_inbox_limit() -> u32 {
    100
}

/// Reply to [`Inbox`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItems {
    /// Messages in sequence order.
    pub messages: Vec<crate::push::Message>,
    /// True when more remain than `limit`.
    pub more: bool,
}

impl Op for Inbox {
    const NAME: &'static str = "inbox";
    type Reply = InboxItems;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.limit == 0 || self.limit > limits::MAX_INBOX_LIMIT {
            return Err(ProtoError::Invalid { field: "limit", reason: "must be 1..=1000" });
        }
        Ok(())
    }
}

/// List present sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {}

/// Reply to [`Peers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerList {
    /// Present, visible sessions (and the caller's own).
    pub peers: Vec<PeerInfo>,
}

impl Op for Peers {
    const NAME: &'static str = "peers";
    type Reply = PeerList;
}

/// List members of the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {}

/// Reply to [`Members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// Current (not removed) members.
    pub members: Vec<MemberInfo>,
}

impl Op for Members {
    const NAME: &'static str = "members";
    type Reply = MemberList;
}

/// Report this session's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStatus {
    /// New status.
    pub status: Status,
    /// Who reports it.
    #[serde(default)]
    pub source: StatusSource,
}

/// Reply to [`SetStatus`]: the effective status after the ranking rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusNow {
    /// Effective status.
    pub status: Status,
    /// Effective source.
    pub source: StatusSource,
}

impl Op for SetStatus {
    const NAME: &'static str = "set_status";
    type Reply = StatusNow;
}

/// Change this session's summary, groups or visibility. Absent fields are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetProfile {
    /// New summary (`Some("")` clears it).
    #[serde(default)]
    pub summary: Option<String>,
    /// New group list.
    #[serde(default)]
    pub groups: Option<Vec<GroupRole>>,
    /// New visibility.
    #[serde(default)]
    pub visible: Option<bool>,
    /// Whether the session surfaces pushes (`false`: it reads its inbox instead; see
    /// [`SessionProfile::pull_only`](crate::types::SessionProfile)).
    #[serde(default)]
    pub pull_only: Option<bool>,
}

impl Op for SetProfile {
    const NAME: &'static str = "set_profile";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        check_opt("summary", &self.summary, limits::MAX_SUMMARY)?;
        if let Some(g) = &self.groups {
            validate_groups(g)?;
        }
        Ok(())
    }
}

/// Ask for the per-recipient delivery state of a message the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStatus {
    /// The message id.
    pub id: Uuid,
}

/// One recipient's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// Recipient session.
    pub session_id: Uuid,
    /// Its member.
    pub member_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// State.
    pub state: DeliveryState,
}

/// Reply to [`MessageStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    /// The message's sequence.
    pub seq: u64,
    /// Target it was sent to.
    pub target: Target,
    /// Priority.
    pub priority: Priority,
    /// One entry per addressed session known to the mesh.
    pub recipients: Vec<RecipientState>,
}

impl Op for MessageStatus {
    const NAME: &'static str = "message_status";
    type Reply = MessageState;
}

/// Create an invite (owner or admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteCreate {
    /// Short code chosen by the issuer.
    pub code: String,
    /// Role granted.
    pub role: Role,
    /// How many claims are allowed.
    pub max_uses: u32,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: u64,
    /// Issuer's ed25519 signature over [`crate::signing::invite_bytes`].
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// Groups a claimer joins (not part of the signed capability: the broker applies them).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// An invite as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// Code.
    pub code: String,
    /// Role granted.
    pub role: Role,
    /// Allowed claims.
    pub max_uses: u32,
    /// Claims so far.
    pub uses: u32,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: u64,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Issuer member id.
    pub issued_by: Uuid,
    /// Groups a claimer joins.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Op for InviteCreate {
    const NAME: &'static str = "invite_create";
    type Reply = InviteInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.code.len() < 6
            || self.code.len() > limits::MAX_INVITE_CODE
            || !self.code.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ProtoError::Invalid { field: "code", reason: "6..=32 ascii letters or digits" });
        }
        if self.max_uses == 0 {
            return Err(ProtoError::Invalid { field: "max_uses", reason: "must be at least 1" });
        }
        if self.role == Role::Owner {
            return Err(ProtoError::Invalid { field: "role", reason: "an invite cannot make an owner" });
        }
        if self.groups.len() > limits::MAX_GROUPS {
            return Err(ProtoError::FieldTooLarge { field: "groups", max: limits::MAX_GROUPS });
        }
        if !self.groups.iter().all(|g| crate::types::valid_group_name(g)) {
            return Err(ProtoError::Invalid { field: "groups", reason: "bad group name" });
        }
        check_key("signature", &self.signature, 64)
    }
}

/// List the mesh's invites (owner or admin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteList {}

/// Reply to [`InviteList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invites {
    /// Invites, newest first.
    pub invites: Vec<InviteInfo>,
}

impl Op for InviteList {
    const NAME: &'static str = "invite_list";
    type Reply = Invites;
}

/// Revoke an invite (owner or admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRevoke {
    /// Code.
    pub code: String,
}

impl Op for InviteRevoke {
    const NAME: &'static str = "invite_revoke";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("code", &self.code, limits::MAX_INVITE_CODE)
    }
}

/// Remove a member (owner or admin): its sessions close at once and it cannot reconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemove {
    /// Member to remove.
    pub member_id: Uuid,
}

impl Op for MemberRemove {
    const NAME: &'static str = "member_remove";
    type Reply = Done;
}

/// Leave the mesh (any member but the owner): the caller's member is removed, its sessions
/// close with `MemberRemoved` and it cannot reconnect; rejoining takes a new invite.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshLeave {}

impl Op for MeshLeave {
    const NAME: &'static str = "mesh_leave";
    type Reply = Done;
}

/// A device asks to be linked to a member someone already is elsewhere (anonymous). `code`
/// is [`crate::link::code_for`] of `link_pubkey`, a one-time x25519 key the device made; the
/// person types the code into `plexus link` on a device that is the member. Pending for ten
/// minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkOffer {
    /// The code the device shows (10 Crockford base32 characters, no separators).
    pub code: String,
    /// The device's one-time x25519 key.
    #[serde(with = "serde_bytes")]
    pub link_pubkey: Vec<u8>,
}

impl Op for LinkOffer {
    const NAME: &'static str = "link_offer";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        crate::link::check_code(&self.code)?;
        check_key("link_pubkey", &self.link_pubkey, 32)
    }
}

/// A member looks up a pending link by the code the person read off the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkLookup {
    /// The code.
    pub code: String,
}

/// Reply to [`LinkLookup`]: the device's key. The caller checks the code is derived from it
/// (so the broker cannot put its own key in between) before sealing anything to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPending {
    /// The device's one-time x25519 key.
    #[serde(with = "serde_bytes")]
    pub link_pubkey: Vec<u8>,
}

impl Op for LinkLookup {
    const NAME: &'static str = "link_lookup";
    type Reply = LinkPending;
    fn validate(&self) -> Result<(), ProtoError> {
        crate::link::check_code(&self.code)
    }
}

/// A member answers a pending link: its identity sealed to the device's key
/// (`crypto_box_seal`; the plaintext is [`crate::link::LinkBundle`] as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAnswer {
    /// The code.
    pub code: String,
    /// The sealed bundle.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

impl Op for LinkAnswer {
    const NAME: &'static str = "link_answer";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        crate::link::check_code(&self.code)?;
        if self.sealed.is_empty() || self.sealed.len() > limits::MAX_LINK_BUNDLE {
            return Err(ProtoError::FieldTooLarge { field: "sealed", max: limits::MAX_LINK_BUNDLE });
        }
        Ok(())
    }
}

/// The device fetches its answer (anonymous). Once fetched the link is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkFetch {
    /// The code.
    pub code: String,
}

/// Reply to [`LinkFetch`]: the sealed bundle, or nothing yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkResult {
    /// Present once a member answered.
    #[serde(default, with = "serde_bytes")]
    pub sealed: Option<Vec<u8>>,
}

impl Op for LinkFetch {
    const NAME: &'static str = "link_fetch";
    type Reply = LinkResult;
    fn validate(&self) -> Result<(), ProtoError> {
        crate::link::check_code(&self.code)
    }
}

/// Hand the mesh key to a member who claimed an invite, sealed to its claim key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGrant {
    /// Recipient member.
    pub member_id: Uuid,
    /// `crypto_box_seal(mesh_key, claim_pubkey)`.
    #[serde(with = "serde_bytes")]
    pub sealed_mesh_key: Vec<u8>,
    /// Once the key was rotated: the current epoch's key sealed to the member's own key
    /// (`crypto_box_seal(key, x25519(member_pubkey))`). Required when the mesh's epoch is above 0.
    #[serde(default)]
    pub epoch_keys: Vec<crate::keys::SealedEpochKey>,
}

impl Op for KeyGrant {
    const NAME: &'static str = "key_grant";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        // 32-byte key + crypto_box_SEALBYTES (48).
        check_key("sealed_mesh_key", &self.sealed_mesh_key, 80)?;
        if self.epoch_keys.len() > crate::keys::MAX_EPOCH_KEYS_PER_GRANT {
            return Err(ProtoError::Invalid { field: "epoch_keys", reason: "too many" });
        }
        self.epoch_keys.iter().try_for_each(|k| check_key("epoch_keys.sealed_key", &k.sealed_key, 80))
    }
}

/// Refuse the mesh key this member was granted: it does not match the owner's commitment
/// (a forgery). The grant is cleared, its granter may not grant to this member again, and the
/// key request goes out anew.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReject {}

impl Op for KeyReject {
    const NAME: &'static str = "key_reject";
    type Reply = Done;
}

/// Join a group (durable membership of the caller's member, for all its sessions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupJoin {
    /// Group name without `@` (hierarchical: `eng/backend`).
    pub name: String,
    /// Free-form role in the group (e.g. `lead`).
    #[serde(default)]
    pub role: Option<String>,
}

/// Reply to [`GroupJoin`] and [`GroupLeave`]: the member's groups now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberGroups {
    /// Groups, by name.
    pub groups: Vec<GroupRole>,
}

impl Op for GroupJoin {
    const NAME: &'static str = "group_join";
    type Reply = MemberGroups;
    fn validate(&self) -> Result<(), ProtoError> {
        crate::types::validate_groups(&[GroupRole { name: self.name.clone(), role: self.role.clone() }])
    }
}

/// Leave a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLeave {
    /// Group name without `@`.
    pub name: String,
}

impl Op for GroupLeave {
    const NAME: &'static str = "group_leave";
    type Reply = MemberGroups;
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("name", &self.name, limits::MAX_GROUP_NAME)
    }
}

/// List the mesh's groups and their members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupList {}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Member.
    pub member_id: Uuid,
    /// Its display name.
    pub display_name: String,
    /// Its role in the group.
    #[serde(default)]
    pub role: Option<String>,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Members, by name.
    pub members: Vec<GroupMember>,
}

/// Reply to [`GroupList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// Groups, by name.
    pub groups: Vec<GroupInfo>,
}

impl Op for GroupList {
    const NAME: &'static str = "group_list";
    type Reply = Groups;
}
