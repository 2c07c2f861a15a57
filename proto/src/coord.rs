//! Coordination ops — shared state, locks, tasks, threads, memory, search and reminders — and the event bodies
//! the broker appends to the mesh log when any of them changes.
//!
//! Coordination data is readable by the broker (it compares versions, checks transitions and
//! ranks full-text search), unlike message bodies, which stay sealed end to end. Change
//! events travel as ordinary log messages with [`crate::types::Sealing::Plain`], a subtype
//! naming the change (`state.set`, `task.claimed`, …) and a JSON [`CoordEvent`] body, so
//! cursors, replay and priorities cover them like any message.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::ProtoError,
    limits,
    ops::{Done, Op},
    types::{check_len, Priority},
};

/// Longest state key, in bytes.
pub const MAX_STATE_KEY: usize = 256;
/// Largest state value, in bytes.
pub const MAX_STATE_VALUE: usize = 32 * 1024;
/// Longest task title or thread topic, in bytes.
pub const MAX_TITLE: usize = 200;
/// Longest task description, thread post, memory or review note, in bytes.
pub const MAX_TEXT: usize = 16 * 1024;
/// Most files, tags or dependencies on one object, and most members a thread waits on.
pub const MAX_LIST: usize = 64;
/// Longest tag or file entry, in bytes.
pub const MAX_TAG: usize = 256;
/// Longest search query, in bytes.
pub const MAX_QUERY: usize = 512;
/// Most rows one list or search returns.
pub const MAX_LIST_LIMIT: u32 = 500;

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), ProtoError> {
    check_len(field, value, max)?;
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ProtoError::Invalid { field, reason: "has control characters" });
    }
    Ok(())
}

fn check_required(field: &'static str, value: &str, max: usize) -> Result<(), ProtoError> {
    check_text(field, value, max)?;
    if value.trim().is_empty() {
        return Err(ProtoError::Invalid { field, reason: "empty" });
    }
    Ok(())
}

fn check_list(field: &'static str, items: &[String]) -> Result<(), ProtoError> {
    if items.len() > MAX_LIST {
        return Err(ProtoError::FieldTooLarge { field, max: MAX_LIST });
    }
    for item in items {
        check_required(field, item, MAX_TAG)?;
    }
    Ok(())
}

fn check_limit(limit: u32) -> Result<(), ProtoError> {
    if limit == 0 || limit > MAX_LIST_LIMIT {
        return Err(ProtoError::Invalid { field: "limit", reason: "must be 1..=500" });
    }
    Ok(())
}

fn default_limit() -> u32 {
    50
}

// ---------------------------------------------------------------------------------------------
// Shared state

/// A state key, its value and who last wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Key.
    pub key: String,
    /// Value (text; JSON is a convention, not a requirement).
    pub value: String,
    /// Starts at 1; bumped by every write.
    pub version: u64,
    /// Member that wrote it last.
    pub updated_by: Uuid,
    /// Its display name.
    pub updated_by_name: String,
    /// When, ms since the epoch.
    pub updated_at_ms: u64,
}

fn check_state_key(key: &str) -> Result<(), ProtoError> {
    check_required("key", key, MAX_STATE_KEY)?;
    if key.chars().any(char::is_whitespace) {
        return Err(ProtoError::Invalid { field: "key", reason: "has whitespace" });
    }
    Ok(())
}

/// Read one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateGet {
    /// Key.
    pub key: String,
}

/// Reply to [`StateGet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateValue {
    /// The entry, if the key exists.
    pub entry: Option<StateEntry>,
}

impl Op for StateGet {
    const NAME: &'static str = "state_get";
    type Reply = StateValue;
    fn validate(&self) -> Result<(), ProtoError> {
        check_state_key(&self.key)
    }
}

