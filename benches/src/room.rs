//! `plexus-room-bench`: session rooms under load, across two broker nodes. Prints one JSON
//! object.
//!
//! - **stream**: `--sessions` agent sessions on the first node each publish `--rate` entries a
//!   second (one `stream_append` per entry, as `plexus mcp` does when its hooks trickle in); one
//!   viewer on the second node is attached to every room. Latency = the viewer's receipt − the
//!   entry's `at_ms`.
//! - **hooks**: `--agents` real `plexus mcp` processes (no MCP client needed: the session and
//!   the hook socket start at once), and real `plexus hook PostToolUse` processes run against
//!   them at `--hook-rate` a second each, as Claude Code runs them. Measured: the hook's wall
//!   time (spawn to exit) and hook start → the viewer on the other node showing the entry.
//! - **approvals**: `plexus hook PermissionRequest` runs while a decider on the other node
//!   allows each request as soon as its push arrives. Measured: decision sent → hook exit, and
//!   hook start → hook exit.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use plexus_benches::{percentile, plexus_now_ms, setup, Peer};
use plexus_client::{
    connection::{push_as, signed_hello, Connection, TlsOptions},
    Profile,
};
use plexus_proto::{
    ops,
    room::*,
    types::{SessionMode, SessionProfile},
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "plexus-room-bench", about = "Session-room stream, hook and approval latency across two nodes")]
struct Args {
    /// Two broker URLs: publishers and agents use the first, the viewer the second.
    #[arg(long, value_delimiter = ',', default_value = "ws://127.0.0.1:7700,ws://127.0.0.1:7701")]
    brokers: Vec<String>,
    /// Publishing sessions (stream part).
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Entries per second per session.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Real `plexus mcp` agents (hooks part).
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Hooks per second per agent.
    #[arg(long, default_value_t = 5.0)]
    hook_rate: f64,
    /// Hooks per agent.
    #[arg(long, default_value_t = 100)]
    hooks: usize,
    /// Permission requests (approvals part).
    #[arg(long, default_value_t = 50)]
    approvals: usize,
    /// The `plexus` CLI binary.
    #[arg(long, default_value = "plexus")]
    plexus: String,
}

fn stats(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    json!({"count": v.len(), "p50": percentile(&v, 0.5), "p99": percentile(&v, 0.99), "max": v.last().copied().unwrap_or(0.0)})
}

async fn hello(url: &str, p: &Profile, session_id: Uuid, mode: SessionMode) -> Result<Connection> {
    let conn = Connection::open(url, &TlsOptions::default()).await?;
    let key = p.session_key().map_err(anyhow::Error::msg)?;
    let sp = SessionProfile { agent_kind: Some("bench".into()), ..SessionProfile::default() };
    conn.call(&signed_hello(p, session_id, key.public_key(), mode, None, sp)?).await?;
    Ok(conn)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.brokers.len() < 2 {
        bail!("--brokers needs two nodes");
    }
    let (a, b) = (args.brokers[0].clone(), args.brokers[1].clone());
    let mut peers = setup(&args.brokers[..1], (args.sessions / 4).max(1), None).await?;
    let mut raw_key = [0u8; 32];
    plexus_crypto::random_bytes(&mut raw_key);
    let mesh_key = plexus_crypto::hex(&raw_key);
    for p in &mut peers {
        p.profile.mesh_key = Some(mesh_key.clone());
        p.profile.brokers = vec![a.clone()];
    }
    let stream = stream_part(&args, &peers, &a, &b).await?;
    eprintln!("stream: {stream}");
    let (hooks, approvals) = hook_parts(&args, &peers[0], &a, &b).await?;
    println!("{}", json!({"stream": stream, "hooks": hooks, "approvals": approvals}));
    Ok(())
}

