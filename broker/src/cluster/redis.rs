//! Redis implementations of the cluster seams. Per node: one multiplexed connection (a
//! `ConnectionManager`, reconnecting on its own) for commands and pipelined publishes, and one
//! pub/sub connection for the mesh channels this node has sessions of. Never one per session.
//!
//! Keys (all under a configurable prefix, default `plexus:`):
//! - `mesh:{id}` — the pub/sub channel of a mesh; payload `{origin node, event}` (MessagePack).
//! - `locks` — the one channel every node listens on for lock wakes (payload: the origin node
//!   id): a release on one node lets the queued acquires on the others look at once.
//! - `presence:{mesh}` — hash `session id → {node, PeerInfo}` (MessagePack), and
//!   `presence-node:{mesh}` — hash `session id → node id`, which scripts compare against.
//! - `node:{id}` — a node's liveness key (TTL, refreshed by its heartbeat); `nodes` — the set of
//!   known node ids; `node-sessions:{id}` — `mesh/session` entries a node has registered.
//! - `pushed:{mesh}` — hash `session id → pushed mark` (see
//!   [`PresenceDirectory::mark_pushed`]), written in batches; dropped with the presence entry.
//! - `reap:{id}` — taken (`NX`) by the one survivor that reaps a dead node.
//! - `lock:{key}` — `holder|token`, set with `NX PX`; `fence:{scope}` — the fencing counter.
//!
//! A node delivers its own events to its local router directly (no round trip through Redis)
//! and ignores its own events when they come back on the channel.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use plexus_proto::types::PeerInfo;
use redis::{aio::ConnectionManager, AsyncCommands};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{EventSink, FanOut, MeshEvent, PresenceDirectory, PushedMark};

/// Redis could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RedisSeamError {
    /// Connecting or a command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: MeshEvent,
}

enum SubControl {
    Subscribe(String),
    Unsubscribe(String),
}

/// Connect the command connection.
pub async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager), RedisSeamError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2);
    let manager = client.get_connection_manager_with_config(config).await?;
    Ok((client, manager))
}

/// Fan-out over Redis pub/sub.
pub struct RedisFanOut {
    established: Arc<std::sync::atomic::AtomicBool>,
    node_id: String,
    prefix: String,
    sinks: Arc<Mutex<HashMap<Uuid, EventSink>>>,
    /// (channel, payload) to publish.
    publish: mpsc::UnboundedSender<(String, Vec<u8>)>,
    control: mpsc::UnboundedSender<SubControl>,
    lock_wake: Arc<std::sync::OnceLock<Arc<tokio::sync::Notify>>>,
}

impl RedisFanOut {
    /// Start the publisher and subscriber tasks on the current runtime.
    pub fn start(client: redis::Client, conn: ConnectionManager, node_id: String, prefix: String) -> RedisFanOut {
        let sinks: Arc<Mutex<HashMap<Uuid, EventSink>>> = Arc::default();
        let (publish, publish_rx) = mpsc::unbounded_channel();
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_publisher(conn, publish_rx));
        let established = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lock_wake: Arc<std::sync::OnceLock<Arc<tokio::sync::Notify>>> = Arc::default();
        tokio::spawn(run_subscriber(
            client,
            node_id.clone(),
            prefix.clone(),
            Receivers { sinks: sinks.clone(), lock_wake: lock_wake.clone() },
            control_rx,
            established.clone(),
        ));
        RedisFanOut { established, node_id, prefix, sinks, publish, control, lock_wake }
    }

    fn channel(&self, mesh_id: Uuid) -> String {
        format!("{}mesh:{mesh_id}", self.prefix)
    }
}

