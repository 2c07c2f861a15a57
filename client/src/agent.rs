//! An agent session's identity, and how the agent's hooks find its `plexus mcp` server.
//!
//! - **Identity.** Each agent process is one session of the member, with its own session key
//!   kept in `agent-sessions/<profile>/<key>.json` (0600). The key is `--session NAME`
//!   (`named-…`), else the identity `plexus launch` put in the environment (`agent-…`), else
//!   the agent process itself (`pid-<pid>-<start>`; see [`crate::process`]).
//! - **Finding the server.** The server writes a registration (its hook socket and session)
//!   under each way a hook may look: the environment identity, its nearest ancestor processes,
//!   and — once the first hook tells it — the agent's own session id from the hook input
//!   (Claude Code's `session_id`). A hook looks in that order. The socket speaks one JSON line
//!   each way: [`HookRequest`] → [`HookReply`].

use std::path::{Path, PathBuf};

use plexus_crypto::{hex, unhex, BoxKeypair};
use plexus_proto::types::Status;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    connection::ClientError,
    profile::{create_private, slug, Profile},
};

/// Name the MCP server declares; `claude --dangerously-load-development-channels server:plexus`
/// must name the same.
pub const SERVER_NAME: &str = "plexus";

/// Set by `plexus launch` for the agent it starts with the channel flag: the MCP server it
/// spawns then knows its pushes will be surfaced.
pub const CHANNELS_ENV: &str = "PLEXUS_CHANNELS";

/// Set by `plexus launch` in the agent's environment, which its hooks and its MCP server both
/// inherit: the surest way for them to find each other, on any platform.
pub const AGENT_ENV: &str = "PLEXUS_AGENT_ID";

/// How far up the process tree registrations and lookups go (a hook runs under a shell the
/// agent spawned, sometimes a wrapper more).
pub const ANCESTORS: usize = 6;

