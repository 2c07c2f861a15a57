//! Errors of the broker's request handling, and their one mapping to wire codes.

use plexus_proto::{ErrorCode, ProtoError};

/// Why an op failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The request or body did not decode or validate.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The op is not known.
    #[error("unknown op {0}")]
    UnknownOp(String),
    /// The op needs a hello first.
    #[error("hello first")]
    NotAuthenticated,
    /// A second hello.
    #[error("already authenticated")]
    AlreadyAuthenticated,
    /// Wrong protocol version.
    #[error("protocol version {got} is not supported (broker speaks {want})")]
    Version {
        /// Sent.
        got: u16,
        /// Supported.
        want: u16,
    },
    /// A signature failed.
    #[error("bad signature: {0}")]
    BadSignature(&'static str),
    /// Hello timestamp outside the window.
    #[error("hello timestamp is {skew_ms} ms off the broker clock")]
    StaleTimestamp {
        /// Difference.
        skew_ms: u64,
    },
    /// Hello nonce reused.
    #[error("hello nonce was already used")]
    ReplayedNonce,
    /// Role too low.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Not a member.
    #[error("not a member of this mesh")]
    NotMember,
    /// No such object (in this mesh).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A current member already has this display name.
    #[error("that name is taken in this mesh; try {0:?}")]
    NameTaken(String),
    /// Invite problems.
    #[error("invite has expired")]
    InviteExpired,
    /// Invite revoked.
    #[error("invite was revoked")]
    InviteRevoked,
    /// Invite used up.
    #[error("invite has no uses left")]
    InviteExhausted,
    /// Operator token missing or wrong.
    #[error("creating a mesh on this broker needs the operator token")]
    OperatorToken,
    /// Version mismatch, held elsewhere, or a step the object's state does not allow.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value that passed the codec is unacceptable, with the reason.
    #[error("invalid {0}: {1}")]
    InvalidValue(&'static str, String),
    /// A value that passed the codec is still unacceptable.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Something internal went away (actor stopped, channel closed).
    #[error("internal: {0}")]
    Internal(&'static str),
    /// Over a per-mesh quota.
    #[error("the mesh holds its quota of {max} {what}; delete some first")]
    QuotaExceeded {
        /// What.
        what: &'static str,
        /// The quota.
        max: u64,
    },
    /// A mesh-key body sealed under a key that is no longer current.
    #[error("{}", stale_key_message(*epoch, *rotation_due))]
    StaleKey {
        /// The mesh's current key epoch.
        epoch: u32,
        /// A rotation is due (a member went).
        rotation_due: bool,
    },
    /// Over a send rate.
    #[error("{scope} send rate exceeded; retry in {retry_after_ms} ms")]
    RateLimited {
        /// `session` or `member`.
        scope: &'static str,
        /// When it would fit.
        retry_after_ms: u64,
    },
}

fn stale_key_message(epoch: u32, rotation_due: bool) -> String {
    if rotation_due {
        format!("a member left: the mesh key (epoch {epoch}) must be rotated before anything new is sealed with it")
    } else {
        format!("sealed with a retired mesh key; the current epoch is {epoch}: fetch it with mesh_keys and resend")
    }
}

impl OpError {
    /// The wire code. The one place internal errors meet protocol codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            OpError::Proto(p) => p.code(),
            OpError::UnknownOp(_) => ErrorCode::UnknownOp,
            OpError::NotAuthenticated => ErrorCode::NotAuthenticated,
            OpError::AlreadyAuthenticated => ErrorCode::AlreadyAuthenticated,
            OpError::Version { .. } => ErrorCode::UnsupportedVersion,
            OpError::BadSignature(_) => ErrorCode::BadSignature,
            OpError::StaleTimestamp { .. } => ErrorCode::StaleTimestamp,
            OpError::ReplayedNonce => ErrorCode::ReplayedNonce,
            OpError::Forbidden(_) => ErrorCode::Forbidden,
            OpError::NotMember => ErrorCode::NotMember,
            OpError::NotFound(_) => ErrorCode::NotFound,
            OpError::AlreadyExists(_) | OpError::NameTaken(_) => ErrorCode::AlreadyExists,
            OpError::InviteExpired => ErrorCode::InviteExpired,
            OpError::InviteRevoked => ErrorCode::InviteRevoked,
            OpError::InviteExhausted => ErrorCode::InviteExhausted,
            OpError::OperatorToken => ErrorCode::OperatorTokenRequired,
            OpError::Invalid(_) | OpError::InvalidValue(..) => ErrorCode::InvalidField,
            OpError::Conflict(_) => ErrorCode::Conflict,
            OpError::Store(crate::store::StoreError::Pool(_)) => ErrorCode::Unavailable,
            OpError::Store(_) => ErrorCode::Internal,
            OpError::Internal(_) => ErrorCode::Internal,
            OpError::RateLimited { .. } => ErrorCode::RateLimited,
            OpError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            OpError::StaleKey { .. } => ErrorCode::StaleKey,
        }
    }
}