impl FanOut for RedisFanOut {
    fn publish(&self, mesh_id: Uuid, event: MeshEvent) {
        let local = self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&mesh_id).cloned();
        match rmp_serde::to_vec_named(&Envelope { origin: self.node_id.clone(), event: event.clone() }) {
            Ok(bytes) => {
                let _ = self.publish.send((self.channel(mesh_id), bytes));
            }
            Err(e) => tracing::error!(error = %e, "cannot encode mesh event"),
        }
        if let Some(sink) = local {
            sink(event);
        }
    }

    fn subscribe(&self, mesh_id: Uuid, sink: EventSink) {
        let fresh =
            self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(mesh_id, sink).is_none();
        if fresh {
            let _ = self.control.send(SubControl::Subscribe(self.channel(mesh_id)));
        }
    }

    fn unsubscribe(&self, mesh_id: Uuid) {
        if self.sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&mesh_id).is_some() {
            let _ = self.control.send(SubControl::Unsubscribe(self.channel(mesh_id)));
        }
    }

    fn ready(&self) -> bool {
        self.established.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn wake_lock_waiters(&self) {
        let _ = self.publish.send((format!("{}locks", self.prefix), self.node_id.clone().into_bytes()));
    }

    fn on_lock_wake(&self, wake: Arc<tokio::sync::Notify>) {
        let _ = self.lock_wake.set(wake);
    }
}

/// Where the subscriber hands what arrives: mesh events to each mesh's sink, lock wakes to
/// this node's waiters.
struct Receivers {
    sinks: Arc<Mutex<HashMap<Uuid, EventSink>>>,
    lock_wake: Arc<std::sync::OnceLock<Arc<tokio::sync::Notify>>>,
}

async fn run_publisher(mut conn: ConnectionManager, mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let mut batch = Vec::with_capacity(256);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // One pipeline per batch: one round trip however many events arrived meanwhile.
        let mut pipe = redis::pipe();
        for (channel, bytes) in batch.drain(..) {
            pipe.publish(channel, bytes).ignore();
        }
        let started = std::time::Instant::now();
        let result: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        crate::metrics::redis_publish_seconds().observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            // Subscribers catch up from the log by sequence; nothing acknowledged is lost.
            crate::metrics::redis_errors().inc();
            tracing::warn!(error = %e, "redis publish failed");
        }
    }
}

async fn run_subscriber(
    client: redis::Client,
    node_id: String,
    prefix: String,
    receivers: Receivers,
    mut control: mpsc::UnboundedReceiver<SubControl>,
    established: Arc<std::sync::atomic::AtomicBool>,
) {
    let Receivers { sinks, lock_wake } = receivers;
    let locks_channel = format!("{prefix}locks");
    let mut delay = Duration::from_millis(100);
    let mut first = true;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "redis pub/sub connect failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                // Keep draining control requests; the current sink map is what gets subscribed.
                while control.try_recv().is_ok() {}
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut channels: Vec<String> = {
            let map = sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.keys().map(|m| format!("{prefix}mesh:{m}")).collect()
        };
        channels.push(locks_channel.clone());
        while control.try_recv().is_ok() {}
        if sink.subscribe(&channels).await.is_err() {
            continue;
        }
        delay = Duration::from_millis(100);
        crate::metrics::redis_connected().set(1);
        established.store(true, std::sync::atomic::Ordering::SeqCst);
        if !first {
            // Events published while we were disconnected are in the log: every router catches up.
            let all: Vec<EventSink> =
                sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
            for s in all {
                s(MeshEvent::Resync);
            }
            // A wake may have been lost too.
            if let Some(wake) = lock_wake.get() {
                wake.notify_waiters();
            }
        }
        first = false;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    if msg.get_channel_name() == locks_channel {
                        if msg.get_payload_bytes() != node_id.as_bytes() {
                            if let Some(wake) = lock_wake.get() {
                                wake.notify_waiters();
                            }
                        }
                        continue;
                    }
                    let Some(mesh) = msg.get_channel_name().strip_prefix(&format!("{prefix}mesh:")).and_then(|m| m.parse::<Uuid>().ok()) else { continue };
                    let Ok(env) = rmp_serde::from_slice::<Envelope>(msg.get_payload_bytes()) else {
                        tracing::warn!("undecodable event on the mesh channel");
                        continue;
                    };
                    if env.origin == node_id {
                        continue;
                    }
                    let target = sinks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&mesh).cloned();
                    if let Some(s) = target {
                        s(env.event);
                    }
                }
                ctl = control.recv() => {
                    let ok = match ctl {
                        Some(SubControl::Subscribe(ch)) => sink.subscribe(&ch).await.is_ok(),
                        Some(SubControl::Unsubscribe(ch)) => sink.unsubscribe(&ch).await.is_ok(),
                        None => return,
                    };
                    if !ok {
                        break;
                    }
                }
            }
        }
        crate::metrics::redis_connected().set(0);
        crate::metrics::redis_errors().inc();
        tracing::warn!("redis pub/sub connection lost; reconnecting");
    }
}

