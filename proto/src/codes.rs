//! Stable numeric error and close codes. Numbers are part of the protocol: never renumber,
//! only add.

use serde::{Deserialize, Serialize};

/// Why a request failed. Carried in [`crate::WireError::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
pub enum ErrorCode {
    /// The frame is not valid MessagePack or not a request envelope.
    BadFrame,
    /// The frame exceeds [`crate::limits::MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// The request's `v` is not [`crate::PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// The op name is not one this broker knows.
    UnknownOp,
    /// The op body does not decode into the op's type.
    BadBody,
    /// A field exceeds its limit or holds an invalid value.
    InvalidField,
    /// The op needs a completed hello first.
    NotAuthenticated,
    /// A second hello on an authenticated connection.
    AlreadyAuthenticated,
    /// A signature does not verify.
    BadSignature,
    /// The hello timestamp is outside the accepted window.
    StaleTimestamp,
    /// The hello nonce was seen before.
    ReplayedNonce,
    /// The caller's role does not allow this.
    Forbidden,
    /// The caller is not (or no longer) a member of the mesh.
    NotMember,
    /// The named object does not exist (or belongs to another mesh).
    NotFound,
    /// The object already exists.
    AlreadyExists,
    /// The invite's expiry has passed.
    InviteExpired,
    /// The invite was revoked.
    InviteRevoked,
    /// The invite has no uses left.
    InviteExhausted,
    /// Creating meshes on this broker needs an operator token, and none or a wrong one was given.
    OperatorTokenRequired,
    /// The object changed since it was read (version mismatch), is held by someone else, or is
    /// in a state that does not allow this step; re-read before retrying.
    Conflict,
    /// The broker failed internally; the request may be retried.
    Internal,
    /// A dependency (database) is unavailable; the request may be retried.
    Unavailable,
    /// Over a send rate; retry after the error's `retry_after_ms`. Nothing was applied.
    RateLimited,
    /// Over a per-mesh storage quota; nothing was applied. Delete something first.
    QuotaExceeded,
    /// A group or broadcast body is sealed with a mesh key that is no longer current: the key
    /// was rotated, or a member left and a rotation is due. Fetch the keys (`mesh_keys`),
    /// rotate if it is due (`key_rotate`), seal again and resend with the same id.
    StaleKey,
    /// A code this build does not know (sent by a newer peer).
    Unknown(u16),
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        match code {
            ErrorCode::BadFrame => 1,
            ErrorCode::FrameTooLarge => 2,
            ErrorCode::UnsupportedVersion => 3,
            ErrorCode::UnknownOp => 4,
            ErrorCode::BadBody => 5,
            ErrorCode::InvalidField => 6,
            ErrorCode::NotAuthenticated => 10,
            ErrorCode::AlreadyAuthenticated => 11,
            ErrorCode::BadSignature => 12,
            ErrorCode::StaleTimestamp => 13,
            ErrorCode::ReplayedNonce => 14,
            ErrorCode::Forbidden => 15,
            ErrorCode::NotMember => 16,
            ErrorCode::NotFound => 20,
            ErrorCode::AlreadyExists => 21,
            ErrorCode::InviteExpired => 22,
            ErrorCode::InviteRevoked => 23,
            ErrorCode::InviteExhausted => 24,
            ErrorCode::OperatorTokenRequired => 25,
            ErrorCode::Conflict => 26,
            ErrorCode::Internal => 30,
            ErrorCode::Unavailable => 31,
            ErrorCode::RateLimited => 32,
            ErrorCode::QuotaExceeded => 33,
            ErrorCode::StaleKey => 34,
            ErrorCode::Unknown(n) => n,
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::BadFrame,
            2 => ErrorCode::FrameTooLarge,
            3 => ErrorCode::UnsupportedVersion,
            4 => ErrorCode::UnknownOp,
            5 => ErrorCode::BadBody,
            6 => ErrorCode::InvalidField,
            10 => ErrorCode::NotAuthenticated,
            11 => ErrorCode::AlreadyAuthenticated,
            12 => ErrorCode::BadSignature,
            13 => ErrorCode::StaleTimestamp,
            14 => ErrorCode::ReplayedNonce,
            15 => ErrorCode::Forbidden,
            16 => ErrorCode::NotMember,
            20 => ErrorCode::NotFound,
            21 => ErrorCode::AlreadyExists,
            22 => ErrorCode::InviteExpired,
            23 => ErrorCode::InviteRevoked,
            24 => ErrorCode::InviteExhausted,
            25 => ErrorCode::OperatorTokenRequired,
            26 => ErrorCode::Conflict,
            30 => ErrorCode::Internal,
            31 => ErrorCode::Unavailable,
            32 => ErrorCode::RateLimited,
            33 => ErrorCode::QuotaExceeded,
            34 => ErrorCode::StaleKey,
            other => ErrorCode::Unknown(other),
        }
    }
}

/// Why the broker closed a WebSocket. Sent as the WebSocket close code (4000–4999 range,
/// reserved for applications by RFC 6455).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// The outbound queue filled up: the peer reads too slowly. Reconnect and resume.
    SlowConsumer,
    /// The member was removed from the mesh. Do not reconnect.
    MemberRemoved,
    /// The peer broke the protocol (e.g. a non-binary frame). Fix the client.
    ProtocolViolation,
    /// The same session connected again elsewhere; this connection is superseded.
    SessionReplaced,
    /// The node is shutting down. Reconnect (to any node) after the retry hint.
    ServerShutdown,
    /// No pong within the heartbeat window.
    HeartbeatTimeout,
    /// The hello failed; the close reason carries the error.
    HelloFailed,
    /// A code this build does not know.
    Unknown(u16),
}

impl CloseCode {
    /// The WebSocket close code number.
    pub fn as_u16(self) -> u16 {
        match self {
            CloseCode::SlowConsumer => 4001,
            CloseCode::MemberRemoved => 4002,
            CloseCode::ProtocolViolation => 4003,
            CloseCode::SessionReplaced => 4004,
            CloseCode::ServerShutdown => 4005,
            CloseCode::HeartbeatTimeout => 4006,
            CloseCode::HelloFailed => 4007,
            CloseCode::Unknown(n) => n,
        }
    }

    /// The code for a close number received from the wire.
    pub fn from_u16(n: u16) -> CloseCode {
        match n {
            4001 => CloseCode::SlowConsumer,
            4002 => CloseCode::MemberRemoved,
            4003 => CloseCode::ProtocolViolation,
            4004 => CloseCode::SessionReplaced,
            4005 => CloseCode::ServerShutdown,
            4006 => CloseCode::HeartbeatTimeout,
            4007 => CloseCode::HelloFailed,
            other => CloseCode::Unknown(other),
        }
    }

    /// Whether a client should reconnect after this close.
    pub fn should_reconnect(self) -> bool {
        !matches!(self, CloseCode::MemberRemoved | CloseCode::SessionReplaced)
    }
}
