//! `plexus hook <event>`: an agent hook event (Claude Code's SessionStart, UserPromptSubmit,
//! PreToolUse, PostToolUse, Stop, Notification, SessionEnd) reported to the agent's session as
//! a status with source `hook`.
//!
//! The hook finds its agent's `plexus mcp` (see `plexus_client::agent`: by the agent's own
//! session id from the hook input, the identity `plexus launch` set, or the process tree) and
//! asks it over its socket; with no socket answering it connects to the broker directly as a
//! control connection of that session; with no registration at all there is no agent session
//! to update and it does nothing. A hook never fails the agent: it prints nothing on stdout
//! and exits 0.

use std::{io::Read, time::Duration};

use anyhow::Result;
use plexus_client::{
    agent::{self, HookRequest, Registration},
    Profile,
};
use plexus_proto::{
    ops,
    types::{SessionMode, Status, StatusSource},
};
use serde::Deserialize;

use crate::ctx::{session_profile, Ctx};

/// What a hook needs from the agent's hook input (Claude Code sends more; the rest is ignored).
#[derive(Deserialize, Default)]
struct HookInput {
    #[serde(default)]
    session_id: Option<String>,
}

/// The status an agent hook event means, if any.
pub(crate) fn status_for(event: &str) -> Option<Status> {
    match event {
        "SessionStart" | "Stop" | "Notification" | "SessionEnd" => Some(Status::Idle),
        "UserPromptSubmit" | "PreToolUse" | "PostToolUse" => Some(Status::Working),
        _ => None,
    }
}

/// `plexus hook <event>`.
pub(crate) async fn run(ctx: &Ctx, event: &str) -> Result<()> {
    // The agent sends its hook JSON on stdin; drain it whatever happens.
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let hook: HookInput = serde_json::from_str(&input).unwrap_or_default();
    let status = status_for(event);
    let Some(reg) = agent::find_registration(&ctx.home, hook.session_id.as_deref()) else {
        tracing::debug!("no plexus mcp registered for this agent; nothing to update");
        return Ok(());
    };
    let req = HookRequest { status, agent_session: hook.session_id.clone() };
    match tokio::time::timeout(Duration::from_secs(2), agent::ask(&reg.socket, &req)).await {
        Ok(Ok(reply)) if reply.ok => return Ok(()),
        Ok(Ok(reply)) => tracing::debug!(error = ?reply.error, "the agent's server refused the hook"),
        Ok(Err(e)) => tracing::debug!(error = %e, "hook socket unavailable; connecting directly"),
        Err(_) => tracing::debug!("hook socket timed out; connecting directly"),
    }
    match status {
        Some(status) => direct(ctx, &reg, status).await,
        None => Ok(()),
    }
}

async fn direct(ctx: &Ctx, reg: &Registration, status: Status) -> Result<()> {
    let base = Profile::load(&ctx.home, Some(&reg.profile))?;
    let p = agent::agent_profile(&ctx.home, &base, &reg.identity)?;
    let sp = session_profile(&p, status, &[]);
    let (conn, _) = plexus_client::session::connect(&p, SessionMode::Control, None, sp).await?;
    conn.call(&ops::SetStatus { status, source: StatusSource::Hook }).await?;
    conn.close().await;
    Ok(())
}