#[derive(Serialize, Deserialize)]
struct PresenceEntry {
    node: String,
    peer: PeerInfo,
}

/// Pushed marks waiting for the next batch, latest per session.
type PendingMarks = Arc<Mutex<HashMap<(Uuid, Uuid), PushedMark>>>;

/// How long pushed marks gather before they are written (one pipeline per batch).
const MARK_BATCH: Duration = Duration::from_millis(50);

/// Presence directory in a Redis hash per mesh.
pub struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    node_id: String,
    marks: PendingMarks,
    marks_due: Arc<tokio::sync::Notify>,
}

impl RedisPresence {
    /// Over an existing command connection; starts the pushed-mark writer on the current
    /// runtime.
    pub fn new(conn: ConnectionManager, prefix: String, node_id: String) -> RedisPresence {
        let marks = PendingMarks::default();
        let marks_due = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(write_marks(conn.clone(), prefix.clone(), marks.clone(), marks_due.clone()));
        RedisPresence { conn, prefix, node_id, marks, marks_due }
    }

    fn key(&self, mesh_id: Uuid) -> String {
        format!("{}presence:{mesh_id}", self.prefix)
    }

    fn marks_key(&self, mesh_id: Uuid) -> String {
        marks_key(&self.prefix, mesh_id)
    }

    fn node_key(&self, mesh_id: Uuid) -> String {
        format!("{}presence-node:{mesh_id}", self.prefix)
    }

    /// Leave the cluster (on drain): drop this node's liveness key and its membership.
    pub async fn leave(&self) -> Result<(), RedisSeamError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(format!("{}node:{}", self.prefix, self.node_id))
            .ignore()
            .srem(format!("{}nodes", self.prefix), &self.node_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Refresh this node's liveness key (call every `ttl / 3`).
    pub async fn heartbeat(&self, ttl: Duration) -> Result<(), RedisSeamError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .set_options(
                format!("{}node:{}", self.prefix, self.node_id),
                crate::store::now_ms(),
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64)),
            )
            .ignore()
            .sadd(format!("{}nodes", self.prefix), &self.node_id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Number of nodes whose liveness key is present.
    pub async fn live_nodes(&self) -> Result<usize, RedisSeamError> {
        Ok(self.live_node_ids().await?.len())
    }

    /// Ids of the nodes whose liveness key is present (this node's lease included).
    pub async fn live_node_ids(&self) -> Result<Vec<String>, RedisSeamError> {
        let mut conn = self.conn.clone();
        let nodes: Vec<String> = conn.smembers(format!("{}nodes", self.prefix)).await?;
        let mut live = Vec::with_capacity(nodes.len());
        for n in nodes {
            let exists: bool = conn.exists(format!("{}node:{n}", self.prefix)).await?;
            if exists {
                live.push(n);
            }
        }
        Ok(live)
    }

    /// Remove the presence of every node whose liveness key expired. Each dead node is reaped
    /// by one survivor (a `reap:` key taken with NX), and each session is removed by a
    /// compare-and-delete, so every returned entry is a leave that happens exactly once.
    pub async fn reap_dead_nodes(&self) -> Result<Vec<(Uuid, PeerInfo)>, RedisSeamError> {
        let mut conn = self.conn.clone();
        let nodes: Vec<String> = conn.smembers(format!("{}nodes", self.prefix)).await?;
        let mut gone = Vec::new();
        for node in nodes.into_iter().filter(|n| *n != self.node_id) {
            let alive: bool = conn.exists(format!("{}node:{node}", self.prefix)).await?;
            if alive {
                continue;
            }
            let claimed: Option<String> = conn
                .set_options(
                    format!("{}reap:{node}", self.prefix),
                    &self.node_id,
                    redis::SetOptions::default()
                        .conditional_set(redis::ExistenceCheck::NX)
                        .with_expiration(redis::SetExpiry::PX(30_000)),
                )
                .await?;
            if claimed.is_none() {
                continue;
            }
            let entries: Vec<String> = conn.smembers(format!("{}node-sessions:{node}", self.prefix)).await?;
            for entry in entries {
                let Some((mesh, session)) = entry.split_once('/') else { continue };
                let Ok(mesh_id) = mesh.parse::<Uuid>() else { continue };
                let removed: Option<Vec<u8>> = redis::Script::new(REMOVE_IF_OWNER)
                    .key(self.key(mesh_id))
                    .key(self.node_key(mesh_id))
                    .key(format!("{}node-sessions:{node}", self.prefix))
                    .key(self.marks_key(mesh_id))
                    .arg(session)
                    .arg(&node)
                    .arg(&entry)
                    .invoke_async(&mut conn)
                    .await?;
                if let Some(bytes) = removed {
                    if let Ok(e) = rmp_serde::from_slice::<PresenceEntry>(&bytes) {
                        gone.push((mesh_id, e.peer));
                    }
                }
            }
            redis::pipe()
                .del(format!("{}node-sessions:{node}", self.prefix))
                .ignore()
                .srem(format!("{}nodes", self.prefix), &node)
                .ignore()
                .query_async::<()>(&mut conn)
                .await?;
            tracing::info!(dead_node = %node, sessions = gone.len(), "reaped a dead node's sessions");
        }
        Ok(gone)
    }
}

