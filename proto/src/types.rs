//! Value types shared by ops and pushes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Exactly one session.
    Session(Uuid),
    /// Every session of one member.
    Member(Uuid),
    /// Every session in the group or any sub-group (`a` covers `a/b`), without the `@`.
    Group(String),
    /// Every session of the mesh.
    All,
}

impl Target {
    /// Whether the target is a group or the whole mesh (bodies then use the mesh key).
    pub fn is_multicast(&self) -> bool {
        matches!(self, Target::Group(_) | Target::All)
    }
}

/// Whether `group` (a session's group) is covered by `target_group`: equal, or a sub-group.
pub fn group_covers(target_group: &str, group: &str) -> bool {
    group == target_group
        || (group.len() > target_group.len()
            && group.starts_with(target_group)
            && group.as_bytes()[target_group.len()] == b'/')
}

/// Whether a group name is well formed: non-empty segments of `[A-Za-z0-9_.-]` separated by `/`.
pub fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::MAX_GROUP_NAME
        && name.split('/').all(|seg| {
            !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// How urgently a message wants the recipient's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Pushed at once, whatever the recipient's status.
    Now,
    /// Held while the recipient is working or dnd; pushed when it turns idle.
    #[default]
    Next,
    /// Never pushed: waits in the inbox, announced in a digest when the recipient is idle.
    Low,
}

impl Priority {
    /// Lowercase name, as used in metrics labels and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Now => "now",
            Priority::Next => "next",
            Priority::Low => "low",
        }
    }
}

/// What a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for work; `next` messages are pushed.
    #[default]
    Idle,
    /// Busy; `next` messages are held.
    Working,
    /// Do not disturb; only `now` messages are pushed.
    Dnd,
}

impl Status {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Working => "working",
            Status::Dnd => "dnd",
        }
    }
}

/// Who reported a status. Ranked `hook > manual > jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// Inferred from the agent's transcript.
    Jsonl,
    /// Set by a person or an agent tool call.
    #[default]
    Manual,
    /// Reported by an agent lifecycle hook.
    Hook,
}

/// A member's role in a mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May send, read and manage their own sessions.
    Member,
    /// May also invite and remove members.
    Admin,
    /// Created the mesh; everything an admin may, and cannot be removed.
    Owner,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Stable small number used by signatures and storage.
    pub fn as_u8(self) -> u8 {
        match self {
            Role::Member => 1,
            Role::Admin => 2,
            Role::Owner => 3,
        }
    }

    /// Inverse of [`Role::as_u8`].
    pub fn from_u8(n: u8) -> Option<Role> {
        match n {
            1 => Some(Role::Member),
            2 => Some(Role::Admin),
            3 => Some(Role::Owner),
            _ => None,
        }
    }
}

/// How a message body is encrypted. The broker never sees plaintext of any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sealing {
    /// `crypto_box` from the sender's session key to the recipient session's key.
    BoxSession,
    /// `crypto_box` from the sender's session key to the recipient member's key (its ed25519
    /// key converted to x25519), readable by every session of that member.
    BoxMember,
    /// `crypto_secretbox` with the mesh key (groups and broadcasts).
    MeshKey,
    /// Not sealed: a JSON [`crate::coord::CoordEvent`] written by the broker. Peers may not
    /// send it.
    Plain,
}

/// Per-recipient delivery state, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Committed to the log, not yet pushed to the recipient.
    Queued,
    /// Written to the recipient's connection, not yet acknowledged.
    Pushed,
    /// The recipient's client surfaced it and acknowledged.
    Acked,
    /// The recipient read it (pulled it from the inbox).
    Read,
}

/// What a connection is for, chosen at hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// A present session: shows in `peers`, receives pushes, replays from its cursor.
    #[default]
    Session,
    /// A short-lived control connection (one CLI command): not present, receives no pushes.
    Control,
    /// A live tail of every mesh event (not present).
    Watch,
}

/// A delivery cursor: every message addressed to the session with `seq <= watermark` is
/// acknowledged, and so is every seq listed in `acked` (all above the watermark). Gating
/// reorders delivery, so a single counter would not be enough.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Contiguous acknowledgement watermark.
    pub watermark: u64,
    /// Acknowledged sequences above the watermark.
    #[serde(default)]
    pub acked: Vec<u64>,
}

impl Cursor {
    /// Whether `seq` is acknowledged by this cursor.
    pub fn covers(&self, seq: u64) -> bool {
        seq <= self.watermark || self.acked.contains(&seq)
    }
}

/// A group membership with a free-form role (e.g. `lead`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupRole {
    /// Hierarchical group name without `@`.
    pub name: String,
    /// Role within the group.
    #[serde(default)]
    pub role: Option<String>,
}

