//! `plexus hook <event>`: agent session hooks → status with source `hook`, and the local socket
//! through which they reach the running `plexus mcp` of the same agent.
//!
//! The MCP server registers itself under its nearest ancestor processes (`run/pid-<pid>.json`
//! naming its socket and session). A hook walks up its own ancestors and takes the first
//! registration: the agent process is an ancestor of both, and the nearest match is this
//! agent's own server even when several agents share a terminal. With no socket answering, the
//! hook connects to the broker directly as a control connection of that session; with no
//! registration at all there is no agent session to update and it does nothing. A hook never
//! fails the agent: it prints nothing on stdout and exits 0.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, Context, Result};
use plexus_cli::profile::Profile;
use plexus_proto::{
    ops,
    types::{SessionMode, Status, StatusSource},
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use uuid::Uuid;

use crate::{commands::Ctx, mcp::Shared};

/// How far up the process tree registrations and lookups go.
const ANCESTORS: usize = 6;

#[derive(Serialize, Deserialize)]
struct Registration {
    socket: PathBuf,
    profile: String,
    identity: String,
    session_id: Uuid,
}

/// `(pid, start time in clock ticks)` from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields 3 (state) onwards; the parent pid is field 4, the start time field 22 (proc(5)).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The parent process and its start time (the agent that spawned us), on Linux.
pub fn parent_identity() -> Option<(u32, u64)> {
    let (ppid, _) = proc_stat(std::process::id())?;
    let (_, start) = proc_stat(ppid)?;
    Some((ppid, start))
}

fn ancestors() -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    for _ in 0..ANCESTORS {
        let Some((ppid, _)) = proc_stat(pid) else { break };
        if ppid <= 1 {
            break;
        }
        let Some((_, start)) = proc_stat(ppid) else { break };
        out.push((ppid, start));
        pid = ppid;
    }
    out
}

fn registration_path(home: &Path, pid: u32, start: u64) -> PathBuf {
    home.join("run").join(format!("pid-{pid}-{start}.json"))
}

/// Listen for hooks and register under this process's nearest ancestors. Returns the socket
/// path (removed by [`unlisten`]).
pub fn listen(home: &Path, identity: &str, profile: &str, session_id: Uuid, shared: Arc<Shared>) -> Result<PathBuf> {
    let run = home.join("run");
    std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
    // Unix socket paths are short (108 bytes); the registration says where it is.
    let socket = std::env::temp_dir().join(format!("plexus-{}.sock", &Uuid::new_v4().simple().to_string()[..12]));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    let reg =
        Registration { socket: socket.clone(), profile: profile.to_owned(), identity: identity.to_owned(), session_id };
    let text = serde_json::to_string(&reg)?;
    for (pid, start) in ancestors().into_iter().take(3) {
        let path = registration_path(home, pid, start);
        if let Ok(mut f) = plexus_cli::profile::create_private(&path) {
            let _ = std::io::Write::write_all(&mut f, text.as_bytes());
        }
    }
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { break };
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_hook(stream, &shared).await {
                    tracing::warn!(error = %e, "hook request failed");
                }
            });
        }
    });
    Ok(socket)
}

/// Remove the socket (registrations of a gone agent are harmless: their socket is dead).
pub fn unlisten(socket: &Path) {
    let _ = std::fs::remove_file(socket);
}

#[derive(Serialize, Deserialize)]
struct HookRequest {
    status: Status,
}

async fn serve_hook(stream: UnixStream, shared: &Shared) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let req: HookRequest = serde_json::from_str(line.trim())?;
    let reply = match shared.set_status(req.status, StatusSource::Hook).await {
        Ok(now) => serde_json::json!({"ok": true, "status": now.as_str()}),
        Err(e) => serde_json::json!({"ok": false, "error": format!("{e:#}")}),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    Ok(())
}

/// The status an agent hook event means, if any.
pub fn status_for(event: &str) -> Option<Status> {
    match event {
        "SessionStart" | "Stop" | "Notification" | "SessionEnd" => Some(Status::Idle),
        "UserPromptSubmit" | "PreToolUse" | "PostToolUse" => Some(Status::Working),
        _ => None,
    }
}

/// `plexus hook <event>`.
pub async fn run(ctx: &Ctx, event: &str) -> Result<()> {
    // The agent sends its hook JSON on stdin; we only need the event name, but must drain it.
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let Some(status) = status_for(event) else { return Ok(()) };
    let Some(reg) = ancestors().into_iter().find_map(|(pid, start)| {
        let text = std::fs::read_to_string(registration_path(&ctx.home, pid, start)).ok()?;
        serde_json::from_str::<Registration>(&text).ok()
    }) else {
        tracing::debug!("no plexus mcp registered for this agent; nothing to update");
        return Ok(());
    };
    match tokio::time::timeout(Duration::from_secs(2), via_socket(&reg.socket, status)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => tracing::debug!(error = %e, "hook socket unavailable; connecting directly"),
        Err(_) => tracing::debug!("hook socket timed out; connecting directly"),
    }
    direct(ctx, &reg, status).await
}

async fn via_socket(socket: &Path, status: Status) -> Result<()> {
    let stream = UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{}\n", serde_json::to_string(&HookRequest { status })?).as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let v: serde_json::Value = serde_json::from_str(line.trim())?;
    if v["ok"] == true {
        Ok(())
    } else {
        Err(anyhow!("{}", v["error"]))
    }
}

async fn direct(ctx: &Ctx, reg: &Registration, status: Status) -> Result<()> {
    let base = Profile::load(&ctx.home, Some(&reg.profile))?;
    let (session_id, key) = crate::mcp::load_identity(&ctx.home, &base, &reg.identity)?;
    let mut p = base;
    p.session_id = session_id;
    p.session_secret = plexus_crypto::hex(key.secret_bytes());
    let sp = crate::commands::session_profile(&p, status, &[]);
    let (conn, _) = crate::commands::connect(&p, SessionMode::Control, None, sp).await?;
    conn.call(&ops::SetStatus { status, source: StatusSource::Hook }).await?;
    conn.close().await;
    Ok(())
}
