//! `plexus hook <event>`: an agent hook event (Claude Code's SessionStart, UserPromptSubmit,
//! PreToolUse, PostToolUse, PermissionRequest, Stop, Notification, SessionEnd).
//!
//! Every event is written to the session's stream spool (`plexus_client::stream`) and reported
//! as a status with source `hook`. The hook finds its agent's `plexus mcp` (see
//! `plexus_client::agent`) and asks it over its socket to report the status and flush the
//! spool; with no socket answering it connects to the broker directly as a control connection
//! of that session. With no registration there is no agent session and it does nothing.
//!
//! Two events answer the agent:
//! - `PreToolUse` of a file-editing tool asks which locks the paths step on: a path another
//!   session holds exclusively is denied (mesh setting `lock_enforcement = enforce`, the
//!   default) or warned about (`advisory`), naming holder, pattern and token.
//! - `PermissionRequest` asks the people who may drive the session (web app, `plexus approve`)
//!   and prints their decision; with no answer within `PLEXUS_APPROVAL_WAIT_SECS` (default
//!   120) it prints nothing and the agent asks locally — never an automatic allow.
//!
//! Otherwise a hook prints nothing on stdout and exits 0: it never fails the agent.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result};
use plexus_client::{
    agent::{self, HookRequest, Registration},
    stream::{self, Spool},
    Profile,
};
use plexus_proto::{
    coord::LockMode,
    limits::MAX_ENTRY_TEXT,
    ops,
    room::{ApprovalRequest, ApprovalWait, EntryBody, EntryKind, LockCheck, LockConflicts},
    types::{SessionMode, Status, StatusSource},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ctx::{session_profile, Ctx};

/// The status an agent hook event means, if any.
pub(crate) fn status_for(event: &str) -> Option<Status> {
    match event {
        "SessionStart" | "Stop" | "Notification" | "SessionEnd" => Some(Status::Idle),
        "UserPromptSubmit" | "PreToolUse" | "PostToolUse" | "PermissionRequest" => Some(Status::Working),
        _ => None,
    }
}

/// Tools whose input names files they change.
const EDIT_TOOLS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn cut(text: Option<String>) -> (Option<String>, bool) {
    match text {
        Some(t) => {
            let (t, cut) = stream::truncate(&t, MAX_ENTRY_TEXT);
            (Some(t), cut)
        }
        None => (None, false),
    }
}

/// The stream entries a hook event records (transcript text is added by the caller).
pub(crate) fn entries_for(event: &str, input: &Value) -> Vec<(EntryKind, EntryBody)> {
    let s = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_owned);
    let cwd = s("cwd");
    let tool = s("tool_name");
    match event {
        "SessionStart" => vec![(EntryKind::SessionStart, EntryBody { text: s("source"), cwd, ..EntryBody::default() })],
        "SessionEnd" => vec![(EntryKind::SessionEnd, EntryBody { text: s("reason"), cwd, ..EntryBody::default() })],
        "UserPromptSubmit" => {
            let (text, truncated) = cut(s("prompt"));
            vec![(EntryKind::Prompt, EntryBody { text, truncated, cwd, ..EntryBody::default() })]
        }
        "PreToolUse" => {
            let (input, truncated) = cut(text_of(input.get("tool_input")));
            vec![(EntryKind::ToolCall, EntryBody { tool, input, truncated, cwd, ..EntryBody::default() })]
        }
        "PostToolUse" => {
            let (text, truncated) = cut(text_of(input.get("tool_response")));
            vec![(EntryKind::ToolResult, EntryBody { tool, text, truncated, cwd, ..EntryBody::default() })]
        }
        "Notification" => vec![(EntryKind::Notice, EntryBody { text: s("message"), cwd, ..EntryBody::default() })],
        "Stop" => vec![(EntryKind::Status, EntryBody { outcome: Some("idle".into()), ..EntryBody::default() })],
        _ => Vec::new(),
    }
}

/// Assistant text in new transcript lines (Claude Code's JSONL: `{"type":"assistant",
/// "message":{"content":[{"type":"text","text":…}, …]}}`).
pub(crate) fn assistant_entries(lines: &[String]) -> Vec<(EntryKind, EntryBody)> {
    let mut out = Vec::new();
    for line in lines {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v.get("type").and_then(Value::as_str) != Some("assistant") {
            continue;
        }
        let Some(content) = v.pointer("/message/content").and_then(Value::as_array) else { continue };
        for part in content {
            if part.get("type").and_then(Value::as_str) == Some("text") {
                if let Some(t) = part.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty()) {
                    let (text, truncated) = stream::truncate(t, MAX_ENTRY_TEXT);
                    out.push((EntryKind::Assistant, EntryBody { text: Some(text), truncated, ..EntryBody::default() }));
                }
            }
        }
    }
    out
}

