//! What every change shares: its event appended in the change's transaction and published
//! after commit, member names, summaries.

use std::sync::Arc;

use plexus_proto::{
    coord::CoordEvent,
    push::Message,
    types::{Priority, Target},
};
use uuid::Uuid;

use super::{events, Caller, Coord};
use crate::{error::OpError, store::meshes};

/// Append the change's event in `tx`, broadcast to the mesh at `priority`.
pub(super) async fn emit(
    tx: &deadpool_postgres::Transaction<'_>,
    a: &Caller,
    subtype: &str,
    priority: Priority,
    event: &CoordEvent,
) -> Result<Arc<Message>, OpError> {
    events::append(tx, &a.sender(), Target::All, subtype, priority, event).await
}

/// Commit `tx` and publish its one event.
pub(super) async fn commit(
    coord: &Coord,
    mesh_id: Uuid,
    tx: deadpool_postgres::Transaction<'_>,
    msg: Arc<Message>,
) -> Result<(), OpError> {
    events::commit(coord, mesh_id, tx, vec![msg]).await
}

/// A current member's display name.
pub(super) async fn member_name(coord: &Coord, mesh_id: Uuid, member: Uuid) -> Result<String, OpError> {
    match meshes::member(&coord.pool, mesh_id, member).await? {
        Some(m) if !m.removed => Ok(m.display_name),
        _ => Err(OpError::NotFound("member")),
    }
}

/// The first line of a text, cut to 120 characters, for an event summary.
pub(super) fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}
