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
