//! Locks on paths and globs, cluster-wide. The table lives in Postgres and every change to one
//! mesh's locks runs under that mesh's advisory lock, so the overlap check and the grant are
//! one atomic step on every node. Fencing tokens come from a per-mesh counter in the same
//! transaction, so they strictly increase. Queued acquires are served first come, first
//! served: a waiter is granted only when it conflicts with no held lock and with no earlier
//! waiter. Whoever frees something (release, expiry sweep, a waiter giving up) runs the queue
//! in the same transaction; the waiting request only picks its grant up (at once on this
//! node, within `lock_wait_poll_ms` from another).
//!
//! Why not Redis: locks must survive a Redis restart (two holders after a flush is the one
//! thing a lock may never do), and a glob overlap check needs the whole held set atomically,
//! which a single-key `SET NX PX` cannot give. The Redis primitive leases reminder ownership.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use plexus_proto::{
    coord::{Change, CoordEvent, LockAcquire, LockInfo, LockMode, LockRelease, LockRenew, Locks},
    push::Message,
    types::{Priority, Role, Target},
};
use uuid::Uuid;

use super::{
    events::{self, Sender},
    glob::overlap,
};
use crate::{
    app::Broker,
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

/// Begin a transaction holding the mesh's lock-table mutex, with expired locks and overdue
/// waiters already removed and the queue re-run; returns the held set and the events so far.
async fn begin<'a>(
    broker: &Broker,
    client: &'a mut deadpool_postgres::Object,
    mesh_id: Uuid,
) -> Result<(Tx<'a>, Vec<LockRow>, Vec<Arc<Message>>), OpError> {
    let tx = client.transaction().await.map_err(StoreError::from)?;
    db::serialize_mesh(&tx, mesh_id).await?;
    let grace = Duration::from_secs(broker.cfg.coordination.lock_grace_secs);
    let mut events = Vec::new();
    let expired = db::remove_expired(&tx, mesh_id, grace).await?;
    for l in &expired {
        let summary = format!("{}'s lock on {} expired", l.holder_name, l.pattern);
        let from = holder_sender(mesh_id, l);
        events.push(lock_event(&tx, &from, Target::All, Priority::Low, "expired", summary, l).await?);
    }
    let overdue = db::remove_overdue_waiters(&tx, mesh_id).await?;
    let mut held = db::held(&tx, mesh_id).await?;
    if !expired.is_empty() || overdue > 0 {
        events.extend(run_queue(&tx, mesh_id, &mut held).await?);
    }
    Ok((tx, held, events))
}

/// Grant every queued acquire that conflicts with no held lock and no earlier waiter.
async fn run_queue(tx: &Tx<'_>, mesh_id: Uuid, held: &mut Vec<LockRow>) -> Result<Vec<Arc<Message>>, OpError> {
    let queue = db::waiting(tx, mesh_id).await?;
    let mut ahead: Vec<&WaiterRow> = Vec::new();
    let mut events = Vec::new();
    for w in &queue {
        let blocked = held.iter().any(|h| conflicts(waiter_key(w), held_key(h)))
            || ahead.iter().any(|a| conflicts(waiter_key(w), waiter_key(a)));
        if blocked {
            ahead.push(w);
            continue;
        }
        let grant = Grant {
            pattern: &w.pattern,
            mode: w.mode,
            member_id: w.member_id,
            session_id: w.session_id,
            holder_name: &w.holder_name,
            reason: w.reason.as_deref(),
            ttl_ms: w.ttl_ms,
        };
        let lock = db::insert(tx, mesh_id, &grant).await?;
        db::mark_granted(tx, w.id, lock.token).await?;
        let from = holder_sender(mesh_id, &lock);
        let summary = format!("{} locked {} ({}) after waiting", lock.holder_name, lock.pattern, lock.mode.as_str());
        events.push(lock_event(tx, &from, Target::All, Priority::Low, "acquired", summary, &lock).await?);
        held.push(lock);
    }
    Ok(events)
}

async fn finish(broker: &Broker, mesh_id: Uuid, tx: Tx<'_>, events: Vec<Arc<Message>>) -> Result<(), OpError> {
    let changed = !events.is_empty();
    events::commit(broker, mesh_id, tx, events).await?;
    if changed {
        broker.lock_wake.notify_waiters();
    }
    Ok(())
}

