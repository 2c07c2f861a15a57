//! `plexus-load`: drives N peers × M durable messages through a running broker and prints
//! one JSON object: delivered %, throughput and end-to-end latency percentiles.
//!
//! Every peer holds one session connection; peer i sends M direct messages to peer i+1 with a
//! window of outstanding sends, and acknowledges what it receives in batches. Latency is from
//! the moment a send is written to the moment the recipient's push arrives — measured on one
//! clock, and a push that overtakes its sender's ack still counts (as it should).

mod coord;

use plexus_benches::{percentile, setup, Peer};

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use plexus_client::{
    connection::{push_as, signed_hello, Connection, TlsOptions},
    seal::{seal_for, SealTo},
};
use plexus_proto::{
    ops,
    push::Message,
    types::{Priority, SessionMode, SessionProfile, Target},
};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "plexus-load", about = "Load generator for a running Plexus broker")]
struct Args {
    /// Broker URL(s); peers are spread over them round-robin.
    #[arg(long, default_value = "ws://127.0.0.1:7700", value_delimiter = ',')]
    broker: Vec<String>,
    /// Number of peers.
    #[arg(long, default_value_t = 10)]
    peers: usize,
    /// Messages each peer sends.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Outstanding (unacknowledged) sends per peer.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Plaintext bytes per message.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// now, next or low (low is never pushed: use now or next).
    #[arg(long, default_value = "now")]
    priority: String,
    /// Offered load in messages per second over all senders (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to wait for stragglers after the last ack (idle mode: to settle before measuring).
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// `direct` (peer i → peer i+1), `group` (peer 0 → @bench, every other peer in the group),
    /// `storm` (connect every peer, SIGKILL --kill-pid, time until the killed node's sessions
    /// are back on the other brokers), `locks`, `locks-contended`, `claims` or `reminders`
    /// (see `coord.rs`).
    #[arg(long, default_value = "direct")]
    mode: String,
    /// Storm mode: pid of the broker listed first in --broker, killed once all peers are on.
    #[arg(long)]
    kill_pid: Option<u32>,
    /// Idle mode: pid of the broker (single node) whose resident memory is read before and
    /// after every peer connected.
    #[arg(long)]
    rss_pid: Option<u32>,
    /// Idle mode: connect the sessions hidden (not announced to the others).
    #[arg(long)]
    hidden: bool,
    /// Reminders mode: how many to schedule.
    #[arg(long, default_value_t = 10_000)]
    reminders: usize,
    /// Reminders mode: seconds from now until the first is due (creation must finish first).
    #[arg(long, default_value_t = 30)]
    lead_secs: u64,
    /// Reminders mode: due times are spread evenly over this many seconds.
    #[arg(long, default_value_t = 30)]
    spread_secs: u64,
    /// Operator token, if the broker gates mesh creation.
    #[arg(long, env = "PLEXUS_OPERATOR_TOKEN")]
    operator_token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.peers < 2 {
        bail!("--peers must be at least 2");
    }
    let priority = match args.priority.as_str() {
        "now" => Priority::Now,
        "next" => Priority::Next,
        _ => bail!("--priority is now or next"),
    };
    let peers = setup(&args.broker, args.peers, args.operator_token.clone()).await.context("setting up the mesh")?;
    match args.mode.as_str() {
        "storm" => return storm(&args, &peers).await,
        "idle" => return idle(&args, &peers).await,
        "locks" => return coord::locks(&args, &peers, false).await,
        "locks-contended" => return coord::locks(&args, &peers, true).await,
        "claims" => return coord::claims(&args, &peers).await,
        "reminders" => return coord::reminders(&args, &peers).await,
        _ => {}
    }
    let group_mode = match args.mode.as_str() {
        "direct" => false,
        "group" => true,
        _ => bail!("--mode is direct, group, storm, idle, locks, locks-contended, claims or reminders"),
    };
    let bench_group = SessionProfile {
        groups: vec![plexus_proto::types::GroupRole { name: "bench".into(), role: None }],
        ..SessionProfile::default()
    };

    // Connect every peer's session first, so all are present before traffic starts.
    let profile = if group_mode { bench_group } else { SessionProfile::default() };
    let conns = connect_present(&args, &peers, &profile).await?;

