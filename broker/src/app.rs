//! The node's services, wired together: configuration, the Postgres pool, the log and receipt
//! writers, the cluster seams, coordination and the actor tree, each actor given only the
//! handles it uses. One [`Broker`] per process, shared by the edge.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool_postgres::Pool;
use ractor::{Actor, ActorRef};
use uuid::Uuid;

use crate::{
    actors::{
        env::{MeshEnv, PgStore, ReminderEnv, SessionEnv},
        mesh_supervisor::MeshSupervisorMsg,
        node_supervisor::{NodeMsg, NodeSupervisor},
        presence_session::{SessionMsg, SessionSpec},
        reminders::{ReminderScheduler, SchedulerMsg},
    },
    clock::{Clock, SystemClock},
    cluster::{FanOut, Liveness, MeshEvent, PresenceDirectory, SingleNode},
    config::Config,
    coord::{reminders::Firer, Coord},
    error::OpError,
    status::StatusRules,
    store::{self, cursors::CursorWriter, log::LogWriter},
};

/// The node as the edge sees it: configuration, the store and writers, the cluster seams, the
/// coordination services and the root actor. Actors never get this; they get the narrow
/// environments in [`crate::actors::env`].
pub struct Broker {
    /// Configuration.
    pub cfg: Config,
    /// This node's id.
    pub node_id: String,
    /// Postgres.
    pub pool: Pool,
    /// Group-committing log writer.
    pub log: LogWriter,
    /// Sessions' cursors and read receipts, batched.
    pub cursors: CursorWriter,
    /// Fan-out between nodes.
    pub fanout: Arc<dyn FanOut>,
    /// Presence directory.
    pub presence: Arc<dyn PresenceDirectory>,
    /// Coordination: state, locks, tasks, threads, memory, reminders.
    pub coord: Arc<Coord>,
    /// The Redis node directory (liveness leases), in cluster mode.
    directory: Option<Arc<crate::cluster::redis::RedisPresence>>,
    /// The broker's own multi-threaded runtime (actors, dispatchers, writers).
    pub rt: tokio::runtime::Handle,
    /// Root actor (set once right after start).
    node: std::sync::OnceLock<ActorRef<NodeMsg>>,
    /// Whether migrations are done and the node accepts sessions.
    pub ready: AtomicBool,
    /// Set once when the node starts draining; every connection closes with `ServerShutdown`.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Unacknowledged messages per present session (for the backlog gauges).
    pub backlog: Arc<crate::metrics::Backlog>,
    /// This node's reminder scheduler.
    reminders: std::sync::OnceLock<ActorRef<SchedulerMsg>>,
    next_conn_id: AtomicU64,
    /// Connection counts and limits.
    pub admission: Arc<crate::admission::Admission>,
    /// Permission requests decided, as this node hears of them (wakes `approval_wait`).
    pub approvals_decided: tokio::sync::broadcast::Sender<Uuid>,
    /// Send rate limits.
    pub limits: crate::limits::SendLimits,
}

