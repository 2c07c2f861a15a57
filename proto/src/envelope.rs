//! Frames on the wire and their codec.
//!
//! A peer sends [`Request`]s `{v, id, op, body}`; the broker sends [`ServerFrame`]s, either a
//! [`Response`] `{id, ok | err}` or a [`Push`] `{push, body}`. `body` is itself the
//! MessagePack encoding (named fields) of the op's or push's typed body, so the envelope
//! decodes without knowing the op, and an unknown op still gets an error carrying its id.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{codes::ErrorCode, limits};

/// A codec or validation failure. Every variant maps to an [`ErrorCode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// The bytes are not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The frame exceeds the size limit.
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Frame size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The body does not decode into the op's type.
    #[error("bad body for {op}: {reason}")]
    BadBody {
        /// Op or push name.
        op: String,
        /// Decoder message.
        reason: String,
    },
    /// A field exceeds its limit.
    #[error("field {field} exceeds the limit of {max}")]
    FieldTooLarge {
        /// Field name.
        field: &'static str,
        /// Limit.
        max: usize,
    },
    /// A field holds an invalid value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Encoding failed (only for values that cannot be MessagePack, which our types never are).
    #[error("encode failed: {0}")]
    Encode(String),
}

impl ProtoError {
    /// The wire code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::Malformed(_) => ErrorCode::BadFrame,
            ProtoError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtoError::BadBody { .. } => ErrorCode::BadBody,
            ProtoError::FieldTooLarge { .. } | ProtoError::Invalid { .. } => ErrorCode::InvalidField,
            ProtoError::Encode(_) => ErrorCode::Internal,
        }
    }
}

/// A request from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version the peer speaks.
    pub v: u16,
    /// Peer-chosen correlation id, echoed in the response.
    pub id: u64,
    /// Op name (see [`crate::ops`]).
    pub op: String,
    /// MessagePack encoding of the op's body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// An error carried in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable numeric code.
    pub code: ErrorCode,
    /// Human-readable detail, lowercase.
    pub message: String,
    /// With `rate_limited`: when the same request would be accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// MessagePack encoding of the op's reply, on success.
    #[serde(default, with = "serde_bytes")]
    pub ok: Option<Vec<u8>>,
    /// The error, on failure.
    #[serde(default)]
    pub err: Option<WireError>,
}

/// Something the broker sends unasked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// Push kind (see [`crate::push`]).
    pub push: String,
    /// MessagePack encoding of the push body.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A frame from the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// A response to a request.
    #[serde(rename = "res")]
    Response(Response),
    /// A push.
    #[serde(rename = "push")]
    Push(Push),
}

impl Response {
    /// A success response.
    pub fn ok<T: Serialize>(id: u64, reply: &T) -> Result<Response, ProtoError> {
        Ok(Response { id, ok: Some(encode_body(reply)?), err: None })
    }

    /// An error response; the message is cut to [`limits::MAX_ERROR_MESSAGE`].
    pub fn err(id: u64, code: ErrorCode, message: impl Into<String>) -> Response {
        let mut message = message.into();
        if message.len() > limits::MAX_ERROR_MESSAGE {
            let mut cut = limits::MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Response { id, ok: None, err: Some(WireError { code, message, retry_after_ms: None }) }
    }
}

/// Encode a body (op, reply or push) with named fields.
pub fn encode_body<T: Serialize>(body: &T) -> Result<Vec<u8>, ProtoError> {
    rmp_serde::to_vec_named(body).map_err(|e| ProtoError::Encode(e.to_string()))
}

/// Decode a body of type `T` for op or push `name`.
pub fn decode_body<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, ProtoError> {
    rmp_serde::from_slice(bytes).map_err(|e| ProtoError::BadBody { op: name.to_owned(), reason: e.to_string() })
}

fn check_frame_size(bytes: &[u8]) -> Result<(), ProtoError> {
    if bytes.len() > limits::MAX_FRAME_BYTES {
        return Err(ProtoError::FrameTooLarge { size: bytes.len(), max: limits::MAX_FRAME_BYTES });
    }
    Ok(())
}

/// Encode a request frame.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, ProtoError> {
    encode_body(req)
}

/// Decode a request frame, enforcing the frame limit. The op-name limit
/// ([`limits::MAX_OP_NAME`]) is the receiver's to check, so its error can carry the request's
/// id.
pub fn decode_request(bytes: &[u8]) -> Result<Request, ProtoError> {
    check_frame_size(bytes)?;
    rmp_serde::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Encode a broker frame.
pub fn encode_server_frame(frame: &ServerFrame) -> Result<Vec<u8>, ProtoError> {
    encode_body(frame)
}

/// Decode a broker frame, enforcing the frame limit.
pub fn decode_server_frame(bytes: &[u8]) -> Result<ServerFrame, ProtoError> {
    check_frame_size(bytes)?;
    rmp_serde::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
}
