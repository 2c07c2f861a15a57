//! In-memory stand-ins for what the actors use of the node, for unit tests on paused time.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use plexus_proto::{
    decode_body, decode_server_frame,
    push::{Message, PeerEvent},
    types::{Priority, Sealing, Target},
    ServerFrame,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    env::{Fire, ReminderStore, SessionLocks, SessionStore},
    CloseRequest, ConnHandle,
};
use crate::{
    clock::Clock,
    coord::reminders::Fired,
    error::OpError,
    store::{cursors::StoredCursor, log::Addressee, meshes::MemberRow, reminders::ReminderRow, StoreError},
};

/// A session store with nothing to replay and no member rows; records saved cursors.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) cursors: Mutex<Vec<(Uuid, StoredCursor)>>,
}

#[async_trait]
impl SessionStore for Store {
    async fn unacked_for(&self, _: &Addressee, _: u64, _: u32) -> Result<Vec<Message>, StoreError> {
        Ok(Vec::new())
    }

    async fn controls(&self, _: Uuid, _: Uuid) -> Result<plexus_proto::controls::Controls, StoreError> {
        Ok(plexus_proto::controls::Controls::default())
    }

    async fn member(&self, _: Uuid, _: Uuid) -> Result<Option<MemberRow>, StoreError> {
        Ok(None)
    }

    async fn pending_key_requests(&self, _: Uuid) -> Result<Vec<MemberRow>, StoreError> {
        Ok(Vec::new())
    }

    async fn save_cursor(&self, _: Uuid, session_id: Uuid, cursor: StoredCursor) -> Result<(), StoreError> {
        lock(&self.cursors).push((session_id, cursor));
        Ok(())
    }
}

/// Lock hand-off calls, recorded in order.
#[derive(Default)]
pub(crate) struct Locks {
    pub(crate) calls: Mutex<Vec<&'static str>>,
}

#[async_trait]
impl SessionLocks for Locks {
    async fn session_started(&self, _: Uuid, _: Uuid) {
        lock(&self.calls).push("started");
    }

    async fn session_ended(&self, _: Uuid, _: Uuid) {
        lock(&self.calls).push("ended");
    }
}

/// The client end of a [`ConnHandle`]: what the session pushed, and close requests.
pub(crate) struct Client {
    frames: mpsc::Receiver<bytes::Bytes>,
    closes: mpsc::UnboundedReceiver<CloseRequest>,
    /// Sequences of the messages pushed so far, in order.
    pub(crate) messages: Vec<u64>,
    /// Presence events pushed so far.
    pub(crate) peers: Vec<PeerEvent>,
    /// Close codes asked for so far.
    pub(crate) closed: Vec<plexus_proto::CloseCode>,
}

impl Client {
    /// A connection handle and its client end.
    pub(crate) fn new() -> (ConnHandle, Client) {
        let (frames_tx, frames) = mpsc::channel(1024);
        let (close_tx, closes) = mpsc::unbounded_channel();
        let client = Client { frames, closes, messages: Vec::new(), peers: Vec::new(), closed: Vec::new() };
        (ConnHandle::new(frames_tx, close_tx), client)
    }

    /// Take in everything queued so far.
    pub(crate) fn drain(&mut self) {
        while let Ok(frame) = self.frames.try_recv() {
            let Ok(ServerFrame::Push(push)) = decode_server_frame(&frame) else { continue };
            match push.push.as_str() {
                "message" => {
                    let m: Message = decode_body("message", &push.body).expect("a message push decodes");
                    self.messages.push(m.seq);
                }
                "peer" => self.peers.push(decode_body("peer", &push.body).expect("a peer push decodes")),
                _ => {}
            }
        }
        while let Ok((code, _)) = self.closes.try_recv() {
            self.closed.push(code);
        }
    }
}

/// A committed message for the tests, to everyone, sent now.
pub(crate) fn message(seq: u64, priority: Priority, sent_at_ms: u64) -> Arc<Message> {
    Arc::new(Message {
        seq,
        id: Uuid::new_v4(),
        sender_member: Uuid::new_v4(),
        sender_session: Uuid::new_v4(),
        sender_name: "sender".into(),
        sender_pubkey: vec![0; 32],
        sender_member_pubkey: vec![0; 32],
        target: Target::All,
        priority,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![1; 16],
        sent_at_ms,
    })
}

/// Reminder rows and the claims made on them: a row is claimable by the first node that asks
/// once it is due within the horizon it passes.
pub(crate) struct Reminders {
    pub(crate) rows: Mutex<BTreeMap<Uuid, (ReminderRow, bool)>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// When each reminder was claimed.
    pub(crate) claimed_at: Mutex<Vec<(Uuid, SystemTime)>>,
}

#[async_trait]
impl ReminderStore for Reminders {
    async fn own_due(&self, _: &str, _: Duration, _: i64) -> Result<Vec<ReminderRow>, StoreError> {
        Ok(Vec::new())
    }

    async fn claim_due(
        &self,
        _: &str,
        _: &[String],
        horizon: Duration,
        limit: i64,
    ) -> Result<Vec<ReminderRow>, StoreError> {
        let now = self.clock.now();
        let mut rows = lock(&self.rows);
        let mut out = Vec::new();
        for (id, (row, claimed)) in rows.iter_mut() {
            let due_soon = row.next_fire_at.is_some_and(|t| t <= now + horizon);
            if !*claimed && due_soon && (out.len() as i64) < limit {
                *claimed = true;
                lock(&self.claimed_at).push((*id, now));
                out.push(row.clone());
            }
        }
        Ok(out)
    }
}

/// Firings, recorded with the time they happened; a row with `cron` set repeats every
/// `every` (the tests' stand-in for a cron schedule).
pub(crate) struct Firings {
    pub(crate) fired: Mutex<Vec<(Uuid, SystemTime)>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) every: Duration,
}

#[async_trait]
impl Fire for Firings {
    async fn fire(&self, row: ReminderRow) -> Result<Fired, OpError> {
        let now = self.clock.now();
        lock(&self.fired).push((row.id, now));
        let next = row.cron.as_ref().and(row.next_fire_at).map(|t| t + self.every);
        Ok(Fired::Sent(next))
    }
}

/// A reminder row due at `due`, repeating when `repeats`.
pub(crate) fn reminder(due: SystemTime, repeats: bool) -> ReminderRow {
    ReminderRow {
        mesh_id: Uuid::new_v4(),
        id: Uuid::new_v4(),
        number: 1,
        creator_member: Uuid::new_v4(),
        creator_session: Uuid::new_v4(),
        creator_name: "creator".into(),
        creator_session_pubkey: vec![0; 32],
        creator_member_pubkey: vec![0; 32],
        label: None,
        target: Target::All,
        priority: Priority::Now,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![1; 16],
        cron: repeats.then(|| "test".to_owned()),
        tz: None,
        next_fire_at: Some(due),
        fire_count: 0,
        cancelled: false,
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
