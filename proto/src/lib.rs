//! The Plexus wire protocol: everything a peer and a broker say to each other, and nothing else.
//!
//! No I/O and nothing async lives here; both the broker and the CLI depend on this crate.
//!
//! # Layout
//! - [`envelope`] — the frames on the wire: [`Request`], [`ServerFrame`] (response or push),
//!   encoding with MessagePack named fields, and the frame size limit.
//! - [`ops`] — one typed body per request op and its reply, tied together by the [`Op`] trait.
//! - [`coord`] — coordination ops (state, tasks, threads, memory, search) and their events.
//! - [`room`] — session rooms: the per-session stream, the wheel, driver prompts, permission
//!   requests, lock checks for hooks.
//! - [`keys`] — mesh-key epochs: rotation when a member goes, and fetching rotated keys.
//! - [`push`] — one typed body per push kind ([`PushBody`]).
//! - [`types`] — shared value types: targets, priorities, statuses, roles, cursors.
//! - [`codes`] — stable numeric [`ErrorCode`] and [`CloseCode`].
//! - [`limits`] — every size limit, named and documented.
//! - [`link`] — the code a device shows to be linked to a member, and what it is handed.
//! - [`signing`] — the canonical byte strings that hello, invites and mesh creation sign.
//!
//! Wire format rules: MessagePack with named fields (`rmp_serde::to_vec_named`); unknown
//! fields are ignored; new fields get `#[serde(default)]`; nothing is renamed or reordered.
//! Golden-bytes tests in `tests/golden.rs` pin the format.

pub mod audit;
pub mod codes;
pub mod controls;
pub mod coord;
pub mod envelope;
pub mod keys;
pub mod limits;
pub mod link;
pub mod ops;
pub mod push;
pub mod room;
pub mod signing;
pub mod types;
pub mod webhook;

pub use codes::{CloseCode, ErrorCode};
pub use envelope::{
    decode_body, decode_request, decode_server_frame, encode_body, encode_request, encode_server_frame, ProtoError,
    Push, Request, Response, ServerFrame, WireError,
};
pub use ops::Op;
pub use push::PushBody;

/// Version of the wire protocol. A hello carrying another version is refused with
/// [`ErrorCode::UnsupportedVersion`]; additive changes (new optional fields, new ops) do not
/// bump it.
pub const PROTOCOL_VERSION: u16 = 1;
