//! The HTTP + WebSocket edge (actix-web, actix-ws): routes, the per-connection task and the
//! request dispatcher.
//!
//! - [`http`] — `/ws`, `/health`, `/ready`, `/metrics`; plain and TLS listeners.
//! - [`admission`] — connection limits (node, per address, pending hellos) and resetting the
//!   socket of a peer that stopped reading.
//! - [`connection`] — one small task per WebSocket: framing, bounded outbound queue,
//!   ping/pong, typed closes. Runs on an actix worker.
//! - [`dispatch`] — the connection's request loop on the broker runtime: hello first, then
//!   ops; sends keep their order, everything else runs concurrently.
//! - [`ops`] — one handler per op.
//! - [`coord_ops`] — handlers of the coordination ops (state, tasks, threads, memory, search).

pub mod admission;
pub mod connection;
pub mod coord_ops;
pub mod dispatch;
pub mod http;
pub mod ops;
