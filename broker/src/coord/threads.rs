//! Threads that wait on someone: open, reply (hand-off per [`super::waiting_after_reply`]),
//! resolve; every change is a `thread.*` event.

use plexus_proto::{
    coord::{self as c, Change, CoordEvent},
    types::{Priority, Role},
};
use uuid::Uuid;

use super::{
    change::{commit, emit, excerpt, member_name},
    waiting_after_reply, Caller, Coord,
};
use crate::{
    error::OpError,
    store::{self, coord as db},
};

async fn check_members(coord: &Coord, mesh_id: Uuid, members: &[Uuid]) -> Result<(), OpError> {
    for m in members {
        member_name(coord, mesh_id, *m).await?;
    }
    Ok(())
}

fn thread_event(action: &str, summary: String, thread: &c::Thread, post: Option<c::ThreadPost>) -> CoordEvent {
    CoordEvent { summary, change: Change::Thread { action: action.to_owned(), thread: thread.clone(), post } }
}

/// `thread_open`: a thread waiting on the named members.
pub async fn thread_open(coord: &Coord, a: &Caller, b: c::ThreadOpen) -> Result<c::Thread, OpError> {
    let waiting = waiting_after_reply(&[], a.member_id, Some(&b.waiting_on), None);
    check_members(coord, a.mesh_id, &waiting).await?;
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let (thread, post) =
        db::thread_insert(&tx, a.mesh_id, b.topic.trim(), b.priority, (a.member_id, &a.name), &waiting, &b.body)
            .await?;
    let summary = format!("{} opened thread #{}: {} — {}", a.name, thread.number, thread.topic, excerpt(&b.body));
    let msg = emit(&tx, a, "thread.opened", b.priority, &thread_event("opened", summary, &thread, Some(post))).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

/// `thread_reply`: a post; the thread then waits on whom [`super::waiting_after_reply`] says.
pub async fn thread_reply(coord: &Coord, a: &Caller, b: c::ThreadReply) -> Result<c::Thread, OpError> {
    if let Some(w) = &b.waiting_on {
        check_members(coord, a.mesh_id, w).await?;
    }
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::thread_lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("thread"))?;
    if current.resolved {
        return Err(OpError::Conflict(format!("thread #{} is resolved", current.number)));
    }
    let previous = db::thread_previous_poster(&tx, a.mesh_id, b.number, a.member_id).await?;
    let post = db::thread_post_add(&tx, a.mesh_id, b.number, (a.member_id, &a.name), &b.body).await?;
    let waiting = waiting_after_reply(&current.waiting_on, a.member_id, b.waiting_on.as_deref(), previous);
    let thread = db::thread_save(&tx, a.mesh_id, b.number, &waiting, false).await?;
    let summary = format!("{} replied in thread #{} ({}): {}", a.name, thread.number, thread.topic, excerpt(&b.body));
    let msg =
        emit(&tx, a, "thread.replied", thread.priority, &thread_event("replied", summary, &thread, Some(post))).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

/// `thread_resolve`: close a thread (participants or admins).
pub async fn thread_resolve(coord: &Coord, a: &Caller, b: c::ThreadResolve) -> Result<c::Thread, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::thread_lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("thread"))?;
    if current.resolved {
        return Err(OpError::Conflict(format!("thread #{} is already resolved", current.number)));
    }
    let participant = current.author == a.member_id
        || current.waiting_on.contains(&a.member_id)
        || db::thread_has_posted(&tx, a.mesh_id, b.number, a.member_id).await?;
    if !participant && a.role < Role::Admin {
        return Err(OpError::Forbidden("only a participant or an admin may resolve a thread"));
    }
    let thread = db::thread_save(&tx, a.mesh_id, b.number, &[], true).await?;
    let summary = format!("{} resolved thread #{}: {}", a.name, thread.number, thread.topic);
    let msg =
        emit(&tx, a, "thread.resolved", Priority::Next, &thread_event("resolved", summary, &thread, None)).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

/// `thread_get`: a thread with its posts.
pub async fn thread_get(coord: &Coord, a: &Caller, b: c::ThreadGet) -> Result<c::ThreadDetail, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let (thread, posts) = db::thread_get(&client, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("thread"))?;
    Ok(c::ThreadDetail { thread, posts })
}

/// `thread_list`: threads, optionally only those waiting on the caller.
pub async fn thread_list(coord: &Coord, a: &Caller, b: c::ThreadList) -> Result<c::Threads, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let waiting = b.waiting_on_me.then_some(a.member_id);
    let mut threads = db::thread_list(&client, a.mesh_id, waiting, b.include_resolved, b.limit).await?;
    let more = threads.len() > b.limit as usize;
    threads.truncate(b.limit as usize);
    Ok(c::Threads { threads, more })
}
