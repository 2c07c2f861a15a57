//! Prometheus metrics of this node, all named `plexus_*`, registered once in the default
//! registry and served at `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
};

macro_rules! metric {
    ($name:ident, $ty:ty, $init:expr) => {
        /// See the registered help text.
        pub fn $name() -> &'static $ty {
            static M: LazyLock<$ty> = LazyLock::new(|| $init.expect("metric registers once"));
            &M
        }
    };
}

metric!(connections, IntGauge, register_int_gauge!("plexus_connections", "Open WebSocket connections on this node"));
metric!(
    sessions,
    IntGauge,
    register_int_gauge!("plexus_sessions", "Present sessions (hello in session mode) on this node")
);
metric!(
    messages_routed,
    IntCounterVec,
    register_int_counter_vec!(
        "plexus_messages_routed_total",
        "Messages committed to the log by this node, by priority and target kind",
        &["priority", "target"]
    )
);
metric!(
    pushes,
    IntCounterVec,
    register_int_counter_vec!("plexus_pushes_total", "Frames pushed to sessions, by kind", &["kind"])
);
metric!(
    rate_limited,
    IntCounterVec,
    register_int_counter_vec!("plexus_rate_limited_total", "Sends refused over a rate limit, by scope", &["scope"])
);
metric!(
    webhooks,
    IntCounterVec,
    register_int_counter_vec!(
        "plexus_webhooks_total",
        "Webhook requests received, by HTTP status answered",
        &["status"]
    )
);
metric!(
    delivery_latency,
    HistogramVec,
    register_histogram_vec!(
        "plexus_delivery_latency_seconds",
        "Commit-to-push latency of messages pushed by this node, by priority",
        &["priority"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0]
    )
);
metric!(
    decode_errors,
    IntCounterVec,
    register_int_counter_vec!(
        "plexus_decode_errors_total",
        "Frames or bodies that failed to decode, by code",
        &["code"]
    )
);
metric!(
    requests,
    IntCounterVec,
    register_int_counter_vec!("plexus_requests_total", "Requests handled, by op and outcome", &["op", "outcome"])
);
metric!(
    slow_consumers,
    IntCounter,
    register_int_counter!("plexus_slow_consumer_disconnects_total", "Connections closed because their queue filled")
);
metric!(
    hello_failures,
    IntCounterVec,
    register_int_counter_vec!(
        "plexus_hello_failures_total",
        "Hellos refused or never sent in time, by reason (refused, timeout)",
        &["reason"]
    )
);
metric!(
    connections_refused,
    IntCounterVec,
    register_int_counter_vec!(
        "plexus_connections_refused_total",
        "WebSocket upgrades refused at a connection limit, by limit",
        &["limit"]
    )
);
metric!(
    log_batch_size,
    Histogram,
    register_histogram!(
        "plexus_log_batch_size",
        "Messages per group commit",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
    )
);
metric!(
    pg_query_seconds,
    HistogramVec,
    register_histogram_vec!(
        "plexus_pg_query_seconds",
        "Postgres latency of the broker's batched writes and hot queries, by query",
        &["query"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]
    )
);
metric!(
    redis_publish_seconds,
    Histogram,
    register_histogram!(
        "plexus_redis_publish_seconds",
        "Latency of one pipelined batch of mesh-channel publishes",
        vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0]
    )
);
metric!(
    redis_errors,
    IntCounter,
    register_int_counter!("plexus_redis_errors_total", "Failed Redis commands and lost connections")
);
metric!(
    redis_connected,
    IntGauge,
    register_int_gauge!("plexus_redis_connected", "1 while the pub/sub connection is up (cluster mode)")
);
metric!(
    catchup_messages,
    IntCounter,
    register_int_counter!(
        "plexus_catchup_messages_total",
        "Messages a mesh router read back from the log to close a gap"
    )
);
metric!(
    cluster_size,
    IntGauge,
    register_int_gauge!("plexus_cluster_size", "Live broker nodes (1 in single-node mode)")
);
metric!(pg_pool_size, IntGauge, register_int_gauge!("plexus_pg_pool_connections", "Postgres pool connections open"));
metric!(pg_pool_available, IntGauge, register_int_gauge!("plexus_pg_pool_available", "Postgres pool connections idle"));
metric!(
    pg_pool_waiting,
    IntGauge,
    register_int_gauge!("plexus_pg_pool_waiting", "Tasks waiting for a Postgres connection")
);
metric!(
    lock_wait_seconds,
    Histogram,
    register_histogram!(
        "plexus_lock_wait_seconds",
        "Time from a lock acquire to its grant (0 when granted at once)",
        vec![0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0]
    )
);
metric!(
    reminder_lateness_seconds,
    Histogram,
    register_histogram!(
        "plexus_reminder_lateness_seconds",
        "Time from a reminder's due time to its delivery being committed",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0]
    )
);
metric!(
    reminder_actors,
    IntGauge,
    register_int_gauge!("plexus_reminder_actors", "Reminder actors running on this node")
);

