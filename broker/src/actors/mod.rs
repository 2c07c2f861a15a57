//! The actor tree of one node (ractor), on the broker's own multi-threaded runtime:
//!
//! ```text
//! NodeSupervisor                 registry mesh_id → MeshSupervisor
//!  └ MeshSupervisor (per mesh)   restarts its children; stops when the mesh has no local sessions
//!     ├ MeshActor                local sessions by id, routing of mesh events, watchers
//!     └ PresenceSession × n      status engine, gating, held/inbox messages, outbound sink
//! ReminderScheduler              claims due reminders for this node
//!  └ ReminderActor × n           one per live reminder: sleeps to its due time, fires, re-arms
//! ```
//!
//! A crashed PresenceSession is cleaned up by its supervisor (presence removed, leave
//! published) and its connection closes, so the peer reconnects and resumes from its cursor. A
//! crashed MeshActor is restarted and every live session registers with the new one.

pub mod env;
#[cfg(test)]
mod fakes;
pub mod mesh_actor;
pub mod mesh_supervisor;
pub mod node_supervisor;
pub mod presence_session;
pub mod reminders;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use bytes::Bytes;
use plexus_proto::{encode_server_frame, push::PushBody, CloseCode, Push, ServerFrame};
use tokio::sync::mpsc;

/// A request to close a connection: the code and an optional reason for the peer.
pub type CloseRequest = (CloseCode, Option<String>);

/// The outbound side of one WebSocket connection: a bounded frame queue and a close signal.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    /// Encoded frames to write.
    pub frames: mpsc::Sender<Bytes>,
    /// Asks the connection to close with a code.
    pub control: mpsc::UnboundedSender<CloseRequest>,
    /// Set once when the queue first overflowed (the connection is then being cut off).
    slow: Arc<AtomicBool>,
}

/// A push's frame, encoded once; cloning it shares the bytes.
pub fn encode_push<P: PushBody>(body: &P) -> Option<Bytes> {
    let body = plexus_proto::encode_body(body).ok()?;
    encode_server_frame(&ServerFrame::Push(Push { push: P::KIND.to_owned(), body })).ok().map(Bytes::from)
}

impl ConnHandle {
    /// A handle over a frame queue and a close channel.
    pub fn new(frames: mpsc::Sender<Bytes>, control: mpsc::UnboundedSender<CloseRequest>) -> ConnHandle {
        ConnHandle { frames, control, slow: Arc::default() }
    }

    /// Queue an encoded frame. A full queue closes the connection as a slow consumer (counted
    /// once per connection); returns false when the frame was not queued.
    pub fn send_frame(&self, frame: impl Into<Bytes>) -> bool {
        match self.frames.try_send(frame.into()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.slow.swap(true, Ordering::SeqCst) {
                    crate::metrics::slow_consumers().inc();
                    let _ = self.control.send((CloseCode::SlowConsumer, None));
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queue a push.
    pub fn push<P: PushBody>(&self, body: &P) -> bool {
        match encode_push(body) {
            Some(frame) => self.push_encoded::<P>(frame),
            None => false,
        }
    }

    /// Queue a push already encoded with [`encode_push`]: one encoding shared by every
    /// connection a group message goes to.
    pub fn push_encoded<P: PushBody>(&self, frame: Bytes) -> bool {
        crate::metrics::pushes().with_label_values(&[P::KIND]).inc();
        self.send_frame(frame)
    }

    /// Ask the connection to close.
    pub fn close(&self, code: CloseCode) {
        let _ = self.control.send((code, None));
    }

    /// Ask the connection to close, telling the peer why.
    pub fn close_with(&self, code: CloseCode, reason: String) {
        let _ = self.control.send((code, Some(reason)));
    }
}
