//! Webhooks in Postgres: registered hooks (with their secret, which never leaves the broker
//! after creation) and the signatures already accepted.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool};
use plexus_proto::{
    types::{Priority, Target},
    webhook::{WebhookCreate, WebhookInfo},
};
use uuid::Uuid;

use super::{millis, StoreError};

/// A hook as the receiving endpoint needs it.
pub struct Hook {
    /// Name.
    pub name: String,
    /// HMAC key.
    pub secret: Vec<u8>,
    /// Target.
    pub target: Target,
    /// Priority.
    pub priority: Priority,
}

fn target_of(text: &str) -> Result<Target, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("webhook target"))
}

fn priority_of(text: &str) -> Result<Priority, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("webhook priority"))
}

/// Register a hook.
pub async fn create(
    db: &impl GenericClient,
    mesh_id: Uuid,
    id: Uuid,
    hook: &WebhookCreate,
    secret: &[u8],
    created_by: Uuid,
) -> Result<(), StoreError> {
    let target = serde_json::to_string(&hook.target).map_err(|_| StoreError::Corrupt("webhook target"))?;
    let priority = serde_json::to_string(&hook.priority).map_err(|_| StoreError::Corrupt("webhook priority"))?;
    db.execute(
        "INSERT INTO webhooks (mesh_id, id, name, secret, target, priority, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&mesh_id, &id, &hook.name, &secret, &target, &priority, &created_by],
    )
    .await?;
    Ok(())
}

/// The mesh's hooks, oldest first.
pub async fn list(pool: &Pool, mesh_id: Uuid) -> Result<Vec<WebhookInfo>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, name, target, priority, created_by, created_at FROM webhooks WHERE mesh_id = $1 ORDER BY created_at",
            &[&mesh_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(WebhookInfo {
                id: r.get(0),
                name: r.get(1),
                target: target_of(r.get(2))?,
                priority: priority_of(r.get(3))?,
                created_by: r.get(4),
                created_at_ms: millis(r.get::<_, SystemTime>(5)),
            })
        })
        .collect()
}

/// Remove a hook; its name when there was one.
pub async fn delete(db: &impl GenericClient, mesh_id: Uuid, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(db
        .query_opt("DELETE FROM webhooks WHERE mesh_id = $1 AND id = $2 RETURNING name", &[&mesh_id, &id])
        .await?
        .map(|r| r.get(0)))
}

/// One hook.
pub async fn get(pool: &Pool, mesh_id: Uuid, id: Uuid) -> Result<Option<Hook>, StoreError> {
    let client = pool.get().await?;
    let Some(r) = client
        .query_opt(
            "SELECT name, secret, target, priority FROM webhooks WHERE mesh_id = $1 AND id = $2",
            &[&mesh_id, &id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Hook { name: r.get(0), secret: r.get(1), target: target_of(r.get(2))?, priority: priority_of(r.get(3))? }))
}

/// Note a signature as accepted; false when it was seen before (a replay).
pub async fn first_sighting(
    db: &impl GenericClient,
    mesh_id: Uuid,
    hook_id: Uuid,
    signature: &[u8],
) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "INSERT INTO webhook_seen (mesh_id, hook_id, signature) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&mesh_id, &hook_id, &signature],
        )
        .await?
        == 1)
}

/// Forget signatures older than the replay window (their timestamps are refused anyway).
pub async fn prune_seen(pool: &Pool, older_than: Duration) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM webhook_seen WHERE seen_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        )
        .await?)
}

/// An outbound subscription as its delivering node needs it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// URL.
    pub url: String,
    /// HMAC key.
    pub secret: Vec<u8>,
    /// Kinds.
    pub kinds: Vec<String>,
    /// Delivered through.
    pub cursor_seq: u64,
    /// Consecutive failures.
    pub failures: u32,
}

/// Subscribe a URL, starting after the mesh's current head.
pub async fn subscribe(
    db: &impl GenericClient,
    mesh_id: Uuid,
    id: Uuid,
    url: &str,
    secret: &[u8],
    kinds: &[String],
    created_by: Uuid,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO webhook_subscriptions (mesh_id, id, url, secret, kinds, created_by, cursor_seq)
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT head_seq FROM meshes WHERE id = $1))",
        &[&mesh_id, &id, &url, &secret, &kinds, &created_by],
    )
    .await?;
    Ok(())
}

/// The mesh's subscriptions.
pub async fn subscriptions(
    pool: &Pool,
    mesh_id: Uuid,
) -> Result<Vec<plexus_proto::webhook::SubscriptionInfo>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, url, kinds, cursor_seq, failures, disabled_at IS NOT NULL FROM webhook_subscriptions
             WHERE mesh_id = $1 ORDER BY created_at",
            &[&mesh_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| plexus_proto::webhook::SubscriptionInfo {
            id: r.get(0),
            url: r.get(1),
            kinds: r.get(2),
            cursor_seq: r.get::<_, i64>(3).max(0) as u64,
            failures: r.get::<_, i32>(4).max(0) as u32,
            disabled: r.get(5),
        })
        .collect())
}