/// What a session says about itself at hello and later via `set_profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProfile {
    /// Shown to peers instead of the member's name, if set.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Initial status.
    #[serde(default)]
    pub status: Status,
    /// What the session is working on.
    #[serde(default)]
    pub summary: Option<String>,
    /// Groups to join (membership is the member's and durable: groups named here are joined,
    /// none are left). In a `PeerInfo`, the member's groups.
    #[serde(default)]
    pub groups: Vec<GroupRole>,
    /// Hidden sessions are left out of `peers` and broadcasts but still get direct messages.
    #[serde(default = "default_true")]
    pub visible: bool,
    /// Working directory of the agent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Host name of the peer machine.
    #[serde(default)]
    pub host: Option<String>,
    /// Agent kind, e.g. `claude-code`, `codex`, `human`.
    #[serde(default)]
    pub agent_kind: Option<String>,
    /// Agent model name.
    #[serde(default)]
    pub agent_model: Option<String>,
    /// Process id of the agent the session serves.
    #[serde(default)]
    pub agent_pid: Option<u32>,
    /// The session cannot surface pushes (an MCP client without channel support): nothing is
    /// pushed to it; its messages wait in the inbox (state `queued`) until it reads them.
    #[serde(default)]
    pub pull_only: bool,
}

fn default_true() -> bool {
    true
}

impl Default for SessionProfile {
    fn default() -> SessionProfile {
        SessionProfile {
            display_name: None,
            status: Status::Idle,
            summary: None,
            groups: Vec::new(),
            visible: true,
            cwd: None,
            host: None,
            agent_kind: None,
            agent_model: None,
            agent_pid: None,
            pull_only: false,
        }
    }
}

/// One present session as listed by `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Session id.
    pub session_id: Uuid,
    /// Member id.
    pub member_id: Uuid,
    /// Display name (session's, else member's).
    pub display_name: String,
    /// The session's x25519 public key (for `crypto_box` to it).
    #[serde(with = "serde_bytes")]
    pub session_pubkey: Vec<u8>,
    /// Current status.
    pub status: Status,
    /// Who set the current status.
    pub status_source: StatusSource,
    /// Milliseconds since the epoch when the status last changed.
    pub status_since_ms: u64,
    /// Profile (summary, groups, cwd, host, agent).
    pub profile: SessionProfile,
    /// Milliseconds since the epoch when the session connected.
    pub connected_at_ms: u64,
}

/// One member of a mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member id.
    pub member_id: Uuid,
    /// Display name chosen at join.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// The member's ed25519 public key.
    #[serde(with = "serde_bytes")]
    pub pubkey: Vec<u8>,
    /// Milliseconds since the epoch when the member joined.
    pub joined_at_ms: u64,
}

/// Check a string field against a limit.
pub(crate) fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), crate::ProtoError> {
    if value.len() > max {
        return Err(crate::ProtoError::FieldTooLarge { field, max });
    }
    Ok(())
}

/// Check an optional string field against a limit.
pub(crate) fn check_opt(field: &'static str, value: &Option<String>, max: usize) -> Result<(), crate::ProtoError> {
    match value {
        Some(v) => check_len(field, v, max),
        None => Ok(()),
    }
}

impl SessionProfile {
    /// Check every field against its limit.
    pub fn validate(&self) -> Result<(), crate::ProtoError> {
        check_opt("display_name", &self.display_name, limits::MAX_NAME)?;
        check_opt("summary", &self.summary, limits::MAX_SUMMARY)?;
        check_opt("cwd", &self.cwd, limits::MAX_PATH)?;
        check_opt("host", &self.host, limits::MAX_PATH)?;
        check_opt("agent_kind", &self.agent_kind, limits::MAX_NAME)?;
        check_opt("agent_model", &self.agent_model, limits::MAX_NAME)?;
        validate_groups(&self.groups)
    }
}

/// Check a group list: count, names, roles.
pub fn validate_groups(groups: &[GroupRole]) -> Result<(), crate::ProtoError> {
    if groups.len() > limits::MAX_GROUPS {
        return Err(crate::ProtoError::FieldTooLarge { field: "groups", max: limits::MAX_GROUPS });
    }
    for g in groups {
        if !valid_group_name(&g.name) {
            return Err(crate::ProtoError::Invalid { field: "groups", reason: "bad group name" });
        }
        check_opt("group role", &g.role, limits::MAX_NAME)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_cover_is_hierarchical() {
        assert!(group_covers("a", "a"));
        assert!(group_covers("a", "a/b"));
        assert!(group_covers("a/b", "a/b/c"));
        assert!(!group_covers("a", "ab"));
        assert!(!group_covers("a/b", "a"));
        assert!(!group_covers("a/b", "a/bc"));
    }

    #[test]
    fn group_names() {
        assert!(valid_group_name("frontend/react"));
        assert!(!valid_group_name(""));
        assert!(!valid_group_name("a//b"));
        assert!(!valid_group_name("a b"));
        assert!(!valid_group_name("'; drop table"));
    }

    #[test]
    fn cursor_covers() {
        let c = Cursor { watermark: 10, acked: vec![12, 15] };
        assert!(c.covers(3) && c.covers(10) && c.covers(12) && c.covers(15));
        assert!(!c.covers(11) && !c.covers(13) && !c.covers(16));
    }
}
