//! The coordination commands: `state`, `lock`, `remind`, `task`, `thread`, `remember`,
//! `recall`, `forget`, `search`. Each opens a control connection, makes one or two calls and
//! prints text or `--json`.

use anyhow::{anyhow, bail, Result};
use plexus_client::{address::find_member, Connection};
use plexus_proto::{
    coord::{self as c, Complexity, TaskAction, TaskStatus},
    types::MemberInfo,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    cli::{LockCmd, RemindCmd, StateCmd, TaskCmd, ThreadCmd},
    ctx::{members, millis, parse_priority, Ctx},
    render,
};

/// A coordination command.
pub(crate) enum CoordCmd {
    State(StateCmd),
    Lock(LockCmd),
    Remind(RemindCmd),
    Task(TaskCmd),
    Thread(ThreadCmd),
    Remember { body: String, tags: Vec<String> },
    Recall { query: String, limit: u32 },
    Forget { number: u64 },
    Search { query: String, limit: u32 },
}

/// Run one coordination command.
pub(crate) async fn run(ctx: &Ctx, cmd: CoordCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let p = session.profile().await;
    let members = || async { members(&conn).await };
    let resolve_member =
        |list: &[MemberInfo], who: &str| -> Result<Uuid> { Ok(find_member(list, who, p.member_id)?.member_id) };
    match cmd {
        CoordCmd::State(StateCmd::Get { key }) => {
            let v = conn.call(&c::StateGet { key: key.clone() }).await?;
            match v.entry {
                Some(e) => ctx.emit(render::to_json(&e), || render::state_line(&e)),
                None => bail!("state {key} is not set"),
            }
        }
        CoordCmd::State(StateCmd::Set { key, value, expect_version }) => {
            let e = conn.call(&c::StateSet { key, value, expect_version }).await?;
            ctx.emit(render::to_json(&e), || render::state_line(&e));
        }
        CoordCmd::State(StateCmd::Delete { key, expect_version }) => {
            conn.call(&c::StateDelete { key: key.clone(), expect_version }).await?;
            ctx.emit(json!({ "deleted": key }), || format!("deleted {key}"));
        }
        CoordCmd::State(StateCmd::List { prefix, limit }) => {
            let l = conn.call(&c::StateList { prefix, limit }).await?;
            ctx.emit(json!({ "entries": render::to_json(&l.entries), "more": l.more }), || {
                l.entries.iter().map(render::state_line).collect::<Vec<_>>().join("\n")
            });
        }
        CoordCmd::Lock(LockCmd::Acquire { pattern, shared, ttl, wait, reason }) => {
            let mode = if shared { c::LockMode::Shared } else { c::LockMode::Exclusive };
            let wait_ms = wait.as_deref().map(millis).transpose()?.unwrap_or(0);
            let req = c::LockAcquire { pattern, mode, ttl_ms: millis(&ttl)?, wait_ms, reason };
            let l = conn.call_waiting(&req, std::time::Duration::from_millis(wait_ms)).await?;
            ctx.emit(render::to_json(&l), || format!("locked (token {}): {}", l.token, render::lock_line(&l)));
        }
        CoordCmd::Lock(LockCmd::Renew { token, ttl }) => {
            let l = conn.call(&c::LockRenew { token, ttl_ms: millis(&ttl)? }).await?;
            ctx.emit(render::to_json(&l), || format!("renewed: {}", render::lock_line(&l)));
        }
        CoordCmd::Lock(LockCmd::Release { token, force, reason }) => {
            conn.call(&c::LockRelease { token, force, reason }).await?;
            ctx.emit(json!({ "released": token }), || format!("released {token}"));
        }
        CoordCmd::Lock(LockCmd::List) => {
            let l = conn.call(&c::LockList {}).await?;
            ctx.emit(render::to_json(&l), || {
                let mut out: Vec<String> = l.locks.iter().map(render::lock_line).collect();
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
            let (target, sealing, nonce, ciphertext) = session.seal_for(&to, &text).await?;
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
            ctx.emit(render::to_json(&r), || format!("scheduled {}", render::reminder_line(&r)));
        }
        CoordCmd::Remind(RemindCmd::List { all, done }) => {
            let l = conn.call(&c::RemindList { all, include_done: done }).await?;
            ctx.emit(render::to_json(&l), || {
                if l.reminders.is_empty() {
                    return "no reminders".into();
                }
                l.reminders.iter().map(render::reminder_line).collect::<Vec<_>>().join("\n")
            });
        }
        CoordCmd::Remind(RemindCmd::Cancel { number }) => {
            let r = conn.call(&c::RemindCancel { number }).await?;
            ctx.emit(render::to_json(&r), || format!("cancelled #{}", r.number));
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
                    ctx.emit(render::to_json(&t), || render::thread_line(&t, &name_of));
                }
                ThreadCmd::Reply { number, body, waiting_on } => {
                    let waiting_on = waiting_on.map(|w| resolve_all(&w)).transpose()?;
                    let t = conn.call(&c::ThreadReply { number, body, waiting_on }).await?;
                    ctx.emit(render::to_json(&t), || render::thread_line(&t, &name_of));
                }
                ThreadCmd::Resolve { number } => {
                    let t = conn.call(&c::ThreadResolve { number }).await?;
                    ctx.emit(render::to_json(&t), || render::thread_line(&t, &name_of));
                }
                ThreadCmd::Show { number } => {
                    let d = conn.call(&c::ThreadGet { number }).await?;
                    ctx.emit(render::to_json(&d), || {
                        let mut out = vec![render::thread_line(&d.thread, &name_of)];
                        out.extend(d.posts.iter().map(|p| format!("  [{}] {}: {}", p.post, p.author_name, p.body)));
                        out.join("\n")
                    });
                }
                ThreadCmd::List { mine, all, limit } => {
                    let l = conn.call(&c::ThreadList { waiting_on_me: mine, include_resolved: all, limit }).await?;
                    ctx.emit(json!({ "threads": render::to_json(&l.threads), "more": l.more }), || {
                        l.threads.iter().map(|t| render::thread_line(t, &name_of)).collect::<Vec<_>>().join("\n")
                    });
                }
            }
        }
        CoordCmd::Remember { body, tags } => {
            let m = conn.call(&c::Remember { body, tags }).await?;
            ctx.emit(render::to_json(&m), || format!("remembered #{}", m.number));
        }
        CoordCmd::Recall { query, limit } => {
            let l = conn.call(&c::Recall { query, limit }).await?;
            ctx.emit(json!({ "memories": render::to_json(&l.memories) }), || {
                l.memories.iter().map(render::memory_line).collect::<Vec<_>>().join("\n")
            });
        }
        CoordCmd::Forget { number } => {
            conn.call(&c::Forget { number }).await?;
            ctx.emit(json!({ "forgotten": number }), || format!("forgot #{number}"));
        }
        CoordCmd::Search { query, limit } => {
            let l = conn.call(&c::Search { query, limit }).await?;
            ctx.emit(json!({ "hits": render::to_json(&l.hits) }), || {
                l.hits.iter().map(render::hit_line).collect::<Vec<_>>().join("\n")
            });
        }
    }
    session.close().await;
    Ok(())
}

async fn task<F, Fut>(
    ctx: &Ctx,
    conn: &Connection,
    cmd: TaskCmd,
    members: &F,
    resolve_member: &dyn Fn(&[MemberInfo], &str) -> Result<Uuid>,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<MemberInfo>>>,
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
            ctx.emit(render::to_json(&t), || format!("created {}", render::task_line(&t)));
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
            ctx.emit(json!({ "tasks": render::to_json(&l.tasks), "more": l.more }), || {
                l.tasks.iter().map(render::task_line).collect::<Vec<_>>().join("\n")
            });
            return Ok(());
        }
        TaskCmd::Show { number } => {
            let d = conn.call(&c::TaskGet { number }).await?;
            ctx.emit(render::to_json(&d), || {
                let t = &d.task;
                let mut out = vec![render::task_line(t)];
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
    ctx.emit(render::to_json(&t), || render::task_line(&t));
    Ok(())
}
