//! Locks on paths and globs, cluster-wide. The table lives in Postgres and every change to one
//! mesh's locks runs under that mesh's advisory lock, so the overlap check and the grant are
//! one atomic step on every node. Fencing tokens come from a per-mesh counter in the same
//! transaction, so they strictly increase. Queued acquires are served first come, first
//! served: a waiter may take the lock only when it conflicts with no held lock and with no
//! earlier waiter. The waiting request takes its grant itself when it reaches the front (woken
//! at once: on this node directly, on the others through the fan-out's lock channel, with a
//! `lock_wait_poll_ms` look as the backstop for a lost wake), so no grant is ever made to
//! a request that is no longer there: a waiter whose connection closed, whose wait ran out or
//! failed leaves the queue (a drop guard removes it on every exit), one whose node died is
//! removed by the survivors' sweep, and a retry of the same session's request replaces the
//! earlier one — a session never holds two grants of one lock.
//!
//! Why not Redis: locks must survive a Redis restart (two holders after a flush is the one
//! thing a lock may never do), and a glob overlap check needs the whole held set atomically,
//! which a single-key `SET NX PX` cannot give. Redis only says which nodes are alive.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use plexus_proto::{
    coord::{Change, CoordEvent, LockAcquire, LockInfo, LockList, LockMode, LockRelease, LockRenew, Locks},
    ops::Done,
    push::Message,
    types::{Priority, Role, Target},
};
use uuid::Uuid;

use super::{
    events::{self, Sender},
    glob::overlap,
    Caller, Coord,
};
use crate::{
    error::OpError,
    store::{
        self,
        locks::{self as db, Grant, LockRow, WaiterRow},
        StoreError,
    },
};

type Tx<'a> = deadpool_postgres::Transaction<'a>;

fn conflicts(a: (&str, LockMode, Uuid), b: (&str, LockMode, Uuid)) -> bool {
    a.2 != b.2 && (a.1 == LockMode::Exclusive || b.1 == LockMode::Exclusive) && overlap(a.0, b.0)
}

fn held_key(l: &LockRow) -> (&str, LockMode, Uuid) {
    (&l.pattern, l.mode, l.holder_session)
}

fn waiter_key(w: &WaiterRow) -> (&str, LockMode, Uuid) {
    (&w.pattern, w.mode, w.session_id)
}

fn age(ms: u64) -> String {
    let s = store::now_ms().saturating_sub(ms) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn describe(l: &LockRow) -> String {
    let reason = l.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    format!(
        "{} holds {} ({}, token {}, for {}{reason})",
        l.holder_name,
        l.pattern,
        l.mode.as_str(),
        l.token,
        age(l.acquired_at_ms)
    )
}

fn holder_sender(mesh_id: Uuid, l: &LockRow) -> Sender {
    Sender {
        mesh_id,
        member_id: l.holder_member,
        session_id: l.holder_session,
        name: l.holder_name.clone(),
        session_pubkey: Vec::new(),
        member_pubkey: Vec::new(),
    }
}

async fn lock_event(
    tx: &Tx<'_>,
    from: &Sender,
    target: Target,
    priority: Priority,
    action: &str,
    summary: String,
    lock: &LockRow,
) -> Result<Arc<Message>, OpError> {
    let event = CoordEvent { summary, change: Change::Lock { action: action.to_owned(), lock: lock.clone() } };
    events::append(tx, from, target, &format!("lock.{action}"), priority, &event).await
}

/// A transaction holding the mesh's lock-table mutex, with expired locks and overdue waiters
/// removed: the held set, the queue, and the events so far.
struct Locked<'a> {
    tx: Tx<'a>,
    held: Vec<LockRow>,
    queue: Vec<WaiterRow>,
    events: Vec<Arc<Message>>,
}

