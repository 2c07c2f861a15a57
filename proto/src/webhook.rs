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

/// Subscribe a URL to kinds of coordination events (admins): each is `POST`ed, signed like
/// webhooks in, with the event's id in [`IDEMPOTENCY_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscribe {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Event kinds (`task`, `lock`, `state.set`, `webhook`, …; a kind covers its subtypes).
    pub kinds: Vec<String>,
}

/// Reply to [`WebhookSubscribe`]: the signing secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscribed {
    /// Subscription id.
    pub id: Uuid,
    /// HMAC key, hex.
    pub secret: String,
}

impl Op for WebhookSubscribe {
    const NAME: &'static str = "webhook_subscribe";
    type Reply = WebhookSubscribed;
    fn validate(&self) -> Result<(), ProtoError> {
        if self.url.len() > 2048 || !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ProtoError::Invalid { field: "url", reason: "an http:// or https:// URL of at most 2 KiB" });
        }
        let ok = |k: &String| {
            !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        };
        if self.kinds.is_empty() || self.kinds.len() > 32 || !self.kinds.iter().all(ok) {
            return Err(ProtoError::Invalid {
                field: "kinds",
                reason: "1–32 lowercase kinds like task or lock.acquired",
            });
        }
        Ok(())
    }
}

/// Header carrying the event's id: the same on every retry of one event.
pub const IDEMPOTENCY_HEADER: &str = "x-plexus-idempotency-key";

/// An outbound subscription as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// Id.
    pub id: Uuid,
    /// URL.
    pub url: String,
    /// Kinds.
    pub kinds: Vec<String>,
    /// Events up to this sequence are delivered.
    pub cursor_seq: u64,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Disabled after too many consecutive failures.
    pub disabled: bool,
}

/// The mesh's outbound subscriptions (admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscriptions {}

/// Reply to [`WebhookSubscriptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriptions {
    /// Subscriptions, oldest first.
    pub subscriptions: Vec<SubscriptionInfo>,
}

impl Op for WebhookSubscriptions {
    const NAME: &'static str = "webhook_subscriptions";
    type Reply = Subscriptions;
}

/// End an outbound subscription (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUnsubscribe {
    /// Subscription id.
    pub id: Uuid,
}

impl Op for WebhookUnsubscribe {
    const NAME: &'static str = "webhook_unsubscribe";
    type Reply = Done;
}

/// Most attempts one [`WebhookAttempts`] returns.
pub const MAX_ATTEMPTS_LISTED: u32 = 1_000;

/// An outbound subscription's delivery log, newest last (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempts {
    /// Subscription id.
    pub id: Uuid,
    /// How many of the latest attempts (default 100, at most [`MAX_ATTEMPTS_LISTED`]).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptInfo {
    /// The event's sequence in the mesh log.
    pub seq: u64,
    /// Which try of this event (1 first).
    pub attempt: u32,
    /// The node that made it.
    pub node: String,
    /// The HTTP status answered, if any.
    #[serde(default)]
    pub status: Option<u16>,
    /// What went wrong, when it did.
    #[serde(default)]
    pub error: Option<String>,
    /// When (milliseconds since the epoch).
    pub at_ms: u64,
}

/// Reply to [`WebhookAttempts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// Attempts, oldest first.
    pub attempts: Vec<AttemptInfo>,
}

impl Op for WebhookAttempts {
    const NAME: &'static str = "webhook_attempts";
    type Reply = Attempts;
    fn validate(&self) -> Result<(), ProtoError> {
        match self.limit {
            Some(n) if n == 0 || n > MAX_ATTEMPTS_LISTED => {
                Err(ProtoError::Invalid { field: "limit", reason: "between 1 and 1000" })
            }
            _ => Ok(()),
        }
    }
}