fn marks_key(prefix: &str, mesh_id: Uuid) -> String {
    format!("{prefix}pushed:{mesh_id}")
}

/// Write pushed marks as they come, each batch in one pipeline. A mark lost to a Redis outage
/// only makes `message_status` say "queued" for a message that was pushed.
async fn write_marks(mut conn: ConnectionManager, prefix: String, marks: PendingMarks, due: Arc<tokio::sync::Notify>) {
    loop {
        due.notified().await;
        tokio::time::sleep(MARK_BATCH).await;
        let batch = std::mem::take(&mut *marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut by_mesh: HashMap<Uuid, Vec<(String, String)>> = HashMap::new();
        for ((mesh, session), mark) in batch {
            by_mesh.entry(mesh).or_default().push((session.to_string(), mark.encode()));
        }
        let mut pipe = redis::pipe();
        for (mesh, fields) in by_mesh {
            let key = marks_key(&prefix, mesh);
            pipe.hset_multiple(&key, &fields).ignore();
            // Marks of sessions that vanished without a leave (a node that died and was reaped
            // after its last write) go with the hash when the mesh falls quiet.
            pipe.pexpire(&key, 86_400_000).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            crate::metrics::redis_errors().inc();
            tracing::warn!(error = %e, "pushed marks not written");
        }
    }
}

// Write a session's presence for `node`; returns the entry it replaced (or nil).
const UPSERT: &str = r"
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return old";

// Remove a session's presence only if `node` holds it; returns the removed entry (or nil).
const REMOVE_IF_OWNER: &str = r"
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return false end
local entry = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return entry";

#[async_trait::async_trait]
impl PresenceDirectory for RedisPresence {
    async fn upsert(&self, mesh_id: Uuid, peer: PeerInfo) -> Option<PeerInfo> {
        let field = peer.session_id.to_string();
        let Ok(bytes) = rmp_serde::to_vec_named(&PresenceEntry { node: self.node_id.clone(), peer }) else {
            return None;
        };
        let mut conn = self.conn.clone();
        let old: redis::RedisResult<Option<Vec<u8>>> = redis::Script::new(UPSERT)
            .key(self.key(mesh_id))
            .key(self.node_key(mesh_id))
            .key(format!("{}node-sessions:{}", self.prefix, self.node_id))
            .arg(&field)
            .arg(bytes)
            .arg(&self.node_id)
            .arg(format!("{mesh_id}/{field}"))
            .invoke_async(&mut conn)
            .await;
        match old {
            Ok(old) => old.and_then(|b| rmp_serde::from_slice::<PresenceEntry>(&b).ok()).map(|e| e.peer),
            Err(e) => {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "presence upsert failed");
                None
            }
        }
    }

    async fn remove(&self, mesh_id: Uuid, session_id: Uuid) -> bool {
        // Only the node holding the entry removes it: a session that already moved to another
        // node must not be removed by its old node's late cleanup.
        let mut conn = self.conn.clone();
        let removed: redis::RedisResult<Option<Vec<u8>>> = redis::Script::new(REMOVE_IF_OWNER)
            .key(self.key(mesh_id))
            .key(self.node_key(mesh_id))
            .key(format!("{}node-sessions:{}", self.prefix, self.node_id))
            .key(self.marks_key(mesh_id))
            .arg(session_id.to_string())
            .arg(&self.node_id)
            .arg(format!("{mesh_id}/{session_id}"))
            .invoke_async(&mut conn)
            .await;
        match removed {
            Ok(found) => found.is_some(),
            Err(e) => {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "presence remove failed");
                false
            }
        }
    }

    async fn list(&self, mesh_id: Uuid) -> Vec<PeerInfo> {
        let mut conn = self.conn.clone();
        let raw: HashMap<String, Vec<u8>> = match conn.hgetall(self.key(mesh_id)).await {
            Ok(m) => m,
            Err(e) => {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "presence list failed");
                return Vec::new();
            }
        };
        let mut peers: Vec<PeerInfo> =
            raw.values().filter_map(|b| rmp_serde::from_slice::<PresenceEntry>(b).ok()).map(|e| e.peer).collect();
        peers.sort_by(|a, b| a.display_name.cmp(&b.display_name).then(a.session_id.cmp(&b.session_id)));
        peers
    }

    fn mark_pushed(&self, mesh_id: Uuid, session_id: Uuid, mark: PushedMark) {
        self.marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((mesh_id, session_id), mark);
        self.marks_due.notify_one();
    }

    async fn pushed_marks(&self, mesh_id: Uuid) -> HashMap<Uuid, PushedMark> {
        let mut conn = self.conn.clone();
        let raw: HashMap<String, String> = match conn.hgetall(self.marks_key(mesh_id)).await {
            Ok(m) => m,
            Err(e) => {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "pushed marks unavailable");
                return HashMap::new();
            }
        };
        raw.into_iter().filter_map(|(k, v)| Some((k.parse::<Uuid>().ok()?, PushedMark::decode(&v)?))).collect()
    }
}

