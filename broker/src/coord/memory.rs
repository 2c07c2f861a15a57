//! Team memory with full-text recall, and search across memory, tasks and threads.

use plexus_proto::{
    coord::{self as c, Change, CoordEvent},
    ops::Done,
    types::{Priority, Role},
};

use super::{
    change::{commit, emit, excerpt},
    Caller, Coord,
};
use crate::{
    error::OpError,
    store::{self, coord as db},
};

/// `remember`: store a note for the team.
pub async fn remember(coord: &Coord, a: &Caller, b: c::Remember) -> Result<c::Memory, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let max = coord.cfg.max_memories;
    if db::mesh_rows(&tx, a.mesh_id, db::QuotaTable::Memories).await? >= max {
        return Err(OpError::QuotaExceeded { what: "memories", max });
    }
    let memory = db::memory_insert(&tx, a.mesh_id, &b.body, &b.tags, (a.member_id, &a.name)).await?;
    let event = CoordEvent {
        summary: format!("{} remembered #{}: {}", a.name, memory.number, excerpt(&memory.body)),
        change: Change::Memory { number: memory.number, memory: Some(memory.clone()) },
    };
    let msg = emit(&tx, a, "memory.remembered", Priority::Low, &event).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(memory)
}

/// `recall`: notes ranked by a web-search-syntax query (tags weigh more than text).
pub async fn recall(coord: &Coord, a: &Caller, b: c::Recall) -> Result<c::Memories, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::Memories { memories: db::recall(&client, a.mesh_id, &b.query, b.limit).await? })
}

/// `forget`: delete a note (its author or an admin).
pub async fn forget(coord: &Coord, a: &Caller, b: c::Forget) -> Result<Done, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let author = db::memory_author(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("memory"))?;
    if author != a.member_id && a.role < Role::Admin {
        return Err(OpError::Forbidden("only its author or an admin may forget a memory"));
    }
    db::memory_delete(&tx, a.mesh_id, b.number).await?;
    let event = CoordEvent {
        summary: format!("{} forgot memory #{}", a.name, b.number),
        change: Change::Memory { number: b.number, memory: None },
    };
    let msg = emit(&tx, a, "memory.forgotten", Priority::Low, &event).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(Done {})
}

/// `search`: one ranked search over notes, tasks and threads.
pub async fn search(coord: &Coord, a: &Caller, b: c::Search) -> Result<c::SearchHits, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::SearchHits { hits: db::search(&client, a.mesh_id, &b.query, b.limit).await? })
}
