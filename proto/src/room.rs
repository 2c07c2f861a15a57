//! Session rooms: an agent session's activity as an ordered, durable stream others attach to;
//! the wheel (who drives the session); prompts from the driver; permission requests answered
//! by people; lock checks for agent hooks and commit guards.
//!
//! Stream entry bodies are JSON ([`EntryBody`]) sealed with the mesh key by the publishing
//! session: the broker stores the kind, the time and the ciphertext.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    coord::LockInfo,
    limits,
    ops::{Done, Op},
    push::PushBody,
    ProtoError,
};

fn check_len(field: &'static str, s: &str, max: usize) -> Result<(), ProtoError> {
    if s.len() > max {
        return Err(ProtoError::FieldTooLarge { field, max });
    }
    Ok(())
}

fn check_bin(field: &'static str, b: &[u8], max: usize) -> Result<(), ProtoError> {
    if b.len() > max {
        return Err(ProtoError::FieldTooLarge { field, max });
    }
    Ok(())
}

fn check_nonce(nonce: &[u8]) -> Result<(), ProtoError> {
    if nonce.len() != 24 {
        return Err(ProtoError::Invalid { field: "nonce", reason: "a nonce is 24 bytes" });
    }
    Ok(())
}

/// What a stream entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// The agent session started (or resumed).
    SessionStart,
    /// It ended.
    SessionEnd,
    /// A person's prompt to the agent (typed at the agent, or sent by the driver).
    Prompt,
    /// The agent's text.
    Assistant,
    /// A tool call (its input, truncated).
    ToolCall,
    /// A tool's result (truncated).
    ToolResult,
    /// The agent's status changed.
    Status,
    /// The agent asks permission for a tool call.
    PermissionRequest,
    /// Someone decided a permission request (or nobody did in time).
    PermissionDecision,
    /// Something the agent reported (Claude Code's Notification hook).
    Notice,
    /// Entries were dropped at the source (a bound was hit); the body says how many.
    Dropped,
}

impl EntryKind {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::SessionStart => "session_start",
            EntryKind::SessionEnd => "session_end",
            EntryKind::Prompt => "prompt",
            EntryKind::Assistant => "assistant",
            EntryKind::ToolCall => "tool_call",
            EntryKind::ToolResult => "tool_result",
            EntryKind::Status => "status",
            EntryKind::PermissionRequest => "permission_request",
            EntryKind::PermissionDecision => "permission_decision",
            EntryKind::Notice => "notice",
            EntryKind::Dropped => "dropped",
        }
    }

    /// From the wire name.
    pub fn parse(s: &str) -> Option<EntryKind> {
        [
            EntryKind::SessionStart,
            EntryKind::SessionEnd,
            EntryKind::Prompt,
            EntryKind::Assistant,
            EntryKind::ToolCall,
            EntryKind::ToolResult,
            EntryKind::Status,
            EntryKind::PermissionRequest,
            EntryKind::PermissionDecision,
            EntryKind::Notice,
            EntryKind::Dropped,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The plaintext of a stream entry (JSON, sealed with the mesh key). Fields a kind does not use
/// are absent. Text fields are truncated at the source to [`limits::MAX_ENTRY_TEXT`] with a
/// marker saying how much was cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryBody {
    /// Main text (prompt, assistant text, tool result, notice, reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tool name (tool call, result, permission request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Tool input, summarised as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Who (a prompt's or a decision's person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// A permission request's id, on the request and its decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Uuid>,
    /// `allow`, `deny` or `none` (a decision), or a status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Whether a text field was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A stream entry as a publisher sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryIn {
    /// The publisher's sequence for this session (1, 2, …): a resend of the same sequence is
    /// stored once.
    pub seq: u64,
    /// What it records.
    pub kind: EntryKind,
    /// When it happened (ms since the epoch, the publisher's clock).
    pub at_ms: u64,
    /// Nonce of the sealed body.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// [`EntryBody`] as JSON, sealed with the mesh key (`crypto_secretbox_easy`).
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// A stored stream entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The agent session.
    pub session_id: Uuid,
    /// Sequence within it.
    pub seq: u64,
    /// What it records.
    pub kind: EntryKind,
    /// When.
    pub at_ms: u64,
    /// Nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sealed body.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Append entries to the stream of one of the caller's member's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAppend {
    /// The session whose stream it is (a session of the caller's member).
    pub session_id: Uuid,
    /// Entries, in sequence order.
    pub entries: Vec<EntryIn>,
}

/// Reply to [`StreamAppend`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAppended {
    /// How many were new (a resent sequence is not).
    pub stored: u32,
    /// Entries the broker dropped from the start of the stream to keep it within its bound
    /// (`sessions.max_stream_bytes`); 0 when none.
    pub pruned: u32,
}

