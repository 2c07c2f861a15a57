//! `plexus state|lock|task|thread|remember|recall|forget|search`: the coordination commands. Each
//! opens a control connection, makes one or two calls and prints text or `--json`.

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use plexus_proto::coord::{self as c, Complexity, HitKind, StateEntry, Task, TaskAction, TaskStatus, Thread};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::commands::{control, find_member, parse_duration, parse_priority, Ctx};

#[derive(Subcommand)]
pub enum StateCmd {
    /// Read a key.
    Get {
        /// Key.
        key: String,
    },
    /// Write a key (with --expect-version: only if it is at that version; 0 = must not exist).
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Compare-and-set guard.
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// Delete a key.
    Delete {
        /// Key.
        key: String,
        /// Compare-and-delete guard.
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// List keys by prefix.
    List {
        /// Prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Most keys shown.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum LockCmd {
    /// Lock a path or glob (`*` within a segment, `?` one character, `**` any segments).
    Acquire {
        /// Path or glob, e.g. src/auth/login.rs or src/auth/**.
        pattern: String,
        /// Shared instead of exclusive (others may hold overlapping shared locks).
        #[arg(long)]
        shared: bool,
        /// Lifetime unless renewed, e.g. 90s, 10m, 2h.
        #[arg(long, default_value = "5m")]
        ttl: String,
        /// Wait in the queue this long if it is held (e.g. 30s); default: fail at once.
        #[arg(long)]
        wait: Option<String>,
        /// Why (shown to others).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Extend a lock you hold.
    Renew {
        /// Token printed by acquire.
        token: u64,
        /// New lifetime from now.
        #[arg(long, default_value = "5m")]
        ttl: String,
    },
    /// Release a lock you hold; --force (admins) releases anyone's and tells the holder.
    Release {
        /// Token.
        token: u64,
        /// Admin force-release.
        #[arg(long)]
        force: bool,
        /// Why (shown to the holder on force-release).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// List held locks and the queue.
    List,
}

#[derive(Subcommand)]
pub enum RemindCmd {
    /// Schedule a reminder: exactly one of --in, --at or --cron.
    Add {
        /// Text (sealed end to end; only the label is visible to the broker).
        text: String,
        /// After this long, e.g. 90s, 20m, 2h.
        #[arg(long = "in", conflicts_with_all = ["at", "cron"])]
        after: Option<String>,
        /// At this moment (RFC 3339, e.g. 2026-11-21T17:00:00+01:00).
        #[arg(long, conflicts_with = "cron")]
        at: Option<String>,
        /// Repeatedly, by a cron expression (5 fields, or 6 with seconds first).
        #[arg(long)]
        cron: Option<String>,
        /// Time zone of --cron (IANA name).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Who: `me` (default), a member name, or @group.
        #[arg(long, default_value = "me")]
        to: String,
        /// now, next or low.
        #[arg(long, default_value = "next")]
        priority: String,
        /// Label shown in lists (default: the start of the text). Not sealed.
        #[arg(long)]
        label: Option<String>,
    },
    /// List your reminders (--all: everyone's).
    List {
        /// Everyone's.
        #[arg(long)]
        all: bool,
        /// Include fired and cancelled ones.
        #[arg(long)]
        done: bool,
    },
    /// Cancel a reminder (yours, or any as an admin).
    Cancel {
        /// Reminder number.
        number: u64,
    },
}

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Create a task.
    Create {
        /// Title.
        title: String,
        /// Description.
        #[arg(long, short, default_value = "")]
        description: String,
        /// simple, medium, complex or critical.
        #[arg(long)]
        complexity: Option<String>,
        /// Files it touches (comma-separated).
        #[arg(long, value_delimiter = ',')]
        files: Vec<String>,
        /// Tags (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Task numbers that must be done first (comma-separated).
        #[arg(long, value_delimiter = ',')]
        depends_on: Vec<u64>,
        /// Assign to a member (name or id).
        #[arg(long)]
        assign: Option<String>,
    },
    /// List tasks (newest first).
    List {
        /// Only these statuses (comma-separated: todo,in_progress,review,done,blocked,cancelled).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only tasks assigned to this member (name or id; `me` for yourself).
        #[arg(long)]
        assignee: Option<String>,
        /// Only tasks with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Most tasks shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a task and its history.
    Show {
        /// Task number.
        number: u64,
    },
    /// Claim a todo task (exactly one claimer wins).
    Claim {
        /// Task number.
        number: u64,
    },
    /// Give a claimed task back.
    Release {
        /// Task number.
        number: u64,
    },
    /// Submit your task for review.
    Submit {
        /// Task number.
        number: u64,
        /// Notes for the reviewer.
        #[arg(long, short)]
        notes: Option<String>,
    },
    /// Approve a task in review (owner or admin).
    Approve {
        /// Task number.
        number: u64,
    },
    /// Send a task in review back with feedback (owner or admin).
    RequestChanges {
        /// Task number.
        number: u64,
        /// What to change.
        feedback: String,
    },
    /// Mark a task blocked.
    Block {
        /// Task number.
        number: u64,
        /// Why.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Unblock a task.
    Unblock {
        /// Task number.
        number: u64,
    },
    /// Cancel a task (owner or admin).
    Cancel {
        /// Task number.
        number: u64,
        /// Why.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Assign a todo task to a member (owner or admin).
    Assign {
        /// Task number.
        number: u64,
        /// Member name or id.
        who: String,
    },
}

#[derive(Subcommand)]
pub enum ThreadCmd {
    /// Open a thread.
    Open {
        /// Topic.
        topic: String,
        /// First post.
        body: String,
        /// Members who must answer (comma-separated names or ids).
        #[arg(long, value_delimiter = ',')]
        waiting_on: Vec<String>,
        /// now, next or low.
        #[arg(long, default_value = "next")]
        priority: String,
    },
    /// Reply in a thread (it then waits on the previous poster unless --waiting-on is given).
    Reply {
        /// Thread number.
        number: u64,
        /// Text.
        body: String,
        /// Members who must answer next (comma-separated names or ids).
        #[arg(long, value_delimiter = ',')]
        waiting_on: Option<Vec<String>>,
    },
    /// Resolve a thread.
    Resolve {
        /// Thread number.
        number: u64,
    },
    /// Show a thread with its posts.
    Show {
        /// Thread number.
        number: u64,
    },
    /// List open threads.
    List {
        /// Only threads waiting on you.
        #[arg(long)]
        mine: bool,
        /// Include resolved threads.
        #[arg(long)]
        all: bool,
        /// Most threads shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// A coordination command.
pub enum CoordCmd {
    /// `state …`
    State(StateCmd),
    /// `lock …`
    Lock(LockCmd),
    /// `remind …`
    Remind(RemindCmd),
    /// `task …`
    Task(TaskCmd),
    /// `thread …`
    Thread(ThreadCmd),
    /// `remember`
    Remember {
        /// Text.
        body: String,
        /// Tags.
        tags: Vec<String>,
    },
    /// `recall`
    Recall {
        /// Query.
        query: String,
        /// Most shown.
        limit: u32,
    },
    /// `forget`
    Forget {
        /// Memory number.
        number: u64,
    },
    /// `search`
    Search {
        /// Query.
        query: String,
        /// Most shown.
        limit: u32,
    },
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn state_line(e: &StateEntry) -> String {
    format!("{} = {}  (v{}, by {})", e.key, e.value, e.version, e.updated_by_name)
}

fn lock_line(l: &c::LockInfo) -> String {
    let reason = l.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default();
    let left = l.expires_at_ms.saturating_sub(crate::commands::now_ms()) / 1000;
    format!("{:<5} {:<9} {} @{} (expires in {left}s){reason}", l.token, l.mode.as_str(), l.pattern, l.holder_name)
}

fn reminder_line(r: &c::Reminder) -> String {
    let when = match (&r.schedule, r.next_fire_at_ms) {
        (c::Schedule::Cron { expr, tz }, Some(next)) => {
            format!("cron {expr} ({tz}), next in {}s", next.saturating_sub(crate::commands::now_ms()) / 1000)
        }
        (_, Some(next)) => format!("in {}s", next.saturating_sub(crate::commands::now_ms()) / 1000),
        (_, None) if r.cancelled => "cancelled".into(),
        (_, None) => format!("done (fired {}×)", r.fire_count),
    };
    format!("#{:<4} {} — {} (by {})", r.number, r.label.as_deref().unwrap_or("(no label)"), when, r.creator_name)
}

fn millis(d: &str) -> Result<u64> {
    Ok(parse_duration(d)?.as_millis() as u64)
}

fn task_line(t: &Task) -> String {
    let who = t.assignee_name.as_deref().map(|n| format!(" @{n}")).unwrap_or_default();
    format!("#{:<4} {:<11} {}{}", t.number, t.status.as_str(), t.title, who)
}

fn thread_line(t: &Thread, names: &dyn Fn(&Uuid) -> String) -> String {
    let state = if t.resolved {
        "resolved".to_owned()
    } else if t.waiting_on.is_empty() {
        "open".to_owned()
    } else {
        format!("waiting on {}", t.waiting_on.iter().map(names).collect::<Vec<_>>().join(", "))
    };
    format!("#{:<4} {} — {} ({} posts, by {})", t.number, t.topic, state, t.posts, t.author_name)
}

/// Run one coordination command.
pub async fn run(ctx: &Ctx, cmd: CoordCmd) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    let members = || async { conn.call(&plexus_proto::ops::Members {}).await.map(|l| l.members) };
    let resolve_member = |list: &[plexus_proto::types::MemberInfo], who: &str| -> Result<Uuid> {
        if who == "me" {
            return Ok(p.member_id);
        }
        Ok(find_member(list, who)?.member_id)
    };
    match cmd {
        CoordCmd::State(StateCmd::Get { key }) => {
            let v = conn.call(&c::StateGet { key: key.clone() }).await?;
            match v.entry {
                Some(e) => ctx.emit(to_json(&e), || state_line(&e)),
                None => bail!("state {key} is not set"),
            }
        }
        CoordCmd::State(StateCmd::Set { key, value, expect_version }) => {
            let e = conn.call(&c::StateSet { key, value, expect_version }).await?;
            ctx.emit(to_json(&e), || state_line(&e));
        }
        CoordCmd::State(StateCmd::Delete { key, expect_version }) => {
            conn.call(&c::StateDelete { key: key.clone(), expect_version }).await?;
            ctx.emit(json!({ "deleted": key }), || format!("deleted {key}"));
        }
        CoordCmd::State(StateCmd::List { prefix, limit }) => {
            let l = conn.call(&c::StateList { prefix, limit }).await?;
            ctx.emit(json!({ "entries": to_json(&l.entries), "more": l.more }), || {
                l.entries.iter().map(state_line).collect::<Vec<_>>().join("\n")
            });
        }
        CoordCmd::Lock(LockCmd::Acquire { pattern, shared, ttl, wait, reason }) => {
            let mode = if shared { c::LockMode::Shared } else { c::LockMode::Exclusive };
            let wait_ms = wait.as_deref().map(millis).transpose()?.unwrap_or(0);
            let req = c::LockAcquire { pattern, mode, ttl_ms: millis(&ttl)?, wait_ms, reason };
            let l = conn.call_waiting(&req, std::time::Duration::from_millis(wait_ms)).await?;
            ctx.emit(to_json(&l), || format!("locked (token {}): {}", l.token, lock_line(&l)));
        }
        CoordCmd::Lock(LockCmd::Renew { token, ttl }) => {
            let l = conn.call(&c::LockRenew { token, ttl_ms: millis(&ttl)? }).await?;
            ctx.emit(to_json(&l), || format!("renewed: {}", lock_line(&l)));
        }
        CoordCmd::Lock(LockCmd::Release { token, force, reason }) => {
            conn.call(&c::LockRelease { token, force, reason }).await?;
            ctx.emit(json!({ "released": token }), || format!("released {token}"));
        }
        CoordCmd::Lock(LockCmd::List) => {
            let l = conn.call(&c::LockList {}).await?;
            ctx.emit(to_json(&l), || {
                let mut out: Vec<String> = l.locks.iter().map(lock_line).collect();
                out.extend(
                    l.waiters.iter().map(|w| format!("  queued: {} {} @{}", w.mode.as_str(), w.pattern, w.name)),
                );
                if out.is_empty() {
                    out.push("no locks held".into());
                }
                out.join("\n")
            });
        }
        CoordCmd::Remind(RemindCmd::Add { text, after, at, cron, tz, to, priority, label }) => {
            let schedule = match (after, at, cron) {
                (Some(d), None, None) => c::Schedule::In { after_ms: millis(&d)? },
                (None, Some(t), None) => {
                    let at = chrono::DateTime::parse_from_rfc3339(&t)
                        .map_err(|e| anyhow!("--at {t:?} is not RFC 3339 ({e}); e.g. 2026-11-21T17:00:00Z"))?;
                    c::Schedule::At { at_ms: at.timestamp_millis().max(0) as u64 }
                }
                (None, None, Some(expr)) => c::Schedule::Cron { expr, tz },
                _ => bail!("give exactly one of --in, --at or --cron"),
            };
            let session = p.session_key().map_err(|e| anyhow!(e))?;
            let (target, sealed) = if let Some(group) = to.strip_prefix('@') {
                let key =
                    p.mesh_key().ok_or_else(|| anyhow!("no mesh key yet: a member holding it must be online once"))?;
                let sealed =
                    plexus_cli::seal::seal_for(plexus_cli::seal::SealTo::Mesh(&key), &session, text.as_bytes())?;
                (plexus_proto::types::Target::Group(group.to_owned()), sealed)
            } else {
                let list = members().await?;
                let who = resolve_member(&list, &to)?;
                let m = list.iter().find(|m| m.member_id == who).ok_or_else(|| anyhow!("no member {to:?}"))?;
                let sealed =
                    plexus_cli::seal::seal_for(plexus_cli::seal::SealTo::Member(&m.pubkey), &session, text.as_bytes())?;
                (plexus_proto::types::Target::Member(who), sealed)
            };
            let (sealing, nonce, ciphertext) = sealed;
            // The body is sealed; the broker sees a label only when the user gives one.
            let req = c::RemindCreate {
                schedule,
                target,
                priority: parse_priority(&priority)?,
                sealing,
                nonce,
                ciphertext,
                label,
            };
            let r = conn.call(&req).await?;
            ctx.emit(to_json(&r), || format!("scheduled {}", reminder_line(&r)));
        }
        CoordCmd::Remind(RemindCmd::List { all, done }) => {
            let l = conn.call(&c::RemindList { all, include_done: done }).await?;
            ctx.emit(to_json(&l), || {
                if l.reminders.is_empty() {
                    return "no reminders".into();
                }
                l.reminders.iter().map(reminder_line).collect::<Vec<_>>().join("\n")
            });
        }
        CoordCmd::Remind(RemindCmd::Cancel { number }) => {
            let r = conn.call(&c::RemindCancel { number }).await?;
            ctx.emit(to_json(&r), || format!("cancelled #{}", r.number));
        }
        CoordCmd::Task(cmd) => task(ctx, &conn, cmd, &members, &resolve_member).await?,
        CoordCmd::Thread(cmd) => {
            let list = members().await?;
            let name_of = |id: &Uuid| {
                list.iter()
                    .find(|m| m.member_id == *id)
                    .map(|m| m.display_name.clone())
                    .unwrap_or_else(|| id.to_string())
            };
            let resolve_all =
                |names: &[String]| -> Result<Vec<Uuid>> { names.iter().map(|n| resolve_member(&list, n)).collect() };
            match cmd {
                ThreadCmd::Open { topic, body, waiting_on, priority } => {
                    let t = conn
                        .call(&c::ThreadOpen {
                            topic,
                            body,
                            waiting_on: resolve_all(&waiting_on)?,
                            priority: parse_priority(&priority)?,
                        })
                        .await?;
                    ctx.emit(to_json(&t), || thread_line(&t, &name_of));
                }
                ThreadCmd::Reply { number, body, waiting_on } => {
                    let waiting_on = waiting_on.map(|w| resolve_all(&w)).transpose()?;
                    let t = conn.call(&c::ThreadReply { number, body, waiting_on }).await?;
                    ctx.emit(to_json(&t), || thread_line(&t, &name_of));
                }
                ThreadCmd::Resolve { number } => {
                    let t = conn.call(&c::ThreadResolve { number }).await?;
                    ctx.emit(to_json(&t), || thread_line(&t, &name_of));
                }
                ThreadCmd::Show { number } => {
                    let d = conn.call(&c::ThreadGet { number }).await?;
                    ctx.emit(to_json(&d), || {
                        let mut out = vec![thread_line(&d.thread, &name_of)];
                        out.extend(d.posts.iter().map(|p| format!("  [{}] {}: {}", p.post, p.author_name, p.body)));
                        out.join("\n")
                    });
                }
                ThreadCmd::List { mine, all, limit } => {
                    let l = conn.call(&c::ThreadList { waiting_on_me: mine, include_resolved: all, limit }).await?;
                    ctx.emit(json!({ "threads": to_json(&l.threads), "more": l.more }), || {
                        l.threads.iter().map(|t| thread_line(t, &name_of)).collect::<Vec<_>>().join("\n")
                    });
                }
            }
        }
        CoordCmd::Remember { body, tags } => {
            let m = conn.call(&c::Remember { body, tags }).await?;
            ctx.emit(to_json(&m), || format!("remembered #{}", m.number));
        }
        CoordCmd::Recall { query, limit } => {
            let l = conn.call(&c::Recall { query, limit }).await?;
            ctx.emit(json!({ "memories": to_json(&l.memories) }), || {
                l.memories
                    .iter()
                    .map(|m| {
                        let tags = if m.tags.is_empty() { String::new() } else { format!(" [{}]", m.tags.join(", ")) };
                        format!("#{:<4} {}{}  (by {})", m.number, m.body, tags, m.author_name)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        CoordCmd::Forget { number } => {
            conn.call(&c::Forget { number }).await?;
            ctx.emit(json!({ "forgotten": number }), || format!("forgot #{number}"));
        }
        CoordCmd::Search { query, limit } => {
            let l = conn.call(&c::Search { query, limit }).await?;
            ctx.emit(json!({ "hits": to_json(&l.hits) }), || {
                l.hits
                    .iter()
                    .map(|h| {
                        let kind = match h.kind {
                            HitKind::Memory => "memory",
                            HitKind::Task => "task",
                            HitKind::Thread => "thread",
                        };
                        format!("{kind:<6} #{:<4} {} — {}", h.number, h.title, h.snippet)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    conn.close().await;
    Ok(())
}

async fn task<F, Fut>(
    ctx: &Ctx,
    conn: &plexus_cli::client::Connection,
    cmd: TaskCmd,
    members: &F,
    resolve_member: &dyn Fn(&[plexus_proto::types::MemberInfo], &str) -> Result<Uuid>,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<plexus_proto::types::MemberInfo>, plexus_cli::client::ClientError>>,
{
    let step =
        |number: u64, action: TaskAction, note: Option<String>| c::TaskUpdate { number, action, note, assignee: None };
    let update = match cmd {
        TaskCmd::Create { title, description, complexity, files, tags, depends_on, assign } => {
            let complexity = complexity
                .map(|s| {
                    Complexity::parse(&s).ok_or_else(|| anyhow!("complexity is simple, medium, complex or critical"))
                })
                .transpose()?;
            let assignee = match assign {
                Some(who) => Some(resolve_member(&members().await?, &who)?),
                None => None,
            };
            let t =
                conn.call(&c::TaskCreate { title, description, complexity, files, tags, depends_on, assignee }).await?;
            ctx.emit(to_json(&t), || format!("created {}", task_line(&t)));
            return Ok(());
        }
        TaskCmd::List { status, assignee, tag, limit } => {
            let status = status
                .iter()
                .map(|s| TaskStatus::parse(s).ok_or_else(|| anyhow!("unknown status {s:?}")))
                .collect::<Result<Vec<_>>>()?;
            let assignee = match assignee {
                Some(who) => Some(resolve_member(&members().await?, &who)?),
                None => None,
            };
            let l = conn.call(&c::TaskList { status, assignee, owner: None, tag, limit }).await?;
            ctx.emit(json!({ "tasks": to_json(&l.tasks), "more": l.more }), || {
                l.tasks.iter().map(task_line).collect::<Vec<_>>().join("\n")
            });
            return Ok(());
        }
        TaskCmd::Show { number } => {
            let d = conn.call(&c::TaskGet { number }).await?;
            ctx.emit(to_json(&d), || {
                let t = &d.task;
                let mut out = vec![task_line(t)];
                if !t.description.is_empty() {
                    out.push(format!("  {}", t.description));
                }
                if let Some(f) = &t.feedback {
                    out.push(format!("  feedback: {f}"));
                }
                for s in &d.history {
                    let note = s.note.as_deref().map(|n| format!(" — {n}")).unwrap_or_default();
                    out.push(format!("  {} {} → {}{}", s.actor_name, s.action, s.to.as_str(), note));
                }
                out.join("\n")
            });
            return Ok(());
        }
        TaskCmd::Claim { number } => step(number, TaskAction::Claim, None),
        TaskCmd::Release { number } => step(number, TaskAction::Release, None),
        TaskCmd::Submit { number, notes } => step(number, TaskAction::Submit, notes),
        TaskCmd::Approve { number } => step(number, TaskAction::Approve, None),
        TaskCmd::RequestChanges { number, feedback } => step(number, TaskAction::RequestChanges, Some(feedback)),
        TaskCmd::Block { number, reason } => step(number, TaskAction::Block, reason),
        TaskCmd::Unblock { number } => step(number, TaskAction::Unblock, None),
        TaskCmd::Cancel { number, reason } => step(number, TaskAction::Cancel, reason),
        TaskCmd::Assign { number, who } => {
            let member = resolve_member(&members().await?, &who)?;
            c::TaskUpdate { number, action: TaskAction::Assign, note: None, assignee: Some(member) }
        }
    };
    let t = conn.call(&update).await?;
    ctx.emit(to_json(&t), || task_line(&t));
    Ok(())
}
