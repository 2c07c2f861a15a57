//! Shared state: versioned keys with compare-and-set; every write is a `state.*` event.

use plexus_proto::{
    coord::{self as c, Change, CoordEvent},
    ops::Done,
    types::Priority,
};

use super::{
    change::{commit, emit},
    Caller, Coord,
};
use crate::{
    error::OpError,
    store::{self, coord as db},
};

/// `state_get`: one key's entry, if set.
pub async fn state_get(coord: &Coord, a: &Caller, b: c::StateGet) -> Result<c::StateValue, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::StateValue { entry: db::state_get(&client, a.mesh_id, &b.key).await? })
}

fn version_conflict(key: &str, expected: u64, found: Option<u64>) -> OpError {
    match found {
        Some(v) => OpError::Conflict(format!("state {key} is at version {v}, not {expected}")),
        None => OpError::Conflict(format!("state {key} does not exist (expected version {expected})")),
    }
}

/// `state_set`: write a key, compare-and-set on `expect_version`; a `state.set` event.
pub async fn state_set(coord: &Coord, a: &Caller, b: c::StateSet) -> Result<c::StateEntry, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::state_lock(&tx, a.mesh_id, &b.key).await?;
    if current.is_none() {
        // Only a new key counts against the quota: updates and deletes always work.
        let max = coord.cfg.max_state_keys;
        if db::mesh_rows(&tx, a.mesh_id, db::QuotaTable::State).await? >= max {
            return Err(OpError::QuotaExceeded { what: "state keys", max });
        }
    }
    let entry = match (&current, b.expect_version) {
        (Some(cur), Some(want)) if cur.version != want => {
            return Err(version_conflict(&b.key, want, Some(cur.version)))
        }
        (None, Some(want)) if want != 0 => return Err(version_conflict(&b.key, want, None)),
        (Some(_), _) => db::state_update(&tx, a.mesh_id, &b.key, &b.value, a.member_id, &a.name).await?,
        (None, _) => match db::state_insert(&tx, a.mesh_id, &b.key, &b.value, a.member_id, &a.name).await? {
            Some(e) => e,
            // Inserted by someone else since our read: a CAS loses; a plain set retries.
            None if b.expect_version.is_some() => return Err(version_conflict(&b.key, 0, Some(1))),
            None => return Err(OpError::Conflict(format!("state {} was created concurrently; retry", b.key))),
        },
    };
    let event = CoordEvent {
        summary: format!("{} set {} (v{})", a.name, entry.key, entry.version),
        change: Change::State { key: entry.key.clone(), entry: Some(entry.clone()) },
    };
    let msg = emit(&tx, a, "state.set", Priority::Next, &event).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(entry)
}

/// `state_delete`: remove a key (compare-and-set like `state_set`); a `state.deleted` event.
pub async fn state_delete(coord: &Coord, a: &Caller, b: c::StateDelete) -> Result<Done, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let Some(current) = db::state_lock(&tx, a.mesh_id, &b.key).await? else {
        return Err(OpError::NotFound("state key"));
    };
    if let Some(want) = b.expect_version {
        if want != current.version {
            return Err(version_conflict(&b.key, want, Some(current.version)));
        }
    }
    db::state_delete(&tx, a.mesh_id, &b.key).await?;
    let event = CoordEvent {
        summary: format!("{} deleted {}", a.name, b.key),
        change: Change::State { key: b.key.clone(), entry: None },
    };
    let msg = emit(&tx, a, "state.delete", Priority::Next, &event).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(Done {})
}

/// `state_list`: entries under a literal prefix, in key order.
pub async fn state_list(coord: &Coord, a: &Caller, b: c::StateList) -> Result<c::StateEntries, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let mut entries = db::state_list(&client, a.mesh_id, &b.prefix, b.limit).await?;
    let more = entries.len() > b.limit as usize;
    entries.truncate(b.limit as usize);
    Ok(c::StateEntries { entries, more })
}