/// Acquire, waiting in the queue up to `wait_ms`. `alive` tells whether the asking connection
/// is still there (a waiter whose client left gives its place, or its grant, back).
pub async fn acquire(
    broker: &Broker,
    who: &Sender,
    req: &LockAcquire,
    alive: impl Fn() -> bool,
) -> Result<LockInfo, OpError> {
    let mesh_id = who.mesh_id;
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let (tx, held, mut events) = begin(broker, &mut client, mesh_id).await?;
    let me = (req.pattern.as_str(), req.mode, who.session_id);

    // The same session asking again for what it holds is a renew, not a second lock.
    if let Some(mine) =
        held.iter().find(|l| l.holder_session == who.session_id && l.pattern == req.pattern && l.mode == req.mode)
    {
        let lock = db::renew(&tx, mesh_id, mine.token, req.ttl_ms).await?;
        finish(broker, mesh_id, tx, events).await?;
        return Ok(lock);
    }
    let blocker = held.iter().find(|h| conflicts(me, held_key(h))).cloned();
    let queue = db::waiting(&tx, mesh_id).await?;
    let queued_ahead = queue.iter().any(|w| conflicts(me, waiter_key(w)));
    let grant = Grant {
        pattern: &req.pattern,
        mode: req.mode,
        member_id: who.member_id,
        session_id: who.session_id,
        holder_name: &who.name,
        reason: req.reason.as_deref(),
        ttl_ms: req.ttl_ms as i64,
    };
    if blocker.is_none() && !queued_ahead {
        let lock = db::insert(&tx, mesh_id, &grant).await?;
        let summary = format!("{} locked {} ({})", who.name, lock.pattern, lock.mode.as_str());
        events.push(lock_event(&tx, who, Target::All, Priority::Low, "acquired", summary, &lock).await?);
        finish(broker, mesh_id, tx, events).await?;
        crate::metrics::lock_wait_seconds().observe(0.0);
        return Ok(lock);
    }
    let why = match &blocker {
        Some(l) => describe(l),
        None => format!("earlier requests for {} are queued", req.pattern),
    };
    if req.wait_ms == 0 {
        finish(broker, mesh_id, tx, events).await?;
        return Err(OpError::Conflict(why));
    }
    let waiter = db::enqueue(&tx, mesh_id, &grant, Duration::from_millis(req.wait_ms)).await?;
    finish(broker, mesh_id, tx, events).await?;
    drop(client);
    wait_for_grant(broker, mesh_id, waiter, req, why, alive).await
}

async fn wait_for_grant(
    broker: &Broker,
    mesh_id: Uuid,
    waiter: i64,
    req: &LockAcquire,
    why: String,
    alive: impl Fn() -> bool,
) -> Result<LockInfo, OpError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(req.wait_ms);
    let poll = Duration::from_millis(broker.cfg.coordination.lock_wait_poll_ms.max(10));
    loop {
        let wake = broker.lock_wake.notified();
        if let Some(token) = db::granted_token(&broker.pool, waiter).await? {
            let mut client = broker.pool.get().await.map_err(StoreError::from)?;
            let tx = client.transaction().await.map_err(StoreError::from)?;
            db::take_waiter(&tx, waiter).await?;
            let lock = db::get(&tx, mesh_id, token).await?;
            tx.commit().await.map_err(StoreError::from)?;
            crate::metrics::lock_wait_seconds().observe(started.elapsed().as_secs_f64());
            // Granted and already expired (a waiter that slept through its whole TTL) is a miss.
            return lock
                .ok_or_else(|| OpError::Conflict(format!("the grant for {} expired before pickup", req.pattern)));
        }
        let gone = !alive();
        if gone || Instant::now() >= deadline {
            return give_up(broker, mesh_id, waiter, req, why, gone).await;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(poll.min(left), wake).await;
    }
}

/// Leave the queue. A grant that raced in is returned (or, when the client left, released).
async fn give_up(
    broker: &Broker,
    mesh_id: Uuid,
    waiter: i64,
    req: &LockAcquire,
    why: String,
    client_gone: bool,
) -> Result<LockInfo, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let (tx, mut held, mut events) = begin(broker, &mut client, mesh_id).await?;
    let granted = db::take_waiter(&tx, waiter).await?;
    if let Some(token) = granted {
        if !client_gone {
            let lock = db::get(&tx, mesh_id, token).await?;
            finish(broker, mesh_id, tx, events).await?;
            return lock
                .ok_or_else(|| OpError::Conflict(format!("the grant for {} expired before pickup", req.pattern)));
        }
        db::remove(&tx, mesh_id, token).await?;
        held.retain(|l| l.token != token);
    }
    // Our place in the queue may have held others back.
    events.extend(run_queue(&tx, mesh_id, &mut held).await?);
    finish(broker, mesh_id, tx, events).await?;
    let waited = Duration::from_millis(req.wait_ms).as_secs();
    Err(OpError::Conflict(format!("gave up after waiting {waited}s: {why}")))
}

