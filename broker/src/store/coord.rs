//! Coordination rows: shared state, tasks and their history, threads and posts, memories, and
//! the one full-text search over them. Writers take the caller's transaction so the change and
//! its log event commit together; policy (who may do what, which steps are allowed) lives in
//! `crate::coord`, not here.

use deadpool_postgres::{GenericClient, Transaction};
use plexus_proto::{
    coord::{
        Complexity, HitKind, Memory, SearchHit, StateEntry, Task, TaskList, TaskStatus, TaskStep, Thread, ThreadPost,
    },
    types::Priority,
};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{millis, priority_from_i16, priority_to_i16, StoreError};

/// How many rows of `table` (`state_entries` or `memories`) the mesh holds.
pub async fn mesh_rows(db: &impl GenericClient, mesh_id: Uuid, table: QuotaTable) -> Result<u64, StoreError> {
    let sql = match table {
        QuotaTable::State => "SELECT count(*) FROM state_entries WHERE mesh_id = $1",
        QuotaTable::Memories => "SELECT count(*) FROM memories WHERE mesh_id = $1",
    };
    Ok(db.query_one(sql, &[&mesh_id]).await?.get::<_, i64>(0).max(0) as u64)
}

/// Tables with a per-mesh quota.
#[derive(Debug, Clone, Copy)]
pub enum QuotaTable {
    /// Shared state keys.
    State,
    /// Memories.
    Memories,
}

