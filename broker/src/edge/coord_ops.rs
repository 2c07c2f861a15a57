//! Handlers of the coordination ops (state, tasks, threads, memory, search). Every change runs
//! in one transaction that also appends its event to the mesh log, and the event is published
//! only after commit — so a change is never visible without its event, nor the reverse.

use std::sync::Arc;

use plexus_proto::{
    coord::{self as c, Change, CoordEvent},
    ops::{Done, Op},
    push::Message,
    types::{Priority, Role, Target},
    Request,
};
use uuid::Uuid;

use super::dispatch::{body, respond, Authed};
use crate::{
    actors::ConnHandle,
    app::Broker,
    coord::{
        events::{self, Sender},
        locks, reminders, task_step, task_verb, waiting_after_reply, Actor,
    },
    error::OpError,
    store::{self, coord as db, meshes, reminders::ReminderRow},
};

/// Run a coordination op, if `op` is one.
pub async fn handle(broker: &Broker, conn: &ConnHandle, a: &Authed, op: &'static str, req: &Request) -> bool {
    match op {
        c::StateGet::NAME => respond(conn, req.id, op, state_get(broker, a, req).await),
        c::StateSet::NAME => respond(conn, req.id, op, state_set(broker, a, req).await),
        c::StateDelete::NAME => respond(conn, req.id, op, state_delete(broker, a, req).await),
        c::StateList::NAME => respond(conn, req.id, op, state_list(broker, a, req).await),
        c::TaskCreate::NAME => respond(conn, req.id, op, task_create(broker, a, req).await),
        c::TaskGet::NAME => respond(conn, req.id, op, task_get(broker, a, req).await),
        c::TaskList::NAME => respond(conn, req.id, op, task_list(broker, a, req).await),
        c::TaskUpdate::NAME => respond(conn, req.id, op, task_update(broker, a, req).await),
        c::ThreadOpen::NAME => respond(conn, req.id, op, thread_open(broker, a, req).await),
        c::ThreadReply::NAME => respond(conn, req.id, op, thread_reply(broker, a, req).await),
        c::ThreadResolve::NAME => respond(conn, req.id, op, thread_resolve(broker, a, req).await),
        c::ThreadGet::NAME => respond(conn, req.id, op, thread_get(broker, a, req).await),
        c::ThreadList::NAME => respond(conn, req.id, op, thread_list(broker, a, req).await),
        c::Remember::NAME => respond(conn, req.id, op, remember(broker, a, req).await),
        c::Recall::NAME => respond(conn, req.id, op, recall(broker, a, req).await),
        c::Forget::NAME => respond(conn, req.id, op, forget(broker, a, req).await),
        c::Search::NAME => respond(conn, req.id, op, search(broker, a, req).await),
        c::LockAcquire::NAME => {
            let result = match body::<c::LockAcquire>(req) {
                Ok(b) => locks::acquire(broker, &sender(a), &b, || !conn.frames.is_closed()).await,
                Err(e) => Err(e),
            };
            respond(conn, req.id, op, result);
        }
        c::LockRenew::NAME => {
            let result = match body::<c::LockRenew>(req) {
                Ok(b) => locks::renew(broker, &sender(a), &b).await,
                Err(e) => Err(e),
            };
            respond(conn, req.id, op, result);
        }
        c::LockRelease::NAME => {
            let result = match body::<c::LockRelease>(req) {
                Ok(b) => locks::release(broker, &sender(a), a.role, &b).await.map(|()| Done {}),
                Err(e) => Err(e),
            };
            respond(conn, req.id, op, result);
        }
        c::RemindCreate::NAME => respond(conn, req.id, op, remind_create(broker, a, req).await),
        c::RemindList::NAME => respond(conn, req.id, op, remind_list(broker, a, req).await),
        c::RemindCancel::NAME => respond(conn, req.id, op, remind_cancel(broker, a, req).await),
        c::LockList::NAME => {
            let result = match body::<c::LockList>(req) {
                Ok(_) => locks::list(broker, a.mesh_id).await,
                Err(e) => Err(e),
            };
            respond(conn, req.id, op, result);
        }
        _ => return false,
    }
    true
}