impl Op for StreamAppend {
    const NAME: &'static str = "stream_append";
    type Reply = StreamAppended;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.entries.is_empty() || self.entries.len() > limits::MAX_STREAM_BATCH {
            return Err(ProtoError::FieldTooLarge { field: "entries", max: limits::MAX_STREAM_BATCH });
        }
        for e in &self.entries {
            check_nonce(&e.nonce)?;
            check_bin("ciphertext", &e.ciphertext, limits::MAX_STREAM_ENTRY)?;
            if e.seq == 0 {
                return Err(ProtoError::Invalid { field: "seq", reason: "sequences start at 1" });
            }
        }
        Ok(())
    }
}

/// Read a session's stream after a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRead {
    /// The session.
    pub session_id: Uuid,
    /// Entries with `seq > after`.
    #[serde(default)]
    pub after: u64,
    /// Most entries (1..=1000, default 500).
    #[serde(default = "default_read")]
    pub limit: u32,
}

fn default_read() -> u32 {
    500
}

/// Reply to [`StreamRead`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntries {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// Whether more follow.
    pub more: bool,
    /// Entries below this sequence were pruned to keep the stream within its bound (0: none).
    #[serde(default)]
    pub pruned_below: u64,
}

impl Op for StreamRead {
    const NAME: &'static str = "stream_read";
    type Reply = StreamEntries;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.limit == 0 || self.limit > 1000 {
            return Err(ProtoError::Invalid { field: "limit", reason: "1..=1000" });
        }
        Ok(())
    }
}

/// Who watches a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// The viewer's member.
    pub member_id: Uuid,
    /// Its name.
    pub display_name: String,
    /// Typing a prompt right now.
    #[serde(default)]
    pub typing: bool,
}

/// Who drives a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wheel {
    /// Holder member.
    pub holder_member: Uuid,
    /// Holder's name.
    pub holder_name: String,
    /// The holder's session (the wheel follows its presence).
    pub holder_session: Uuid,
    /// Fencing token: strictly increasing per mesh; a prompt must carry the current one.
    pub token: u64,
    /// Held since.
    pub since_ms: u64,
    /// Someone asked for it.
    #[serde(default)]
    pub requested_by: Option<String>,
}

/// A permission request as people see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    /// Request id.
    pub id: Uuid,
    /// The agent session asking.
    pub session_id: Uuid,
    /// Its member.
    pub member_id: Uuid,
    /// Its member's name.
    pub member_name: String,
    /// When asked.
    pub requested_at_ms: u64,
    /// Until when an answer is waited for.
    pub expires_at_ms: u64,
    /// Nonce of the sealed request.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// [`EntryBody`] (tool, input summary, cwd) sealed with the mesh key.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The decision, once made: `true` allow, `false` deny.
    #[serde(default)]
    pub allowed: Option<bool>,
    /// Who decided.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Nonce of the sealed reason.
    #[serde(default, with = "serde_bytes")]
    pub reason_nonce: Option<Vec<u8>>,
    /// The reason, sealed with the mesh key.
    #[serde(default, with = "serde_bytes")]
    pub reason_ciphertext: Option<Vec<u8>>,
}

