//! The broker's typed configuration tree: defaults (embedded `default.toml`) → optional file
//! → `PLEXUS_*` environment variables (`__` separates levels, e.g.
//! `PLEXUS_DATABASE__URL`). Unknown keys anywhere are errors.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The documented defaults, printed by `plexus-broker default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources do not form a valid tree (unknown key, wrong type, unreadable file).
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Value(String),
}

/// The whole tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node.
    pub node: NodeConfig,
    /// HTTP and WebSocket listeners.
    pub http: HttpConfig,
    /// Postgres.
    pub database: DatabaseConfig,
    /// Redis (cluster mode).
    pub redis: RedisConfig,
    /// Who may create meshes.
    pub meshes: MeshesConfig,
    /// Hello verification.
    pub auth: AuthConfig,
    /// Presence and the status engine.
    pub presence: PresenceConfig,
    /// Delivery and retention.
    pub delivery: DeliveryConfig,
    /// Locks, tasks, reminders.
    pub coordination: CoordinationConfig,
    /// Session rooms: stream bounds and the wheel.
    pub rooms: RoomsConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Send rate limits.
    pub limits: LimitsConfig,
    /// Webhooks out.
    pub webhooks: WebhooksConfig,
    /// Logging.
    pub log: LogConfig,
}

/// This node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id; empty means a random one per process.
    pub id: String,
    /// On SIGTERM: how long `/ready` reports false before sessions are told to move, so load
    /// balancers stop sending new connections first.
    pub drain_ready_delay_ms: u64,
    /// Sessions are told to reconnect after a random delay below this (spreads the herd).
    pub drain_retry_jitter_ms: u64,
    /// Upper bound on the whole drain; keep it below the orchestrator's termination grace.
    pub drain_timeout_secs: u64,
}

/// Listeners.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Plain HTTP/WS listen address; empty disables it.
    pub listen: String,
    /// TLS (HTTPS/WSS) listen address; empty disables it.
    pub tls_listen: String,
    /// PEM certificate chain for TLS.
    pub tls_cert: String,
    /// PEM private key for TLS.
    pub tls_key: String,
    /// actix worker threads, socket I/O only (0 = half the cores, at least one).
    pub workers: usize,
    /// Frames queued per connection before it is closed as a slow consumer.
    pub outbound_queue: usize,
    /// Seconds between pings.
    pub ping_interval_secs: u64,
    /// Seconds without any frame from the peer before the connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a connection may stay open without a successful hello.
    pub hello_timeout_secs: u64,
    /// Failed hellos after which a connection is closed.
    pub max_failed_hellos: u32,
    /// WebSocket connections this node accepts at once.
    pub max_connections: usize,
    /// Connections one remote address may hold at once.
    pub max_connections_per_address: usize,
    /// Connections one remote address may hold that have not said hello yet.
    pub max_pending_hellos_per_address: usize,
}

/// Postgres.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style connection string or URL.
    pub url: String,
    /// Pool size.
    pub pool_size: usize,
    /// Concurrent log writers (each group-commits a batch; meshes are sharded over them).
    pub log_writers: usize,
    /// Most messages in one group commit.
    pub max_batch: usize,
}

/// Redis, which makes several nodes one cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`; empty means single-node mode (in-memory seams).
    pub url: String,
    /// Prefix of every key and channel (several clusters can share one Redis).
    pub prefix: String,
    /// A node whose heartbeat is older than this is dead: survivors reap its sessions.
    pub node_ttl_secs: u64,
}

/// Mesh creation policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshesConfig {
    /// Operator token required to create a mesh; empty means creation is open.
    pub operator_token: String,
}

/// Hello verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Largest accepted difference between a hello's timestamp and the broker's clock.
    pub max_clock_skew_secs: u64,
}

/// Status engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceConfig {
    /// A status report stays authoritative against lower-ranked sources this long.
    pub freshness_secs: u64,
    /// `working` with no fresh report reverts to `idle` after this long.
    pub working_ttl_secs: u64,
    /// How often the TTL sweep runs.
    pub sweep_interval_secs: u64,
}

/// Delivery and retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Events older than this are deleted.
    pub retention_days: u64,
    /// At most this many events are kept per mesh (older ones deleted first).
    pub retention_max_events: u64,
    /// How often retention runs.
    pub retention_interval_secs: u64,
    /// Most messages replayed per batch on reconnect (replay is paced in batches).
    pub replay_batch: u32,
    /// Replay batches running at once on this node; more wait their turn, so a reconnect
    /// storm cannot drain the database pool (hellos stay cheap).
    pub max_concurrent_replays: usize,
    /// A session neither present nor seen for this long no longer counts as a recipient in
    /// `message_status` (its agent is gone; the member's next session gets member messages).
    pub dead_session_grace_secs: u64,
}