/// Write one key. With `expect_version` it is a compare-and-set: `0` means "must not exist",
/// `n` means "only if the stored version is n"; a mismatch fails with `Conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSet {
    /// Key.
    pub key: String,
    /// New value.
    pub value: String,
    /// Compare-and-set guard.
    #[serde(default)]
    pub expect_version: Option<u64>,
}

impl Op for StateSet {
    const NAME: &'static str = "state_set";
    type Reply = StateEntry;
    fn validate(&self) -> Result<(), ProtoError> {
        check_state_key(&self.key)?;
        check_text("value", &self.value, MAX_STATE_VALUE)
    }
}

/// Delete one key, optionally only at a given version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelete {
    /// Key.
    pub key: String,
    /// Compare-and-delete guard.
    #[serde(default)]
    pub expect_version: Option<u64>,
}

impl Op for StateDelete {
    const NAME: &'static str = "state_delete";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        check_state_key(&self.key)
    }
}

/// List keys by prefix, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateList {
    /// Key prefix ("" lists everything).
    #[serde(default)]
    pub prefix: String,
    /// Most entries returned.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// Reply to [`StateList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntries {
    /// Entries.
    pub entries: Vec<StateEntry>,
    /// More matched than `limit`.
    pub more: bool,
}

impl Op for StateList {
    const NAME: &'static str = "state_list";
    type Reply = StateEntries;
    fn validate(&self) -> Result<(), ProtoError> {
        check_text("prefix", &self.prefix, MAX_STATE_KEY)?;
        check_limit(self.limit)
    }
}

// ---------------------------------------------------------------------------------------------
// Tasks

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    Todo,
    /// Claimed and being worked on.
    InProgress,
    /// Submitted for review.
    Review,
    /// Approved.
    Done,
    /// Waiting on something outside the task.
    Blocked,
    /// Abandoned.
    Cancelled,
}

impl TaskStatus {
    /// Lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Review => "review",
            TaskStatus::Done => "done",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Inverse of [`TaskStatus::as_str`].
    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "todo" => TaskStatus::Todo,
            "in_progress" => TaskStatus::InProgress,
            "review" => TaskStatus::Review,
            "done" => TaskStatus::Done,
            "blocked" => TaskStatus::Blocked,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }
}

/// How big a task is (lockstep's scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// 1–2 files, obvious.
    Simple,
    /// 3–5 files, some ambiguity.
    Medium,
    /// 6+ files, architectural.
    Complex,
    /// Schema, security, other products.
    Critical,
}

impl Complexity {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Simple => "simple",
            Complexity::Medium => "medium",
            Complexity::Complex => "complex",
            Complexity::Critical => "critical",
        }
    }

    /// Inverse of [`Complexity::as_str`].
    pub fn parse(s: &str) -> Option<Complexity> {
        Some(match s {
            "simple" => Complexity::Simple,
            "medium" => Complexity::Medium,
            "complex" => Complexity::Complex,
            "critical" => Complexity::Critical,
            _ => return None,
        })
    }
}

/// A task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Per-mesh number (`#12`).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Complexity.
    pub complexity: Option<Complexity>,
    /// Files it touches.
    pub files: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Tasks that must be done before this one can be claimed.
    pub depends_on: Vec<u64>,
    /// Status.
    pub status: TaskStatus,
    /// Creator (reviews and approves).
    pub owner: Uuid,
    /// Its display name.
    pub owner_name: String,
    /// Member working on it.
    pub assignee: Option<Uuid>,
    /// Its display name.
    pub assignee_name: Option<String>,
    /// Latest review feedback (request changes).
    pub feedback: Option<String>,
    /// Latest submission notes.
    pub review_notes: Option<String>,
    /// Created, ms since the epoch.
    pub created_at_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
}

/// Create a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCreate {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Complexity.
    #[serde(default)]
    pub complexity: Option<Complexity>,
    /// Files.
    #[serde(default)]
    pub files: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Dependencies (task numbers of this mesh).
    #[serde(default)]
    pub depends_on: Vec<u64>,
    /// Assign at once to this member.
    #[serde(default)]
    pub assignee: Option<Uuid>,
}

