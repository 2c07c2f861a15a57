//! Numbered plain-SQL migrations from `migrations/`, embedded in the binary and applied at
//! start under a Postgres advisory lock, so nodes starting together apply each one once.

use deadpool_postgres::Pool;

use super::StoreError;

/// Every migration, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "core", include_str!("../../../migrations/0001_core.sql")),
    (2, "coordination", include_str!("../../../migrations/0002_coordination.sql")),
    (3, "locks", include_str!("../../../migrations/0003_locks.sql")),
    (4, "reminders", include_str!("../../../migrations/0004_reminders.sql")),
    (5, "faults", include_str!("../../../migrations/0005_faults.sql")),
    (6, "members", include_str!("../../../migrations/0006_members.sql")),
    (7, "links", include_str!("../../../migrations/0007_links.sql")),
    (8, "rooms", include_str!("../../../migrations/0008_rooms.sql")),
    (9, "audit", include_str!("../../../migrations/0009_audit.sql")),
    (10, "webhooks", include_str!("../../../migrations/0010_webhooks.sql")),
    (11, "controls", include_str!("../../../migrations/0011_controls.sql")),
    (12, "webhooks_out", include_str!("../../../migrations/0012_webhooks_out.sql")),
    (13, "key_epochs", include_str!("../../../migrations/0013_key_epochs.sql")),
    (14, "cursors", include_str!("../../../migrations/0014_cursors.sql")),
];

/// Advisory-lock key for migrations ("plexus" in ASCII).
const MIGRATION_LOCK: i64 = 0x706c_6578_7573;

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Apply pending migrations; refuse a schema newer than this binary. Returns the version.
pub async fn migrate(pool: &Pool) -> Result<i64, StoreError> {
    let mut client = pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = apply(&mut client).await;
    // Unlock even when applying failed; the session-level lock would otherwise outlive us in
    // the pooled connection.
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    let version = result?;
    unlock?;
    Ok(version)
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<i64, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let row = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await?;
    let current: i64 = row.get(0);
    let known = latest_version();
    if current > known {
        return Err(StoreError::SchemaTooNew { found: current, known });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name]).await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(known)
}