/// GCRA on Redis's own clock (so nodes' clocks do not matter): `KEYS[1]` holds the theoretical
/// arrival time in ms; `ARGV` = interval ms, tolerance ms, cost. Returns 0, or the ms to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, tolerance, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if now < allow_at then return math.max(1, math.ceil(allow_at - now)) end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
";

/// Rate budgets shared by every node (see `crate::limits`).
pub struct RedisRateStore {
    /// Commands.
    pub conn: ConnectionManager,
    /// Key prefix.
    pub prefix: String,
}

#[async_trait::async_trait]
impl crate::limits::RateStore for RedisRateStore {
    async fn take(&self, key: &str, rate: crate::limits::Gcra, cost: u32) -> Result<(), u64> {
        let mut conn = self.conn.clone();
        let wait: redis::RedisResult<u64> = redis::Script::new(GCRA)
            .key(format!("{}{key}", self.prefix))
            .arg(rate.interval_ms)
            .arg(rate.tolerance_ms)
            .arg(cost)
            .invoke_async(&mut conn)
            .await;
        match wait {
            Ok(0) => Ok(()),
            Ok(ms) => Err(ms),
            Err(e) => {
                tracing::warn!(error = %e, "rate budget unavailable; letting the request through");
                Ok(())
            }
        }
    }
}