impl Op for TaskCreate {
    const NAME: &'static str = "task_create";
    type Reply = Task;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("title", &self.title, MAX_TITLE)?;
        check_text("description", &self.description, MAX_TEXT)?;
        check_list("files", &self.files)?;
        check_list("tags", &self.tags)?;
        if self.depends_on.len() > MAX_LIST {
            return Err(ProtoError::FieldTooLarge { field: "depends_on", max: MAX_LIST });
        }
        Ok(())
    }
}

/// Read one task with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskGet {
    /// Task number.
    pub number: u64,
}

/// One step of a task's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStep {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Who.
    pub actor: Uuid,
    /// Their display name.
    pub actor_name: String,
    /// What (`created`, `claimed`, `submitted`, …).
    pub action: String,
    /// Status before.
    pub from: Option<TaskStatus>,
    /// Status after.
    pub to: TaskStatus,
    /// Note, feedback or reason.
    pub note: Option<String>,
}

/// Reply to [`TaskGet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The task.
    pub task: Task,
    /// Oldest first.
    pub history: Vec<TaskStep>,
}

impl Op for TaskGet {
    const NAME: &'static str = "task_get";
    type Reply = TaskDetail;
}

/// List tasks, newest first, with optional filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskList {
    /// Only these statuses (empty: all).
    #[serde(default)]
    pub status: Vec<TaskStatus>,
    /// Only tasks assigned to this member.
    #[serde(default)]
    pub assignee: Option<Uuid>,
    /// Only tasks owned by this member.
    #[serde(default)]
    pub owner: Option<Uuid>,
    /// Only tasks with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Most tasks returned.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// Reply to [`TaskList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks {
    /// Tasks.
    pub tasks: Vec<Task>,
    /// More matched than `limit`.
    pub more: bool,
}

impl Op for TaskList {
    const NAME: &'static str = "task_list";
    type Reply = Tasks;
    fn validate(&self) -> Result<(), ProtoError> {
        if let Some(tag) = &self.tag {
            check_required("tag", tag, MAX_TAG)?;
        }
        check_limit(self.limit)
    }
}

/// A step in a task's workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskAction {
    /// todo → in_progress, assignee = caller. Exactly one of concurrent claims wins.
    Claim,
    /// in_progress → todo (assignee or admin gives it back).
    Release,
    /// in_progress → review, with notes (assignee).
    Submit,
    /// review → done (owner or admin).
    Approve,
    /// review → in_progress, with feedback (owner or admin).
    RequestChanges,
    /// todo/in_progress → blocked, with a reason.
    Block,
    /// blocked → in_progress if assigned, else todo.
    Unblock,
    /// anything open → cancelled (owner or admin).
    Cancel,
    /// Set the assignee of a todo task (owner or admin); the assignee is notified.
    Assign,
}

impl TaskAction {
    /// Snake-case name, as shown in history.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskAction::Claim => "claim",
            TaskAction::Release => "release",
            TaskAction::Submit => "submit",
            TaskAction::Approve => "approve",
            TaskAction::RequestChanges => "request_changes",
            TaskAction::Block => "block",
            TaskAction::Unblock => "unblock",
            TaskAction::Cancel => "cancel",
            TaskAction::Assign => "assign",
        }
    }
}

/// Move a task through its workflow. A step the task's status does not allow fails with
/// `Conflict` and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUpdate {
    /// Task number.
    pub number: u64,
    /// The step.
    pub action: TaskAction,
    /// Notes (submit), feedback (request_changes, required) or reason (block, cancel).
    #[serde(default)]
    pub note: Option<String>,
    /// The member to assign (assign only).
    #[serde(default)]
    pub assignee: Option<Uuid>,
}

