//! The `plexus` peer: keys, profiles, the broker connection client and the commands built on
//! them. The binary (`src/main.rs`) is a thin clap front end; the load generator in `benches/`
//! reuses [`client`].
//!
//! # Layout
//! - [`profile`] — where keys and mesh settings live (files 0600), one profile per mesh.
//! - [`client`] — one WebSocket connection to a broker: hello, typed calls, pushes.
//! - [`cursor`] — the local delivery cursor: nothing surfaced twice across reconnects.
//! - [`seal`] — sealing and opening message bodies.
//! - [`backoff`] — reconnect delays with jitter.

pub mod backoff;
pub mod client;
pub mod cursor;
pub mod profile;
pub mod seal;