    let sent_at: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));

    let mut conns: Vec<Arc<Connection>> = conns
        .into_iter()
        .map(|mut c| {
            let mut pushes = c.take_pushes();
            let c = Arc::new(c);
            let (conn, sent_at, latencies, received, duplicates) = (c.clone(), sent_at.clone(), latencies.clone(), received.clone(), duplicates.clone());
            tokio::spawn(async move {
                let mut seen = std::collections::HashSet::new();
                let mut to_ack = Vec::new();
                let mut flush = tokio::time::interval(Duration::from_millis(20));
                loop {
                    tokio::select! {
                        push = pushes.recv() => {
                            let Some(push) = push else { break };
                            if let Some(m) = push_as::<Message>(&push) {
                                let now = Instant::now();
                                if seen.insert(m.id) {
                                    received.fetch_add(1, Ordering::Relaxed);
                                    if let Some(t) = sent_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&m.id) {
                                        latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(now.duration_since(*t).as_secs_f64() * 1000.0);
                                    }
                                } else {
                                    duplicates.fetch_add(1, Ordering::Relaxed);
                                }
                                to_ack.push(m.seq);
                                if to_ack.len() >= 256 {
                                    // Acks go off the receive path: waiting for one here would
                                    // leave pushes unread and inflate the measured latency.
                                    let (c, seqs) = (conn.clone(), std::mem::take(&mut to_ack));
                                    tokio::spawn(async move { let _ = c.call(&ops::Ack { seqs, read: false }).await; });
                                }
                            }
                        }
                        _ = flush.tick() => {
                            if !to_ack.is_empty() {
                                let (c, seqs) = (conn.clone(), std::mem::take(&mut to_ack));
                                tokio::spawn(async move { let _ = c.call(&ops::Ack { seqs, read: false }).await; });
                            }
                        }
                    }
                }
            });
            c
        })
        .collect();

    let started = Instant::now();
    let mut senders = Vec::new();
    let mesh_key =
        plexus_client::keys::Keyring::new(0, plexus_crypto::generate_mesh_key().to_vec(), Default::default());
    let senders_n = if group_mode { 1 } else { peers.len() };
    let per_message_deliveries = if group_mode { peers.len() as u64 - 1 } else { 1 };
    for i in 0..senders_n {
        let to = &peers[(i + 1) % peers.len()].profile;
        let target = if group_mode { Target::Group("bench".into()) } else { Target::Member(to.member_id) };
        let to_key = to.member_key().map_err(anyhow::Error::msg)?.public_key().to_vec();
        // The broker never opens bodies, so one sealed body per sender is as good as one per
        // message for measuring the broker, and keeps the generator's CPU off the scale.
        let seal_to = if group_mode { SealTo::Mesh(&mesh_key) } else { SealTo::Member(&to_key) };
        let (sealing, nonce, ciphertext) = seal_for(seal_to, &peers[i].session, &vec![b'x'; args.payload])?;
        let conn = conns[i].clone();
        let (sent_at, acked, failed) = (sent_at.clone(), acked.clone(), failed.clone());
        let (m, window) = (args.messages, args.window.max(1));
        // Open loop: each peer sends at rate/peers, phase-shifted so peers do not fire together.
        let interval = (args.rate > 0).then(|| Duration::from_secs_f64(senders_n as f64 / args.rate as f64));
        let phase = interval.map(|iv| iv.mul_f64(i as f64 / senders_n as f64)).unwrap_or_default();
        senders.push(tokio::spawn(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(window));
            let mut inflight = Vec::with_capacity(m);
            let mut ticker = interval.map(|iv| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, iv);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            for _ in 0..m {
                if let Some(t) = ticker.as_mut() {
                    t.tick().await;
                }
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                let id = Uuid::new_v4();
                let send = ops::Send {
                    id,
                    target: target.clone(),
                    priority,
                    reply_to: None,
                    subtype: None,
                    sealing,
                    nonce: nonce.clone(),
                    ciphertext: ciphertext.clone(),
                };
                sent_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, Instant::now());
                let (conn, acked, failed) = (conn.clone(), acked.clone(), failed.clone());
                inflight.push(tokio::spawn(async move {
                    match conn.call(&send).await {
                        Ok(_) => acked.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first failed send: {e}");
                            }
                            0
                        }
                    };
                    drop(permit);
                }));
            }
            for h in inflight {
                let _ = h.await;
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    while received.load(Ordering::Relaxed) < acked.load(Ordering::Relaxed) * per_message_deliveries
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total_secs = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    lat.sort_by(f64::total_cmp);
    let acked_n = acked.load(Ordering::Relaxed);
    let received_n = received.load(Ordering::Relaxed);
    let report = json!({
        "brokers": args.broker,
        "peers": args.peers,
        "messages_per_peer": args.messages,
        "window": args.window,
        "offered_rate": args.rate,
        "payload_bytes": args.payload,
        "priority": args.priority,
        "sent_acked": acked_n,
        "send_failed": failed.load(Ordering::Relaxed),
        "received": received_n,
        "duplicates": duplicates.load(Ordering::Relaxed),
        "mode": args.mode,
        "deliveries_expected": acked_n * per_message_deliveries,
        "delivered_pct": if acked_n == 0 { 0.0 } else { 100.0 * received_n as f64 / (acked_n * per_message_deliveries) as f64 },
        "deliveries_per_sec": received_n as f64 / total_secs,
        "send_seconds": send_secs,
        "total_seconds": total_secs,
        "durable_msgs_per_sec": acked_n as f64 / send_secs,
        "latency_ms": {
            "p50": percentile(&lat, 0.50),
            "p99": percentile(&lat, 0.99),
            "p999": percentile(&lat, 0.999),
            "max": lat.last().copied().unwrap_or(0.0),
        },
    });
    println!("{report}");
    for c in conns.drain(..) {
        c.close().await;
    }
    Ok(())
}

