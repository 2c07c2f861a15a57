//! Size limits, enforced by the decoder and by each body's validation. Every string and list
//! on the wire has one, so no peer can make a node allocate without bound.

/// Largest WebSocket frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// Largest message ciphertext, in bytes.
pub const MAX_CIPHERTEXT_BYTES: usize = 64 * 1024;
/// Longest op name, in bytes.
pub const MAX_OP_NAME: usize = 32;
/// Longest display name, mesh name or subtype, in bytes.
pub const MAX_NAME: usize = 64;
/// Longest group name (hierarchical, `a/b/c`), in bytes.
pub const MAX_GROUP_NAME: usize = 64;
/// Most groups one session belongs to.
pub const MAX_GROUPS: usize = 32;
/// Longest status summary, in bytes.
pub const MAX_SUMMARY: usize = 512;
/// Longest path-like or host-like field (cwd, host, agent model), in bytes.
pub const MAX_PATH: usize = 1024;
/// Most sequence numbers in one ack, and most acked-above entries in a cursor.
pub const MAX_ACKS: usize = 4096;
/// Most messages one inbox call returns.
pub const MAX_INBOX_LIMIT: u32 = 1000;
/// Longest invite code, in bytes.
pub const MAX_INVITE_CODE: usize = 32;

/// A sealed link bundle (a member identity as JSON, sealed).
pub const MAX_LINK_BUNDLE: usize = 4096;
/// Longest operator token, in bytes.
pub const MAX_TOKEN: usize = 256;
/// Longest error message the broker sends, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// Stream entries per `stream_append`.
pub const MAX_STREAM_BATCH: usize = 256;

/// A stream entry's sealed body.
pub const MAX_STREAM_ENTRY: usize = 32 * 1024;

/// A text field of a stream entry, cut at the source with a marker beyond this.
pub const MAX_ENTRY_TEXT: usize = 8 * 1024;

/// Longest wait for a permission decision.
pub const MAX_APPROVAL_WAIT_MS: u64 = 3_600_000;
