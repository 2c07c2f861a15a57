//! The HTTP + WebSocket edge (actix-web, actix-ws): routes, the per-connection task and the
//! request dispatcher.
//!
//! - [`http`] — `/ws`, `/health`, `/ready`, `/metrics`; plain and TLS listeners.
//! - [`web`] — the web app, embedded at build time, behind a strict Content-Security-Policy.
//! - [`socket`] — resetting the socket of a peer that stopped reading.
//! - [`connection`] — one small task per WebSocket: framing, bounded outbound queue,
//!   ping/pong, typed closes. Runs on an actix worker.
//! - [`dispatch`] — the connection's request loop on the broker runtime: hello first, then
//!   ops; sends keep their order, everything else runs concurrently.
//! - [`registry`] — the op table: name, request type, access, handler and reply of every op.
//! - [`ops`] — the handlers that are not coordination rules (those are in `crate::coord`).
//! - [`webhooks`] — webhooks in: their admin ops and `POST /hooks/<mesh>/<hook>`.

pub mod connection;
pub mod dispatch;
pub mod http;
pub mod ops;
pub mod registry;
pub mod socket;
pub mod web;
pub mod webhooks;