/// The agent identity in this process's environment, if `plexus launch` set one.
pub fn agent_from_env() -> Option<String> {
    std::env::var(AGENT_ENV)
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// The identity key of the agent this process serves (see the module doc).
pub fn identity_key(named: Option<&str>) -> String {
    match (named, agent_from_env(), crate::process::parent()) {
        (Some(n), _, _) => format!("named-{}", slug(n)),
        (None, Some(agent), _) => format!("agent-{agent}"),
        (None, None, Some((pid, start))) => format!("pid-{pid}-{start}"),
        (None, None, None) => format!("pid-{}", std::process::id()),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSession {
    session_id: Uuid,
    session_secret: String,
}

/// The session of identity `key`: created on first use, then the same across restarts.
pub fn load_identity(home: &Path, profile: &Profile, key: &str) -> Result<(Uuid, BoxKeypair), ClientError> {
    let dir = home.join("agent-sessions").join(&profile.name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{key}.json"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let stored: StoredSession = serde_json::from_str(&text)
            .map_err(|e| ClientError::Keys(format!("{} is corrupt: {e}", path.display())))?;
        let secret =
            unhex(&stored.session_secret).ok_or_else(|| ClientError::Keys(format!("bad key in {}", path.display())))?;
        return Ok((stored.session_id, BoxKeypair::from_secret(&secret)?));
    }
    let kp = BoxKeypair::generate()?;
    let stored = StoredSession { session_id: Uuid::new_v4(), session_secret: hex(kp.secret_bytes()) };
    let mut f = create_private(&path)?;
    let text = serde_json::to_string(&stored).map_err(|e| ClientError::Io(e.to_string()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok((stored.session_id, kp))
}

/// The profile an agent session uses: the member's, with the session's own id and key.
pub fn agent_profile(home: &Path, base: &Profile, key: &str) -> Result<Profile, ClientError> {
    let (session_id, session_key) = load_identity(home, base, key)?;
    let mut p = base.clone();
    p.session_id = session_id;
    p.session_secret = hex(session_key.secret_bytes());
    Ok(p)
}

/// Where an MCP server can be reached from its agent's hooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// The hook socket.
    pub socket: PathBuf,
    /// The mesh profile.
    pub profile: String,
    /// The agent identity key (see [`identity_key`]).
    pub identity: String,
    /// The agent session's Plexus session id.
    pub session_id: Uuid,
}

fn run_dir(home: &Path) -> PathBuf {
    home.join("run")
}

fn pid_path(home: &Path, pid: u32, start: u64) -> PathBuf {
    run_dir(home).join(format!("pid-{pid}-{start}.json"))
}

fn env_path(home: &Path, agent: &str) -> PathBuf {
    run_dir(home).join(format!("agent-{agent}.json"))
}

fn agent_session_path(home: &Path, session_id: &str) -> Option<PathBuf> {
    let ok = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| run_dir(home).join(format!("claude-{session_id}.json")))
}

fn write_registration(path: &Path, reg: &Registration) {
    if let Ok(text) = serde_json::to_string(reg) {
        if let Ok(mut f) = create_private(path) {
            let _ = std::io::Write::write_all(&mut f, text.as_bytes());
        }
    }
}

/// Register an MCP server under the environment identity and this process's nearest
/// ancestors.
pub fn register(home: &Path, reg: &Registration) -> Result<(), ClientError> {
    std::fs::create_dir_all(run_dir(home))?;
    for (pid, start) in crate::process::ancestors(3) {
        write_registration(&pid_path(home, pid, start), reg);
    }
    if let Some(agent) = agent_from_env() {
        write_registration(&env_path(home, &agent), reg);
    }
    Ok(())
}

/// Register an MCP server under the agent's own session id (told by a hook).
pub fn register_agent_session(home: &Path, reg: &Registration, agent_session: &str) {
    if let Some(path) = agent_session_path(home, agent_session) {
        write_registration(&path, reg);
    }
}

/// The registration of this process's agent's MCP server, if any (see the module doc).
pub fn find_registration(home: &Path, agent_session: Option<&str>) -> Option<Registration> {
    let read =
        |path: PathBuf| -> Option<Registration> { serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok() };
    agent_session
        .and_then(|s| agent_session_path(home, s))
        .and_then(read)
        .or_else(|| agent_from_env().map(|a| env_path(home, &a)).and_then(read))
        .or_else(|| {
            crate::process::ancestors(ANCESTORS).into_iter().find_map(|(pid, start)| read(pid_path(home, pid, start)))
        })
}

/// What a hook asks its MCP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRequest {
    /// A status to report (source `hook`).
    pub status: Option<Status>,
    /// The agent's own session id (Claude Code's `session_id`), so later hooks find the server
    /// by it directly.
    #[serde(default)]
    pub agent_session: Option<String>,
    /// The session's stream spool has new entries: publish them.
    #[serde(default)]
    pub flush: bool,
    /// Paths an edit is about to change: which locks do they step on?
    #[serde(default)]
    pub lock_paths: Option<Vec<String>>,
}

/// The server's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HookReply {
    /// Whether it was done.
    pub ok: bool,
    /// The effective status after the ranking rules.
    #[serde(default)]
    pub status: Option<Status>,
    /// Why not.
    #[serde(default)]
    pub error: Option<String>,
    /// The answer to `lock_paths`.
    #[serde(default)]
    pub locks: Option<plexus_proto::room::LockConflicts>,
}

/// Ask the MCP server at `socket` (one line each way).
#[cfg(unix)]
pub async fn ask(socket: &Path, req: &HookRequest) -> Result<HookReply, ClientError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let line = serde_json::to_string(req).map_err(|e| ClientError::Io(e.to_string()))?;
    write.write_all(format!("{line}\n").as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    serde_json::from_str(answer.trim()).map_err(|e| ClientError::Proto(e.to_string()))
}

/// Without Unix sockets a hook always goes to the broker directly.
#[cfg(not(unix))]
pub async fn ask(_socket: &Path, _req: &HookRequest) -> Result<HookReply, ClientError> {
    Err(ClientError::Io("hook sockets need Unix domain sockets".into()))
}