/// Next number of a per-mesh counter (`task`, `thread`, `memory`).
pub async fn next_number(tx: &Transaction<'_>, mesh_id: Uuid, counter: &str) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "INSERT INTO mesh_counters (mesh_id, name, value) VALUES ($1, $2, 1)
             ON CONFLICT (mesh_id, name) DO UPDATE SET value = mesh_counters.value + 1 RETURNING value",
            )
            .await?,
            &[&mesh_id, &counter],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn num(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

// ---------------------------------------------------------------------------------------------
// State

fn state_from_row(r: &Row) -> StateEntry {
    StateEntry {
        key: r.get("key"),
        value: r.get("value"),
        version: r.get::<_, i64>("version") as u64,
        updated_by: r.get("updated_by"),
        updated_by_name: r.get("updated_by_name"),
        updated_at_ms: millis(r.get("updated_at")),
    }
}

/// One key.
pub async fn state_get(db: &impl GenericClient, mesh_id: Uuid, key: &str) -> Result<Option<StateEntry>, StoreError> {
    let row = db.query_opt("SELECT * FROM state_entries WHERE mesh_id = $1 AND key = $2", &[&mesh_id, &key]).await?;
    Ok(row.as_ref().map(state_from_row))
}

/// One key, locked until the transaction ends (absent keys lock nothing; a racing insert is
/// caught by the primary key).
pub async fn state_lock(tx: &Transaction<'_>, mesh_id: Uuid, key: &str) -> Result<Option<StateEntry>, StoreError> {
    let row = tx
        .query_opt("SELECT * FROM state_entries WHERE mesh_id = $1 AND key = $2 FOR UPDATE", &[&mesh_id, &key])
        .await?;
    Ok(row.as_ref().map(state_from_row))
}

/// Insert a new key at version 1; `None` if it appeared meanwhile.
pub async fn state_insert(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    key: &str,
    value: &str,
    by: Uuid,
    by_name: &str,
) -> Result<Option<StateEntry>, StoreError> {
    let row = tx
        .query_opt(
            "INSERT INTO state_entries (mesh_id, key, value, version, updated_by, updated_by_name)
             VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (mesh_id, key) DO NOTHING RETURNING *",
            &[&mesh_id, &key, &value, &by, &by_name],
        )
        .await?;
    Ok(row.as_ref().map(state_from_row))
}

/// Overwrite a locked key, bumping its version.
pub async fn state_update(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    key: &str,
    value: &str,
    by: Uuid,
    by_name: &str,
) -> Result<StateEntry, StoreError> {
    let row = tx
        .query_one(
            "UPDATE state_entries SET value = $3, version = version + 1, updated_by = $4, updated_by_name = $5,
                    updated_at = now()
             WHERE mesh_id = $1 AND key = $2 RETURNING *",
            &[&mesh_id, &key, &value, &by, &by_name],
        )
        .await?;
    Ok(state_from_row(&row))
}

/// Delete a locked key.
pub async fn state_delete(tx: &Transaction<'_>, mesh_id: Uuid, key: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM state_entries WHERE mesh_id = $1 AND key = $2", &[&mesh_id, &key]).await?;
    Ok(())
}

/// Keys starting with `prefix`, in key order; one more than `limit` tells the caller there
/// are more.
pub async fn state_list(
    db: &impl GenericClient,
    mesh_id: Uuid,
    prefix: &str,
    limit: u32,
) -> Result<Vec<StateEntry>, StoreError> {
    // LIKE metacharacters in the prefix are literal.
    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("{escaped}%");
    let rows = db
        .query(
            "SELECT * FROM state_entries WHERE mesh_id = $1 AND key LIKE $2 ORDER BY key LIMIT $3",
            &[&mesh_id, &pattern, &(limit as i64 + 1)],
        )
        .await?;
    Ok(rows.iter().map(state_from_row).collect())
}

// ---------------------------------------------------------------------------------------------
// Tasks

fn task_from_row(r: &Row) -> Result<Task, StoreError> {
    let status: String = r.get("status");
    let complexity: Option<String> = r.get("complexity");
    Ok(Task {
        number: r.get::<_, i64>("number") as u64,
        title: r.get("title"),
        description: r.get("description"),
        complexity: complexity.as_deref().and_then(Complexity::parse),
        files: r.get("files"),
        tags: r.get("tags"),
        depends_on: r.get::<_, Vec<i64>>("depends_on").into_iter().map(|n| n as u64).collect(),
        status: TaskStatus::parse(&status).ok_or(StoreError::Corrupt("task status"))?,
        owner: r.get("owner_id"),
        owner_name: r.get("owner_name"),
        assignee: r.get("assignee_id"),
        assignee_name: r.get("assignee_name"),
        feedback: r.get("feedback"),
        review_notes: r.get("review_notes"),
        created_at_ms: millis(r.get("created_at")),
        updated_at_ms: millis(r.get("updated_at")),
    })
}

/// A new task as the caller asked for it.
pub struct NewTask<'a> {
    /// Title.
    pub title: &'a str,
    /// Description.
    pub description: &'a str,
    /// Complexity.
    pub complexity: Option<Complexity>,
    /// Files.
    pub files: &'a [String],
    /// Tags.
    pub tags: &'a [String],
    /// Dependencies.
    pub depends_on: &'a [u64],
    /// Owner and its name.
    pub owner: (Uuid, &'a str),
    /// Initial assignee and its name.
    pub assignee: Option<(Uuid, String)>,
}

/// Insert a task and its `created` history step.
pub async fn task_insert(tx: &Transaction<'_>, mesh_id: Uuid, t: &NewTask<'_>) -> Result<Task, StoreError> {
    let number = next_number(tx, mesh_id, "task").await?;
    let deps: Vec<i64> = t.depends_on.iter().map(|&n| num(n)).collect();
    let row = tx
        .query_one(
            "INSERT INTO tasks (mesh_id, number, title, description, complexity, files, tags, depends_on, status,
                                owner_id, owner_name, assignee_id, assignee_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'todo', $9, $10, $11, $12) RETURNING *",
            &[
                &mesh_id,
                &num(number),
                &t.title,
                &t.description,
                &t.complexity.map(plexus_proto::coord::Complexity::as_str),
                &t.files,
                &t.tags,
                &deps,
                &t.owner.0,
                &t.owner.1,
                &t.assignee.as_ref().map(|a| a.0),
                &t.assignee.as_ref().map(|a| a.1.as_str()),
            ],
        )
        .await?;
    let task = task_from_row(&row)?;
    task_history_add(tx, mesh_id, number, t.owner, "created", None, TaskStatus::Todo, None).await?;
    Ok(task)
}