impl Op for TaskUpdate {
    const NAME: &'static str = "task_update";
    type Reply = Task;
    fn validate(&self) -> Result<(), ProtoError> {
        if let Some(note) = &self.note {
            check_text("note", note, MAX_TEXT)?;
        }
        if self.action == TaskAction::RequestChanges && self.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(ProtoError::Invalid { field: "note", reason: "request_changes needs feedback" });
        }
        if (self.action == TaskAction::Assign) != self.assignee.is_some() {
            return Err(ProtoError::Invalid { field: "assignee", reason: "given exactly with assign" });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Threads

/// A post in a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadPost {
    /// 1-based position.
    pub post: u32,
    /// Author member.
    pub author: Uuid,
    /// Its display name.
    pub author_name: String,
    /// Text.
    pub body: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
}

/// A thread without its posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// Per-mesh number.
    pub number: u64,
    /// Topic.
    pub topic: String,
    /// Priority of its notifications.
    pub priority: Priority,
    /// Opener.
    pub author: Uuid,
    /// Its display name.
    pub author_name: String,
    /// Members who must answer next.
    pub waiting_on: Vec<Uuid>,
    /// Resolved threads wait on nobody.
    pub resolved: bool,
    /// Posts so far.
    pub posts: u32,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
}

/// Open a thread with a first post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadOpen {
    /// Topic.
    pub topic: String,
    /// First post.
    pub body: String,
    /// Who must answer.
    #[serde(default)]
    pub waiting_on: Vec<Uuid>,
    /// Priority of the notifications to those waited on.
    #[serde(default)]
    pub priority: Priority,
}

impl Op for ThreadOpen {
    const NAME: &'static str = "thread_open";
    type Reply = Thread;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("topic", &self.topic, MAX_TITLE)?;
        check_required("body", &self.body, MAX_TEXT)?;
        if self.waiting_on.len() > MAX_LIST {
            return Err(ProtoError::FieldTooLarge { field: "waiting_on", max: MAX_LIST });
        }
        Ok(())
    }
}

/// Reply in a thread. Without `waiting_on`, the thread then waits on the previous poster
/// (a conversation ping-pongs); with it, on exactly those members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadReply {
    /// Thread number.
    pub number: u64,
    /// Text.
    pub body: String,
    /// Who must answer next.
    #[serde(default)]
    pub waiting_on: Option<Vec<Uuid>>,
}

impl Op for ThreadReply {
    const NAME: &'static str = "thread_reply";
    type Reply = Thread;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("body", &self.body, MAX_TEXT)?;
        if self.waiting_on.as_ref().is_some_and(|w| w.len() > MAX_LIST) {
            return Err(ProtoError::FieldTooLarge { field: "waiting_on", max: MAX_LIST });
        }
        Ok(())
    }
}

/// Resolve a thread (any participant, or an admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadResolve {
    /// Thread number.
    pub number: u64,
}

impl Op for ThreadResolve {
    const NAME: &'static str = "thread_resolve";
    type Reply = Thread;
}

/// Read a thread with its posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadGet {
    /// Thread number.
    pub number: u64,
}

/// Reply to [`ThreadGet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadDetail {
    /// The thread.
    pub thread: Thread,
    /// Oldest first.
    pub posts: Vec<ThreadPost>,
}

impl Op for ThreadGet {
    const NAME: &'static str = "thread_get";
    type Reply = ThreadDetail;
}

/// List threads, most recently changed first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadList {
    /// Only unresolved threads waiting on the caller's member.
    #[serde(default)]
    pub waiting_on_me: bool,
    /// Include resolved threads.
    #[serde(default)]
    pub include_resolved: bool,
    /// Most threads returned.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// Reply to [`ThreadList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threads {
    /// Threads.
    pub threads: Vec<Thread>,
    /// More matched than `limit`.
    pub more: bool,
}

impl Op for ThreadList {
    const NAME: &'static str = "thread_list";
    type Reply = Threads;
    fn validate(&self) -> Result<(), ProtoError> {
        check_limit(self.limit)
    }
}

