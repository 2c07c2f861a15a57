//! Session rooms from a terminal: `attach` (replay, then tail, with prompts typed in), the
//! wheel, one-shot prompts, permission requests (`approvals`, `approve`, `deny`), drive grants
//! and the commit guard.

use anyhow::{bail, Context, Result};
use plexus_client::{address::find_member, connection::push_as, stream::open_entry, Connection, Profile};
use plexus_proto::{
    coord::LockMode,
    ops,
    room::*,
    types::{PeerInfo, SessionMode, Status},
};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::{
    cli::{GrantCmd, GuardCmd, WheelCmd},
    ctx::{members, session_profile, Ctx},
};

/// An own connection (not the shared session's), so its pushes can be read here.
async fn connect(ctx: &Ctx) -> Result<(Profile, Connection)> {
    let p = ctx.profile()?;
    let sp = session_profile(&p, Status::Idle, &[]);
    let (conn, _) = plexus_client::session::connect(&p, SessionMode::Control, None, sp).await?;
    Ok((p, conn))
}

/// The agent session `target` names: a session id or its first characters, or a member name
/// (its most recently connected agent session). Offline sessions are found by full id.
async fn resolve(conn: &Connection, profile: &Profile, target: &str) -> Result<(Uuid, Option<PeerInfo>)> {
    let peers = conn.call(&ops::Peers {}).await?.peers;
    if let Ok(id) = target.parse::<Uuid>() {
        return Ok((id, peers.into_iter().find(|p| p.session_id == id)));
    }
    let prefix = target.to_ascii_lowercase();
    if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        let hits: Vec<&PeerInfo> = peers.iter().filter(|p| p.session_id.to_string().starts_with(&prefix)).collect();
        match hits.as_slice() {
            [one] => return Ok((one.session_id, Some((*one).clone()))),
            [] => {}
            _ => bail!("{target} matches {} sessions; give more of the id", hits.len()),
        }
    }
    let all = members(conn).await?;
    let member = find_member(&all, target, profile.member_id)?;
    let latest = peers
        .into_iter()
        .filter(|p| p.member_id == member.member_id && p.profile.agent_kind.is_some())
        .max_by_key(|p| p.connected_at_ms)
        .with_context(|| format!("{} has no agent session online (plexus peers)", member.display_name))?;
    Ok((latest.session_id, Some(latest)))
}

fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// One entry as a terminal line (peer content as plain text).
fn entry_line(profile: &Profile, e: &Entry) -> String {
    let Some(b) = open_entry(profile, &e.nonce, &e.ciphertext) else {
        return format!("{} {:<19} [cannot open: no mesh key]", clock(e.at_ms), e.kind.as_str());
    };
    let text = b.text.clone().unwrap_or_default();
    let detail = match e.kind {
        EntryKind::ToolCall => format!("{} {}", b.tool.unwrap_or_default(), b.input.unwrap_or_default()),
        EntryKind::ToolResult => format!("{} → {text}", b.tool.unwrap_or_default()),
        EntryKind::PermissionRequest => format!(
            "{} {} (request {}; plexus approve/deny)",
            b.tool.unwrap_or_default(),
            b.input.unwrap_or_default(),
            b.approval.map(|a| a.to_string()[..8].to_owned()).unwrap_or_default()
        ),
        EntryKind::PermissionDecision => format!(
            "{} by {}{}",
            b.outcome.unwrap_or_default(),
            b.by.unwrap_or_else(|| "nobody".into()),
            if text.is_empty() { String::new() } else { format!(": {text}") }
        ),
        EntryKind::Status => b.outcome.unwrap_or_default(),
        _ => text,
    };
    format!("{} {:<19} {}", clock(e.at_ms), e.kind.as_str(), detail)
}

fn state_line(s: &RoomState) -> String {
    let viewers: Vec<String> = s
        .viewers
        .iter()
        .map(|v| if v.typing { format!("{} (typing)", v.display_name) } else { v.display_name.clone() })
        .collect();
    let wheel = match &s.wheel {
        Some(w) => format!(
            "{} has the wheel (token {}){}",
            w.holder_name,
            w.token,
            w.requested_by.as_ref().map(|r| format!(", {r} asks for it")).unwrap_or_default()
        ),
        None => "the wheel is free".into(),
    };
    format!(
        "── {}'s session {} · {} · viewing: {} · {}{}",
        s.member_name,
        &s.session_id.to_string()[..8],
        if s.online { "online" } else { "offline" },
        viewers.join(", "),
        wheel,
        if s.pending.is_empty() {
            String::new()
        } else {
            format!(" · {} permission request(s) waiting", s.pending.len())
        }
    )
}

