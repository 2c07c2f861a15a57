//! Coordination: every rule of shared state, locks, tasks, threads, memory and reminders, as
//! plain functions over the store ([`Coord`]) for one caller ([`Caller`]). The edge only
//! decodes, authorizes and replies. The pure policies — task steps, thread hand-offs — are
//! here and unit-tested as tables.
//!
//! - [`state`] — versioned keys with compare-and-set.
//! - [`locks`] — the lock table: grants, the FIFO wait queue, expiry and session hand-off.
//! - [`glob`] — whether two lock patterns can name the same path.
//! - [`tasks`], [`threads`], [`memory`] — the workflows and the team's notes and search.
//! - [`reminders`] — creating them, schedules (cron in a time zone), the exactly-once firing.
//! - [`events`] — appending a change's event in its transaction and publishing it after commit.

mod change;
pub mod events;
pub mod glob;
pub mod locks;
pub mod memory;
pub mod reminders;
pub mod state;
pub mod tasks;
pub mod threads;

use std::sync::Arc;

use deadpool_postgres::Pool;
use plexus_proto::{
    coord::{Task, TaskAction, TaskStatus},
    types::Role,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    cluster::{FanOut, Liveness},
    config::CoordinationConfig,
    error::OpError,
};

/// What coordination uses of the node: the store, the mesh channels its events go out on,
/// which nodes are alive (a dead node's lock waiters leave the queue), and its settings.
pub struct Coord {
    /// Postgres.
    pub pool: Pool,
    /// Publishes committed events.
    pub fanout: Arc<dyn FanOut>,
    /// Wakes this node's queued lock acquires when a lock was released, here or (through the
    /// fan-out) on another node.
    pub lock_wake: std::sync::Arc<Notify>,
    /// This node.
    pub node_id: String,
    /// Which nodes are alive.
    pub liveness: Arc<dyn Liveness>,
    /// Settings.
    pub cfg: CoordinationConfig,
    /// Poked when a reminder due before the next periodic claim was created here.
    pub reminders_due_soon: Arc<Notify>,
}

/// Who asks: a session of a member, as coordination sees it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Member.
    pub member_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Display name.
    pub name: String,
    /// Role in the mesh.
    pub role: Role,
    /// Session x25519 key.
    pub session_pubkey: Vec<u8>,
    /// Member ed25519 key.
    pub member_pubkey: Vec<u8>,
}

impl Caller {
    /// As the actor of a step.
    pub fn actor(&self) -> Actor<'_> {
        Actor { member: self.member_id, name: &self.name, role: self.role }
    }

    /// As the sender of an event.
    pub fn sender(&self) -> events::Sender {
        events::Sender {
            mesh_id: self.mesh_id,
            member_id: self.member_id,
            session_id: self.session_id,
            name: self.name.clone(),
            session_pubkey: self.session_pubkey.clone(),
            member_pubkey: self.member_pubkey.clone(),
        }
    }
}

/// The caller of a step.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Member.
    pub member: Uuid,
    /// Display name.
    pub name: &'a str,
    /// Role in the mesh.
    pub role: Role,
}

impl Actor<'_> {
    fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}

