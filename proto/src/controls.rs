//! Per-peer controls of a member: whom it blocks (nothing from them reaches it; they are not
//! told), whom it mutes (their messages wait in the inbox, never pushed), and which kinds of
//! coordination events are pushed to it (the rest wait in the inbox).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ops::Op, ProtoError};

/// A member's controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Controls {
    /// Members blocked.
    pub blocked: Vec<Uuid>,
    /// Members muted.
    pub muted: Vec<Uuid>,
    /// Event kinds pushed (`task`, `lock`, `state.set`, …); `None`: all.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
}

impl Controls {
    /// Whether an event of `subtype` (e.g. `task.claim`) is pushed: a kind names a subtype or
    /// every subtype under it (`task` covers `task.claim`).
    pub fn wants_kind(&self, subtype: &str) -> bool {
        match &self.kinds {
            None => true,
            Some(kinds) => kinds.iter().any(|k| {
                subtype == k
                    || (subtype.len() > k.len()
                        && subtype.starts_with(k.as_str())
                        && subtype.as_bytes()[k.len()] == b'.')
            }),
        }
    }
}

/// What a control does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// Nothing from the member reaches the caller.
    Block,
    /// The member's messages are not pushed to the caller.
    Mute,
}

/// Block or mute a member (or lift it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerControl {
    /// The member.
    pub member_id: Uuid,
    /// Block or mute.
    pub kind: ControlKind,
    /// `false` lifts it.
    pub on: bool,
}

impl Op for PeerControl {
    const NAME: &'static str = "peer_control";
    type Reply = Controls;
}

/// Which event kinds are pushed to the caller's member (`None`: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Kinds (`task`, `lock`, `thread`, `state`, `memory`, `webhook`, or a full subtype).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
}

impl Op for Subscribe {
    const NAME: &'static str = "subscribe";
    type Reply = Controls;
    fn validate(&self) -> Result<(), ProtoError> {
        let kinds = self.kinds.as_deref().unwrap_or_default();
        if kinds.len() > 32 {
            return Err(ProtoError::FieldTooLarge { field: "kinds", max: 32 });
        }
        let ok = |k: &String| {
            !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        };
        if !kinds.iter().all(ok) {
            return Err(ProtoError::Invalid { field: "kinds", reason: "lowercase names like task or lock.acquired" });
        }
        Ok(())
    }
}

/// The caller's member's controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlsGet {}

impl Op for ControlsGet {
    const NAME: &'static str = "controls";
    type Reply = Controls;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cover_their_subtypes_only() {
        let c = Controls { kinds: Some(vec!["task".into(), "lock.force_released".into()]), ..Controls::default() };
        assert!(c.wants_kind("task"));
        assert!(c.wants_kind("task.claim"));
        assert!(!c.wants_kind("tasks.claim"));
        assert!(!c.wants_kind("state.set"));
        assert!(c.wants_kind("lock.force_released"));
        assert!(!c.wants_kind("lock.acquired"));
        assert!(Controls::default().wants_kind("anything"));
    }
}
