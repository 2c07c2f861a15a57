//! Webhooks in: a mesh's admins register a hook with a target and priority; an outside system
//! `POST`s to `/hooks/<mesh>/<hook>` with an HMAC-SHA256 signature over the timestamp and
//! body (GitHub-style: the secret never travels, not even in the URL); the payload becomes a
//! mesh event from the webhook, delivered like any other.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    ops::{Done, Op},
    types::{Priority, Target},
    ProtoError,
};

/// Header carrying the sending time, in seconds since the epoch.
pub const TIMESTAMP_HEADER: &str = "x-plexus-timestamp";
/// Header carrying `sha256=<hex of HMAC-SHA256(secret, signed_bytes)>`.
pub const SIGNATURE_HEADER: &str = "x-plexus-signature";
/// How far the timestamp may be from the broker's clock; a signature is accepted once.
pub const REPLAY_WINDOW_SECS: u64 = 300;
/// Largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What is signed: `"<timestamp>." ‖ body`.
pub fn signed_bytes(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(timestamp.len() + 1 + body.len());
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
}

/// Register a webhook (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreate {
    /// Its name (events come from `webhook:<name>`).
    pub name: String,
    /// Where its events go.
    pub target: Target,
    /// At which priority.
    pub priority: Priority,
}

/// Reply to [`WebhookCreate`]: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    /// Hook id.
    pub id: Uuid,
    /// The HMAC key, hex (32 random bytes).
    pub secret: String,
    /// Where to `POST`: `/hooks/<mesh>/<id>`.
    pub path: String,
}

impl Op for WebhookCreate {
    const NAME: &'static str = "webhook_create";
    type Reply = WebhookCreated;
    fn validate(&self) -> Result<(), ProtoError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            return Err(ProtoError::Invalid { field: "name", reason: "1–64 of A-Z a-z 0-9 - _ ." });
        }
        Ok(())
    }
}

/// A registered webhook (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInfo {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Target.
    pub target: Target,
    /// Priority.
    pub priority: Priority,
    /// Who registered it.
    pub created_by: Uuid,
    /// When.
    pub created_at_ms: u64,
}

/// The mesh's webhooks (admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookList {}

/// Reply to [`WebhookList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhooks {
    /// Hooks, oldest first.
    pub hooks: Vec<WebhookInfo>,
}

impl Op for WebhookList {
    const NAME: &'static str = "webhook_list";
    type Reply = Webhooks;
}

/// Remove a webhook (admins): its URL stops accepting at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelete {
    /// Hook id.
    pub id: Uuid,
}

impl Op for WebhookDelete {
    const NAME: &'static str = "webhook_delete";
    type Reply = Done;
}
