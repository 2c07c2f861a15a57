//! `plexus-web-bench`: the web app's lobby under a real mesh, measured in real Chromium. Opens
//! `--sessions` agent sessions spread over machines and `--tasks` tasks on a running broker,
//! lets a browser join (`web/bench/lobby.mjs`, Playwright + Debian's Chromium), then changes
//! statuses one at a time and reports, from the page, how long each took from the change on
//! the broker to the DOM showing it; plus the page's weight and memory. Prints one JSON object.

use std::{process::Stdio, time::Duration};

use anyhow::{bail, Context, Result};
use clap::Parser;
use plexus_benches::{plexus_now_ms, setup_with_spare};
use plexus_client::connection::{signed_hello, Connection, TlsOptions};
use plexus_proto::{
    coord as c, ops,
    types::{SessionMode, SessionProfile, Status, StatusSource},
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "plexus-web-bench", about = "Lobby latency, page weight and memory of the web app in Chromium")]
struct Args {
    /// Broker URL (the browser opens the same host over http).
    #[arg(long, default_value = "ws://127.0.0.1:7700")]
    broker: String,
    /// Agent sessions in the mesh.
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    /// Members they belong to.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Machines they are spread over.
    #[arg(long, default_value_t = 25)]
    machines: usize,
    /// Tasks on the board.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Status changes to time.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Milliseconds between changes.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// The repository (for web/bench/lobby.mjs and its node_modules).
    #[arg(long, default_value = ".")]
    repo: String,
    /// Chromium.
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let brokers = vec![args.broker.clone()];
    let (peers, code) = setup_with_spare(&brokers, args.members, 1, None).await?;
    let tls = TlsOptions::default();

    // The sessions: each member's agents, on machines `machine-00` … as `plexus mcp` presents them.
    let mut sessions = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let p = &peers[i % peers.len()];
        let key = plexus_crypto::BoxKeypair::generate()?;
        let profile = SessionProfile {
            status: Status::Idle,
            summary: Some(format!("working through item {i}")),
            host: Some(format!("machine-{:02}", i % args.machines)),
            cwd: Some(format!("/src/project-{}", i % 7)),
            agent_kind: Some("claude-code".into()),
            ..SessionProfile::default()
        };
        let conn = Connection::open(&args.broker, &tls).await?;
        let session_id = Uuid::new_v4();
        conn.call(&signed_hello(&p.profile, session_id, key.public_key(), SessionMode::Session, None, profile)?)
            .await?;
        sessions.push((session_id, conn));
    }
    let control = Connection::open(&args.broker, &tls).await?;
    let key = plexus_crypto::BoxKeypair::generate()?;
    let hello = signed_hello(
        &peers[0].profile,
        Uuid::new_v4(),
        key.public_key(),
        SessionMode::Control,
        None,
        SessionProfile::default(),
    )?;
    control.call(&hello).await?;
    for i in 0..args.tasks {
        control
            .call(&c::TaskCreate {
                title: format!("task {i}: make the thing work"),
                description: String::new(),
                complexity: None,
                files: Vec::new(),
                tags: vec![format!("area-{}", i % 9)],
                depends_on: Vec::new(),
                assignee: None,
            })
            .await?;
    }
    eprintln!("{} sessions and {} tasks ready; starting the browser", sessions.len(), args.tasks);

    let url = args.broker.replacen("ws://", "http://", 1).replacen("wss://", "https://", 1);
    let mut script = tokio::process::Command::new("node")
        .arg("bench/lobby.mjs")
        .current_dir(std::path::Path::new(&args.repo).join("web"))
        .env("PLEXUS_WEB_URL", format!("{}/", url.trim_end_matches('/')))
        .env("PLEXUS_WEB_CODE", &code)
        .env("PLEXUS_WEB_EXPECT", (args.sessions + 1).to_string())
        .env("PLEXUS_WEB_TASKS", args.tasks.to_string())
        .env("PLEXUS_CHROMIUM", &args.chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node web/bench/lobby.mjs (run scripts/web.sh first)")?;
    let mut to_script = script.stdin.take().context("stdin")?;
    let mut lines = BufReader::new(script.stdout.take().context("stdout")?).lines();
    let ready: Value = match lines.next_line().await? {
        Some(line) => serde_json::from_str(&line)?,
        None => bail!("the browser script ended before the lobby was ready"),
    };

    eprintln!("lobby ready in the browser: {ready}; changing {} statuses", args.changes);
    // Flip statuses one at a time, noting when each was sent to the broker.
    // Each change flips its session, so every one of them shows in the DOM.
    let mut working = vec![false; sessions.len()];
    let mut changes = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let k = (i * 7919) % sessions.len();
        let (session_id, conn) = &sessions[k];
        working[k] = !working[k];
        let status = if working[k] { Status::Working } else { Status::Idle };
        let t0 = plexus_now_ms();
        conn.call(&ops::SetStatus { status, source: StatusSource::Manual }).await.context("set a status")?;
        changes.push(json!({"session": session_id, "status": status.as_str(), "t0": t0}));
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    to_script.write_all(format!("{}\n", json!({ "changes": changes })).as_bytes()).await?;
    // Closing its stdin lets the script's line reader, and so the script, end.
    drop(to_script);
    let result: Value = match lines.next_line().await? {
        Some(line) => serde_json::from_str(&line)?,
        None => bail!("the browser script ended without a result"),
    };
    script.wait().await?;
    println!(
        "{}",
        json!({
            "sessions": args.sessions, "members": args.members, "machines": args.machines, "tasks": args.tasks,
            "load": ready, "status_to_dom_ms": result,
        })
    );
    Ok(())
}
