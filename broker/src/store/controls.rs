//! Per-peer controls in Postgres: blocks, mutes and event subscriptions of a member.

use deadpool_postgres::GenericClient;
use plexus_proto::controls::{ControlKind, Controls};
use uuid::Uuid;

use super::StoreError;

fn kind_name(kind: ControlKind) -> &'static str {
    match kind {
        ControlKind::Block => "block",
        ControlKind::Mute => "mute",
    }
}

/// Set or lift a block or mute.
pub async fn set(
    db: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    peer: Uuid,
    kind: ControlKind,
    on: bool,
) -> Result<(), StoreError> {
    let sql = if on {
        "INSERT INTO member_controls (mesh_id, member_id, peer, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM member_controls WHERE mesh_id = $1 AND member_id = $2 AND peer = $3 AND kind = $4"
    };
    db.execute(sql, &[&mesh_id, &member_id, &peer, &kind_name(kind)]).await?;
    Ok(())
}

/// Set the kinds of events pushed (`None`: all).
pub async fn subscribe(
    db: &impl GenericClient,
    mesh_id: Uuid,
    member_id: Uuid,
    kinds: Option<&[String]>,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO member_subscriptions (mesh_id, member_id, kinds) VALUES ($1, $2, $3)
         ON CONFLICT (mesh_id, member_id) DO UPDATE SET kinds = $3",
        &[&mesh_id, &member_id, &kinds],
    )
    .await?;
    Ok(())
}

/// A member's controls.
pub async fn get(db: &impl GenericClient, mesh_id: Uuid, member_id: Uuid) -> Result<Controls, StoreError> {
    let rows = db
        .query(
            "SELECT peer, kind FROM member_controls WHERE mesh_id = $1 AND member_id = $2 ORDER BY peer",
            &[&mesh_id, &member_id],
        )
        .await?;
    let mut c = Controls::default();
    for r in &rows {
        let peer: Uuid = r.get(0);
        match r.get::<_, &str>(1) {
            "block" => c.blocked.push(peer),
            _ => c.muted.push(peer),
        }
    }
    c.kinds = db
        .query_opt(
            "SELECT kinds FROM member_subscriptions WHERE mesh_id = $1 AND member_id = $2",
            &[&mesh_id, &member_id],
        )
        .await?
        .and_then(|r| r.get::<_, Option<Vec<String>>>(0));
    Ok(c)
}