/// Begin a [`Locked`] transaction. Its statements go out together (Postgres runs them in
/// order, the first waiting for the mutex): one round trip instead of five, on the path every
/// lock hand-off takes while the mesh's lock table is held.
async fn begin<'a>(
    coord: &Coord,
    client: &'a mut deadpool_postgres::Object,
    mesh_id: Uuid,
) -> Result<Locked<'a>, OpError> {
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let grace = Duration::from_secs(coord.cfg.lock_grace_secs);
    let ((), expired, _, held, queue) = futures_util::try_join!(
        db::serialize_mesh(&tx, mesh_id),
        db::remove_expired(&tx, mesh_id, grace),
        db::remove_overdue_waiters(&tx, mesh_id),
        db::held(&tx, mesh_id),
        db::waiting(&tx, mesh_id),
    )?;
    let mut events = Vec::new();
    for l in &expired {
        let summary = format!("{}'s lock on {} expired", l.holder_name, l.pattern);
        let from = holder_sender(mesh_id, l);
        events.push(lock_event(&tx, &from, Target::All, Priority::Low, "expired", summary, l).await?);
    }
    Ok(Locked { tx, held, queue, events })
}

async fn finish(coord: &Coord, mesh_id: Uuid, tx: Tx<'_>, events: Vec<Arc<Message>>) -> Result<(), OpError> {
    let changed = !events.is_empty();
    events::commit(coord, mesh_id, tx, events).await?;
    if changed {
        wake_waiters(coord);
    }
    Ok(())
}

/// Let every queued acquire, on every node, look at the queue again.
fn wake_waiters(coord: &Coord) {
    coord.lock_wake.notify_waiters();
    coord.fanout.wake_lock_waiters();
}

fn same_lock(w: &WaiterRow, who: &Sender, req: &LockAcquire) -> bool {
    w.session_id == who.session_id && w.pattern == req.pattern && w.mode == req.mode
}

/// Why `me` cannot have its lock now, from the held set and the queue ahead of it.
fn blocker(me: (&str, LockMode, Uuid), held: &[LockRow], ahead: &[WaiterRow]) -> Option<String> {
    if let Some(l) = held.iter().find(|h| conflicts(me, held_key(h))) {
        return Some(describe(l));
    }
    ahead
        .iter()
        .find(|w| conflicts(me, waiter_key(w)))
        .map(|w| format!("{} is queued ahead for {} ({})", w.holder_name, w.pattern, w.mode.as_str()))
}

/// Acquire, waiting in the queue up to `wait_ms`. `alive` tells whether the asking connection
/// is still there (a waiter whose client left gives its place back).
pub async fn acquire(
    coord: &Coord,
    a: &Caller,
    req: LockAcquire,
    alive: impl Fn() -> bool,
) -> Result<LockInfo, OpError> {
    let (who, req) = (&a.sender(), &req);
    let mesh_id = who.mesh_id;
    let mut client = coord.pool.get().await.map_err(StoreError::from)?;
    let Locked { tx, held, mut queue, mut events } = begin(coord, &mut client, mesh_id).await?;
    let me = (req.pattern.as_str(), req.mode, who.session_id);
    // An earlier request of this session for the same lock still in the queue is one whose
    // client gave up on it (its connection died and it retried): this request replaces it.
    for w in queue.iter().filter(|w| same_lock(w, who, req)) {
        db::remove_waiter(&tx, w.id).await?;
    }
    queue.retain(|w| !same_lock(w, who, req));

    // The same session asking again for what it holds is a renew, not a second lock.
    if let Some(mine) = held
        .iter()
        .filter(|l| l.holder_session == who.session_id && l.pattern == req.pattern && l.mode == req.mode)
        .max_by_key(|l| l.token)
    {
        let lock = db::renew(&tx, mesh_id, mine.token, req.ttl_ms).await?;
        finish(coord, mesh_id, tx, events).await?;
        return Ok(lock);
    }
    let grant = Grant {
        pattern: &req.pattern,
        mode: req.mode,
        member_id: who.member_id,
        session_id: who.session_id,
        holder_name: &who.name,
        reason: req.reason.as_deref(),
        ttl_ms: req.ttl_ms as i64,
    };
    let Some(why) = blocker(me, &held, &queue) else {
        let lock = db::insert(&tx, mesh_id, &grant).await?;
        let summary = format!("{} locked {} ({})", who.name, lock.pattern, lock.mode.as_str());
        events.push(lock_event(&tx, who, Target::All, Priority::Low, "acquired", summary, &lock).await?);
        finish(coord, mesh_id, tx, events).await?;
        crate::metrics::lock_wait_seconds().observe(0.0);
        return Ok(lock);
    };
    if req.wait_ms == 0 {
        finish(coord, mesh_id, tx, events).await?;
        return Err(OpError::Conflict(why));
    }
    let waiter = db::enqueue(&tx, mesh_id, &grant, Duration::from_millis(req.wait_ms), &coord.node_id).await?;
    finish(coord, mesh_id, tx, events).await?;
    drop(client);
    let guard = WaiterGuard { pool: coord.pool.clone(), waiter: Some(waiter) };
    wait_in_queue(coord, who, waiter, req, alive, guard).await
}

