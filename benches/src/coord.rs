//! Coordination modes of `plexus-load`: lock round trips, task-claim contention and reminder
//! lateness. Each prints one JSON object, like the message modes.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use plexus_client::{
    connection::{push_as, signed_hello, Connection, TlsOptions},
    seal::{open, seal_for, SealTo},
};
use plexus_proto::{
    coord::{self as c, LockMode, Schedule, TaskAction},
    ops,
    push::Message,
    types::{Priority, SessionMode, SessionProfile, Target},
};
use serde_json::json;
use uuid::Uuid;

use plexus_benches::{percentile, plexus_now_ms, Peer};

use crate::Args;

async fn connect(args: &Args, i: usize, p: &Peer, mode: SessionMode) -> Result<Connection> {
    let url = &args.broker[i % args.broker.len()];
    let conn = Connection::open(url, &TlsOptions::default()).await?;
    let session_id = if mode == SessionMode::Session { p.profile.session_id } else { Uuid::new_v4() };
    let hello = signed_hello(&p.profile, session_id, p.session.public_key(), mode, None, SessionProfile::default())?;
    conn.call(&hello).await?;
    Ok(conn)
}

fn sorted(v: &Mutex<Vec<f64>>) -> Vec<f64> {
    let mut v = v.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    v.sort_by(f64::total_cmp);
    v
}

fn pcts(v: &[f64]) -> serde_json::Value {
    json!({ "p50": percentile(v, 0.5), "p99": percentile(v, 0.99), "max": v.last().copied().unwrap_or(0.0) })
}