/// How many of `numbers` exist in the mesh, and which of them are not done.
pub async fn tasks_open_among(
    db: &impl GenericClient,
    mesh_id: Uuid,
    numbers: &[u64],
) -> Result<(usize, Vec<u64>), StoreError> {
    let nums: Vec<i64> = numbers.iter().map(|&n| num(n)).collect();
    let rows = db
        .query("SELECT number, status FROM tasks WHERE mesh_id = $1 AND number = ANY($2)", &[&mesh_id, &nums])
        .await?;
    let open = rows
        .iter()
        .filter(|r| r.get::<_, String>(1) != TaskStatus::Done.as_str())
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    Ok((rows.len(), open))
}

/// One task, locked until the transaction ends.
pub async fn task_lock(tx: &Transaction<'_>, mesh_id: Uuid, number: u64) -> Result<Option<Task>, StoreError> {
    let row = tx
        .query_opt("SELECT * FROM tasks WHERE mesh_id = $1 AND number = $2 FOR UPDATE", &[&mesh_id, &num(number)])
        .await?;
    row.as_ref().map(task_from_row).transpose()
}

/// Write a task's workflow fields after a step.
pub async fn task_save(tx: &Transaction<'_>, mesh_id: Uuid, t: &Task) -> Result<Task, StoreError> {
    let row = tx
        .query_one(
            "UPDATE tasks SET status = $3, assignee_id = $4, assignee_name = $5, feedback = $6, review_notes = $7,
                    updated_at = now()
             WHERE mesh_id = $1 AND number = $2 RETURNING *",
            &[
                &mesh_id,
                &num(t.number),
                &t.status.as_str(),
                &t.assignee,
                &t.assignee_name,
                &t.feedback,
                &t.review_notes,
            ],
        )
        .await?;
    task_from_row(&row)
}

/// Append a history step.
#[allow(clippy::too_many_arguments)]
pub async fn task_history_add(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    number: u64,
    actor: (Uuid, &str),
    action: &str,
    from: Option<TaskStatus>,
    to: TaskStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO task_history (mesh_id, number, actor_id, actor_name, action, from_status, to_status, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &mesh_id,
            &num(number),
            &actor.0,
            &actor.1,
            &action,
            &from.map(plexus_proto::coord::TaskStatus::as_str),
            &to.as_str(),
            &note,
        ],
    )
    .await?;
    Ok(())
}

/// A task and its history.
pub async fn task_get(
    db: &impl GenericClient,
    mesh_id: Uuid,
    number: u64,
) -> Result<Option<(Task, Vec<TaskStep>)>, StoreError> {
    let Some(row) =
        db.query_opt("SELECT * FROM tasks WHERE mesh_id = $1 AND number = $2", &[&mesh_id, &num(number)]).await?
    else {
        return Ok(None);
    };
    let task = task_from_row(&row)?;
    let rows = db
        .query(
            "SELECT * FROM task_history WHERE mesh_id = $1 AND number = $2 ORDER BY at, ctid",
            &[&mesh_id, &num(number)],
        )
        .await?;
    let mut history = Vec::with_capacity(rows.len());
    for r in rows {
        let from: Option<String> = r.get("from_status");
        let to: String = r.get("to_status");
        history.push(TaskStep {
            at_ms: millis(r.get("at")),
            actor: r.get("actor_id"),
            actor_name: r.get("actor_name"),
            action: r.get("action"),
            from: from.as_deref().and_then(TaskStatus::parse),
            to: TaskStatus::parse(&to).ok_or(StoreError::Corrupt("task status"))?,
            note: r.get("note"),
        });
    }
    Ok(Some((task, history)))
}