/// Storm mode: every peer holds a session; the node at `--broker[0]` is killed; each of its
/// sessions reconnects (jittered backoff) to the other brokers. Reports how long until all of
/// them said hello again.
/// Connect a present session for every peer, peer i to broker i mod n, one after another.
async fn connect_present(args: &Args, peers: &[Peer], profile: &SessionProfile) -> Result<Vec<Connection>> {
    let tls = TlsOptions::default();
    let mut conns = Vec::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        let conn = Connection::open(&args.broker[i % args.broker.len()], &tls).await?;
        let hello = signed_hello(
            &p.profile,
            p.profile.session_id,
            p.session.public_key(),
            SessionMode::Session,
            None,
            profile.clone(),
        )?;
        conn.call(&hello).await?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// `--mode idle`: every peer connects a present session and stays idle; the broker's resident
/// memory per session is read from `--rss-pid` once they are all on and settled.
async fn idle(args: &Args, peers: &[Peer]) -> Result<()> {
    let Some(pid) = args.rss_pid else { bail!("--mode idle needs --rss-pid of the broker") };
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let profile = SessionProfile { visible: !args.hidden, ..SessionProfile::default() };
    let mut conns = connect_present(args, peers, &profile).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    // Let presence announcements and replays drain before reading memory.
    tokio::time::sleep(Duration::from_secs(args.drain_secs)).await;
    let after = rss_kib(pid)?;
    println!(
        "{}",
        json!({
            "mode": "idle",
            "sessions": conns.len(),
            "hidden": args.hidden,
            "connect_seconds": connect_secs,
            "rss_kib_before": before,
            "rss_kib_after": after,
            "rss_kib_per_session": (after.saturating_sub(before)) as f64 / conns.len() as f64,
        })
    );
    for c in conns.drain(..) {
        c.close().await;
    }
    Ok(())
}

async fn storm(args: &Args, peers: &[Peer]) -> Result<()> {
    let Some(pid) = args.kill_pid else { bail!("--mode storm needs --kill-pid of the first broker") };
    if args.broker.len() < 2 {
        bail!("--mode storm needs at least two brokers");
    }
    let tls = TlsOptions::default();
    let victims: Vec<usize> = (0..peers.len()).filter(|i| i % args.broker.len() == 0).collect();
    let resumed: Arc<Mutex<Vec<f64>>> = Arc::default();
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let connected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let brokers = args.broker.clone();
        let (profile, key) = (p.profile.clone(), p.session.clone());
        let (resumed, killed_at, connected, tls) = (resumed.clone(), killed_at.clone(), connected.clone(), tls.clone());
        tasks.push(tokio::spawn(async move {
            let mut backoff = plexus_client::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            let mut first = true;
            let mut start = i % brokers.len();
            loop {
                let attempt = async {
                    let conn = Connection::open(&brokers[start], &tls).await?;
                    let hello = signed_hello(
                        &profile,
                        profile.session_id,
                        key.public_key(),
                        SessionMode::Session,
                        None,
                        SessionProfile::default(),
                    )?;
                    conn.call(&hello).await?;
                    Ok::<_, plexus_client::connection::ClientError>(conn)
                };
                match attempt.await {
                    Ok(mut conn) => {
                        backoff.reset();
                        if first {
                            connected.fetch_add(1, Ordering::SeqCst);
                            first = false;
                        } else if let Some(t) = *killed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
                            resumed
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(t.elapsed().as_secs_f64() * 1000.0);
                            return;
                        }
                        while conn.next_push().await.is_some() {}
                        start = (start + 1) % brokers.len();
                    }
                    Err(_) => {
                        start = (start + 1) % brokers.len();
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        }));
    }
    while connected.load(Ordering::SeqCst) < peers.len() as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    *killed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status()?;
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    while resumed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() < victims.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut times = resumed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "mode": "storm",
            "brokers": args.broker,
            "sessions": peers.len(),
            "sessions_on_killed_node": victims.len(),
            "resumed": times.len(),
            "resume_ms": {"p50": percentile(&times, 0.5), "p99": percentile(&times, 0.99), "max": times.last().copied().unwrap_or(0.0)},
        })
    );
    for t in tasks {
        t.abort();
    }
    Ok(())
}