/// Print an entry: a line, or with `--json` one JSON object per line.
fn show_entry(ctx: &Ctx, profile: &Profile, e: &Entry) {
    if ctx.json {
        let body = open_entry(profile, &e.nonce, &e.ciphertext);
        println!("{}", json!({"seq": e.seq, "kind": e.kind, "at_ms": e.at_ms, "body": body}));
    } else {
        println!("{}", entry_line(profile, e));
    }
}

/// Print a room's state: on stderr for people, or as a JSON line.
fn show_state(ctx: &Ctx, s: &RoomState) {
    if ctx.json {
        println!("{}", json!({ "room": s }));
    } else {
        eprintln!("{}", state_line(s));
    }
}

/// Seal a prompt to the agent session and send it with the wheel's token.
async fn send_prompt(conn: &Connection, profile: &Profile, agent: &PeerInfo, token: u64, text: &str) -> Result<()> {
    let me = profile.session_key().map_err(anyhow::Error::msg)?;
    let (nonce, ciphertext) = me.seal_to(&agent.session_pubkey, text.as_bytes())?;
    conn.call(&SessionPrompt {
        session_id: agent.session_id,
        token,
        id: Uuid::new_v4(),
        nonce: nonce.to_vec(),
        ciphertext,
    })
    .await?;
    Ok(())
}

