//! Coordination events: a change appends its event to the mesh log inside the change's own
//! transaction, and the event is published only after that transaction commits — so no change
//! is visible without its event, and no event without its change.

use std::sync::Arc;

use deadpool_postgres::Transaction;
use plexus_proto::{
    coord::CoordEvent,
    push::Message,
    types::{Priority, Sealing, Target},
};
use uuid::Uuid;

use crate::{
    cluster::MeshEvent,
    error::OpError,
    store::{self, log::NewMessage},
};

/// Who an event is from (a member's session, or the holder of an expiring lock).
#[derive(Debug, Clone)]
pub struct Sender {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Member.
    pub member_id: Uuid,
    /// Session (broadcasts skip it).
    pub session_id: Uuid,
    /// Display name.
    pub name: String,
    /// Session x25519 key (empty for broker-originated events).
    pub session_pubkey: Vec<u8>,
    /// Member ed25519 key (empty for broker-originated events).
    pub member_pubkey: Vec<u8>,
}

/// Append `event` to the log in `tx`.
pub async fn append(
    tx: &Transaction<'_>,
    from: &Sender,
    target: Target,
    subtype: &str,
    priority: Priority,
    event: &CoordEvent,
) -> Result<Arc<Message>, OpError> {
    let body = serde_json::to_vec(event).map_err(|_| OpError::Internal("event encoding"))?;
    let msg = NewMessage {
        mesh_id: from.mesh_id,
        id: Uuid::new_v4(),
        target,
        priority,
        reply_to: None,
        subtype: Some(subtype.to_owned()),
        sender_member: from.member_id,
        sender_session: from.session_id,
        sender_name: from.name.clone(),
        sender_pubkey: from.session_pubkey.clone(),
        sender_member_pubkey: from.member_pubkey.clone(),
        sealing: Sealing::Plain,
        nonce: Vec::new(),
        ciphertext: body,
        key_epoch: None,
    };
    Ok(store::log::append_in(tx, &msg).await?)
}

/// Commit `tx`, then publish the events it appended, in order.
pub async fn commit(
    coord: &super::Coord,
    mesh_id: Uuid,
    tx: Transaction<'_>,
    events: Vec<Arc<Message>>,
) -> Result<(), OpError> {
    tx.commit().await.map_err(store::StoreError::from)?;
    for msg in events {
        crate::metrics::messages_routed().with_label_values(&[msg.priority.as_str(), "event"]).inc();
        coord.fanout.publish(mesh_id, MeshEvent::Message(msg));
    }
    Ok(())
}