/// Removes a queue entry on every exit of its wait that did not remove it already (an error,
/// a dropped request), retrying until the database takes it: a waiter row left behind would
/// block everyone queued after it.
struct WaiterGuard {
    pool: deadpool_postgres::Pool,
    waiter: Option<i64>,
}

impl WaiterGuard {
    fn disarm(&mut self) {
        self.waiter = None;
    }
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else { return };
        let pool = self.pool.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let removed = match pool.get().await {
                    Ok(client) => db::remove_waiter(&client, waiter).await.map(|_| ()),
                    Err(e) => Err(StoreError::from(e)),
                };
                match removed {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(waiter, error = %e, "could not remove an abandoned lock waiter; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

/// What a waiter found when it looked at the front of the queue.
enum Turn {
    /// It took the lock.
    Taken(LockInfo),
    /// Something ahead still conflicts.
    Blocked,
    /// Its queue entry is gone (replaced by a retry of the same session, or removed because
    /// its wait ran out or its node was declared dead).
    Gone,
}

async fn wait_in_queue(
    coord: &Coord,
    who: &Sender,
    waiter: i64,
    req: &LockAcquire,
    alive: impl Fn() -> bool,
    mut guard: WaiterGuard,
) -> Result<LockInfo, OpError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(req.wait_ms);
    let poll = Duration::from_millis(coord.cfg.lock_wait_poll_ms.max(10));
    loop {
        let wake = coord.lock_wake.notified();
        match take_turn(coord, who, waiter, req).await? {
            Turn::Taken(lock) => {
                guard.disarm();
                crate::metrics::lock_wait_seconds().observe(started.elapsed().as_secs_f64());
                return Ok(lock);
            }
            Turn::Gone => {
                guard.disarm();
                let why = if Instant::now() >= deadline {
                    "the wait ran out"
                } else {
                    "its place was taken by a newer request of this session, or its node was declared dead"
                };
                return Err(OpError::Conflict(format!("the queued acquire of {} left the queue: {why}", req.pattern)));
            }
            Turn::Blocked => {}
        }
        let gone = !alive();
        if gone || Instant::now() >= deadline {
            let result = give_up(coord, who, waiter, req, gone).await;
            guard.disarm();
            return result;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(poll.min(left), wake).await;
    }
}

/// Take the lock if this waiter is at the front for it. A cheap unserialized look first: only
/// a waiter that may be first runs the serialized transaction.
async fn take_turn(coord: &Coord, who: &Sender, waiter: i64, req: &LockAcquire) -> Result<Turn, OpError> {
    let mesh_id = who.mesh_id;
    let me = (req.pattern.as_str(), req.mode, who.session_id);
    {
        let client = coord.pool.get().await.map_err(StoreError::from)?;
        let now = store::now_ms();
        let (held, queue) = futures_util::try_join!(db::held(&client, mesh_id), db::waiting(&client, mesh_id))?;
        let held: Vec<LockRow> = held.into_iter().filter(|l| l.expires_at_ms > now).collect();
        let Some(pos) = queue.iter().position(|w| w.id == waiter) else { return Ok(Turn::Gone) };
        if blocker(me, &held, &queue[..pos]).is_some() {
            return Ok(Turn::Blocked);
        }
    }
    let mut client = coord.pool.get().await.map_err(StoreError::from)?;
    let Locked { tx, held, queue, mut events } = begin(coord, &mut client, mesh_id).await?;
    let Some(pos) = queue.iter().position(|w| w.id == waiter) else {
        finish(coord, mesh_id, tx, events).await?;
        return Ok(Turn::Gone);
    };
    if blocker(me, &held, &queue[..pos]).is_some() {
        finish(coord, mesh_id, tx, events).await?;
        return Ok(Turn::Blocked);
    }
    db::remove_waiter(&tx, waiter).await?;
    let w = &queue[pos];
    let grant = Grant {
        pattern: &w.pattern,
        mode: w.mode,
        member_id: w.member_id,
        session_id: w.session_id,
        holder_name: &w.holder_name,
        reason: w.reason.as_deref(),
        ttl_ms: w.ttl_ms,
    };
    let lock = db::insert(&tx, mesh_id, &grant).await?;
    let summary = format!("{} locked {} ({}) after waiting", lock.holder_name, lock.pattern, lock.mode.as_str());
    events.push(lock_event(&tx, who, Target::All, Priority::Low, "acquired", summary, &lock).await?);
    finish(coord, mesh_id, tx, events).await?;
    Ok(Turn::Taken(lock))
}

/// Leave the queue, naming what blocks the lock now (not what blocked it when the wait began).
async fn give_up(
    coord: &Coord,
    who: &Sender,
    waiter: i64,
    req: &LockAcquire,
    client_gone: bool,
) -> Result<LockInfo, OpError> {
    let mesh_id = who.mesh_id;
    let mut client = coord.pool.get().await.map_err(StoreError::from)?;
    let Locked { tx, held, queue, events } = begin(coord, &mut client, mesh_id).await?;
    let ahead: Vec<WaiterRow> = queue.iter().take_while(|w| w.id != waiter).cloned().collect();
    db::remove_waiter(&tx, waiter).await?;
    finish(coord, mesh_id, tx, events).await?;
    // Whoever queued behind this waiter may go now, on any node.
    wake_waiters(coord);
    if client_gone {
        return Err(OpError::Conflict("the requesting connection closed".into()));
    }
    let me = (req.pattern.as_str(), req.mode, who.session_id);
    let why = blocker(me, &held, &ahead).unwrap_or_else(|| format!("{} was about to be free", req.pattern));
    let waited = Duration::from_millis(req.wait_ms).as_secs();
    Err(OpError::Conflict(format!("gave up after waiting {waited}s: {why}")))
}

/// Extend a lock the caller's member holds.
pub async fn renew(coord: &Coord, a: &Caller, req: LockRenew) -> Result<LockInfo, OpError> {
    let who = &a.sender();
    let mut client = coord.pool.get().await.map_err(StoreError::from)?;
    let Locked { tx, held, events, .. } = begin(coord, &mut client, who.mesh_id).await?;
    let Some(lock) = held.iter().find(|l| l.token == req.token) else {
        finish(coord, who.mesh_id, tx, events).await?;
        return Err(OpError::Conflict(format!("lock {} has expired or was released; acquire it again", req.token)));
    };
    if lock.holder_member != who.member_id {
        return Err(OpError::Forbidden("only the holder may renew a lock"));
    }
    let lock = db::renew(&tx, who.mesh_id, req.token, req.ttl_ms).await?;
    finish(coord, who.mesh_id, tx, events).await?;
    Ok(lock)
}

/// Release a lock the caller's member holds, or force-release anyone's as an admin (the holder
/// is told, at priority `now`).
pub async fn release(coord: &Coord, a: &Caller, req: LockRelease) -> Result<Done, OpError> {
    let (who, role) = (&a.sender(), a.role);
    let mesh_id = who.mesh_id;
    let mut client = coord.pool.get().await.map_err(StoreError::from)?;
    let Locked { tx, held, mut events, .. } = begin(coord, &mut client, mesh_id).await?;
    let Some(lock) = held.iter().find(|l| l.token == req.token).cloned() else {
        finish(coord, mesh_id, tx, events).await?;
        return Err(OpError::NotFound("lock (it may have expired)"));
    };
    let own = lock.holder_member == who.member_id;
    if req.force {
        if role < Role::Admin {
            return Err(OpError::Forbidden("force-release needs the admin or owner role"));
        }
    } else if !own {
        return Err(OpError::Forbidden("held by another member; an admin may force-release it"));
    }
    db::remove(&tx, mesh_id, lock.token).await?;
    let summary = format!("{} released {}'s lock on {}", who.name, lock.holder_name, lock.pattern);
    events.push(lock_event(&tx, who, Target::All, Priority::Low, "released", summary, &lock).await?);
    if req.force && !own {
        let reason = req.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let summary =
            format!("{} force-released your lock on {} (token {}){reason}", who.name, lock.pattern, lock.token);
        let to = Target::Session(lock.holder_session);
        events.push(lock_event(&tx, who, to, Priority::Now, "force_released", summary, &lock).await?);
        let detail = serde_json::json!({
            "token": lock.token, "holder": lock.holder_name, "holder_member": lock.holder_member, "reason": req.reason,
        });
        let actor = store::audit::Actor { member: Some(who.member_id), name: &who.name };
        store::audit::append(&tx, mesh_id, actor, "lock.force_released", &lock.pattern, detail).await?;
    }
    finish(coord, mesh_id, tx, events).await?;
    Ok(Done {})
}

/// Held locks and the queue.
pub async fn list(coord: &Coord, a: &Caller, _: LockList) -> Result<Locks, OpError> {
    let mesh_id = a.mesh_id;
    let client = coord.pool.get().await.map_err(StoreError::from)?;
    let now = store::now_ms();
    let locks = db::held(&client, mesh_id).await?.into_iter().filter(|l| l.expires_at_ms > now).collect();
    let waiters = db::waiting(&client, mesh_id).await?.iter().map(WaiterRow::info).collect();
    Ok(Locks { locks, waiters })
}

/// One sweep: drop the queue entries of dead nodes, expire locks and queue entries on every
/// mesh that has some due, and wake this node's waiters. Runs on every node; the per-mesh
/// mutex makes concurrent sweeps safe.
pub async fn sweep(coord: &Coord) -> Result<(), OpError> {
    // Unknown liveness (Redis unreachable) removes nobody.
    if let Some(live) = coord.liveness.live_node_ids().await {
        let meshes = db::remove_waiters_of_dead_nodes(&coord.pool, &live).await?;
        if !meshes.is_empty() {
            tracing::info!(meshes = meshes.len(), "removed lock waiters of dead nodes");
            wake_waiters(coord);
        }
    }
    let grace = Duration::from_secs(coord.cfg.lock_grace_secs);
    for mesh_id in db::meshes_due(&coord.pool, grace).await? {
        let mut client = coord.pool.get().await.map_err(StoreError::from)?;
        let Locked { tx, events, .. } = begin(coord, &mut client, mesh_id).await?;
        finish(coord, mesh_id, tx, events).await?;
    }
    Ok(())
}

/// Run [`sweep`] forever at the configured interval.
pub fn spawn_sweeper(coord: Arc<Coord>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(coord.cfg.lock_sweep_interval_ms.max(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&coord).await {
                tracing::warn!(error = %e, "lock sweep failed");
            }
        }
    });
}

/// A session's presence ended: its locks go after the grace unless it returns.
pub async fn session_ended(coord: &Coord, mesh_id: Uuid, session_id: Uuid) {
    if let Err(e) = db::orphan_session(&coord.pool, mesh_id, session_id).await {
        tracing::warn!(%session_id, error = %e, "could not start the lock grace of an ended session");
    }
}

/// A session is present (again): locks it still holds are kept.
pub async fn session_started(coord: &Coord, mesh_id: Uuid, session_id: Uuid) {
    if let Err(e) = db::adopt_session(&coord.pool, mesh_id, session_id).await {
        tracing::warn!(%session_id, error = %e, "could not re-adopt a session's locks");
    }
}