/// The task after `action`, or why the step is refused. `assignee` is the member (and name)
/// an `assign` names; dependencies are checked by the caller, which can read them.
pub fn task_step(
    task: &Task,
    action: TaskAction,
    actor: Actor<'_>,
    note: Option<&str>,
    assignee: Option<(Uuid, String)>,
) -> Result<Task, OpError> {
    use TaskStatus::*;
    let is_owner = task.owner == actor.member;
    let is_assignee = task.assignee == Some(actor.member);
    let manager = is_owner || actor.is_admin();
    let wrong_status = |allowed: &str| {
        OpError::Conflict(format!(
            "task #{} is {}; {} needs it {allowed}",
            task.number,
            task.status.as_str(),
            action.as_str()
        ))
    };
    let mut next = task.clone();
    match action {
        TaskAction::Claim => {
            if task.status != Todo {
                return Err(match (&task.assignee_name, task.status) {
                    (Some(who), InProgress | Review) => {
                        OpError::Conflict(format!("task #{} is already claimed by {who}", task.number))
                    }
                    _ => wrong_status("todo"),
                });
            }
            if task.assignee.is_some() && !is_assignee {
                let who = task.assignee_name.as_deref().unwrap_or("someone else");
                return Err(OpError::Conflict(format!("task #{} is assigned to {who}", task.number)));
            }
            next.status = InProgress;
            next.assignee = Some(actor.member);
            next.assignee_name = Some(actor.name.to_owned());
        }
        TaskAction::Release => {
            if task.status != InProgress {
                return Err(wrong_status("in_progress"));
            }
            if !is_assignee && !manager {
                return Err(OpError::Forbidden("only the assignee, the task's owner or an admin may release it"));
            }
            next.status = Todo;
            next.assignee = None;
            next.assignee_name = None;
        }
        TaskAction::Submit => {
            if task.status != InProgress {
                return Err(wrong_status("in_progress"));
            }
            if !is_assignee {
                return Err(OpError::Forbidden("only the assignee may submit a task for review"));
            }
            next.status = Review;
            next.review_notes = note.map(str::to_owned);
        }
        TaskAction::Approve | TaskAction::RequestChanges => {
            if task.status != Review {
                return Err(wrong_status("in review"));
            }
            if !manager {
                return Err(OpError::Forbidden("only the task's owner or an admin may review it"));
            }
            if action == TaskAction::Approve {
                next.status = Done;
            } else {
                next.status = InProgress;
                next.feedback = note.map(str::to_owned);
            }
        }
        TaskAction::Block => {
            if !matches!(task.status, Todo | InProgress) {
                return Err(wrong_status("todo or in_progress"));
            }
            if !is_assignee && !manager {
                return Err(OpError::Forbidden("only the assignee, the task's owner or an admin may block it"));
            }
            next.status = Blocked;
        }
        TaskAction::Unblock => {
            if task.status != Blocked {
                return Err(wrong_status("blocked"));
            }
            if !is_assignee && !manager {
                return Err(OpError::Forbidden("only the assignee, the task's owner or an admin may unblock it"));
            }
            next.status = if task.assignee.is_some() { InProgress } else { Todo };
        }
        TaskAction::Cancel => {
            if matches!(task.status, Done | Cancelled) {
                return Err(wrong_status("open"));
            }
            if !manager {
                return Err(OpError::Forbidden("only the task's owner or an admin may cancel it"));
            }
            next.status = Cancelled;
        }
        TaskAction::Assign => {
            if task.status != Todo {
                return Err(wrong_status("todo"));
            }
            if !manager {
                return Err(OpError::Forbidden("only the task's owner or an admin may assign it"));
            }
            let (member, name) = assignee.ok_or(OpError::Invalid("assignee"))?;
            next.assignee = Some(member);
            next.assignee_name = Some(name);
        }
    }
    Ok(next)
}

/// Past-tense verb for summaries and history.
pub fn task_verb(action: TaskAction) -> &'static str {
    match action {
        TaskAction::Claim => "claimed",
        TaskAction::Release => "released",
        TaskAction::Submit => "submitted for review",
        TaskAction::Approve => "approved",
        TaskAction::RequestChanges => "requested changes on",
        TaskAction::Block => "blocked",
        TaskAction::Unblock => "unblocked",
        TaskAction::Cancel => "cancelled",
        TaskAction::Assign => "assigned",
    }
}

