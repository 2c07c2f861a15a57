//! `plexus-client`: everything a Rust peer of a Plexus mesh needs, once. The `plexus` CLI, its
//! MCP server and hooks, the end-to-end tests and the load generators are thin adapters over
//! it (no clap, rmcp or anyhow in here).
//!
//! # Layout
//! - [`connection`] — one WebSocket to a broker: hello, typed calls for every op
//!   ([`Connection::call`] over [`plexus_proto::Op`]), pushes, close codes and retry hints.
//! - [`session`] — a reconnecting session (backoff, the broker's retry hint, resume from the
//!   cursor) that yields typed events and applies the **one** delivery policy: surface →
//!   record → acknowledge, with confirm-later as a parameter ([`session::Policy`]).
//! - [`cursor`] — the local delivery cursor: nothing surfaced twice, nothing marked read that
//!   nobody read, and a message interrupted mid-surface shown again marked as a repeat.
//! - [`address`] — recipients (`name`, `@group`, `*`, `session:<id>`, a reply) resolved to a
//!   target and sealed for it; member lookup by name.
//! - [`keys`] — the mesh key: granting it to joiners, adopting a grant checked against the
//!   owner's commitment, refusing a forgery.
//! - [`profile`] — keys and mesh settings on disk (files 0600), one profile per mesh.
//! - [`agent`] — an agent session's identity and how its hooks find its MCP server.
//! - [`process`] — ancestor processes, portably.
//! - [`seal`] — sealing and opening message bodies.
//! - [`stream`] — an agent session's activity stream: the local spool and its flush.
//! - [`backoff`] — reconnect delays with jitter.

pub mod address;
pub mod agent;
pub mod backoff;
pub mod connection;
pub mod cursor;
pub mod keys;
pub mod process;
pub mod profile;
pub mod seal;
pub mod session;
pub mod stream;

pub use connection::{ClientError, Connection, TlsOptions};
pub use profile::Profile;
pub use session::{Event, Incoming, Outcome, Policy, Session, SessionOptions, Surface};
