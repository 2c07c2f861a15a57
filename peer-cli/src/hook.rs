//! `plexus hook <event>`: agent session hooks → status with source `hook`, and the local socket
//! through which they reach the running `plexus mcp` of the same agent.
//!
//! The MCP server registers itself (a file naming its socket and session) under the identity
//! `plexus launch` put in the agent's environment (`PLEXUS_AGENT_ID`, inherited by the server
//! and every hook) and under its nearest ancestor processes (`run/pid-<pid>-<start>.json`; see
//! `process.rs`, portable beyond Linux's `/proc`). A hook finds its server by the agent's own
//! session id from the hook input (a registration the server writes when the first hook tells
//! it that id), else by the environment identity, else by walking up its own ancestors: the
//! agent process is an ancestor of both, and the nearest match is this agent's own server even
//! when several agents share a terminal. With no socket answering, the hook connects to the
//! broker directly as a control connection of that session; with no registration at all there
//! is no agent session to update and it does nothing. A hook never fails the agent: it prints
//! nothing on stdout and exits 0.

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

/// How far up the process tree registrations and lookups go (a hook runs under a shell the
/// agent spawned, sometimes a wrapper more).
const ANCESTORS: usize = 6;

#[derive(Serialize, Deserialize)]
struct Registration {
    socket: PathBuf,
    profile: String,
    identity: String,
    session_id: Uuid,
}

/// Set by `plexus launch` in the agent's environment, which its hooks and its `plexus mcp`
/// server both inherit: the surest way for them to find each other.
pub const AGENT_ENV: &str = "PLEXUS_AGENT_ID";

/// The agent identity of this process from the environment, if `plexus launch` set one.
pub fn agent_from_env() -> Option<String> {
    std::env::var(AGENT_ENV)
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn agent_registration_path(home: &Path, agent: &str) -> PathBuf {
    home.join("run").join(format!("agent-{agent}.json"))
}

/// Where the registration of the agent session `session_id` (Claude Code's, from hook input)
/// lives once a hook has told the server about it.
fn claude_session_path(home: &Path, session_id: &str) -> Option<PathBuf> {
    let ok = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| home.join("run").join(format!("claude-{session_id}.json")))
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
    let _ = shared.registration.set(text.clone());
    let mut paths: Vec<PathBuf> =
        crate::process::ancestors(3).into_iter().map(|(pid, start)| registration_path(home, pid, start)).collect();
    if let Some(agent) = agent_from_env() {
        paths.push(agent_registration_path(home, &agent));
    }
    for path in paths {
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

/// Record that the agent's own session id is `session_id`, pointing at the same socket as the
/// registration under `identity` (later hooks then find this server without the process
/// tree).
pub fn register_agent_session(home: &Path, reg_text: &str, session_id: &str) {
    if let Some(path) = claude_session_path(home, session_id) {
        if let Ok(mut f) = plexus_cli::profile::create_private(&path) {
            let _ = std::io::Write::write_all(&mut f, reg_text.as_bytes());
        }
    }
}

/// Remove the socket (registrations of a gone agent are harmless: their socket is dead).
pub fn unlisten(socket: &Path) {
    let _ = std::fs::remove_file(socket);
}

#[derive(Serialize, Deserialize)]
struct HookRequest {
    status: Option<Status>,
    /// The agent's own session id (Claude Code's `session_id`), so later hooks find this
    /// server by it directly.
    #[serde(default)]
    agent_session: Option<String>,
}

async fn serve_hook(stream: UnixStream, shared: &Shared) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let req: HookRequest = serde_json::from_str(line.trim())?;
    if let Some(sid) = &req.agent_session {
        shared.remember_agent_session(sid);
    }
    let reply = match req.status {
        Some(status) => match shared.set_status(status, StatusSource::Hook).await {
            Ok(now) => serde_json::json!({"ok": true, "status": now.as_str()}),
            Err(e) => serde_json::json!({"ok": false, "error": format!("{e:#}")}),
        },
        None => serde_json::json!({"ok": true}),
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

/// What a hook needs from the agent's hook input (Claude Code sends more; the rest is ignored).
#[derive(Deserialize, Default)]
struct HookInput {
    #[serde(default)]
    session_id: Option<String>,
}

/// Find this agent's `plexus mcp`: by the agent's own session id (once a hook told the server
/// about it), by the identity `plexus launch` put in the environment, or by the agent process
/// both descend from.
fn find_registration(home: &Path, agent_session: Option<&str>) -> Option<Registration> {
    let read = |path: PathBuf| -> Option<Registration> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    };
    if let Some(reg) = agent_session.and_then(|s| claude_session_path(home, s)).and_then(read) {
        return Some(reg);
    }
    if let Some(reg) = agent_from_env().map(|a| agent_registration_path(home, &a)).and_then(read) {
        return Some(reg);
    }
    crate::process::ancestors(ANCESTORS).into_iter().find_map(|(pid, start)| read(registration_path(home, pid, start)))
}

/// `plexus hook <event>`.
pub async fn run(ctx: &Ctx, event: &str) -> Result<()> {
    // The agent sends its hook JSON on stdin; drain it whatever happens.
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let hook: HookInput = serde_json::from_str(&input).unwrap_or_default();
    let status = status_for(event);
    let Some(reg) = find_registration(&ctx.home, hook.session_id.as_deref()) else {
        tracing::debug!("no plexus mcp registered for this agent; nothing to update");
        return Ok(());
    };
    let req = HookRequest { status, agent_session: hook.session_id.clone() };
    match tokio::time::timeout(Duration::from_secs(2), via_socket(&reg.socket, &req)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => tracing::debug!(error = %e, "hook socket unavailable; connecting directly"),
        Err(_) => tracing::debug!("hook socket timed out; connecting directly"),
    }
    match status {
        Some(status) => direct(ctx, &reg, status).await,
        None => Ok(()),
    }
}

async fn via_socket(socket: &Path, req: &HookRequest) -> Result<()> {
    let stream = UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{}\n", serde_json::to_string(req)?).as_bytes()).await?;
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