metric!(
    backlog_messages,
    IntGauge,
    register_int_gauge!(
        "plexus_backlog_messages",
        "Messages pushed to this node's present sessions and not yet acknowledged (held and low ones wait legitimately)"
    )
);
metric!(
    backlog_oldest_unacked_seconds,
    prometheus::Gauge,
    prometheus::register_gauge!(
        "plexus_backlog_oldest_unacked_seconds",
        "Age of the oldest of those pushed, unacknowledged messages (0: none)"
    )
);

/// Per-session backlog, reported by each presence session at its sweep and read at scrape.
#[derive(Default)]
pub struct Backlog {
    sessions: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, (usize, u64)>>,
}

impl Backlog {
    /// A session's unacknowledged count and the commit time (ms) of its oldest; `None` removes.
    pub fn report(&self, session: uuid::Uuid, state: Option<(usize, u64)>) {
        let mut s = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match state {
            Some(v) if v.0 > 0 => {
                s.insert(session, v);
            }
            _ => {
                s.remove(&session);
            }
        }
    }

    /// (total messages, oldest age in seconds) at `now_ms`.
    pub fn summary(&self, now_ms: u64) -> (usize, f64) {
        let s = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = s.values().map(|v| v.0).sum();
        let oldest = s.values().map(|v| v.1).min().map(|t| now_ms.saturating_sub(t) as f64 / 1000.0).unwrap_or(0.0);
        (total, oldest)
    }
}

/// Touch every metric so `/metrics` lists them before any traffic.
pub fn init() {
    connections();
    sessions();
    messages_routed();
    pushes();
    delivery_latency();
    // Labelled families appear once a label set exists; start the rare ones at zero.
    decode_errors().with_label_values(&[&u16::from(plexus_proto::ErrorCode::BadFrame).to_string()]);
    requests();
    slow_consumers();
    hello_failures().with_label_values(&["refused"]);
    hello_failures().with_label_values(&["timeout"]);
    connections_refused().with_label_values(&["node_full"]);
    rate_limited().with_label_values(&["session"]);
    rate_limited().with_label_values(&["member"]);
    webhooks().with_label_values(&["202"]);
    log_batch_size();
    pg_query_seconds();
    redis_publish_seconds();
    redis_errors();
    redis_connected();
    catchup_messages();
    cluster_size();
    pg_pool_size();
    pg_pool_available();
    pg_pool_waiting();
    lock_wait_seconds();
    reminder_lateness_seconds();
    reminder_actors();
    backlog_messages();
    backlog_oldest_unacked_seconds();
}

/// Render the default registry as Prometheus text.
pub fn render(pool: &deadpool_postgres::Pool, backlog: &Backlog) -> String {
    let (messages, oldest) = backlog.summary(crate::clock::now_ms());
    backlog_messages().set(messages as i64);
    backlog_oldest_unacked_seconds().set(oldest);
    let status = pool.status();
    pg_pool_size().set(status.size as i64);
    pg_pool_available().set(status.available as i64);
    pg_pool_waiting().set(status.waiting as i64);
    let families = prometheus::gather();
    prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_default()
}
