//! Pending device links (`link_requests`): offered by a device, answered by a member, fetched
//! once by the device. Rows older than [`LINK_TTL`] count as gone and are deleted by the
//! housekeeping pass.

use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::StoreError;

/// How long a link waits for its answer and then for its fetch.
pub const LINK_TTL: Duration = Duration::from_secs(600);

/// Most links pending at once, cluster-wide (they are anonymous: this caps what strangers can
/// make the database hold).
pub const MAX_PENDING: i64 = 10_000;

/// Why an offer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Stored (or already stored with the same key).
    Stored,
    /// The code is pending with another key.
    Taken,
    /// Too many links are pending.
    Full,
}

fn ttl_secs() -> f64 {
    LINK_TTL.as_secs_f64()
}

/// Store a device's offer.
pub async fn offer(pool: &Pool, code: &str, link_pubkey: &[u8]) -> Result<Offered, StoreError> {
    let client = pool.get().await?;
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM link_requests WHERE created_at > now() - make_interval(secs => $1)",
            &[&ttl_secs()],
        )
        .await?
        .get(0);
    if pending >= MAX_PENDING {
        return Ok(Offered::Full);
    }
    client
        .execute(
            "DELETE FROM link_requests WHERE code = $1 AND created_at <= now() - make_interval(secs => $2)",
            &[&code, &ttl_secs()],
        )
        .await?;
    let row = client
        .query_one(
            "INSERT INTO link_requests (code, link_pubkey) VALUES ($1, $2)
             ON CONFLICT (code) DO UPDATE SET code = link_requests.code
             RETURNING link_pubkey",
            &[&code, &link_pubkey],
        )
        .await?;
    let stored: Vec<u8> = row.get(0);
    Ok(if stored == link_pubkey { Offered::Stored } else { Offered::Taken })
}

/// The key of a pending, unanswered link.
pub async fn lookup(pool: &Pool, code: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT link_pubkey FROM link_requests
             WHERE code = $1 AND sealed IS NULL AND created_at > now() - make_interval(secs => $2)",
            &[&code, &ttl_secs()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Answer a pending link; false when there is none (unknown, expired or answered already).
pub async fn answer(
    pool: &Pool,
    code: &str,
    sealed: &[u8],
    mesh_id: Uuid,
    member_id: Uuid,
) -> Result<bool, StoreError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "UPDATE link_requests SET sealed = $2, mesh_id = $3, answered_by = $4
             WHERE code = $1 AND sealed IS NULL AND created_at > now() - make_interval(secs => $5)",
            &[&code, &sealed, &mesh_id, &member_id, &ttl_secs()],
        )
        .await?;
    Ok(n == 1)
}

/// What a device finds when it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Answered: the sealed bundle (the link is gone now).
    Answered(Vec<u8>),
    /// Still waiting for a member.
    Pending,
    /// No such link (never offered, expired, or fetched already).
    Gone,
}

/// Fetch (and remove) a link's answer.
pub async fn fetch(pool: &Pool, code: &str) -> Result<Fetched, StoreError> {
    let client = pool.get().await?;
    let taken = client
        .query_opt(
            "DELETE FROM link_requests
             WHERE code = $1 AND sealed IS NOT NULL AND created_at > now() - make_interval(secs => $2)
             RETURNING sealed",
            &[&code, &ttl_secs()],
        )
        .await?;
    if let Some(row) = taken {
        return Ok(Fetched::Answered(row.get(0)));
    }
    let pending = client
        .query_opt(
            "SELECT 1 FROM link_requests WHERE code = $1 AND created_at > now() - make_interval(secs => $2)",
            &[&code, &ttl_secs()],
        )
        .await?;
    Ok(if pending.is_some() { Fetched::Pending } else { Fetched::Gone })
}

/// Delete links past their time.
pub async fn prune(pool: &Pool) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .execute("DELETE FROM link_requests WHERE created_at <= now() - make_interval(secs => $1)", &[&ttl_secs()])
        .await?)
}