fn actor(a: &Authed) -> Actor<'_> {
    Actor { member: a.member_id, name: &a.display_name, role: a.role }
}

fn sender(a: &Authed) -> Sender {
    Sender {
        mesh_id: a.mesh_id,
        member_id: a.member_id,
        session_id: a.session_id,
        name: a.display_name.clone(),
        session_pubkey: a.session_pubkey.clone(),
        member_pubkey: a.member_pubkey.clone(),
    }
}

/// Append the change's event in `tx`, broadcast to the mesh at `priority`.
async fn emit(
    tx: &deadpool_postgres::Transaction<'_>,
    a: &Authed,
    subtype: &str,
    priority: Priority,
    event: &CoordEvent,
) -> Result<Arc<Message>, OpError> {
    events::append(tx, &sender(a), Target::All, subtype, priority, event).await
}

async fn commit(
    broker: &Broker,
    mesh_id: Uuid,
    tx: deadpool_postgres::Transaction<'_>,
    msg: Arc<Message>,
) -> Result<(), OpError> {
    events::commit(broker, mesh_id, tx, vec![msg]).await
}

async fn member_name(broker: &Broker, mesh_id: Uuid, member: Uuid) -> Result<String, OpError> {
    match meshes::member(&broker.pool, mesh_id, member).await? {
        Some(m) if !m.removed => Ok(m.display_name),
        _ => Err(OpError::NotFound("member")),
    }
}

// ---------------------------------------------------------------------------------------------
// State

async fn state_get(broker: &Broker, a: &Authed, req: &Request) -> Result<c::StateValue, OpError> {
    let b: c::StateGet = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::StateValue { entry: db::state_get(&client, a.mesh_id, &b.key).await? })
}

fn version_conflict(key: &str, expected: u64, found: Option<u64>) -> OpError {
    match found {
        Some(v) => OpError::Conflict(format!("state {key} is at version {v}, not {expected}")),
        None => OpError::Conflict(format!("state {key} does not exist (expected version {expected})")),
    }
}

async fn state_set(broker: &Broker, a: &Authed, req: &Request) -> Result<c::StateEntry, OpError> {
    let b: c::StateSet = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::state_lock(&tx, a.mesh_id, &b.key).await?;
    let entry = match (&current, b.expect_version) {
        (Some(cur), Some(want)) if cur.version != want => {
            return Err(version_conflict(&b.key, want, Some(cur.version)))
        }
        (None, Some(want)) if want != 0 => return Err(version_conflict(&b.key, want, None)),
        (Some(_), _) => db::state_update(&tx, a.mesh_id, &b.key, &b.value, a.member_id, &a.display_name).await?,
        (None, _) => match db::state_insert(&tx, a.mesh_id, &b.key, &b.value, a.member_id, &a.display_name).await? {
            Some(e) => e,
            // Inserted by someone else since our read: a CAS loses; a plain set retries.
            None if b.expect_version.is_some() => return Err(version_conflict(&b.key, 0, Some(1))),
            None => return Err(OpError::Conflict(format!("state {} was created concurrently; retry", b.key))),
        },
    };
    let event = CoordEvent {
        summary: format!("{} set {} (v{})", a.display_name, entry.key, entry.version),
        change: Change::State { key: entry.key.clone(), entry: Some(entry.clone()) },
    };
    let msg = emit(&tx, a, "state.set", Priority::Next, &event).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(entry)
}

async fn state_delete(broker: &Broker, a: &Authed, req: &Request) -> Result<Done, OpError> {
    let b: c::StateDelete = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
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
        summary: format!("{} deleted {}", a.display_name, b.key),
        change: Change::State { key: b.key.clone(), entry: None },
    };
    let msg = emit(&tx, a, "state.delete", Priority::Next, &event).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(Done {})
}