/// `plexus hook <event>`.
pub(crate) async fn run(ctx: &Ctx, event: &str) -> Result<()> {
    // The agent sends its hook JSON on stdin; drain it whatever happens.
    let mut raw = String::new();
    let _ = std::io::stdin().read_to_string(&mut raw);
    let input: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let agent_session = input.get("session_id").and_then(Value::as_str).map(str::to_owned);
    let Some(reg) = agent::find_registration(&ctx.home, agent_session.as_deref()) else {
        tracing::debug!("no plexus mcp registered for this agent; nothing to report");
        return Ok(());
    };
    let spool = Spool::open(&ctx.home, &reg.profile, reg.session_id);
    let mut entries = Vec::new();
    // What the assistant wrote before this event is in the transcript by now: it goes first.
    if event != "SessionStart" {
        if let Some(path) = input.get("transcript_path").and_then(Value::as_str) {
            entries.extend(assistant_entries(&spool.transcript_lines(Path::new(path)).unwrap_or_default()));
        }
    }
    entries.extend(entries_for(event, &input));
    match spool.push(entries) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(dropped = n, "the stream spool is full; entries were dropped (reported in the stream)"),
        Err(e) => tracing::warn!(error = %e, "could not write the stream spool"),
    }

    let lock_paths = if event == "PreToolUse" { edit_paths(&input) } else { None };
    let req = HookRequest { status: status_for(event), agent_session: agent_session.clone(), flush: true, lock_paths };
    let conflicts = report(ctx, &reg, &spool, req).await;
    let answer = match event {
        "PreToolUse" => conflicts.and_then(|c| guard_edit(&reg, &input, &c)),
        "PermissionRequest" => {
            let answer = ask_people(ctx, &reg, &spool, &input).await;
            // The decision's entry goes out now, not at the next hook.
            report(ctx, &reg, &spool, HookRequest { status: None, agent_session, flush: true, lock_paths: None }).await;
            answer
        }
        _ => None,
    };
    if let Some(answer) = answer {
        println!("{answer}");
    }
    Ok(())
}

/// Report the status, flush the spool and check locks: through the agent's server, else
/// directly. The lock answer, if asked and known.
async fn report(ctx: &Ctx, reg: &Registration, spool: &Spool, req: HookRequest) -> Option<LockConflicts> {
    match tokio::time::timeout(Duration::from_secs(2), agent::ask(&reg.socket, &req)).await {
        Ok(Ok(reply)) if reply.ok => return reply.locks,
        Ok(Ok(reply)) => tracing::debug!(error = ?reply.error, "the agent's server refused the hook"),
        Ok(Err(e)) => tracing::debug!(error = %e, "hook socket unavailable; connecting directly"),
        Err(_) => tracing::debug!("hook socket timed out; connecting directly"),
    }
    let direct = async {
        let (p, conn) = connect(ctx, reg).await?;
        if let Some(status) = req.status {
            conn.call(&ops::SetStatus { status, source: StatusSource::Hook }).await?;
        }
        let locks = match req.lock_paths {
            Some(paths) => Some(conn.call(&LockCheck { paths }).await?),
            None => None,
        };
        if let Err(e) = stream::flush(&conn, &p, reg.session_id, spool).await {
            tracing::debug!(error = %e, "stream entries wait in the spool");
        }
        conn.close().await;
        anyhow::Ok(locks)
    };
    match tokio::time::timeout(Duration::from_secs(3), direct).await {
        Ok(Ok(locks)) => locks,
        Ok(Err(e)) => {
            tracing::debug!(error = %format!("{e:#}"), "not reported now; the spool keeps the entries");
            None
        }
        Err(_) => {
            tracing::debug!("the broker is slow; the spool keeps the entries");
            None
        }
    }
}