/// `plexus attach`.
pub(crate) async fn attach(ctx: &Ctx, target: &str, take: bool, once: bool) -> Result<()> {
    let (p, mut conn) = connect(ctx).await?;
    let (session_id, agent) = resolve(&conn, &p, target).await?;
    let mut pushes = conn.take_pushes();
    let mut state = conn.call(&RoomAttach { session_id }).await?;
    show_state(ctx, &state);
    let mut last = 0u64;
    loop {
        let page = conn.call(&StreamRead { session_id, after: last, limit: 500 }).await?;
        if last == 0 && page.pruned_below > 0 {
            if ctx.json {
                println!("{}", json!({ "pruned_below": page.pruned_below }));
            } else {
                println!("[older entries were pruned to keep the stream within its bound]");
            }
        }
        for e in &page.entries {
            show_entry(ctx, &p, e);
            last = e.seq;
        }
        if !page.more {
            break;
        }
    }
    if once {
        conn.close().await;
        return Ok(());
    }
    if take {
        state = conn.call(&WheelOp { session_id, action: WheelAction::Take, to: None }).await?;
        show_state(ctx, &state);
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else { bail!("the broker closed the connection") };
                if let Some(s) = push_as::<StreamPush>(&push) {
                    if s.entry.seq > last {
                        last = s.entry.seq;
                        show_entry(ctx, &p, &s.entry);
                    }
                } else if let Some(s) = push_as::<RoomState>(&push) {
                    if s.session_id == session_id {
                        state = s;
                        show_state(ctx, &state);
                    }
                } else if let Some(a) = push_as::<ApprovalPush>(&push) {
                    if a.approval.allowed.is_none() {
                        eprintln!("── permission request {} waiting: plexus approve/deny {}", &a.approval.id.to_string()[..8], &a.approval.id.to_string()[..8]);
                    }
                }
            }
            line = stdin.next_line(), if stdin_open => {
                let Ok(Some(line)) = line else { stdin_open = false; continue };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let action = match line.split_whitespace().next() {
                    Some("/quit") => break,
                    Some("/take") => Some((WheelAction::Take, None)),
                    Some("/request") => Some((WheelAction::Request, None)),
                    Some("/release") => Some((WheelAction::Release, None)),
                    Some("/pass") => {
                        let name = line.trim_start_matches("/pass").trim();
                        let all = members(&conn).await?;
                        match find_member(&all, name, p.member_id) {
                            Ok(m) => Some((WheelAction::Pass, Some(m.member_id))),
                            Err(e) => { eprintln!("{e}"); continue; }
                        }
                    }
                    _ => None,
                };
                match action {
                    Some((action, to)) => match conn.call(&WheelOp { session_id, action, to }).await {
                        Ok(s) => { state = s; show_state(ctx, &state); }
                        Err(e) => eprintln!("{e}"),
                    },
                    None => {
                        let _ = conn.call(&RoomTyping { session_id }).await;
                        let token = state.wheel.as_ref().filter(|w| w.holder_member == p.member_id).map(|w| w.token);
                        match (token, &agent) {
                            (None, _) => eprintln!("take the wheel first (/take, or /request it from its holder)"),
                            (_, None) => eprintln!("the agent session is offline"),
                            (Some(token), Some(agent)) => {
                                if let Err(e) = send_prompt(&conn, &p, agent, token, line).await {
                                    eprintln!("{e:#}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    conn.close().await;
    Ok(())
}

/// `plexus wheel …` (one-shot: a wheel taken here is freed after the grace unless you attach).
pub(crate) async fn wheel(ctx: &Ctx, cmd: WheelCmd) -> Result<()> {
    let (p, conn) = connect(ctx).await?;
    let (target, action, to) = match &cmd {
        WheelCmd::Take { target } => (target, WheelAction::Take, None),
        WheelCmd::Request { target } => (target, WheelAction::Request, None),
        WheelCmd::Release { target } => (target, WheelAction::Release, None),
        WheelCmd::Pass { target, to } => (target, WheelAction::Pass, Some(to)),
    };
    let (session_id, _) = resolve(&conn, &p, target).await?;
    let to = match to {
        Some(name) => Some(find_member(&members(&conn).await?, name, p.member_id)?.member_id),
        None => None,
    };
    if action == WheelAction::Take {
        conn.call(&RoomAttach { session_id }).await?;
    }
    let state = conn.call(&WheelOp { session_id, action, to }).await?;
    conn.close().await;
    ctx.emit(serde_json::to_value(&state)?, || state_line(&state));
    Ok(())
}

/// `plexus prompt`: attach, take the wheel if it is free or yours, send.
pub(crate) async fn prompt(ctx: &Ctx, target: &str, text: &str) -> Result<()> {
    let (p, conn) = connect(ctx).await?;
    let (session_id, agent) = resolve(&conn, &p, target).await?;
    let agent = agent.context("the agent session is offline")?;
    let mut state = conn.call(&RoomAttach { session_id }).await?;
    if state.wheel.as_ref().is_none_or(|w| w.holder_member != p.member_id) {
        state = conn.call(&WheelOp { session_id, action: WheelAction::Take, to: None }).await?;
    }
    let token = state.wheel.as_ref().map(|w| w.token).context("no wheel")?;
    send_prompt(&conn, &p, &agent, token, text).await?;
    conn.close().await;
    ctx.emit(json!({"session": session_id, "token": token}), || {
        format!("prompt sent to {} (wheel token {token})", &session_id.to_string()[..8])
    });
    Ok(())
}

/// `plexus approvals`.
pub(crate) async fn approvals(ctx: &Ctx) -> Result<()> {
    let (p, conn) = connect(ctx).await?;
    let list = conn.call(&ApprovalList {}).await?.approvals;
    conn.close().await;
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|a| {
            let b = open_entry(&p, &a.nonce, &a.ciphertext).unwrap_or_default();
            json!({"id": a.id, "session": a.session_id, "member": a.member_name, "tool": b.tool, "input": b.input, "cwd": b.cwd, "expires_at_ms": a.expires_at_ms})
        })
        .collect();
    ctx.emit(json!({"approvals": rows}), || {
        if rows.is_empty() {
            return "no permission requests waiting for you".into();
        }
        rows.iter()
            .map(|r| {
                format!(
                    "{}  {}'s session {}: {} {}",
                    &r["id"].as_str().unwrap_or_default()[..8.min(r["id"].as_str().unwrap_or_default().len())],
                    r["member"].as_str().unwrap_or_default(),
                    &r["session"].as_str().unwrap_or_default().chars().take(8).collect::<String>(),
                    r["tool"].as_str().unwrap_or_default(),
                    r["input"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

/// `plexus approve` / `plexus deny`.
pub(crate) async fn decide(ctx: &Ctx, id: &str, allow: bool, reason: Option<String>) -> Result<()> {
    let (p, conn) = connect(ctx).await?;
    let id = match id.parse::<Uuid>() {
        Ok(id) => id,
        Err(_) => {
            let list = conn.call(&ApprovalList {}).await?.approvals;
            let hits: Vec<Uuid> = list.iter().map(|a| a.id).filter(|a| a.to_string().starts_with(id)).collect();
            match hits.as_slice() {
                [one] => *one,
                [] => bail!("no permission request {id} is waiting for you (plexus approvals)"),
                _ => bail!("{id} matches {} requests; give more of the id", hits.len()),
            }
        }
    };
    let (reason_nonce, reason_ciphertext) = match (&reason, p.keyring()) {
        (Some(r), Some(ring)) => {
            let (n, c) = ring.seal(r.as_bytes())?;
            (Some(n.to_vec()), Some(c))
        }
        (Some(_), None) => bail!("no mesh key yet to seal the reason"),
        _ => (None, None),
    };
    let info = conn.call(&ApprovalDecide { id, allow, reason_nonce, reason_ciphertext }).await?;
    conn.close().await;
    let word = if allow { "allowed" } else { "denied" };
    ctx.emit(json!({"id": info.id, "allowed": info.allowed, "by": info.decided_by}), || {
        format!("{word} request {} of {}'s session", &info.id.to_string()[..8], info.member_name)
    });
    Ok(())
}

/// `plexus grant drive|revoke`.
pub(crate) async fn grant(ctx: &Ctx, cmd: GrantCmd) -> Result<()> {
    let (p, conn) = connect(ctx).await?;
    let all = members(&conn).await?;
    let (name, on) = match &cmd {
        GrantCmd::Drive { member } => (member, true),
        GrantCmd::Revoke { member } => (member, false),
    };
    let m = find_member(&all, name, p.member_id)?;
    let grants = conn.call(&DriveGrant { member_id: m.member_id, grant: on }).await?;
    conn.close().await;
    let names: Vec<String> = grants
        .members
        .iter()
        .filter_map(|id| all.iter().find(|m| m.member_id == *id).map(|m| m.display_name.clone()))
        .collect();
    ctx.emit(json!({"may_drive": names}), || {
        if names.is_empty() {
            "only you (and admins) drive your sessions".into()
        } else {
            format!("may drive your sessions: {}", names.join(", "))
        }
    });
    Ok(())
}

const PRE_COMMIT: &str = "#!/bin/sh\n# Installed by `plexus guard install`: refuse commits of files others hold exclusively.\nexec plexus guard check\n";

/// `plexus guard …`.
pub(crate) async fn guard(ctx: &Ctx, cmd: GuardCmd) -> Result<()> {
    match cmd {
        GuardCmd::Install => {
            let out = std::process::Command::new("git").args(["rev-parse", "--git-path", "hooks"]).output()?;
            if !out.status.success() {
                bail!("not in a git repository");
            }
            let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            std::fs::create_dir_all(&dir)?;
            let hook = dir.join("pre-commit");
            if hook.exists() && !std::fs::read_to_string(&hook).unwrap_or_default().contains("plexus guard check") {
                bail!("{} exists; add `plexus guard check` to it yourself", hook.display());
            }
            std::fs::write(&hook, PRE_COMMIT)?;
            #[cfg(unix)]
            std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            ctx.emit(json!({"installed": hook}), || format!("installed {}", hook.display()));
            Ok(())
        }
        GuardCmd::Check => {
            let out = std::process::Command::new("git").args(["diff", "--cached", "--name-only", "-z"]).output()?;
            if !out.status.success() {
                bail!("git diff --cached failed");
            }
            let paths: Vec<String> = out
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            if paths.is_empty() {
                return Ok(());
            }
            let (p, conn) = connect(ctx).await?;
            let mut blocked = Vec::new();
            for chunk in paths.chunks(256) {
                let r = conn.call(&LockCheck { paths: chunk.to_vec() }).await?;
                for l in r.locks {
                    if l.holder_member != p.member_id && l.mode == LockMode::Exclusive {
                        blocked.push(l);
                    }
                }
            }
            conn.close().await;
            blocked.sort_by_key(|l| l.token);
            blocked.dedup_by_key(|l| l.token);
            if blocked.is_empty() {
                return Ok(());
            }
            for l in &blocked {
                eprintln!("plexus: {} holds {} exclusively (token {})", l.holder_name, l.pattern, l.token);
            }
            bail!("commit refused: staged files are locked by others (coordinate, or commit with --no-verify)")
        }
        GuardCmd::Mode { value } => {
            let (_, conn) = connect(ctx).await?;
            conn.call(&MeshSettingSet { key: "lock_enforcement".into(), value: value.clone() }).await?;
            conn.close().await;
            ctx.emit(json!({"lock_enforcement": value}), || format!("lock enforcement: {value}"));
            Ok(())
        }
    }
}