/// Coordination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// How long a session's locks outlive its presence (a reconnect within it keeps them).
    pub lock_grace_secs: u64,
    /// How often each node looks for expired locks and overdue queue entries.
    pub lock_sweep_interval_ms: u64,
    /// How often a queued acquire looks again without being woken (the backstop for a lost wake).
    pub lock_wait_poll_ms: u64,
    /// How often each node claims due reminders (also how soon a dead node's are taken over,
    /// after its liveness lease lapses).
    pub reminder_claim_interval_ms: u64,
    /// Reminders due within this window get an actor.
    pub reminder_horizon_secs: u64,
    /// Most reminders claimed per query.
    pub reminder_claim_batch: u32,
    /// Most shared state keys one mesh may hold.
    pub max_state_keys: u64,
    /// Most memories one mesh may hold.
    pub max_memories: u64,
}

/// Session rooms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsConfig {
    /// Most bytes of sealed entries one session's stream keeps (oldest pruned first).
    pub max_stream_bytes: i64,
    /// Entries older than this are deleted.
    pub retention_days: u64,
    /// A wheel whose holder is gone is freed after this long.
    pub wheel_grace_secs: u64,
}

/// Send rate limits (GCRA: a rate and a burst).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Messages a second one session may send…
    pub session_sends_per_sec: f64,
    /// …and how many at once.
    pub session_burst: u32,
    /// Messages a second all of one member's sessions together may send (across nodes)…
    pub member_sends_per_sec: f64,
    /// …and how many at once.
    pub member_burst: u32,
}

/// Webhooks out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Consecutive failed deliveries before a subscription is disabled.
    pub max_failures: u32,
}

/// The audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries older than this many days are deleted behind a checkpoint; 0 keeps them.
    pub retention_days: u64,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `plexus_broker=debug`.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

/// The environment variables that are configuration: `PLEXUS_<SECTION>__<KEY>`. Other
/// `PLEXUS_*` variables (the CLI's `PLEXUS_HOME`, scripts' `PLEXUS_PG_PORT` …) are not, and
/// must not trip the unknown-key check.
fn config_env_vars() -> config::Map<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.strip_prefix("PLEXUS_").is_some_and(|rest| rest.contains("__") && !rest.starts_with('_')))
        .collect()
}

impl Config {
    /// Load defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULT_CONFIG, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(PathBuf::from(path)).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PLEXUS")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(config_env_vars())),
        );
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.http.listen.is_empty() && self.http.tls_listen.is_empty() {
            return Err(ConfigError::Value("http.listen and http.tls_listen are both empty".into()));
        }
        if !self.http.tls_listen.is_empty() && (self.http.tls_cert.is_empty() || self.http.tls_key.is_empty()) {
            return Err(ConfigError::Value("http.tls_listen needs http.tls_cert and http.tls_key".into()));
        }
        if self.database.url.is_empty() {
            return Err(ConfigError::Value("database.url is empty".into()));
        }
        if self.database.pool_size < 2 || self.database.log_writers == 0 || self.database.max_batch == 0 {
            return Err(ConfigError::Value("database.pool_size >= 2, log_writers >= 1, max_batch >= 1".into()));
        }
        let c = &self.coordination;
        if c.reminder_horizon_secs * 1000 <= 5 * c.reminder_claim_interval_ms || c.reminder_claim_batch == 0 {
            return Err(ConfigError::Value(
                "coordination.reminder_horizon_secs must exceed 5 claim intervals; reminder_claim_batch >= 1".into(),
            ));
        }
        if self.delivery.max_concurrent_replays == 0 {
            return Err(ConfigError::Value("delivery.max_concurrent_replays must be at least 1".into()));
        }
        if self.redis.node_ttl_secs < 2 {
            return Err(ConfigError::Value("redis.node_ttl_secs must be at least 2".into()));
        }
        if self.http.max_connections == 0
            || self.http.max_connections_per_address == 0
            || self.http.max_pending_hellos_per_address == 0
            || self.http.max_failed_hellos == 0
            || self.http.hello_timeout_secs == 0
        {
            return Err(ConfigError::Value(
                "http.max_connections, max_connections_per_address, max_pending_hellos_per_address, \
                 max_failed_hellos and hello_timeout_secs must be at least 1"
                    .into(),
            ));
        }
        if self.http.outbound_queue < 16 {
            return Err(ConfigError::Value("http.outbound_queue must be at least 16".into()));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Value("log.format is text or json".into()));
        }
        Ok(())
    }
}