/// A control connection of the agent's session.
async fn connect(ctx: &Ctx, reg: &Registration) -> Result<(Profile, plexus_client::Connection)> {
    let base = Profile::load(&ctx.home, Some(&reg.profile))?;
    let p = agent::agent_profile(&ctx.home, &base, &reg.identity)?;
    let sp = session_profile(&p, Status::Idle, &[]);
    let (conn, _) = plexus_client::session::connect(&p, SessionMode::Control, None, sp).await?;
    Ok((p, conn))
}

/// The files a file-editing tool call would change: Claude Code's `file_path` /
/// `notebook_path`, or the files a Codex `apply_patch` names.
fn edited_files(input: &Value) -> Vec<String> {
    let tool = input.get("tool_name").and_then(Value::as_str).unwrap_or_default();
    let ti = input.get("tool_input").unwrap_or(&Value::Null);
    if EDIT_TOOLS.contains(&tool) {
        return ti
            .get("file_path")
            .or_else(|| ti.get("notebook_path"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .into_iter()
            .collect();
    }
    if tool != "apply_patch" {
        return Vec::new();
    }
    let patch =
        ti.as_str().or_else(|| ["command", "patch", "input"].iter().find_map(|k| ti.get(*k).and_then(Value::as_str)));
    patch
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            ["*** Update File: ", "*** Add File: ", "*** Delete File: ", "*** Move to: "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
                .map(|f| f.trim().to_owned())
        })
        .collect()
}

/// The paths a file-editing tool call would change, as lock patterns may name them.
fn edit_paths(input: &Value) -> Option<Vec<String>> {
    let cwd = input.get("cwd").and_then(Value::as_str);
    let paths: Vec<String> = edited_files(input).iter().flat_map(|f| lock_paths(f, cwd)).collect();
    (!paths.is_empty()).then_some(paths)
}

/// The repository-relative form of a path (as lock patterns are written), and the path as given.
fn lock_paths(file: &str, cwd: Option<&str>) -> Vec<String> {
    let path = match (Path::new(file).is_absolute(), cwd) {
        (false, Some(cwd)) => Path::new(cwd).join(file),
        _ => PathBuf::from(file),
    };
    let mut out = vec![file.to_owned()];
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d.join(".git").exists() {
            if let Ok(rel) = path.strip_prefix(d) {
                out.push(rel.to_string_lossy().into_owned());
            }
            break;
        }
        dir = d.parent();
    }
    out.dedup();
    out
}

/// `PreToolUse`: deny (or warn about) an edit to a path another session holds exclusively.
fn guard_edit(reg: &Registration, input: &Value, conflicts: &LockConflicts) -> Option<String> {
    let file = edited_files(input).join(", ");
    let l = conflicts.locks.iter().find(|l| l.holder_session != reg.session_id && l.mode == LockMode::Exclusive)?;
    let why = format!(
        "{file} is locked: {} holds {} exclusively (token {}{}). Coordinate with them (plexus send) or wait for the lock (lock acquire --wait).",
        l.holder_name,
        l.pattern,
        l.token,
        l.reason.as_deref().map(|r| format!(", \"{r}\"")).unwrap_or_default()
    );
    Some(if conflicts.enforcement == "advisory" {
        json!({ "systemMessage": format!("plexus (advisory): {why}") }).to_string()
    } else {
        json!({ "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": why,
        }})
        .to_string()
    })
}

/// How long a permission request waits for a person.
fn approval_wait() -> Duration {
    let secs = std::env::var("PLEXUS_APPROVAL_WAIT_SECS").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(120);
    Duration::from_secs(secs.clamp(1, 3600))
}