impl Broker {
    /// Connect to Postgres, migrate, start writers and the actor tree. Must run on the broker's
    /// multi-threaded runtime.
    pub async fn start(cfg: Config) -> anyhow::Result<Arc<Broker>> {
        let node_id = if cfg.node.id.is_empty() {
            format!("node-{}", &Uuid::new_v4().simple().to_string()[..8])
        } else {
            cfg.node.id.clone()
        };
        crate::metrics::init();
        let pool = store::connect(&cfg.database.url, cfg.database.pool_size)?;
        let version = store::migrate::migrate(&pool).await?;
        tracing::info!(%node_id, schema = version, "database ready");

        let crate::cluster::Seams { fanout, presence, cluster, rates } =
            crate::cluster::Seams::build(&cfg.redis, &node_id).await?;
        let liveness: Arc<dyn Liveness> = match &cluster {
            Some(directory) => directory.clone(),
            None => Arc::new(SingleNode(node_id.clone())),
        };
        let publish = fanout.clone();
        let log = LogWriter::start(
            pool.clone(),
            cfg.database.log_writers,
            cfg.database.max_batch,
            Arc::new(move |mesh_id, msg| {
                let target = match &msg.target {
                    plexus_proto::types::Target::Session(_) => "session",
                    plexus_proto::types::Target::Member(_) => "member",
                    plexus_proto::types::Target::Group(_) => "group",
                    plexus_proto::types::Target::All => "all",
                };
                crate::metrics::messages_routed().with_label_values(&[msg.priority.as_str(), target]).inc();
                publish.publish(mesh_id, MeshEvent::Message(msg));
            }),
        );
        let cursors = CursorWriter::start(pool.clone(), 2048);
        let store = Arc::new(PgStore { pool: pool.clone(), cursors: cursors.clone() });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let backlog = Arc::new(crate::metrics::Backlog::default());
        let due_soon = Arc::new(tokio::sync::Notify::new());
        let coord = Arc::new(Coord {
            pool: pool.clone(),
            fanout: fanout.clone(),
            lock_wake: Arc::new(tokio::sync::Notify::new()),
            node_id: node_id.clone(),
            liveness: liveness.clone(),
            cfg: cfg.coordination.clone(),
            reminders_due_soon: due_soon.clone(),
        });
        fanout.on_lock_wake(coord.lock_wake.clone());
        let sessions = Arc::new(SessionEnv {
            store: store.clone(),
            presence: presence.clone(),
            fanout: fanout.clone(),
            locks: coord.clone(),
            backlog: backlog.clone(),
            rules: StatusRules {
                freshness: Duration::from_secs(cfg.presence.freshness_secs),
                working_ttl: Duration::from_secs(cfg.presence.working_ttl_secs),
            },
            replay_batch: cfg.delivery.replay_batch.max(1),
            replay_slots: Arc::new(tokio::sync::Semaphore::new(cfg.delivery.max_concurrent_replays)),
            sweep_every: Duration::from_secs(cfg.presence.sweep_interval_secs.max(1)),
            clock: clock.clone(),
        });
        let approvals_decided = tokio::sync::broadcast::channel(256).0;
        let mesh_env = Arc::new(MeshEnv {
            fanout: fanout.clone(),
            log: store.clone(),
            sessions,
            approvals_decided: approvals_decided.clone(),
        });
        let reminder_env = Arc::new(ReminderEnv {
            store,
            firer: Arc::new(Firer::start(pool.clone(), log.clone(), 2048)),
            node_id: node_id.clone(),
            liveness,
            horizon: Duration::from_secs(cfg.coordination.reminder_horizon_secs.max(1)),
            claim_every: Duration::from_millis(cfg.coordination.reminder_claim_interval_ms.max(50)),
            claim_batch: i64::from(cfg.coordination.reminder_claim_batch),
            clock,
            due_soon,
        });
        let broker = Arc::new(Broker {
            node_id,
            pool,
            log,
            cursors,
            fanout,
            presence,
            coord: coord.clone(),
            directory: cluster.clone(),
            rt: tokio::runtime::Handle::current(),
            node: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
            backlog,
            reminders: std::sync::OnceLock::new(),
            next_conn_id: AtomicU64::new(1),
            admission: Arc::default(),
            approvals_decided,
            limits: crate::limits::SendLimits::new(&cfg.limits, rates),
            cfg,
        });
        let (node, _) = Actor::spawn(None, NodeSupervisor, mesh_env).await?;
        let _ = broker.node.set(node);
        spawn_housekeeping(broker.clone());
        crate::coord::locks::spawn_sweeper(coord);
        spawn_room_sweeper(broker.clone());
        crate::webhooks_out::spawn(broker.clone());
        let (scheduler, _) = Actor::spawn(None, ReminderScheduler, reminder_env).await?;
        let _ = broker.reminders.set(scheduler);
        match cluster {
            Some(directory) => spawn_cluster_membership(broker.clone(), directory),
            None => crate::metrics::cluster_size().set(1),
        }
        broker.ready.store(true, Ordering::SeqCst);
        Ok(broker)
    }

    /// A fresh connection id.
    pub fn conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn mesh_supervisor(&self, mesh_id: Uuid) -> Result<ActorRef<MeshSupervisorMsg>, OpError> {
        let node = self.node.get().ok_or(OpError::Internal("node not started"))?;
        match node.call(|r| NodeMsg::MeshFor(mesh_id, r), Some(Duration::from_secs(10))).await {
            Ok(ractor::rpc::CallResult::Success(Ok(sup))) => Ok(sup),
            _ => Err(OpError::Internal("mesh supervisor unavailable")),
        }
    }

    /// Start a presence session for a connection (retries once if the mesh supervisor was
    /// stopping at that moment).
    pub async fn attach_session(&self, spec: SessionSpec) -> Result<ActorRef<SessionMsg>, OpError> {
        let spec = Box::new(spec);
        let sup = self.mesh_supervisor(spec.mesh_id).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let port: ractor::RpcReplyPort<_> = tx.into();
        if sup.cast(MeshSupervisorMsg::Attach(spec, port)).is_err() {
            return Err(OpError::Internal("mesh supervisor stopped; retry"));
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(actor))) => Ok(actor),
            _ => Err(OpError::Internal("session did not start")),
        }
    }

    /// Register a watch-mode connection.
    pub async fn watch(
        &self,
        mesh_id: Uuid,
        conn_id: u64,
        member_id: Uuid,
        conn: crate::actors::ConnHandle,
    ) -> Result<(), OpError> {
        let sup = self.mesh_supervisor(mesh_id).await?;
        sup.cast(MeshSupervisorMsg::Watch { conn_id, member_id, conn }).map_err(|_| OpError::Internal("mesh stopped"))
    }

    /// Route a room's pushes to this connection.
    pub async fn room_attach(
        &self,
        mesh_id: Uuid,
        session_id: Uuid,
        conn_id: u64,
        conn: crate::actors::ConnHandle,
    ) -> Result<(), OpError> {
        let sup = self.mesh_supervisor(mesh_id).await?;
        sup.cast(MeshSupervisorMsg::RoomAttach { session_id, conn_id, conn })
            .map_err(|_| OpError::Internal("mesh stopped"))
    }

    /// Stop routing a room's (or, with `None`, every room's) pushes to this connection.
    pub async fn room_detach(&self, mesh_id: Uuid, session_id: Option<Uuid>, conn_id: u64) {
        if let Ok(sup) = self.mesh_supervisor(mesh_id).await {
            let _ = sup.cast(MeshSupervisorMsg::RoomDetach { session_id, conn_id });
        }
    }

    /// Unregister a watch-mode connection.
    pub async fn unwatch(&self, mesh_id: Uuid, conn_id: u64) {
        if let Ok(sup) = self.mesh_supervisor(mesh_id).await {
            let _ = sup.cast(MeshSupervisorMsg::Unwatch(conn_id));
        }
    }
}

