//! `plexus-broker`: one node of the Plexus broker cluster.
//!
//! # Layout
//! - [`config`] — the typed configuration tree (`default.toml` → file → `PLEXUS_*` env).
//! - [`admission`] — connection limits and counts (a drain waits for the last connection).
//! - [`fd_limit`] — the open-file limit, raised at start, and the connections it allows.
//! - [`app`] — [`app::Broker`], the node's services wired together.
//! - [`edge`] — HTTP/WebSocket edge: routes, connection tasks, request dispatch, op handlers.
//! - [`actors`] — the ractor tree: NodeSupervisor → MeshSupervisor → MeshActor, PresenceSession.
//! - [`clock`] — time as a seam, so schedulers run under paused time in tests.
//! - [`cluster`] — fan-out, presence directory and lock seams (in-memory for one node).
//! - [`store`] — Postgres: migrations, meshes/members/invites, the event log, receipts.
//! - [`coord`] — coordination policy: task workflow steps, thread hand-offs (pure).
//! - [`rooms`] — session rooms: streams, viewers, the wheel, prompts, permission requests.
//! - [`status`] — the status engine (pure).
//! - [`webhooks_out`] — delivering coordination events to subscribed URLs, one node at a time.
//! - [`routing`] — target matching and priority gating (pure).
//! - [`limits`] — send rate limits (GCRA per session here, per member shared through Redis).
//! - [`metrics`] — Prometheus metrics.
//! - [`error`] — op errors and their one mapping to wire codes.

pub mod actors;
pub mod admission;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coord;
pub mod edge;
pub mod error;
pub mod fd_limit;
pub mod limits;
pub mod metrics;
pub mod rooms;
pub mod routing;
pub mod status;
pub mod store;
pub mod webhooks_out;