/// `PermissionRequest`: ask the people who may drive this session; their decision as Claude
/// Code's hook output, or nothing (the agent asks locally) when nobody answered in time.
async fn ask_people(ctx: &Ctx, reg: &Registration, spool: &Spool, input: &Value) -> Option<String> {
    let tool = input.get("tool_name").and_then(Value::as_str).map(str::to_owned);
    let (summary, truncated) = cut(text_of(input.get("tool_input")));
    let cwd = input.get("cwd").and_then(Value::as_str).map(str::to_owned);
    let id = Uuid::new_v4();
    let wait = approval_wait();
    let request =
        EntryBody { tool: tool.clone(), input: summary, cwd, approval: Some(id), truncated, ..EntryBody::default() };
    let _ = spool.push(vec![(EntryKind::PermissionRequest, request.clone())]);
    let asked = async {
        let (p, conn) = connect(ctx, reg).await?;
        // The request's entry goes first, so viewers see what is being decided.
        let _ = stream::flush(&conn, &p, reg.session_id, spool).await;
        let ring = p.keyring().context("no mesh key yet")?;
        let (nonce, ciphertext) = ring.seal(&serde_json::to_vec(&request)?)?;
        let wait_ms = wait.as_millis() as u64;
        conn.call(&ApprovalRequest { session_id: reg.session_id, id, wait_ms, nonce: nonce.to_vec(), ciphertext })
            .await?;
        let info = conn.call_waiting(&ApprovalWait { id, wait_ms }, wait).await?;
        conn.close().await;
        anyhow::Ok((p, info))
    };
    let (p, info) = match asked.await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "permission request not sent; the agent asks locally");
            return None;
        }
    };
    let reason = match (&info.reason_nonce, &info.reason_ciphertext, p.keyring()) {
        (Some(n), Some(c), Some(ring)) => ring.open(n, c).ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    };
    let outcome = match info.allowed {
        Some(true) => "allow",
        Some(false) => "deny",
        None => "none",
    };
    let decision = EntryBody {
        tool,
        approval: Some(id),
        outcome: Some(outcome.into()),
        by: info.decided_by.clone(),
        text: reason.clone().or_else(|| (outcome == "none").then(|| "nobody answered in time; asked locally".into())),
        ..EntryBody::default()
    };
    let _ = spool.push(vec![(EntryKind::PermissionDecision, decision)]);
    let by = info.decided_by.unwrap_or_default();
    match info.allowed {
        Some(true) => Some(
            json!({ "hookSpecificOutput": { "hookEventName": "PermissionRequest", "decision": { "behavior": "allow" } } })
                .to_string(),
        ),
        Some(false) => {
            let message = match reason {
                Some(r) => format!("denied by {by}: {r}"),
                None => format!("denied by {by}"),
            };
            Some(
                json!({ "hookSpecificOutput": { "hookEventName": "PermissionRequest",
                    "decision": { "behavior": "deny", "message": message } } })
                .to_string(),
            )
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_events_become_entries_with_big_inputs_cut() {
        let big = "x".repeat(10 * 1024 * 1024);
        let e = entries_for("PostToolUse", &json!({ "tool_name": "Bash", "tool_response": big }));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, EntryKind::ToolResult);
        assert!(e[0].1.truncated);
        assert!(e[0].1.text.as_deref().is_some_and(|t| t.len() <= MAX_ENTRY_TEXT && t.contains("truncated")));
        assert_eq!(entries_for("UserPromptSubmit", &json!({ "prompt": "hi" }))[0].1.text.as_deref(), Some("hi"));
        assert!(entries_for("Unknown", &json!({})).is_empty());
    }

    #[test]
    fn assistant_text_is_read_from_transcript_lines() {
        let lines = vec![
            json!({"type": "user", "message": {"content": "hello"}}).to_string(),
            json!({"type": "assistant", "message": {"content": [
                {"type": "text", "text": "I will fix it."}, {"type": "tool_use", "name": "Edit"}]}})
            .to_string(),
            "not json".to_owned(),
        ];
        let e = assistant_entries(&lines);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].1.text.as_deref(), Some("I will fix it."));
    }

    #[test]
    fn a_codex_patch_names_the_files_it_changes() {
        let patch =
            "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-x\n+y\n*** Add File: src/b.rs\n+new\n*** End Patch\n";
        let input = json!({"tool_name": "apply_patch", "tool_input": {"command": patch}});
        assert_eq!(edited_files(&input), ["src/a.rs", "src/b.rs"]);
        let claude = json!({"tool_name": "Write", "tool_input": {"file_path": "/r/src/c.rs"}});
        assert_eq!(edited_files(&claude), ["/r/src/c.rs"]);
        assert!(edited_files(&json!({"tool_name": "Bash", "tool_input": {"command": "*** Update File: x"}})).is_empty());
    }

    #[test]
    fn lock_paths_are_made_repository_relative() {
        let dir = std::env::temp_dir().join(format!("plexus-repo-{}", Uuid::new_v4()));
        std::fs::create_dir_all(dir.join(".git")).expect("mkdir");
        std::fs::create_dir_all(dir.join("src")).expect("mkdir");
        let file = dir.join("src/x.rs");
        let paths = lock_paths(&file.to_string_lossy(), None);
        assert!(paths.contains(&"src/x.rs".to_owned()), "{paths:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