// ---------------------------------------------------------------------------------------------
// Memory and search

/// A remembered note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Per-mesh number.
    pub number: u64,
    /// Text.
    pub body: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Author member.
    pub author: Uuid,
    /// Its display name.
    pub author_name: String,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Search rank (recall only; higher is more relevant).
    #[serde(default)]
    pub rank: Option<f32>,
}

/// Remember a note for the whole mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remember {
    /// Text.
    pub body: String,
    /// Tags (weighted above the text in recall).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Op for Remember {
    const NAME: &'static str = "remember";
    type Reply = Memory;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("body", &self.body, MAX_TEXT)?;
        check_list("tags", &self.tags)
    }
}

/// Full-text recall, most relevant first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recall {
    /// Words to look for (web-search syntax: `"exact phrase"`, `-exclude`, `or`).
    pub query: String,
    /// Most memories returned.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// Reply to [`Recall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memories {
    /// Memories.
    pub memories: Vec<Memory>,
}

impl Op for Recall {
    const NAME: &'static str = "recall";
    type Reply = Memories;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("query", &self.query, MAX_QUERY)?;
        check_limit(self.limit)
    }
}

/// Forget a memory (its author or an admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forget {
    /// Memory number.
    pub number: u64,
}

impl Op for Forget {
    const NAME: &'static str = "forget";
    type Reply = Done;
}

/// What a search hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A memory.
    Memory,
    /// A task.
    Task,
    /// A thread (matched by a post or its topic).
    Thread,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// Kind.
    pub kind: HitKind,
    /// Number of the memory, task or thread.
    pub number: u64,
    /// Title, topic or the start of the memory.
    pub title: String,
    /// The matching text with the hits marked `**like this**`.
    pub snippet: String,
    /// Rank; higher is more relevant.
    pub rank: f32,
}

/// Search memory, tasks and threads at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    /// Words to look for (same syntax as [`Recall`]).
    pub query: String,
    /// Most hits returned.
    #[serde(default = "default_limit")]
    pub limit: u32,
}

/// Reply to [`Search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHits {
    /// Hits, most relevant first.
    pub hits: Vec<SearchHit>,
}

impl Op for Search {
    const NAME: &'static str = "search";
    type Reply = SearchHits;
    fn validate(&self) -> Result<(), ProtoError> {
        check_required("query", &self.query, MAX_QUERY)?;
        check_limit(self.limit)
    }
}

// ---------------------------------------------------------------------------------------------
// Locks

/// Longest lock pattern, in bytes.
pub const MAX_PATTERN: usize = 512;
/// Most wildcards (`*`, `**`, `?`) in one pattern.
pub const MAX_WILDCARDS: usize = 16;
/// Longest lock lifetime one grant or renew may ask for (24 h).
pub const MAX_LOCK_TTL_MS: u64 = 24 * 3600 * 1000;
/// Shortest lock lifetime (1 s).
pub const MIN_LOCK_TTL_MS: u64 = 1000;
/// Longest an acquire may wait in the queue (10 min).
pub const MAX_LOCK_WAIT_MS: u64 = 600 * 1000;

fn default_lock_ttl() -> u64 {
    300_000
}