async fn stream_part(args: &Args, peers: &[Peer], a: &str, b: &str) -> Result<Value> {
    let mut publishers = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let p = &peers[i % peers.len()];
        let sid = Uuid::new_v4();
        publishers.push((sid, Arc::new(hello(a, &p.profile, sid, SessionMode::Session).await?)));
    }
    let mut viewer = hello(b, &peers[0].profile, Uuid::new_v4(), SessionMode::Control).await?;
    let mut pushes = viewer.take_pushes();
    for (sid, _) in &publishers {
        viewer.call(&RoomAttach { session_id: *sid }).await?;
    }
    let key = plexus_crypto::unhex(peers[0].profile.mesh_key.as_deref().unwrap_or_default()).context("mesh key")?;
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sink = latencies.clone();
    let reader = tokio::spawn(async move {
        while let Some(push) = pushes.recv().await {
            if let Some(s) = push_as::<StreamPush>(&push) {
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(plexus_now_ms().saturating_sub(s.entry.at_ms) as f64);
            }
        }
    });
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let until = Instant::now() + Duration::from_secs(args.secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (sid, conn)) in publishers.iter().enumerate() {
        let (sid, conn, key) = (*sid, conn.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the sessions' ticks over one period.
            tokio::time::sleep(gap.mul_f64(i as f64 / 100.0 % 1.0)).await;
            let mut tick = tokio::time::interval(gap);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut seq, mut sent, mut failed) = (0u64, 0u64, 0u64);
            while Instant::now() < until {
                tick.tick().await;
                seq += 1;
                let body =
                    serde_json::to_vec(&EntryBody { text: Some(format!("entry {seq}")), ..EntryBody::default() })?;
                let (nonce, ciphertext) = plexus_crypto::seal_with_mesh_key(&key, 0, &body)?;
                let entry = EntryIn {
                    seq,
                    kind: EntryKind::ToolResult,
                    at_ms: plexus_now_ms(),
                    nonce: nonce.to_vec(),
                    ciphertext,
                };
                match conn.call(&StreamAppend { session_id: sid, entries: vec![entry] }).await {
                    Ok(_) => sent += 1,
                    Err(_) => failed += 1,
                }
            }
            anyhow::Ok((sent, failed))
        }));
    }
    let (mut sent, mut failed) = (0, 0);
    for t in tasks {
        let (s, f) = t.await??;
        sent += s;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last pushes land.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() as u64) < sent
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reader.abort();
    let lat = latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let received = lat.len();
    Ok(json!({
        "sessions": args.sessions, "rate_per_session": args.rate, "secs": args.secs,
        "appended": sent, "failed": failed, "appended_per_sec": sent as f64 / elapsed,
        "received_by_viewer": received, "latency_ms": stats(lat),
    }))
}

/// An agent: a `plexus mcp` of the member under its own identity, and its home.
struct AgentProc {
    child: tokio::process::Child,
    home: std::path::PathBuf,
    id: String,
}