/// `--mode locks`: every peer acquires and releases its own path `--messages` times (no
/// contention: the cost of the lock table itself). `--mode locks-contended`: every peer
/// acquires one shared path with a wait, holds it for nothing, releases.
pub(crate) async fn locks(args: &Args, peers: &[Peer], contended: bool) -> Result<()> {
    let mut conns = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        conns.push(Arc::new(connect(args, i, p, SessionMode::Control).await?));
    }
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let (conn, lat, failed, n) = (conn.clone(), lat.clone(), failed.clone(), args.messages);
        tasks.push(tokio::spawn(async move {
            let pattern = if contended { "bench/shared.rs".to_owned() } else { format!("bench/{i}/**") };
            let wait_ms = if contended { 600_000 } else { 0 };
            for _ in 0..n {
                let t = Instant::now();
                let req = c::LockAcquire {
                    pattern: pattern.clone(),
                    mode: LockMode::Exclusive,
                    ttl_ms: 60_000,
                    wait_ms,
                    reason: None,
                };
                match conn.call_waiting(&req, Duration::from_millis(wait_ms)).await {
                    Ok(lock) => {
                        lat.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                        let rel = c::LockRelease { token: lock.token, force: false, reason: None };
                        if conn.call(&rel).await.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let lat = sorted(&lat);
    println!(
        "{}",
        json!({
            "mode": if contended { "locks-contended" } else { "locks" },
            "brokers": args.broker, "clients": peers.len(), "per_client": args.messages,
            "grants": lat.len(), "failed": failed.load(Ordering::Relaxed),
            "acquire_release_per_sec": lat.len() as f64 / secs,
            "acquire_ms": pcts(&lat),
        })
    );
    Ok(())
}

/// `--mode claims`: the first peer creates `--messages` tasks; every peer races to claim each
/// one. Reports tasks resolved per second, claim latency, and checks one winner per task.
pub(crate) async fn claims(args: &Args, peers: &[Peer]) -> Result<()> {
    let mut conns = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        conns.push(Arc::new(connect(args, i, p, SessionMode::Control).await?));
    }
    let mut numbers = Vec::new();
    for k in 0..args.messages {
        let t = conns[0]
            .call(&c::TaskCreate {
                title: format!("bench task {k}"),
                description: String::new(),
                complexity: None,
                files: vec![],
                tags: vec!["bench".into()],
                depends_on: vec![],
                assignee: None,
            })
            .await?;
        numbers.push(t.number);
    }
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    let wins = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in &conns {
        let (conn, lat, wins, conflicts, numbers) =
            (conn.clone(), lat.clone(), wins.clone(), conflicts.clone(), numbers.clone());
        tasks.push(tokio::spawn(async move {
            for number in numbers {
                let t = Instant::now();
                let r =
                    conn.call(&c::TaskUpdate { number, action: TaskAction::Claim, note: None, assignee: None }).await;
                lat.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(t.elapsed().as_secs_f64() * 1000.0);
                match r {
                    Ok(_) => wins.fetch_add(1, Ordering::Relaxed),
                    Err(_) => conflicts.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let lat = sorted(&lat);
    let wins = wins.load(Ordering::Relaxed);
    if wins != numbers.len() as u64 {
        bail!("{wins} winners for {} tasks", numbers.len());
    }
    println!(
        "{}",
        json!({
            "mode": "claims", "brokers": args.broker, "claimers": peers.len(), "tasks": numbers.len(),
            "winners": wins, "refused": conflicts.load(Ordering::Relaxed),
            "tasks_resolved_per_sec": numbers.len() as f64 / secs,
            "claim_attempts_per_sec": lat.len() as f64 / secs,
            "claim_ms": pcts(&lat),
        })
    );
    Ok(())
}

/// `--mode reminders`: peers schedule `--reminders` one-shot reminders for the first peer's
/// member, due over `--spread-secs` starting `--lead-secs` from now; the first peer stays
/// present and measures lateness from each reminder's due time (sealed in its body) to the
/// push arriving.
pub(crate) async fn reminders(args: &Args, peers: &[Peer]) -> Result<()> {
    let n = args.reminders;
    let receiver = &peers[0];
    let mut recv_conn = connect(args, 0, receiver, SessionMode::Session).await?;
    let mut pushes = recv_conn.take_pushes();
    let recv_conn = Arc::new(recv_conn);
    let member_key = receiver.profile.member_key().map_err(anyhow::Error::msg)?;
    let to_key = member_key.public_key().to_vec();
    let lateness: Arc<Mutex<Vec<f64>>> = Arc::default();
    let dupes = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    {
        let (conn, lateness, dupes, got, session) =
            (recv_conn.clone(), lateness.clone(), dupes.clone(), got.clone(), receiver.session.clone());
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut to_ack = Vec::new();
            let mut flush = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    push = pushes.recv() => {
                        let Some(push) = push else { break };
                        let now = plexus_now_ms();
                        let Some(m) = push_as::<Message>(&push) else { continue };
                        if m.subtype.as_deref() != Some("reminder") { continue }
                        to_ack.push(m.seq);
                        if !seen.insert(m.id) { dupes.fetch_add(1, Ordering::Relaxed); continue }
                        got.fetch_add(1, Ordering::Relaxed);
                        if let Ok(body) = open(&m, &session, &member_key, None) {
                            if let Some(due) = std::str::from_utf8(&body).ok().and_then(|s| s.parse::<u64>().ok()) {
                                lateness.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(now.saturating_sub(due) as f64);
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
    }

    let creators: Vec<Arc<Connection>> = {
        let mut v = Vec::new();
        for (i, p) in peers.iter().enumerate().skip(1) {
            v.push(Arc::new(connect(args, i, p, SessionMode::Control).await?));
        }
        v
    };
    let first_due = plexus_now_ms() + args.lead_secs * 1000;
    let spread_ms = args.spread_secs * 1000;
    let created = Arc::new(AtomicU64::new(0));
    let create_started = Instant::now();
    let mut tasks = Vec::new();
    for (k, conn) in creators.iter().enumerate() {
        let (conn, created, to_key, receiver_member) =
            (conn.clone(), created.clone(), to_key.clone(), receiver.profile.member_id);
        let session = peers[k + 1].session.clone();
        let share: Vec<usize> = (0..n).filter(|i| i % creators.len() == k).collect();
        tasks.push(tokio::spawn(async move {
            for i in share {
                let due = first_due + (i as u64 * spread_ms) / n.max(1) as u64;
                let Ok((sealing, nonce, ciphertext)) =
                    seal_for(SealTo::Member(&to_key), &session, due.to_string().as_bytes())
                else {
                    continue;
                };
                let req = c::RemindCreate {
                    schedule: Schedule::At { at_ms: due },
                    target: Target::Member(receiver_member),
                    priority: Priority::Now,
                    sealing,
                    nonce,
                    ciphertext,
                    label: None,
                };
                if conn.call(&req).await.is_ok() {
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let create_secs = create_started.elapsed().as_secs_f64();
    let created = created.load(Ordering::Relaxed);
    if plexus_now_ms() > first_due {
        eprintln!("warning: creating took longer than --lead-secs; early reminders are late by construction");
    }
    let last_due = first_due + spread_ms;
    let deadline = Instant::now()
        + Duration::from_millis(last_due.saturating_sub(plexus_now_ms()))
        + Duration::from_secs(args.drain_secs);
    while got.load(Ordering::Relaxed) < created && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = sorted(&lateness);
    println!(
        "{}",
        json!({
            "mode": "reminders", "brokers": args.broker, "scheduled": created, "creators": creators.len(),
            "create_per_sec": created as f64 / create_secs,
            "spread_secs": args.spread_secs, "received": got.load(Ordering::Relaxed),
            "duplicates": dupes.load(Ordering::Relaxed),
            "lateness_ms": { "p50": percentile(&late, 0.5), "p99": percentile(&late, 0.99), "p999": percentile(&late, 0.999), "max": late.last().copied().unwrap_or(0.0) },
        })
    );
    Ok(())
}