/// Check a lock pattern: a relative or absolute path where `*` matches within one segment,
/// `?` one character, and `**` any number of segments. Character classes and braces are not
/// supported (they would make overlap checks approximate), nor are `..` or empty segments.
pub fn check_lock_pattern(pattern: &str) -> Result<(), ProtoError> {
    let field = "pattern";
    check_required(field, pattern, MAX_PATTERN)?;
    if pattern.chars().any(char::is_control) {
        return Err(ProtoError::Invalid { field, reason: "has control characters" });
    }
    if pattern.contains(['[', ']', '{', '}']) {
        return Err(ProtoError::Invalid { field, reason: "only *, ** and ? are supported as wildcards" });
    }
    if pattern.contains("***") {
        return Err(ProtoError::Invalid { field, reason: "*** is not a wildcard" });
    }
    if pattern.chars().filter(|c| *c == '*' || *c == '?').count() > MAX_WILDCARDS {
        return Err(ProtoError::Invalid { field, reason: "too many wildcards" });
    }
    let body = pattern.strip_prefix('/').unwrap_or(pattern);
    let body = body.strip_suffix('/').unwrap_or(body);
    for segment in body.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(ProtoError::Invalid { field, reason: "empty, . or .. path segment" });
        }
        if segment.contains("**") && segment != "**" {
            return Err(ProtoError::Invalid { field, reason: "** must be a whole path segment" });
        }
    }
    Ok(())
}

/// Lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Nobody else may hold an overlapping lock.
    #[default]
    Exclusive,
    /// Others may hold overlapping shared locks, not exclusive ones.
    Shared,
}

impl LockMode {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        }
    }
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Fencing token: strictly increasing per mesh; also the lock's id.
    pub token: u64,
    /// Pattern.
    pub pattern: String,
    /// Mode.
    pub mode: LockMode,
    /// Holding member.
    pub holder_member: Uuid,
    /// Holding session.
    pub holder_session: Uuid,
    /// Holder's display name.
    pub holder_name: String,
    /// Why it is held.
    pub reason: Option<String>,
    /// Granted, ms since the epoch.
    pub acquired_at_ms: u64,
    /// Expires unless renewed, ms since the epoch.
    pub expires_at_ms: u64,
}

/// Acquire a lock. Without `wait_ms` an overlapping incompatible lock fails at once with
/// `Conflict`; with it the request queues (first come, first served) until granted or the
/// wait runs out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAcquire {
    /// Path or glob.
    pub pattern: String,
    /// Mode.
    #[serde(default)]
    pub mode: LockMode,
    /// Lifetime unless renewed.
    #[serde(default = "default_lock_ttl")]
    pub ttl_ms: u64,
    /// How long to wait in the queue (0: do not wait).
    #[serde(default)]
    pub wait_ms: u64,
    /// Shown to others in lists and conflicts.
    #[serde(default)]
    pub reason: Option<String>,
}

impl Op for LockAcquire {
    const NAME: &'static str = "lock_acquire";
    type Reply = LockInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        check_lock_pattern(&self.pattern)?;
        check_ttl(self.ttl_ms)?;
        if self.wait_ms > MAX_LOCK_WAIT_MS {
            return Err(ProtoError::Invalid { field: "wait_ms", reason: "at most 10 minutes" });
        }
        if let Some(r) = &self.reason {
            check_text("reason", r, MAX_TITLE)?;
        }
        Ok(())
    }
}

fn check_ttl(ttl_ms: u64) -> Result<(), ProtoError> {
    if !(MIN_LOCK_TTL_MS..=MAX_LOCK_TTL_MS).contains(&ttl_ms) {
        return Err(ProtoError::Invalid { field: "ttl_ms", reason: "between 1 s and 24 h" });
    }
    Ok(())
}

/// Extend a lock you hold. Fails with `Conflict` once it has expired or been released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRenew {
    /// Token of the grant.
    pub token: u64,
    /// New lifetime from now.
    #[serde(default = "default_lock_ttl")]
    pub ttl_ms: u64,
}

impl Op for LockRenew {
    const NAME: &'static str = "lock_renew";
    type Reply = LockInfo;
    fn validate(&self) -> Result<(), ProtoError> {
        check_ttl(self.ttl_ms)
    }
}

/// Release a lock you (your member) hold; with `force`, an admin releases anyone's and the
/// holder is notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRelease {
    /// Token of the grant.
    pub token: u64,
    /// Admin force-release.
    #[serde(default)]
    pub force: bool,
    /// Why (shown to the holder on force-release).
    #[serde(default)]
    pub reason: Option<String>,
}