/// The state of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    /// The agent session.
    pub session_id: Uuid,
    /// Its member.
    pub member_id: Uuid,
    /// Its member's name.
    pub member_name: String,
    /// Whether the agent session is present.
    pub online: bool,
    /// Head of its stream.
    pub head: u64,
    /// Who is watching.
    pub viewers: Vec<Viewer>,
    /// Who drives it.
    #[serde(default)]
    pub wheel: Option<Wheel>,
    /// Permission requests waiting for an answer.
    #[serde(default)]
    pub pending: Vec<ApprovalInfo>,
}

impl PushBody for RoomState {
    const KIND: &'static str = "room";
}

/// Attach this connection to a session's room: it receives `stream` and `room` pushes (and
/// `approval` pushes for its requests) until it detaches or closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomAttach {
    /// The agent session.
    pub session_id: Uuid,
}

impl Op for RoomAttach {
    const NAME: &'static str = "room_attach";
    type Reply = RoomState;
}

/// Stop watching a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetach {
    /// The agent session.
    pub session_id: Uuid,
}

impl Op for RoomDetach {
    const NAME: &'static str = "room_detach";
    type Reply = Done;
}

/// The caller is typing a prompt in a room (shown for a few seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomTyping {
    /// The agent session.
    pub session_id: Uuid,
}

impl Op for RoomTyping {
    const NAME: &'static str = "room_typing";
    type Reply = Done;
}

/// A new stream entry, pushed to the room's viewers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPush {
    /// The entry.
    pub entry: Entry,
}

impl PushBody for StreamPush {
    const KIND: &'static str = "stream";
}

/// What to do with the wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WheelAction {
    /// Take it if free (an admin takes it from anyone).
    Take,
    /// Ask the holder for it.
    Request,
    /// Pass it to `to` (holder only).
    Pass,
    /// Let go (holder, or an admin).
    Release,
}

/// Take, request, pass or release the wheel of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WheelOp {
    /// The agent session.
    pub session_id: Uuid,
    /// What to do.
    pub action: WheelAction,
    /// The member to pass it to (`pass`).
    #[serde(default)]
    pub to: Option<Uuid>,
}

impl Op for WheelOp {
    const NAME: &'static str = "wheel";
    type Reply = RoomState;
}

/// Let another member drive (and answer the permission requests of) your sessions, or stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveGrant {
    /// The member.
    pub member_id: Uuid,
    /// `false` revokes.
    #[serde(default = "yes")]
    pub grant: bool,
}

fn yes() -> bool {
    true
}

/// Reply to [`DriveGrant`]: who may drive the caller's sessions now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveGrants {
    /// Members granted.
    pub members: Vec<Uuid>,
}

impl Op for DriveGrant {
    const NAME: &'static str = "drive_grant";
    type Reply = DriveGrants;
}

/// The wheel holder's prompt to the agent session, sealed to its session key (`box_session`,
/// from the driver's session). Delivered as a message with `subtype: prompt`, which only this
/// op can produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPrompt {
    /// The agent session.
    pub session_id: Uuid,
    /// The wheel's current token.
    pub token: u64,
    /// Message id (sender-chosen; a resend is stored once).
    pub id: Uuid,
    /// Nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The prompt, sealed.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Op for SessionPrompt {
    const NAME: &'static str = "session_prompt";
    type Reply = crate::ops::Sent;
    fn validate(&self) -> Result<(), ProtoError> {
        check_nonce(&self.nonce)?;
        check_bin("ciphertext", &self.ciphertext, limits::MAX_CIPHERTEXT_BYTES)
    }
}

