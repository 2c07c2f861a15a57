//! `plexus-chaos`: a fault-injection run against a real cluster of its own, accounting for
//! every guarantee. It starts a private Postgres and Redis (`deploy/local-*.sh` on their own
//! ports) and N broker processes, then for `--secs`:
//!
//! - **senders** send numbered direct messages, resending an unacknowledged one with the same
//!   id on the next node until it is acknowledged; **receivers** hold session connections
//!   that reconnect through the nodes, resume from their local cursor and acknowledge;
//! - **lockers** contend for one exclusive path (acquire with a wait, hold briefly, release),
//!   retrying through failures with a stable session;
//! - **reminders**: one-shots due during the run and cron reminders every few seconds;
//! - **faults**: `kill -9` of one node every `--kill-every` seconds (restarted 2 s later), a
//!   Postgres restart and a Redis restart.
//!
//! Then every node comes back, the run drains, and it prints one JSON object: messages acked /
//! lost / duplicated / misrouted, lock grants / overlapping holds / grants nobody received
//! (ghosts) / tokens that went backwards, reminder firings due / lost / duplicated. It exits 1
//! when any of those is not 0.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use plexus_benches::{setup, Peer};
use plexus_client::{
    connection::{signed_hello, ClientError, Connection, TlsOptions},
    seal::{seal_for, SealTo},
    Incoming, Outcome, Policy, Session, SessionOptions, Surface,
};
use plexus_proto::{
    coord::{self as c, Change, CoordEvent, LockMode, Schedule},
    ops,
    push::Message,
    types::{Priority, SessionMode, SessionProfile, Target},
    ErrorCode,
};
use serde_json::json;
use uuid::Uuid;

#[derive(Parser, Clone)]
#[command(name = "plexus-chaos", about = "Fault-injection run against a private Plexus cluster")]
struct Args {
    /// How long faults and traffic run.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Broker nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds between `kill -9`s (one node at a time, round robin).
    #[arg(long, default_value_t = 20)]
    kill_every: u64,
    /// Sender → receiver pairs.
    #[arg(long, default_value_t = 6)]
    pairs: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 25)]
    rate: u64,
    /// Lockers contending for one path.
    #[arg(long, default_value_t = 4)]
    lockers: usize,
    /// One-shot reminders due during the run.
    #[arg(long, default_value_t = 40)]
    reminders: usize,
    /// Private Postgres port.
    #[arg(long, default_value_t = 55433)]
    pg_port: u16,
    /// Private Redis port.
    #[arg(long, default_value_t = 56380)]
    redis_port: u16,
    /// The repository (for `deploy/local-*.sh`).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The `plexus-broker` binary (default: beside this one).
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Most seconds to wait for the run to drain after the faults stop.
    #[arg(long, default_value_t = 120)]
    drain_secs: u64,
}

const LOCK_PATH: &str = "chaos/critical";

// ---------------------------------------------------------------------------------------------
// The cluster: private Postgres and Redis, broker processes that can be killed and restarted.

struct Node {
    port: u16,
    child: Option<Child>,
}