/// Tasks matching the filters, newest first; one more than the limit.
pub async fn task_list(db: &impl GenericClient, mesh_id: Uuid, f: &TaskList) -> Result<Vec<Task>, StoreError> {
    let statuses: Vec<&str> = f.status.iter().map(|s| s.as_str()).collect();
    let rows = db
        .query(
            "SELECT * FROM tasks WHERE mesh_id = $1
               AND (cardinality($2::text[]) = 0 OR status = ANY($2))
               AND ($3::uuid IS NULL OR assignee_id = $3)
               AND ($4::uuid IS NULL OR owner_id = $4)
               AND ($5::text IS NULL OR $5 = ANY(tags))
             ORDER BY number DESC LIMIT $6",
            &[&mesh_id, &statuses, &f.assignee, &f.owner, &f.tag, &(f.limit as i64 + 1)],
        )
        .await?;
    rows.iter().map(task_from_row).collect()
}

// ---------------------------------------------------------------------------------------------
// Threads

fn thread_from_row(r: &Row) -> Result<Thread, StoreError> {
    Ok(Thread {
        number: r.get::<_, i64>("number") as u64,
        topic: r.get("topic"),
        priority: priority_from_i16(r.get("priority"))?,
        author: r.get("author_id"),
        author_name: r.get("author_name"),
        waiting_on: r.get("waiting_on"),
        resolved: r.get::<_, Option<std::time::SystemTime>>("resolved_at").is_some(),
        posts: r.get::<_, i32>("posts") as u32,
        updated_at_ms: millis(r.get("updated_at")),
    })
}

const THREAD_COLS: &str = "t.*, (SELECT count(*)::int FROM thread_posts p
    WHERE p.mesh_id = t.mesh_id AND p.number = t.number) AS posts";

/// Open a thread with its first post.
pub async fn thread_insert(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    topic: &str,
    priority: Priority,
    author: (Uuid, &str),
    waiting_on: &[Uuid],
    body: &str,
) -> Result<(Thread, ThreadPost), StoreError> {
    let number = next_number(tx, mesh_id, "thread").await?;
    tx.execute(
        "INSERT INTO threads (mesh_id, number, topic, priority, author_id, author_name, waiting_on)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&mesh_id, &num(number), &topic, &priority_to_i16(priority), &author.0, &author.1, &waiting_on],
    )
    .await?;
    let post = thread_post_add(tx, mesh_id, number, author, body).await?;
    let thread = thread_lock(tx, mesh_id, number).await?.ok_or(StoreError::Corrupt("thread vanished"))?;
    Ok((thread, post))
}

/// One thread, locked until the transaction ends.
pub async fn thread_lock(tx: &Transaction<'_>, mesh_id: Uuid, number: u64) -> Result<Option<Thread>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {THREAD_COLS} FROM threads t WHERE t.mesh_id = $1 AND t.number = $2 FOR UPDATE"),
            &[&mesh_id, &num(number)],
        )
        .await?;
    row.as_ref().map(thread_from_row).transpose()
}

/// Append a post.
pub async fn thread_post_add(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    number: u64,
    author: (Uuid, &str),
    body: &str,
) -> Result<ThreadPost, StoreError> {
    let row = tx
        .query_one(
            "INSERT INTO thread_posts (mesh_id, number, post, author_id, author_name, body)
             SELECT $1, $2, coalesce(max(post), 0) + 1, $3, $4, $5 FROM thread_posts WHERE mesh_id = $1 AND number = $2
             RETURNING post, created_at",
            &[&mesh_id, &num(number), &author.0, &author.1, &body],
        )
        .await?;
    Ok(ThreadPost {
        post: row.get::<_, i32>(0) as u32,
        author: author.0,
        author_name: author.1.to_owned(),
        body: body.to_owned(),
        at_ms: millis(row.get(1)),
    })
}

/// The author of the latest post not written by `not_by`.
pub async fn thread_previous_poster(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    number: u64,
    not_by: Uuid,
) -> Result<Option<Uuid>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT author_id FROM thread_posts WHERE mesh_id = $1 AND number = $2 AND author_id <> $3
             ORDER BY post DESC LIMIT 1",
            &[&mesh_id, &num(number), &not_by],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Set who the thread waits on, and whether it is resolved.
