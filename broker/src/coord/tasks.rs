//! Tasks: create, read, list and the workflow steps (the step rules are
//! [`super::task_step`]); every change is a `task.*` event.

use plexus_proto::{
    coord::{self as c, Change, CoordEvent},
    types::Priority,
};

use super::{
    change::{commit, emit, member_name},
    task_step, task_verb, Caller, Coord,
};
use crate::{
    error::OpError,
    store::{self, coord as db},
};

fn task_event(a: &Caller, action: &str, verb: &str, task: &c::Task) -> CoordEvent {
    let mut summary = format!("{} {verb} task #{}: {}", a.name, task.number, task.title);
    if let (c::TaskStatus::Todo | c::TaskStatus::InProgress, Some(who)) = (task.status, &task.assignee_name) {
        if action == "assign" || action == "created" {
            summary.push_str(&format!(" (assigned to {who})"));
        }
    }
    CoordEvent { summary, change: Change::Task { action: action.to_owned(), task: task.clone() } }
}

/// `task_create`: a new task, numbered per mesh; a `task.created` event.
pub async fn task_create(coord: &Coord, a: &Caller, b: c::TaskCreate) -> Result<c::Task, OpError> {
    let assignee = match b.assignee {
        Some(m) => Some((m, member_name(coord, a.mesh_id, m).await?)),
        None => None,
    };
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
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
        owner: (a.member_id, &a.name),
        assignee,
    };
    let task = db::task_insert(&tx, a.mesh_id, &new).await?;
    let msg = emit(&tx, a, "task.created", Priority::Next, &task_event(a, "created", "created", &task)).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(task)
}

/// `task_get`: a task and its history.
pub async fn task_get(coord: &Coord, a: &Caller, b: c::TaskGet) -> Result<c::TaskDetail, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let (task, history) = db::task_get(&client, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("task"))?;
    Ok(c::TaskDetail { task, history })
}

/// `task_list`: tasks by status, assignee, owner or tag, newest first.
pub async fn task_list(coord: &Coord, a: &Caller, b: c::TaskList) -> Result<c::Tasks, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let mut tasks = db::task_list(&client, a.mesh_id, &b).await?;
    let more = tasks.len() > b.limit as usize;
    tasks.truncate(b.limit as usize);
    Ok(c::Tasks { tasks, more })
}

/// `task_update`: one workflow step ([`super::task_step`]); dependencies must be done before a start.
pub async fn task_update(coord: &Coord, a: &Caller, b: c::TaskUpdate) -> Result<c::Task, OpError> {
    let assignee = match b.assignee {
        Some(m) => Some((m, member_name(coord, a.mesh_id, m).await?)),
        None => None,
    };
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    // The row lock makes concurrent steps on one task (50 claims at once) take turns: the
    // first wins, the rest see its result and are refused.
    let current = db::task_lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("task"))?;
    let next = task_step(&current, b.action, a.actor(), b.note.as_deref(), assignee)?;
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
        (a.member_id, &a.name),
        b.action.as_str(),
        Some(current.status),
        task.status,
        b.note.as_deref(),
    )
    .await?;
    let event = task_event(a, b.action.as_str(), task_verb(b.action), &task);
    let subtype = format!("task.{}", b.action.as_str());
    let msg = emit(&tx, a, &subtype, Priority::Next, &event).await?;
    commit(coord, a.mesh_id, tx, msg).await?;
    Ok(task)
}