struct Cluster {
    args: Args,
    db_url: String,
    redis_url: String,
    prefix: String,
    broker_bin: PathBuf,
    log_dir: PathBuf,
    nodes: Mutex<Vec<Node>>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

impl Cluster {
    fn script(&self, name: &str, action: &str) -> Result<String> {
        let out = Command::new("bash")
            .arg(self.args.repo.join("deploy").join(name))
            .arg(action)
            .env("PLEXUS_PG_PORT", self.args.pg_port.to_string())
            .env("PLEXUS_REDIS_PORT", self.args.redis_port.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running deploy/{name} {action}"))?;
        if !out.status.success() {
            bail!("deploy/{name} {action} failed");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn url(&self, i: usize) -> String {
        let nodes = self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        format!("ws://127.0.0.1:{}", nodes[i % nodes.len()].port)
    }

    fn urls(&self) -> Vec<String> {
        (0..self.args.nodes).map(|i| self.url(i)).collect()
    }

    fn spawn(&self, i: usize) -> Result<()> {
        let mut nodes = self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = nodes[i].port;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_dir.join(format!("node-{i}.log")))?;
        let child = Command::new(&self.broker_bin)
            .env("PLEXUS_DATABASE__URL", &self.db_url)
            .env("PLEXUS_HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("PLEXUS_HTTP__WORKERS", "1")
            .env("PLEXUS_DATABASE__POOL_SIZE", "8")
            .env("PLEXUS_REDIS__URL", &self.redis_url)
            .env("PLEXUS_REDIS__PREFIX", &self.prefix)
            .env("PLEXUS_REDIS__NODE_TTL_SECS", "3")
            .env("PLEXUS_COORDINATION__LOCK_GRACE_SECS", "5")
            .env("PLEXUS_LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning plexus-broker")?;
        nodes[i].child = Some(child);
        Ok(())
    }

    fn kill9(&self, i: usize) {
        let mut nodes = self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mut c) = nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restart node `i` until it reports ready (it exits by itself while Redis is down).
    async fn bring_up(&self, i: usize) {
        loop {
            let port = self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i].port;
            let exited = {
                let mut nodes = self.nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match nodes[i].child.as_mut() {
                    None => true,
                    Some(c) => c.try_wait().ok().flatten().is_some(),
                }
            };
            if exited {
                self.kill9(i);
                if let Err(e) = self.spawn(i) {
                    eprintln!("chaos: node {i} did not start: {e:#}");
                }
            }
            for _ in 0..40 {
                if ready(port) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    fn stop_all(&self) {
        for i in 0..self.args.nodes {
            self.kill9(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        let _ = self.script("local-redis.sh", "stop");
        let _ = self.script("local-postgres.sh", "stop");
    }
}

async fn start_cluster(args: &Args) -> Result<Arc<Cluster>> {
    let broker_bin = match &args.broker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("plexus-broker"),
    };
    if !broker_bin.exists() {
        bail!("{} is missing: cargo build --bins first", broker_bin.display());
    }
    let log_dir = std::env::temp_dir().join(format!("plexus-chaos-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&log_dir)?;
    let mut cluster = Cluster {
        args: args.clone(),
        db_url: String::new(),
        redis_url: String::new(),
        prefix: format!("chaos:{}:", Uuid::new_v4().simple()),
        broker_bin,
        log_dir,
        nodes: Mutex::new(Vec::new()),
    };
    let admin = cluster.script("local-postgres.sh", "start")?;
    cluster.redis_url = cluster.script("local-redis.sh", "start")?;
    let name = format!("chaos_{}", Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.clone());
    cluster.db_url = format!("{base}/{name}");
    for _ in 0..args.nodes {
        cluster
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Node { port: free_port()?, child: None });
    }
    let cluster = Arc::new(cluster);
    for i in 0..args.nodes {
        cluster.bring_up(i).await;
    }
    Ok(cluster)
}

// ---------------------------------------------------------------------------------------------
// Clients that go through failures.

/// A control connection on node `url` (senders and lockers move between nodes themselves).
async fn session(url: &str, p: &Peer, mode: SessionMode) -> Result<Connection> {
    let conn = Connection::open(url, &TlsOptions::default()).await?;
    let hello =
        signed_hello(&p.profile, p.profile.session_id, p.session.public_key(), mode, None, SessionProfile::default())?;
    conn.call(&hello).await?;
    Ok(conn)
}

#[derive(Default)]
struct Tally {
    /// Message texts acknowledged to their sender.
    acked: Mutex<HashSet<String>>,
    /// Message texts surfaced by their receiver, with how often.
    received: Mutex<HashMap<String, u32>>,
    /// Messages surfaced again after an interrupted surface (marked as repeats).
    repeats: AtomicU64,
    /// Messages that reached the wrong receiver, or did not open.
    misrouted: AtomicU64,
    /// Reminder firings surfaced: message id → count, and the reminder text of each.
    reminder_firings: Mutex<HashMap<Uuid, (String, u32)>>,
    /// Send attempts that failed and went again with the same id.
    resends: AtomicU64,
}

async fn sender(
    cluster: Arc<Cluster>,
    from: Arc<Peer>,
    to: Arc<Peer>,
    index: usize,
    until: Instant,
    tally: Arc<Tally>,
) {
    let to_key = to.profile.member_key().map(|k| k.public_key().to_vec()).unwrap_or_default();
    let pace = Duration::from_millis(1000 / cluster.args.rate.max(1));
    let mut node = index;
    let mut conn: Option<Connection> = None;
    let mut n = 0u64;
    while Instant::now() < until {
        let text = format!("s{index}-{n}");
        let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, text.as_bytes());
        // Resend the same id until it is acknowledged.
        loop {
            let c = match conn.as_ref() {
                Some(c) => c,
                None => match session(&cluster.url(node), &from, SessionMode::Control).await {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        node += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok((sealing, nonce, ciphertext)) = seal_for(SealTo::Member(&to_key), &from.session, text.as_bytes())
            else {
                return;
            };
            let priority = if n.is_multiple_of(2) { Priority::Now } else { Priority::Next };
            let send = ops::Send {
                id,
                target: Target::Member(to.profile.member_id),
                priority,
                reply_to: None,
                subtype: None,
                sealing,
                nonce,
                ciphertext,
            };
            match c.call(&send).await {
                Ok(_) => {
                    tally.acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(text.clone());
                    break;
                }
                Err(_) => {
                    tally.resends.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    node += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        n += 1;
        tokio::time::sleep(pace).await;
    }
}

/// A receiver is a real client: `plexus_client`'s session and delivery policy, surfacing into
/// the tally.
struct Receiver {
    me: usize,
    tally: Arc<Tally>,
}

impl Surface for Receiver {
    async fn surface(&self, i: &Incoming) -> Outcome {
        if i.repeat {
            self.tally.repeats.fetch_add(1, Ordering::Relaxed);
        }
        surface(&i.message, &i.text, self.me, &self.tally);
        Outcome::Surfaced
    }
}

async fn receiver(cluster: Arc<Cluster>, me: Arc<Peer>, index: usize, tally: Arc<Tally>) {
    let home = cluster.log_dir.join(format!("receiver-{index}"));
    let options =
        SessionOptions { mode: SessionMode::Session, profile: SessionProfile::default(), policy: Policy::default() };
    let session = Session::new(home, me.profile.clone(), options);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    if let Err(e) = session.run(Arc::new(Receiver { me: index, tally }), tx).await {
        eprintln!("chaos: receiver {index} stopped: {e}");
    }
}

fn surface(m: &Message, text: &str, index: usize, tally: &Tally) {
    if m.sealing == plexus_proto::types::Sealing::Plain {
        return; // coordination events (the lockers' lock.* events)
    }
    if text.starts_with("[cannot decrypt") {
        tally.misrouted.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let text = text.to_owned();
    if m.subtype.as_deref() == Some("reminder") {
        let mut r = tally.reminder_firings.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.entry(m.id).or_insert_with(|| (text, 0)).1 += 1;
        return;
    }
    if !text.starts_with(&format!("s{index}-")) {
        tally.misrouted.fetch_add(1, Ordering::Relaxed);
    }
    *tally.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(text).or_insert(0) += 1;
}

#[derive(Default)]
struct LockTally {
    /// (token, holder, start of the hold, release sent) of every acquisition.
    holds: Mutex<Vec<(u64, usize, Instant, Instant)>>,
    /// Every token a locker was handed.
    received_tokens: Mutex<HashSet<u64>>,
    backwards: AtomicU64,
}

async fn locker(cluster: Arc<Cluster>, me: Arc<Peer>, index: usize, until: Instant, tally: Arc<LockTally>) {
    let mut node = index;
    let mut conn: Option<Connection> = None;
    let mut last_token = 0u64;
    let req = c::LockAcquire {
        pattern: LOCK_PATH.into(),
        mode: LockMode::Exclusive,
        ttl_ms: 30_000,
        wait_ms: 10_000,
        reason: Some(format!("locker {index}")),
    };
    while Instant::now() < until {
        let c = match conn.as_ref() {
            Some(c) => c,
            None => match session(&cluster.url(node), &me, SessionMode::Control).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    node += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let lock = match c.call_waiting(&req, Duration::from_millis(req.wait_ms)).await {
            Ok(lock) => lock,
            Err(ClientError::Remote { code: ErrorCode::Conflict, .. }) => continue,
            Err(_) => {
                // Maybe granted with the reply lost: asking again on any node renews it.
                conn = None;
                node += 1;
                continue;
            }
        };
        let start = Instant::now();
        tally.received_tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(lock.token);
        if lock.token < last_token {
            tally.backwards.fetch_add(1, Ordering::Relaxed);
        }
        last_token = lock.token;
        tokio::time::sleep(Duration::from_millis(20 + u64::from(plexus_crypto::random_below(60)))).await;
        let end = Instant::now();
        // Release through failures: until released, or known gone.
        loop {
            let c = match conn.as_ref() {
                Some(c) => c,
                None => match session(&cluster.url(node), &me, SessionMode::Control).await {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        node += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            match c.call(&c::LockRelease { token: lock.token, force: false, reason: None }).await {
                Ok(_) | Err(ClientError::Remote { code: ErrorCode::NotFound, .. }) => break,
                Err(_) => {
                    conn = None;
                    node += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tally.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((lock.token, index, start, end));
    }
}

/// Create the one-shot reminders (due over the run) and two cron ones (every 5 s).
async fn create_reminders(cluster: &Cluster, creator: &Peer, target: &Peer) -> Result<Vec<(Uuid, String, bool)>> {
    let conn = session(&cluster.url(0), creator, SessionMode::Control).await?;
    let to_key = target.profile.member_key().map_err(anyhow::Error::msg)?.public_key().to_vec();
    let mut made = Vec::new();
    let n = cluster.args.reminders;
    let span = cluster.args.secs.saturating_sub(15).max(1) * 1000;
    for i in 0..n + 2 {
        let cron = i >= n;
        let text = format!("r{i}");
        let (sealing, nonce, ciphertext) = seal_for(SealTo::Member(&to_key), &creator.session, text.as_bytes())?;
        let schedule = if cron {
            Schedule::Cron { expr: "*/5 * * * * *".into(), tz: "UTC".into() }
        } else {
            Schedule::In { after_ms: 8_000 + span * i as u64 / n.max(1) as u64 }
        };
        let r = conn
            .call(&c::RemindCreate {
                schedule,
                target: Target::Member(target.profile.member_id),
                priority: Priority::Now,
                sealing,
                nonce,
                ciphertext,
                label: None,
            })
            .await?;
        made.push((r.id, text, cron));
    }
    Ok(made)
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let cluster = start_cluster(&args).await?;
    let urls = cluster.urls();
    // Ctrl-C still stops everything this run started (the cluster's drop).
    let run = tokio::select! {
        r = run(&args, cluster.clone(), &urls) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let logs = cluster.log_dir.clone();
    drop(cluster);
    let report = run?;
    println!("{report}");
    eprintln!("chaos: {:.0} s in all; broker logs in {}", started.elapsed().as_secs_f64(), logs.display());
    let bad = [
        "lost",
        "duplicated",
        "misrouted",
        "overlapping",
        "ghost_grants",
        "backwards_tokens",
        "reminders_lost",
        "reminders_duplicated",
    ]
    .iter()
    .map(|k| report["violations"][k].as_u64().unwrap_or(1))
    .sum::<u64>();
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: &Args, cluster: Arc<Cluster>, urls: &[String]) -> Result<serde_json::Value> {
    let people = setup(urls, args.pairs * 2 + args.lockers + 1, None).await.context("setting up the mesh")?;
    let mut people: Vec<Arc<Peer>> = people.into_iter().map(Arc::new).collect();
    let reminder_maker = people.pop().context("people")?;
    let lockers: Vec<Arc<Peer>> = people.split_off(args.pairs * 2);
    let (senders, receivers): (Vec<_>, Vec<_>) = people.chunks(2).map(|p| (p[0].clone(), p[1].clone())).unzip();
    let reminders = create_reminders(&cluster, &reminder_maker, &receivers[0]).await?;

    let tally = Arc::new(Tally::default());
    let locks = Arc::new(LockTally::default());
    let until = Instant::now() + Duration::from_secs(args.secs);
    let mut traffic = Vec::new();
    let mut listening = Vec::new();
    for (i, r) in receivers.iter().enumerate() {
        listening.push(tokio::spawn(receiver(cluster.clone(), r.clone(), i, tally.clone())));
    }
    for (i, (s, r)) in senders.iter().zip(&receivers).enumerate() {
        traffic.push(tokio::spawn(sender(cluster.clone(), s.clone(), r.clone(), i, until, tally.clone())));
    }
    for (i, l) in lockers.iter().enumerate() {
        traffic.push(tokio::spawn(locker(cluster.clone(), l.clone(), i, until, locks.clone())));
    }

    // Faults.
    let mut faults = json!({"kills": 0, "postgres_restarts": 0, "redis_restarts": 0});
    let mut next_kill = Instant::now() + Duration::from_secs(args.kill_every);
    let mut pg_at = Some(Instant::now() + Duration::from_secs(args.secs * 35 / 100));
    let mut redis_at = Some(Instant::now() + Duration::from_secs(args.secs * 65 / 100));
    let mut victim = 0usize;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Instant::now();
        if now >= next_kill {
            let i = victim % args.nodes;
            victim += 1;
            eprintln!("chaos: kill -9 node {i}");
            cluster.kill9(i);
            faults["kills"] = json!(faults["kills"].as_u64().unwrap_or(0) + 1);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let c = cluster.clone();
            tokio::spawn(async move { c.bring_up(i).await });
            next_kill = now + Duration::from_secs(args.kill_every);
        }
        if pg_at.is_some_and(|t| now >= t) {
            pg_at = None;
            eprintln!("chaos: restarting postgres");
            cluster.script("local-postgres.sh", "stop")?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.script("local-postgres.sh", "start")?;
            faults["postgres_restarts"] = json!(1);
        }
        if redis_at.is_some_and(|t| now >= t) {
            redis_at = None;
            eprintln!("chaos: restarting redis");
            cluster.script("local-redis.sh", "stop")?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.script("local-redis.sh", "start")?;
            faults["redis_restarts"] = json!(1);
        }
    }
    for t in traffic {
        let _ = t.await;
    }
    eprintln!("chaos: faults over; draining");
    for i in 0..args.nodes {
        cluster.bring_up(i).await;
    }
    // The cron reminders stop here; their firings so far must all arrive.
    let admin = session(&cluster.url(0), &reminder_maker, SessionMode::Control).await?;
    let mut cancelled = HashSet::new();
    for (id, _, cron) in &reminders {
        if *cron {
            cancelled.insert(*id);
        }
    }
    let list = admin.call(&c::RemindList { all: true, include_done: true }).await?;
    for r in &list.reminders {
        if cancelled.contains(&r.id) {
            admin.call(&c::RemindCancel { number: r.number }).await?;
        }
    }

    let (client, conn) = tokio_postgres::connect(&cluster.db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let fire_counts = loop {
        let rows = client.query("SELECT id, fire_count FROM reminders", &[]).await?;
        let counts: HashMap<Uuid, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let expected: i64 = counts.values().sum();
        let got = tally.reminder_firings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() as i64;
        let acked = tally.acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let received = tally.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let all_in = acked.iter().all(|t| received.contains_key(t));
        let due_done = reminders.iter().filter(|(_, _, cron)| !cron).all(|(id, _, _)| counts.get(id) == Some(&1));
        if (all_in && got >= expected && due_done) || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for l in listening {
        l.abort();
    }

    // Messages.
    let acked = tally.acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let received = tally.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let lost = acked.iter().filter(|t| !received.contains_key(*t)).count();
    let duplicated: u32 = received.values().map(|n| n.saturating_sub(1)).sum();

    // Locks: holds must not overlap; every grant the log records was handed to a locker.
    let mut holds = locks.holds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    holds.sort_by_key(|h| h.2);
    let mut overlapping = 0;
    let mut latest_end: Option<Instant> = None;
    for h in &holds {
        if latest_end.is_some_and(|end| h.2 < end) {
            overlapping += 1;
        }
        latest_end = Some(latest_end.map_or(h.3, |end| end.max(h.3)));
    }
    let rows = client.query("SELECT ciphertext FROM events WHERE subtype = 'lock.acquired'", &[]).await?;
    let granted: Vec<u64> = rows
        .iter()
        .filter_map(|r| serde_json::from_slice::<CoordEvent>(&r.get::<_, Vec<u8>>(0)).ok())
        .filter_map(|e| match e.change {
            Change::Lock { lock, .. } if lock.pattern == LOCK_PATH => Some(lock.token),
            _ => None,
        })
        .collect();
    let handed = locks.received_tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let ghosts = granted.iter().filter(|t| !handed.contains(t)).count();

    // Reminders: each firing recorded in the database surfaced exactly once.
    let firings = tally.reminder_firings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut per_reminder: BTreeMap<String, u32> = BTreeMap::new();
    let mut reminder_dups = 0u32;
    for (text, n) in firings.values() {
        *per_reminder.entry(text.clone()).or_insert(0) += 1;
        reminder_dups += n.saturating_sub(1);
    }
    let mut reminders_due = 0i64;
    let mut reminders_lost = 0i64;
    for (id, text, cron) in &reminders {
        let count = fire_counts.get(id).copied().unwrap_or(0);
        if !cron && count > 1 {
            reminder_dups += (count - 1) as u32;
        }
        reminders_due += count;
        reminders_lost += (count - i64::from(per_reminder.get(text).copied().unwrap_or(0))).max(0);
    }
    let unfired_one_shots = reminders.iter().filter(|(id, _, cron)| !cron && fire_counts.get(id) != Some(&1)).count();

    Ok(json!({
        "secs": args.secs,
        "nodes": args.nodes,
        "faults": faults,
        "messages": {
            "acked": acked.len(),
            "received": received.len(),
            "resends": tally.resends.load(Ordering::Relaxed),
            "surfaced_again_marked_repeat": tally.repeats.load(Ordering::Relaxed),
        },
        "locks": { "grants": holds.len(), "logged_grants": granted.len() },
        "reminders": { "firings_due": reminders_due, "firings_received": firings.len(), "one_shots_not_fired": unfired_one_shots },
        "violations": {
            "lost": lost,
            "duplicated": duplicated,
            "misrouted": tally.misrouted.load(Ordering::Relaxed),
            "overlapping": overlapping,
            "ghost_grants": ghosts,
            "backwards_tokens": locks.backwards.load(Ordering::Relaxed),
            "reminders_lost": reminders_lost + unfired_one_shots as i64,
            "reminders_duplicated": reminder_dups,
        },
    }))
}