/// An agent session asks people for a permission decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The agent session (one of the caller's member's).
    pub session_id: Uuid,
    /// Request id (chosen by the asker; a resend is stored once).
    pub id: Uuid,
    /// How long to wait for an answer.
    pub wait_ms: u64,
    /// Nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// [`EntryBody`] (tool, input summary, cwd), sealed with the mesh key.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Op for ApprovalRequest {
    const NAME: &'static str = "approval_request";
    type Reply = ApprovalInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        check_nonce(&self.nonce)?;
        check_bin("ciphertext", &self.ciphertext, limits::MAX_STREAM_ENTRY)?;
        if self.wait_ms == 0 || self.wait_ms > limits::MAX_APPROVAL_WAIT_MS {
            return Err(ProtoError::Invalid { field: "wait_ms", reason: "1 ms ..= 1 hour" });
        }
        Ok(())
    }
}

/// Allow or deny a pending permission request (the session's member, members it granted
/// driving, or an admin). The first decision stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecide {
    /// Request id.
    pub id: Uuid,
    /// Allow (`true`) or deny.
    pub allow: bool,
    /// Nonce of the sealed reason.
    #[serde(default, with = "serde_bytes")]
    pub reason_nonce: Option<Vec<u8>>,
    /// Why, sealed with the mesh key (shown to the agent on a deny).
    #[serde(default, with = "serde_bytes")]
    pub reason_ciphertext: Option<Vec<u8>>,
}

impl Op for ApprovalDecide {
    const NAME: &'static str = "approval_decide";
    type Reply = ApprovalInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        if let Some(n) = &self.reason_nonce {
            check_nonce(n)?;
        }
        if let Some(c) = &self.reason_ciphertext {
            check_bin("reason_ciphertext", c, 4096)?;
        }
        Ok(())
    }
}

/// Wait for the decision on a request (the asking side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalWait {
    /// Request id.
    pub id: Uuid,
    /// How long to wait at most.
    pub wait_ms: u64,
}

impl Op for ApprovalWait {
    const NAME: &'static str = "approval_wait";
    type Reply = ApprovalInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.wait_ms > limits::MAX_APPROVAL_WAIT_MS {
            return Err(ProtoError::Invalid { field: "wait_ms", reason: "at most 1 hour" });
        }
        Ok(())
    }
}

/// Pending requests the caller may decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalList {}

/// Reply to [`ApprovalList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    /// Pending requests, oldest first.
    pub approvals: Vec<ApprovalInfo>,
}

impl Op for ApprovalList {
    const NAME: &'static str = "approval_list";
    type Reply = Approvals;
}

/// A request was made or decided: pushed to its room's viewers and to its member's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPush {
    /// The request, with its decision once made.
    pub approval: ApprovalInfo,
}

impl PushBody for ApprovalPush {
    const KIND: &'static str = "approval";
}

/// Which locks a set of paths would step on (for agent hooks and commit guards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockCheck {
    /// Paths relative to the repository root, as lock patterns are written.
    pub paths: Vec<String>,
}

/// Reply to [`LockCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConflicts {
    /// Held locks overlapping any of the paths (the caller decides whose count).
    pub locks: Vec<LockInfo>,
    /// The mesh's setting: `enforce` (edits to paths others hold exclusively are refused) or
    /// `advisory` (they are warned about).
    pub enforcement: String,
}

impl Op for LockCheck {
    const NAME: &'static str = "lock_check";
    type Reply = LockConflicts;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.paths.len() > 256 {
            return Err(ProtoError::FieldTooLarge { field: "paths", max: 256 });
        }
        for p in &self.paths {
            check_len("paths", p, crate::coord::MAX_PATTERN)?;
        }
        Ok(())
    }
}

/// Set a mesh setting (admins): `lock_enforcement` = `enforce` | `advisory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshSettingSet {
    /// Setting.
    pub key: String,
    /// Value.
    pub value: String,
}

impl Op for MeshSettingSet {
    const NAME: &'static str = "mesh_setting_set";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("key", &self.key, 64)?;
        check_len("value", &self.value, 256)
    }
}