/// Who the thread waits on after `replier` posts: the given list, or else everyone it waited
/// on except the replier, or — when that leaves nobody — the previous poster.
pub fn waiting_after_reply(
    current: &[Uuid],
    replier: Uuid,
    given: Option<&[Uuid]>,
    previous_poster: Option<Uuid>,
) -> Vec<Uuid> {
    if let Some(given) = given {
        let mut out: Vec<Uuid> = Vec::with_capacity(given.len());
        for m in given {
            if !out.contains(m) {
                out.push(*m);
            }
        }
        return out;
    }
    let rest: Vec<Uuid> = current.iter().copied().filter(|m| *m != replier).collect();
    if !rest.is_empty() {
        return rest;
    }
    previous_poster.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: TaskStatus, owner: Uuid, assignee: Option<Uuid>) -> Task {
        Task {
            number: 7,
            title: "t".into(),
            description: String::new(),
            complexity: None,
            files: vec![],
            tags: vec![],
            depends_on: vec![],
            status,
            owner,
            owner_name: "owner".into(),
            assignee,
            assignee_name: assignee.map(|_| "worker".into()),
            feedback: None,
            review_notes: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn actor(member: Uuid, role: Role) -> Actor<'static> {
        Actor { member, name: "x", role }
    }

    #[test]
    fn the_happy_path_runs_todo_to_done() {
        let (owner, worker) = (Uuid::new_v4(), Uuid::new_v4());
        let t = task(TaskStatus::Todo, owner, None);
        let t = task_step(&t, TaskAction::Claim, actor(worker, Role::Member), None, None).unwrap();
        assert_eq!((t.status, t.assignee), (TaskStatus::InProgress, Some(worker)));
        let t = task_step(&t, TaskAction::Submit, actor(worker, Role::Member), Some("done it"), None).unwrap();
        assert_eq!(t.status, TaskStatus::Review);
        let t = task_step(&t, TaskAction::RequestChanges, actor(owner, Role::Member), Some("tests"), None).unwrap();
        assert_eq!((t.status, t.feedback.as_deref()), (TaskStatus::InProgress, Some("tests")));
        let t = task_step(&t, TaskAction::Submit, actor(worker, Role::Member), None, None).unwrap();
        let t = task_step(&t, TaskAction::Approve, actor(owner, Role::Member), None, None).unwrap();
        assert_eq!(t.status, TaskStatus::Done);
    }

    #[test]
    fn steps_the_status_does_not_allow_are_conflicts() {
        let owner = Uuid::new_v4();
        let todo = task(TaskStatus::Todo, owner, None);
        for action in [TaskAction::Approve, TaskAction::RequestChanges, TaskAction::Submit, TaskAction::Unblock] {
            let err = task_step(&todo, action, actor(owner, Role::Owner), Some("n"), None).unwrap_err();
            assert!(matches!(err, OpError::Conflict(_)), "{action:?}: {err}");
        }
        let done = task(TaskStatus::Done, owner, Some(owner));
        assert!(matches!(
            task_step(&done, TaskAction::Cancel, actor(owner, Role::Owner), None, None),
            Err(OpError::Conflict(_))
        ));
        let claimed = task(TaskStatus::InProgress, owner, Some(Uuid::new_v4()));
        let err = task_step(&claimed, TaskAction::Claim, actor(Uuid::new_v4(), Role::Member), None, None).unwrap_err();
        assert!(err.to_string().contains("already claimed by worker"), "{err}");
    }

    #[test]
    fn roles_gate_review_cancel_and_assign() {
        let (owner, worker, other, admin) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let review = task(TaskStatus::Review, owner, Some(worker));
        assert!(matches!(
            task_step(&review, TaskAction::Approve, actor(worker, Role::Member), None, None),
            Err(OpError::Forbidden(_))
        ));
        assert!(task_step(&review, TaskAction::Approve, actor(admin, Role::Admin), None, None).is_ok());
        let todo = task(TaskStatus::Todo, owner, None);
        assert!(matches!(
            task_step(&todo, TaskAction::Cancel, actor(other, Role::Member), None, None),
            Err(OpError::Forbidden(_))
        ));
        let assigned =
            task_step(&todo, TaskAction::Assign, actor(owner, Role::Member), None, Some((worker, "w".into()))).unwrap();
        assert_eq!(assigned.assignee, Some(worker));
        assert!(matches!(
            task_step(&assigned, TaskAction::Claim, actor(other, Role::Member), None, None),
            Err(OpError::Conflict(_))
        ));
        assert!(task_step(&assigned, TaskAction::Claim, actor(worker, Role::Member), None, None).is_ok());
    }

    #[test]
    fn a_reply_hands_the_thread_back() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(waiting_after_reply(&[b], b, None, Some(a)), vec![a]);
        assert_eq!(waiting_after_reply(&[b, c], b, None, Some(a)), vec![c]);
        assert_eq!(waiting_after_reply(&[b], b, Some(&[c, c]), Some(a)), vec![c]);
        assert!(waiting_after_reply(&[], a, None, None).is_empty());
    }
}