impl Op for LockRelease {
    const NAME: &'static str = "lock_release";
    type Reply = Done;
    fn validate(&self) -> Result<(), ProtoError> {
        if let Some(r) = &self.reason {
            check_text("reason", r, MAX_TITLE)?;
        }
        Ok(())
    }
}

/// A queued acquire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWaiter {
    /// Pattern.
    pub pattern: String,
    /// Mode.
    pub mode: LockMode,
    /// Who waits.
    pub name: String,
    /// Queued since, ms since the epoch.
    pub since_ms: u64,
    /// Gives up at, ms since the epoch.
    pub deadline_ms: u64,
}

/// List held locks and the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LockList {}

/// Reply to [`LockList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locks {
    /// Held locks, oldest first.
    pub locks: Vec<LockInfo>,
    /// Waiting acquires, in queue order.
    pub waiters: Vec<LockWaiter>,
}

impl Op for LockList {
    const NAME: &'static str = "lock_list";
    type Reply = Locks;
}

// ---------------------------------------------------------------------------------------------
// Reminders

/// Longest cron expression or time-zone name, in bytes.
pub const MAX_CRON: usize = 128;
/// Furthest ahead a one-shot may be scheduled (10 years).
pub const MAX_REMIND_AHEAD_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// When a reminder fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Once, at a moment (ms since the epoch); must be in the future.
    At {
        /// When.
        at_ms: u64,
    },
    /// Once, this long after the broker receives the request (no client clock involved).
    In {
        /// Delay.
        after_ms: u64,
    },
    /// Repeatedly, by a cron expression (5 fields, or 6 with seconds first) in a time zone.
    Cron {
        /// Expression, e.g. `0 9 * * MON-FRI`.
        expr: String,
        /// IANA time zone, e.g. `Europe/Berlin` (default UTC).
        #[serde(default = "utc")]
        tz: String,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Schedule a reminder: a sealed message (to yourself — a `member` target naming your own
/// member —, another member, or a group) that the broker sends on schedule, from you, with
/// subtype `reminder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemindCreate {
    /// When.
    pub schedule: Schedule,
    /// Member or group (sessions end; reminders outlive them).
    pub target: crate::types::Target,
    /// Priority of each delivery.
    #[serde(default)]
    pub priority: Priority,
    /// Sealing of the body, as for `send`.
    pub sealing: crate::types::Sealing,
    /// Nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sealed body.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// A short plaintext label shown in lists (the body itself stays sealed).
    #[serde(default)]
    pub label: Option<String>,
}

/// A scheduled reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Per-mesh number.
    pub number: u64,
    /// Stable id.
    pub id: Uuid,
    /// Schedule (a one-shot `in` is reported as `at`).
    pub schedule: Schedule,
    /// Target.
    pub target: crate::types::Target,
    /// Priority.
    pub priority: Priority,
    /// Label.
    pub label: Option<String>,
    /// Creator member.
    pub creator: Uuid,
    /// Creator's display name.
    pub creator_name: String,
    /// Next firing, ms since the epoch (none once a one-shot fired or it was cancelled).
    pub next_fire_at_ms: Option<u64>,
    /// Times fired.
    pub fire_count: u64,
    /// Cancelled.
    pub cancelled: bool,
}