/// Drain this node for a graceful stop (SIGTERM): report not-ready, wait for load balancers to
/// notice, close every session with code 4005 and a jittered retry hint, hand this node's
/// reminders to the others, let in-flight writes commit, and leave the cluster.
pub async fn drain(broker: Arc<Broker>) {
    broker.ready.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(broker.cfg.node.drain_ready_delay_ms)).await;
    broker.shutdown.send_replace(true);
    if let Some(scheduler) = broker.reminders.get() {
        scheduler.stop(Some("draining".into()));
    }
    match store::reminders::release_owned(&broker.pool, &broker.node_id).await {
        Ok(n) if n > 0 => tracing::info!(reminders = n, "handed reminders to the other nodes"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not hand over reminders; they move when the lease lapses"),
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), broker.admission.all_closed()).await;
    broker.log.flush().await;
    if let Some(directory) = &broker.directory {
        if let Err(e) = directory.leave().await {
            tracing::warn!(error = %e, "could not leave the cluster directory; peers notice at the TTL");
        }
    }
    tracing::info!(node_id = %broker.node_id, "drained");
}

/// Cluster mode: keep this node's liveness key fresh, publish the cluster size, and reap the
/// sessions of dead nodes (each leave published once, by whichever survivor claims the reap).
fn spawn_cluster_membership(broker: Arc<Broker>, directory: Arc<crate::cluster::redis::RedisPresence>) {
    let ttl = Duration::from_secs(broker.cfg.redis.node_ttl_secs);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ttl / 3);
        loop {
            tick.tick().await;
            if *broker.shutdown.borrow() {
                // Draining: the node has left the directory; do not come back.
                return;
            }
            if let Err(e) = directory.heartbeat(ttl).await {
                crate::metrics::redis_errors().inc();
                tracing::warn!(error = %e, "heartbeat failed");
                continue;
            }
            if let Ok(n) = directory.live_nodes().await {
                let before = crate::metrics::cluster_size().get();
                crate::metrics::cluster_size().set(n as i64);
                if before != n as i64 {
                    tracing::info!(cluster_size = n, "cluster membership changed");
                }
            }
            match directory.reap_dead_nodes().await {
                Ok(gone) => {
                    for (mesh_id, peer) in gone {
                        crate::coord::locks::session_ended(&broker.coord, mesh_id, peer.session_id).await;
                        let event =
                            plexus_proto::push::PeerEvent { change: plexus_proto::push::PeerChange::Left, peer };
                        broker.fanout.publish(mesh_id, MeshEvent::Peer(Arc::new(event)));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reaping dead nodes failed"),
            }
        }
    });
}

/// How often rooms are swept (dead nodes' viewers, wheel grace).
const ROOM_SWEEP: Duration = Duration::from_secs(1);

fn spawn_room_sweeper(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROOM_SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = crate::rooms::sweep(&broker).await {
                tracing::warn!(error = %e, "room sweep failed");
            }
        }
    });
}

/// Periodic work: retention, and pruning hello nonces and expired device links.
fn spawn_housekeeping(broker: Arc<Broker>) {
    tokio::spawn(async move {
        let every = Duration::from_secs(broker.cfg.delivery.retention_interval_secs.max(1));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let max_age = Duration::from_secs(broker.cfg.delivery.retention_days * 86_400);
            match store::log::apply_retention(&broker.pool, max_age, broker.cfg.delivery.retention_max_events).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "retention removed events"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
            let window = Duration::from_secs(broker.cfg.auth.max_clock_skew_secs * 2);
            if let Err(e) = store::meshes::prune_nonces(&broker.pool, window).await {
                tracing::warn!(error = %e, "nonce pruning failed");
            }
            if let Err(e) = store::links::prune(&broker.pool).await {
                tracing::warn!(error = %e, "pruning device links failed");
            }
            if let Err(e) = crate::edge::webhooks::prune(&broker).await {
                tracing::warn!(error = %e, "pruning webhook signatures failed");
            }
            if let Err(e) = crate::rooms::apply_retention(&broker).await {
                tracing::warn!(error = %e, "stream retention failed");
            }
            if broker.cfg.audit.retention_days > 0 {
                let max_age = Duration::from_secs(broker.cfg.audit.retention_days * 86_400);
                if let Err(e) = store::audit::apply_retention(&broker.pool, max_age).await {
                    tracing::warn!(error = %e, "audit retention failed");
                }
            }
        }
    });
}