pub async fn thread_save(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    number: u64,
    waiting_on: &[Uuid],
    resolved: bool,
) -> Result<Thread, StoreError> {
    tx.execute(
        "UPDATE threads SET waiting_on = $3, updated_at = now(),
                resolved_at = CASE WHEN $4 THEN coalesce(resolved_at, now()) ELSE NULL END
         WHERE mesh_id = $1 AND number = $2",
        &[&mesh_id, &num(number), &waiting_on, &resolved],
    )
    .await?;
    thread_lock(tx, mesh_id, number).await?.ok_or(StoreError::Corrupt("thread vanished"))
}

/// Whether `member` has posted in the thread.
pub async fn thread_has_posted(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    number: u64,
    member: Uuid,
) -> Result<bool, StoreError> {
    let row = tx
        .query_opt(
            "SELECT 1 FROM thread_posts WHERE mesh_id = $1 AND number = $2 AND author_id = $3 LIMIT 1",
            &[&mesh_id, &num(number), &member],
        )
        .await?;
    Ok(row.is_some())
}

/// A thread and its posts.
pub async fn thread_get(
    db: &impl GenericClient,
    mesh_id: Uuid,
    number: u64,
) -> Result<Option<(Thread, Vec<ThreadPost>)>, StoreError> {
    let Some(row) = db
        .query_opt(
            &format!("SELECT {THREAD_COLS} FROM threads t WHERE t.mesh_id = $1 AND t.number = $2"),
            &[&mesh_id, &num(number)],
        )
        .await?
    else {
        return Ok(None);
    };
    let thread = thread_from_row(&row)?;
    let rows = db
        .query("SELECT * FROM thread_posts WHERE mesh_id = $1 AND number = $2 ORDER BY post", &[&mesh_id, &num(number)])
        .await?;
    let posts = rows
        .iter()
        .map(|r| ThreadPost {
            post: r.get::<_, i32>("post") as u32,
            author: r.get("author_id"),
            author_name: r.get("author_name"),
            body: r.get("body"),
            at_ms: millis(r.get("created_at")),
        })
        .collect();
    Ok(Some((thread, posts)))
}

/// Threads, most recently changed first; one more than the limit.
pub async fn thread_list(
    db: &impl GenericClient,
    mesh_id: Uuid,
    waiting_on: Option<Uuid>,
    include_resolved: bool,
    limit: u32,
) -> Result<Vec<Thread>, StoreError> {
    let rows = db
        .query(
            &format!(
                "SELECT {THREAD_COLS} FROM threads t WHERE t.mesh_id = $1
                   AND ($2::uuid IS NULL OR $2 = ANY(t.waiting_on))
                   AND ($3 OR t.resolved_at IS NULL)
                 ORDER BY t.updated_at DESC, t.number DESC LIMIT $4"
            ),
            &[&mesh_id, &waiting_on, &include_resolved, &(limit as i64 + 1)],
        )
        .await?;
    rows.iter().map(thread_from_row).collect()
}

// ---------------------------------------------------------------------------------------------
// Memory and search

fn memory_from_row(r: &Row, ranked: bool) -> Memory {
    Memory {
        number: r.get::<_, i64>("number") as u64,
        body: r.get("body"),
        tags: r.get("tags"),
        author: r.get("author_id"),
        author_name: r.get("author_name"),
        at_ms: millis(r.get("created_at")),
        rank: ranked.then(|| r.get::<_, f32>("rank")),
    }
}

/// Store a memory.
pub async fn memory_insert(
    tx: &Transaction<'_>,
    mesh_id: Uuid,
    body: &str,
    tags: &[String],
    author: (Uuid, &str),
) -> Result<Memory, StoreError> {
    let number = next_number(tx, mesh_id, "memory").await?;
    let row = tx
        .query_one(
            "INSERT INTO memories (mesh_id, number, body, tags, author_id, author_name)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            &[&mesh_id, &num(number), &body, &tags, &author.0, &author.1],
        )
        .await?;
    Ok(memory_from_row(&row, false))
}