async fn hook_parts(args: &Args, owner: &Peer, a: &str, b: &str) -> Result<(Value, Value)> {
    let mut agents = Vec::new();
    for k in 0..args.agents {
        let home = std::env::temp_dir().join(format!("plexus-room-bench-{}-{k}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&home)?;
        let mut p = owner.profile.clone();
        p.name = "bench".into();
        p.brokers = vec![a.to_owned()];
        p.save(&home)?;
        p.set_default(&home)?;
        let id = format!("bench-{k}");
        let child = tokio::process::Command::new(&args.plexus)
            .args(["mcp", "--session", &id])
            .env("PLEXUS_HOME", &home)
            .env("PLEXUS_AGENT_ID", &id)
            .env("PLEXUS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting plexus mcp (--plexus)")?;
        agents.push(AgentProc { child, home, id });
    }
    // The viewer, on the other node, as the same member (so it may also decide).
    let mut viewer = hello(b, &owner.profile, Uuid::new_v4(), SessionMode::Control).await?;
    let sessions = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let peers = viewer.call(&ops::Peers {}).await?.peers;
            let found: Vec<Uuid> = peers
                .iter()
                .filter(|p| {
                    p.member_id == owner.profile.member_id && p.profile.agent_kind.as_deref() == Some("claude-code")
                })
                .map(|p| p.session_id)
                .collect();
            if found.len() == args.agents {
                break found;
            }
            if Instant::now() > deadline {
                bail!("only {} of {} agents came up", found.len(), args.agents);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut pushes = viewer.take_pushes();
    for sid in &sessions {
        viewer.call(&RoomAttach { session_id: *sid }).await?;
    }
    let viewer = Arc::new(viewer);
    let key = plexus_crypto::unhex(owner.profile.mesh_key.as_deref().unwrap_or_default()).context("mesh key")?;
    // Marks "bench <agent>:<n>" → hook start; the viewer records when each shows up.
    let started_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
    let decided_at: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let reader = {
        let (started_at, seen, decided_at, viewer) =
            (started_at.clone(), seen.clone(), decided_at.clone(), viewer.clone());
        tokio::spawn(async move {
            while let Some(push) = pushes.recv().await {
                if let Some(s) = push_as::<StreamPush>(&push) {
                    let body = plexus_crypto::open_with_mesh_key(&key, &s.entry.nonce, &s.entry.ciphertext)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<EntryBody>(&b).ok());
                    let mark = body.and_then(|b| b.text).unwrap_or_default();
                    let start =
                        started_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&mark).copied();
                    if let Some(start) = start {
                        seen.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(start.elapsed().as_secs_f64() * 1000.0);
                    }
                } else if let Some(ap) = push_as::<ApprovalPush>(&push) {
                    if ap.approval.allowed.is_none() {
                        let id = ap.approval.id;
                        decided_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, Instant::now());
                        let viewer = viewer.clone();
                        tokio::spawn(async move {
                            let _ = viewer
                                .call(&ApprovalDecide { id, allow: true, reason_nonce: None, reason_ciphertext: None })
                                .await;
                        });
                    }
                }
            }
        })
    };

    // Hooks.
    let gap = Duration::from_secs_f64(1.0 / args.hook_rate);
    let wall: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut tasks = Vec::new();
    for (k, agent) in agents.iter().enumerate() {
        let (home, id, plexus) = (agent.home.clone(), agent.id.clone(), args.plexus.clone());
        let (wall, started_at, n) = (wall.clone(), started_at.clone(), args.hooks);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(gap);
            for i in 0..n {
                tick.tick().await;
                let mark = format!("bench {k}:{i}");
                let input = json!({"session_id": format!("claude-{id}"), "tool_name": "Bash", "tool_response": mark, "hook_event_name": "PostToolUse"});
                let start = Instant::now();
                started_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(mark.clone(), start);
                let mut child = tokio::process::Command::new(&plexus)
                    .args(["hook", "PostToolUse"])
                    .env("PLEXUS_HOME", &home)
                    .env("PLEXUS_AGENT_ID", &id)
                    .env("PLEXUS_LOG", "warn")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(input.to_string().as_bytes()).await?;
                }
                child.wait().await?;
                wall.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(start.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let total = args.agents * args.hooks;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hooks = json!({
        "agents": args.agents, "hooks_per_agent": args.hooks, "rate_per_agent": args.hook_rate,
        "hook_wall_ms": stats(wall.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
        "hook_to_viewer_ms": stats(seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()),
    });
    eprintln!("hooks: {hooks}");

    // Approvals, one at a time on the first agent.
    let agent = &agents[0];
    let (mut round_trip, mut whole) = (Vec::new(), Vec::new());
    for i in 0..args.approvals {
        let input = json!({"session_id": format!("claude-{}", agent.id), "tool_name": "Bash",
            "tool_input": {"command": format!("git push #{i}")}, "hook_event_name": "PermissionRequest"});
        let start = Instant::now();
        let mut child = tokio::process::Command::new(&args.plexus)
            .args(["hook", "PermissionRequest"])
            .env("PLEXUS_HOME", &agent.home)
            .env("PLEXUS_AGENT_ID", &agent.id)
            .env("PLEXUS_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.to_string().as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        let exited = Instant::now();
        if !String::from_utf8_lossy(&out.stdout).contains("\"allow\"") {
            bail!("request {i} was not allowed: {}", String::from_utf8_lossy(&out.stdout));
        }
        whole.push((exited - start).as_secs_f64() * 1000.0);
        let decided =
            decided_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().map(|(_, t)| t).max();
        if let Some(d) = decided {
            round_trip.push((exited - d).as_secs_f64() * 1000.0);
        }
    }
    reader.abort();
    let approvals = json!({
        "requests": args.approvals,
        "decision_to_hook_exit_ms": stats(round_trip),
        "hook_start_to_exit_ms": stats(whole),
    });
    for mut agent in agents {
        let _ = agent.child.kill().await;
        let _ = std::fs::remove_dir_all(&agent.home);
    }
    Ok((hooks, approvals))
}