/// Extend a lock the caller's member holds.
pub async fn renew(broker: &Broker, who: &Sender, req: &LockRenew) -> Result<LockInfo, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let (tx, held, events) = begin(broker, &mut client, who.mesh_id).await?;
    let Some(lock) = held.iter().find(|l| l.token == req.token) else {
        finish(broker, who.mesh_id, tx, events).await?;
        return Err(OpError::Conflict(format!("lock {} has expired or was released; acquire it again", req.token)));
    };
    if lock.holder_member != who.member_id {
        return Err(OpError::Forbidden("only the holder may renew a lock"));
    }
    let lock = db::renew(&tx, who.mesh_id, req.token, req.ttl_ms).await?;
    finish(broker, who.mesh_id, tx, events).await?;
    Ok(lock)
}

/// Release a lock the caller's member holds, or force-release anyone's as an admin (the holder
/// is told, at priority `now`).
pub async fn release(broker: &Broker, who: &Sender, role: Role, req: &LockRelease) -> Result<(), OpError> {
    let mesh_id = who.mesh_id;
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let (tx, mut held, mut events) = begin(broker, &mut client, mesh_id).await?;
    let Some(lock) = held.iter().find(|l| l.token == req.token).cloned() else {
        finish(broker, mesh_id, tx, events).await?;
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
    held.retain(|l| l.token != lock.token);
    let summary = format!("{} released {}'s lock on {}", who.name, lock.holder_name, lock.pattern);
    events.push(lock_event(&tx, who, Target::All, Priority::Low, "released", summary, &lock).await?);
    if req.force && !own {
        let reason = req.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let summary =
            format!("{} force-released your lock on {} (token {}){reason}", who.name, lock.pattern, lock.token);
        let to = Target::Session(lock.holder_session);
        events.push(lock_event(&tx, who, to, Priority::Now, "force_released", summary, &lock).await?);
    }
    events.extend(run_queue(&tx, mesh_id, &mut held).await?);
    finish(broker, mesh_id, tx, events).await
}

/// Held locks and the queue.
pub async fn list(broker: &Broker, mesh_id: Uuid) -> Result<Locks, OpError> {
    let client = broker.pool.get().await.map_err(StoreError::from)?;
    let now = store::now_ms();
    let locks = db::held(&client, mesh_id).await?.into_iter().filter(|l| l.expires_at_ms > now).collect();
    let waiters = db::waiting(&client, mesh_id).await?.iter().map(WaiterRow::info).collect();
    Ok(Locks { locks, waiters })
}

/// One sweep: expire locks and queue entries on every mesh that has some due, and serve the
/// queues they held back. Runs on every node; the per-mesh mutex makes concurrent sweeps safe.
pub async fn sweep(broker: &Broker) -> Result<(), OpError> {
    let grace = Duration::from_secs(broker.cfg.coordination.lock_grace_secs);
    for mesh_id in db::meshes_due(&broker.pool, grace).await? {
        let mut client = broker.pool.get().await.map_err(StoreError::from)?;
        let (tx, _, events) = begin(broker, &mut client, mesh_id).await?;
        finish(broker, mesh_id, tx, events).await?;
    }
    Ok(())
}

/// Run [`sweep`] forever at the configured interval.
pub fn spawn_sweeper(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_millis(broker.cfg.coordination.lock_sweep_interval_ms.max(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&broker).await {
                tracing::warn!(error = %e, "lock sweep failed");
            }
        }
    });
}

/// A session's presence ended: its locks go after the grace unless it returns.
pub async fn session_ended(broker: &Broker, mesh_id: Uuid, session_id: Uuid) {
    if let Err(e) = db::orphan_session(&broker.pool, mesh_id, session_id).await {
        tracing::warn!(%session_id, error = %e, "could not start the lock grace of an ended session");
    }
}

/// A session is present (again): locks it still holds are kept.
pub async fn session_started(broker: &Broker, mesh_id: Uuid, session_id: Uuid) {
    if let Err(e) = db::adopt_session(&broker.pool, mesh_id, session_id).await {
        tracing::warn!(%session_id, error = %e, "could not re-adopt a session's locks");
    }
}