/// The latest `limit` delivery attempts of a subscription, oldest first; `None` when the mesh
/// has no such subscription.
pub async fn attempts(
    pool: &Pool,
    mesh_id: Uuid,
    id: Uuid,
    limit: u32,
) -> Result<Option<Vec<plexus_proto::webhook::AttemptInfo>>, StoreError> {
    let client = pool.get().await?;
    let exists = client
        .query_opt("SELECT 1 FROM webhook_subscriptions WHERE mesh_id = $1 AND id = $2", &[&mesh_id, &id])
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT seq, attempt, node, status, error, (extract(epoch FROM at) * 1000)::bigint FROM (
                SELECT * FROM webhook_attempts WHERE mesh_id = $1 AND hook_id = $2 ORDER BY at DESC, seq DESC, attempt DESC LIMIT $3
             ) latest ORDER BY at, seq, attempt",
            &[&mesh_id, &id, &i64::from(limit)],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|r| plexus_proto::webhook::AttemptInfo {
                seq: r.get::<_, i64>(0).max(0) as u64,
                attempt: r.get::<_, i32>(1).max(0) as u32,
                node: r.get(2),
                status: r.get::<_, Option<i32>>(3).and_then(|s| u16::try_from(s).ok()),
                error: r.get(4),
                at_ms: r.get::<_, i64>(5).max(0) as u64,
            })
            .collect(),
    ))
}

/// End a subscription; its URL when there was one.
pub async fn unsubscribe(db: &impl GenericClient, mesh_id: Uuid, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(db
        .query_opt("DELETE FROM webhook_subscriptions WHERE mesh_id = $1 AND id = $2 RETURNING url", &[&mesh_id, &id])
        .await?
        .map(|r| r.get(0)))
}

/// Take or renew the lease of every enabled subscription no live lease holds: this node then
/// delivers them alone until its lease lapses.
pub async fn lease(pool: &Pool, node: &str, lease: Duration) -> Result<Vec<Subscription>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "UPDATE webhook_subscriptions SET lease_node = $1, lease_until = now() + make_interval(secs => $2)
             WHERE disabled_at IS NULL AND (lease_until IS NULL OR lease_until < now() OR lease_node = $1)
             RETURNING mesh_id, id, url, secret, kinds, cursor_seq, failures",
            &[&node, &lease.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Subscription {
            mesh_id: r.get(0),
            id: r.get(1),
            url: r.get(2),
            secret: r.get(3),
            kinds: r.get(4),
            cursor_seq: r.get::<_, i64>(5).max(0) as u64,
            failures: r.get::<_, i32>(6).max(0) as u32,
        })
        .collect())
}

/// Record an attempt; on success move the cursor, on failure count it — only while `node`
/// still holds the lease. Returns the consecutive failures now (`None`: the lease was lost).
pub async fn attempted(
    pool: &Pool,
    sub: &Subscription,
    node: &str,
    seq: u64,
    attempt: u32,
    outcome: Result<u16, String>,
) -> Result<Option<u32>, StoreError> {
    let client = pool.get().await?;
    let (status, error) = match &outcome {
        Ok(s) => (Some(i32::from(*s)), None),
        Err(e) => (None, Some(e.as_str())),
    };
    client
        .execute(
            "INSERT INTO webhook_attempts (mesh_id, hook_id, seq, attempt, node, status, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&sub.mesh_id, &sub.id, &(seq as i64), &(attempt as i32), &node, &status, &error],
        )
        .await?;
    let ok = matches!(outcome, Ok(s) if (200..300).contains(&s));
    let row = if ok {
        client
            .query_opt(
                "UPDATE webhook_subscriptions SET cursor_seq = GREATEST(cursor_seq, $4), failures = 0
                 WHERE mesh_id = $1 AND id = $2 AND lease_node = $3 RETURNING failures",
                &[&sub.mesh_id, &sub.id, &node, &(seq as i64)],
            )
            .await?
    } else {
        client
            .query_opt(
                "UPDATE webhook_subscriptions SET failures = failures + 1
                 WHERE mesh_id = $1 AND id = $2 AND lease_node = $3 RETURNING failures",
                &[&sub.mesh_id, &sub.id, &node],
            )
            .await?
    };
    Ok(row.map(|r| r.get::<_, i32>(0).max(0) as u32))
}

/// Stop delivering to a subscription that kept failing.
pub async fn disable(db: &impl GenericClient, mesh_id: Uuid, id: Uuid) -> Result<(), StoreError> {
    db.execute(
        "UPDATE webhook_subscriptions SET disabled_at = now(), lease_node = NULL, lease_until = NULL WHERE mesh_id = $1 AND id = $2",
        &[&mesh_id, &id],
    )
    .await?;
    Ok(())
}