impl Op for RemindCreate {
    const NAME: &'static str = "remind_create";
    type Reply = Reminder;
    fn validate(&self) -> Result<(), ProtoError> {
        match &self.schedule {
            Schedule::At { .. } => {}
            Schedule::In { after_ms } => {
                if *after_ms == 0 || *after_ms > MAX_REMIND_AHEAD_MS {
                    return Err(ProtoError::Invalid { field: "after_ms", reason: "between 1 ms and 10 years" });
                }
            }
            Schedule::Cron { expr, tz } => {
                check_required("cron", expr, MAX_CRON)?;
                check_required("tz", tz, MAX_CRON)?;
            }
        }
        if !matches!(self.target, crate::types::Target::Member(_) | crate::types::Target::Group(_)) {
            return Err(ProtoError::Invalid { field: "target", reason: "a reminder goes to a member or a group" });
        }
        if let crate::types::Target::Group(g) = &self.target {
            if !crate::types::valid_group_name(g) {
                return Err(ProtoError::Invalid { field: "target", reason: "bad group name" });
            }
        }
        let fits = match self.sealing {
            crate::types::Sealing::BoxMember => matches!(self.target, crate::types::Target::Member(_)),
            crate::types::Sealing::MeshKey => matches!(self.target, crate::types::Target::Group(_)),
            _ => false,
        };
        if !fits {
            return Err(ProtoError::Invalid {
                field: "sealing",
                reason: "member targets use box_member, groups mesh_key",
            });
        }
        if self.nonce.len() != 24 {
            return Err(ProtoError::Invalid { field: "nonce", reason: "wrong length" });
        }
        if self.ciphertext.len() > limits::MAX_CIPHERTEXT_BYTES {
            return Err(ProtoError::FieldTooLarge { field: "ciphertext", max: limits::MAX_CIPHERTEXT_BYTES });
        }
        if let Some(l) = &self.label {
            check_text("label", l, MAX_TITLE)?;
        }
        Ok(())
    }
}

/// List reminders: your own, or with `all` every reminder of the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RemindList {
    /// Everyone's, not only yours.
    #[serde(default)]
    pub all: bool,
    /// Include fired one-shots and cancelled ones.
    #[serde(default)]
    pub include_done: bool,
}

/// Reply to [`RemindList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminders {
    /// Soonest first.
    pub reminders: Vec<Reminder>,
}

impl Op for RemindList {
    const NAME: &'static str = "remind_list";
    type Reply = Reminders;
}

/// Cancel a reminder (its creator, or an admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemindCancel {
    /// Reminder number.
    pub number: u64,
}

impl Op for RemindCancel {
    const NAME: &'static str = "remind_cancel";
    type Reply = Reminder;
}

// ---------------------------------------------------------------------------------------------
// Events

/// The JSON body of a coordination event in the mesh log. `summary` is one human line
/// ("ana claimed task #4: fix the login redirect"); the rest is the object after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordEvent {
    /// One line for humans and agents.
    pub summary: String,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
}

/// What a coordination event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Change {
    /// A state key was written (`entry`) or deleted (`entry` absent).
    State {
        /// Key.
        key: String,
        /// Entry after the write.
        entry: Option<StateEntry>,
    },
    /// A task was created or moved.
    Task {
        /// The step (`created`, `claim`, `submit`, …).
        action: String,
        /// Task after the change.
        task: Task,
    },
    /// A thread was opened, replied to or resolved.
    Thread {
        /// `opened`, `replied` or `resolved`.
        action: String,
        /// Thread after the change.
        thread: Thread,
        /// The new post, if any.
        post: Option<ThreadPost>,
    },
    /// A lock was acquired, released, expired or force-released.
    Lock {
        /// `acquired`, `released`, `expired` or `force_released`.
        action: String,
        /// The lock.
        lock: LockInfo,
    },
    /// A memory was stored (`memory`) or forgotten.
    Memory {
        /// Number.
        number: u64,
        /// The memory, when stored.
        memory: Option<Memory>,
    },
    /// An outside system posted to a webhook.
    Webhook {
        /// The webhook's name.
        hook: String,
        /// What it posted (the request body as text).
        payload: String,
    },
}

// An event carries at most one value or text plus its object; JSON escaping of text without
// control characters at most doubles it, so every event fits a frame.
const _: () = assert!(limits::MAX_FRAME_BYTES >= 2 * (MAX_STATE_VALUE + MAX_TEXT) + 64 * 1024);