/// The author of a memory, locked for deletion.
pub async fn memory_author(tx: &Transaction<'_>, mesh_id: Uuid, number: u64) -> Result<Option<Uuid>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT author_id FROM memories WHERE mesh_id = $1 AND number = $2 FOR UPDATE",
            &[&mesh_id, &num(number)],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Delete a memory.
pub async fn memory_delete(tx: &Transaction<'_>, mesh_id: Uuid, number: u64) -> Result<(), StoreError> {
    tx.execute("DELETE FROM memories WHERE mesh_id = $1 AND number = $2", &[&mesh_id, &num(number)]).await?;
    Ok(())
}

/// Memories matching the query, most relevant first (tags weigh more than text; newer wins
/// ties).
pub async fn recall(
    db: &impl GenericClient,
    mesh_id: Uuid,
    query: &str,
    limit: u32,
) -> Result<Vec<Memory>, StoreError> {
    let rows = db
        .query(
            "SELECT m.*, ts_rank_cd(m.search, q, 32) AS rank
             FROM memories m, websearch_to_tsquery('english', $2) q
             WHERE m.mesh_id = $1 AND m.search @@ q
             ORDER BY rank DESC, m.number DESC LIMIT $3",
            &[&mesh_id, &query, &(limit as i64)],
        )
        .await?;
    Ok(rows.iter().map(|r| memory_from_row(r, true)).collect())
}

/// One ranked search over memories, tasks and thread posts (a thread counts once, by its best
/// post).
pub async fn search(
    db: &impl GenericClient,
    mesh_id: Uuid,
    query: &str,
    limit: u32,
) -> Result<Vec<SearchHit>, StoreError> {
    let rows = db
        .query(
            "WITH q AS (SELECT websearch_to_tsquery('english', $2) AS q)
             SELECT kind, number, title, snippet, rank FROM (
               SELECT 'memory' AS kind, m.number, left(m.body, 80) AS title,
                      ts_headline('english', m.body, q.q, 'StartSel=**,StopSel=**,MaxWords=30,MinWords=10') AS snippet,
                      ts_rank_cd(m.search, q.q, 32) AS rank
               FROM memories m, q WHERE m.mesh_id = $1 AND m.search @@ q.q
               UNION ALL
               SELECT 'task', t.number, t.title,
                      ts_headline('english', t.title || ' — ' || t.description, q.q,
                                  'StartSel=**,StopSel=**,MaxWords=30,MinWords=10'),
                      ts_rank_cd(t.search, q.q, 32)
               FROM tasks t, q WHERE t.mesh_id = $1 AND t.search @@ q.q
               UNION ALL
               (SELECT DISTINCT ON (p.number) 'thread', p.number, th.topic,
                      ts_headline('english', p.body, q.q, 'StartSel=**,StopSel=**,MaxWords=30,MinWords=10'),
                      ts_rank_cd(p.search, q.q, 32)
               FROM thread_posts p JOIN threads th ON th.mesh_id = p.mesh_id AND th.number = p.number, q
               WHERE p.mesh_id = $1 AND p.search @@ q.q
               ORDER BY p.number, ts_rank_cd(p.search, q.q, 32) DESC)
             ) hits ORDER BY rank DESC, number DESC LIMIT $3",
            &[&mesh_id, &query, &(limit as i64)],
        )
        .await?;
    let mut hits = Vec::with_capacity(rows.len());
    for r in rows {
        let kind = match r.get::<_, &str>(0) {
            "memory" => HitKind::Memory,
            "task" => HitKind::Task,
            _ => HitKind::Thread,
        };
        hits.push(SearchHit {
            kind,
            number: r.get::<_, i64>(1) as u64,
            title: r.get(2),
            snippet: r.get(3),
            rank: r.get(4),
        });
    }
    Ok(hits)
}