async fn state_list(broker: &Broker, a: &Authed, req: &Request) -> Result<c::StateEntries, OpError> {
    let b: c::StateList = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let mut entries = db::state_list(&client, a.mesh_id, &b.prefix, b.limit).await?;
    let more = entries.len() > b.limit as usize;
    entries.truncate(b.limit as usize);
    Ok(c::StateEntries { entries, more })
}

// ---------------------------------------------------------------------------------------------
// Tasks

fn task_event(a: &Authed, action: &str, verb: &str, task: &c::Task) -> CoordEvent {
    let mut summary = format!("{} {verb} task #{}: {}", a.display_name, task.number, task.title);
    if let (c::TaskStatus::Todo | c::TaskStatus::InProgress, Some(who)) = (task.status, &task.assignee_name) {
        if action == "assign" || action == "created" {
            summary.push_str(&format!(" (assigned to {who})"));
        }
    }
    CoordEvent { summary, change: Change::Task { action: action.to_owned(), task: task.clone() } }
}

async fn task_create(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Task, OpError> {
    let b: c::TaskCreate = body(req)?;
    let assignee = match b.assignee {
        Some(m) => Some((m, member_name(broker, a.mesh_id, m).await?)),
        None => None,
    };
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let mut deps = b.depends_on.clone();
    deps.sort_unstable();
    deps.dedup();
    if !deps.is_empty() {
        let (found, _) = db::tasks_open_among(&tx, a.mesh_id, &deps).await?;
        if found != deps.len() {
            return Err(OpError::NotFound("dependency task"));
        }
    }
    let new = db::NewTask {
        title: b.title.trim(),
        description: &b.description,
        complexity: b.complexity,
        files: &b.files,
        tags: &b.tags,
        depends_on: &deps,
        owner: (a.member_id, &a.display_name),
        assignee,
    };
    let task = db::task_insert(&tx, a.mesh_id, &new).await?;
    let msg = emit(&tx, a, "task.created", Priority::Next, &task_event(a, "created", "created", &task)).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(task)
}

async fn task_get(broker: &Broker, a: &Authed, req: &Request) -> Result<c::TaskDetail, OpError> {
    let b: c::TaskGet = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let (task, history) = db::task_get(&client, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("task"))?;
    Ok(c::TaskDetail { task, history })
}

async fn task_list(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Tasks, OpError> {
    let b: c::TaskList = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let mut tasks = db::task_list(&client, a.mesh_id, &b).await?;
    let more = tasks.len() > b.limit as usize;
    tasks.truncate(b.limit as usize);
    Ok(c::Tasks { tasks, more })
}

async fn task_update(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Task, OpError> {
    let b: c::TaskUpdate = body(req)?;
    let assignee = match b.assignee {
        Some(m) => Some((m, member_name(broker, a.mesh_id, m).await?)),
        None => None,
    };
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    // The row lock makes concurrent steps on one task (50 claims at once) take turns: the
    // first wins, the rest see its result and are refused.
    let current = db::task_lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("task"))?;
    let next = task_step(&current, b.action, actor(a), b.note.as_deref(), assignee)?;
    if b.action == c::TaskAction::Claim && !current.depends_on.is_empty() {
        let (_, open) = db::tasks_open_among(&tx, a.mesh_id, &current.depends_on).await?;
        if !open.is_empty() {
            let list: Vec<String> = open.iter().map(|n| format!("#{n}")).collect();
            return Err(OpError::Conflict(format!(
                "task #{} depends on {} which is not done",
                current.number,
                list.join(", ")
            )));
        }
    }
    let task = db::task_save(&tx, a.mesh_id, &next).await?;
    db::task_history_add(
        &tx,
        a.mesh_id,
        task.number,
        (a.member_id, &a.display_name),
        b.action.as_str(),
        Some(current.status),
        task.status,
        b.note.as_deref(),
    )
    .await?;
    let event = task_event(a, b.action.as_str(), task_verb(b.action), &task);
    let subtype = format!("task.{}", b.action.as_str());
    let msg = emit(&tx, a, &subtype, Priority::Next, &event).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(task)
}

// ---------------------------------------------------------------------------------------------
// Threads

async fn check_members(broker: &Broker, mesh_id: Uuid, members: &[Uuid]) -> Result<(), OpError> {
    for m in members {
        member_name(broker, mesh_id, *m).await?;
    }
    Ok(())
}

fn thread_event(action: &str, summary: String, thread: &c::Thread, post: Option<c::ThreadPost>) -> CoordEvent {
    CoordEvent { summary, change: Change::Thread { action: action.to_owned(), thread: thread.clone(), post } }
}

fn excerpt(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

async fn thread_open(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Thread, OpError> {
    let b: c::ThreadOpen = body(req)?;
    let waiting = waiting_after_reply(&[], a.member_id, Some(&b.waiting_on), None);
    check_members(broker, a.mesh_id, &waiting).await?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let (thread, post) = db::thread_insert(
        &tx,
        a.mesh_id,
        b.topic.trim(),
        b.priority,
        (a.member_id, &a.display_name),
        &waiting,
        &b.body,
    )
    .await?;
    let summary =
        format!("{} opened thread #{}: {} — {}", a.display_name, thread.number, thread.topic, excerpt(&b.body));
    let msg = emit(&tx, a, "thread.opened", b.priority, &thread_event("opened", summary, &thread, Some(post))).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

async fn thread_reply(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Thread, OpError> {
    let b: c::ThreadReply = body(req)?;
    if let Some(w) = &b.waiting_on {
        check_members(broker, a.mesh_id, w).await?;
    }
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let current = db::thread_lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("thread"))?;
    if current.resolved {
        return Err(OpError::Conflict(format!("thread #{} is resolved", current.number)));
    }
    let previous = db::thread_previous_poster(&tx, a.mesh_id, b.number, a.member_id).await?;
    let post = db::thread_post_add(&tx, a.mesh_id, b.number, (a.member_id, &a.display_name), &b.body).await?;
    let waiting = waiting_after_reply(&current.waiting_on, a.member_id, b.waiting_on.as_deref(), previous);
    let thread = db::thread_save(&tx, a.mesh_id, b.number, &waiting, false).await?;
    let summary =
        format!("{} replied in thread #{} ({}): {}", a.display_name, thread.number, thread.topic, excerpt(&b.body));
    let msg =
        emit(&tx, a, "thread.replied", thread.priority, &thread_event("replied", summary, &thread, Some(post))).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

async fn thread_resolve(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Thread, OpError> {
    let b: c::ThreadResolve = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
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
    let summary = format!("{} resolved thread #{}: {}", a.display_name, thread.number, thread.topic);
    let msg =
        emit(&tx, a, "thread.resolved", Priority::Next, &thread_event("resolved", summary, &thread, None)).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(thread)
}

async fn thread_get(broker: &Broker, a: &Authed, req: &Request) -> Result<c::ThreadDetail, OpError> {
    let b: c::ThreadGet = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let (thread, posts) = db::thread_get(&client, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("thread"))?;
    Ok(c::ThreadDetail { thread, posts })
}

async fn thread_list(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Threads, OpError> {
    let b: c::ThreadList = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let waiting = b.waiting_on_me.then_some(a.member_id);
    let mut threads = db::thread_list(&client, a.mesh_id, waiting, b.include_resolved, b.limit).await?;
    let more = threads.len() > b.limit as usize;
    threads.truncate(b.limit as usize);
    Ok(c::Threads { threads, more })
}

// ---------------------------------------------------------------------------------------------
// Reminders

async fn remind_create(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Reminder, OpError> {
    let b: c::RemindCreate = body(req)?;
    let now = std::time::SystemTime::now();
    let (first, repeating) = reminders::first_fire(&b.schedule, now)?;
    if let Target::Member(m) = b.target {
        member_name(broker, a.mesh_id, m).await?;
    }
    let (cron, tz) = match repeating {
        Some((expr, tz)) => (Some(expr), Some(tz)),
        None => (None, None),
    };
    let row = ReminderRow {
        mesh_id: a.mesh_id,
        id: Uuid::new_v4(),
        number: 0,
        creator_member: a.member_id,
        creator_session: a.session_id,
        creator_name: a.display_name.clone(),
        creator_session_pubkey: a.session_pubkey.clone(),
        creator_member_pubkey: a.member_pubkey.clone(),
        label: b.label,
        target: b.target,
        priority: b.priority,
        sealing: b.sealing,
        nonce: b.nonce,
        ciphertext: b.ciphertext,
        cron,
        tz,
        next_fire_at: Some(first),
        fire_count: 0,
        cancelled: false,
    };
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let stored = store::reminders::insert(&tx, &row).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    // Due before the next periodic claim: claim now, so short reminders are not late.
    let soon = std::time::Duration::from_millis(broker.cfg.coordination.reminder_claim_interval_ms * 2);
    if first <= now + soon {
        if let Some(scheduler) = broker.reminders.get() {
            let _ = scheduler.cast(crate::actors::reminders::SchedulerMsg::Claim);
        }
    }
    Ok(stored.info())
}

async fn remind_list(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Reminders, OpError> {
    let b: c::RemindList = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let creator = (!b.all).then_some(a.member_id);
    let rows = store::reminders::list(&client, a.mesh_id, creator, b.include_done).await?;
    Ok(c::Reminders { reminders: rows.iter().map(ReminderRow::info).collect() })
}

async fn remind_cancel(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Reminder, OpError> {
    let b: c::RemindCancel = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let row = store::reminders::lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("reminder"))?;
    if row.creator_member != a.member_id && a.role < Role::Admin {
        return Err(OpError::Forbidden("only its creator or an admin may cancel a reminder"));
    }
    if row.cancelled || row.next_fire_at.is_none() {
        return Err(OpError::Conflict(format!("reminder #{} is already cancelled or done", row.number)));
    }
    let cancelled = store::reminders::cancel(&tx, a.mesh_id, row.id).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(cancelled.info())
}

// ---------------------------------------------------------------------------------------------
// Memory and search

async fn remember(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Memory, OpError> {
    let b: c::Remember = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let memory = db::memory_insert(&tx, a.mesh_id, &b.body, &b.tags, (a.member_id, &a.display_name)).await?;
    let event = CoordEvent {
        summary: format!("{} remembered #{}: {}", a.display_name, memory.number, excerpt(&memory.body)),
        change: Change::Memory { number: memory.number, memory: Some(memory.clone()) },
    };
    let msg = emit(&tx, a, "memory.remembered", Priority::Low, &event).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(memory)
}

async fn recall(broker: &Broker, a: &Authed, req: &Request) -> Result<c::Memories, OpError> {
    let b: c::Recall = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::Memories { memories: db::recall(&client, a.mesh_id, &b.query, b.limit).await? })
}

async fn forget(broker: &Broker, a: &Authed, req: &Request) -> Result<Done, OpError> {
    let b: c::Forget = body(req)?;
    let mut client = broker.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let author = db::memory_author(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("memory"))?;
    if author != a.member_id && a.role < Role::Admin {
        return Err(OpError::Forbidden("only its author or an admin may forget a memory"));
    }
    db::memory_delete(&tx, a.mesh_id, b.number).await?;
    let event = CoordEvent {
        summary: format!("{} forgot memory #{}", a.display_name, b.number),
        change: Change::Memory { number: b.number, memory: None },
    };
    let msg = emit(&tx, a, "memory.forgotten", Priority::Low, &event).await?;
    commit(broker, a.mesh_id, tx, msg).await?;
    Ok(Done {})
}

async fn search(broker: &Broker, a: &Authed, req: &Request) -> Result<c::SearchHits, OpError> {
    let b: c::Search = body(req)?;
    let client = broker.pool.get().await.map_err(store::StoreError::from)?;
    Ok(c::SearchHits { hits: db::search(&client, a.mesh_id, &b.query, b.limit).await? })
}
