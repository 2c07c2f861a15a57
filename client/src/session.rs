//! A session that stays connected: it says hello to any broker of the profile, resumes from
//! its cursor, reconnects with backoff (or after the broker's retry hint) and hands its
//! consumer typed [`Event`]s — and it applies the one delivery policy every client of this
//! workspace uses:
//!
//! 1. a message the cursor has seen is acknowledged again and not shown;
//! 2. otherwise it is marked in flight (persisted), then given to the consumer's [`Surface`];
//! 3. once surfaced — at once, or after [`Policy::confirm_after`] if the consumer is still
//!    there — it is recorded in the cursor, then acknowledged (as read with [`Policy::read`]);
//! 4. a message the consumer could not show is left unacknowledged (it stays in the inbox),
//!    and one interrupted mid-surface is shown again by the next run, marked as a repeat.
//!
//! Pulling the inbox ([`Session::inbox`]) goes through the same steps. Key requests are
//! answered and granted keys adopted here too, so every client hands the mesh key on.

use std::{
    collections::VecDeque,
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use plexus_crypto as crypto;
use plexus_proto::{
    ops::{self, Op},
    push::{Digest, KeyRequest, MeshKey, Message, PeerEvent, Routed},
    types::{Priority, Sealing, SessionMode, SessionProfile},
    CloseCode,
};
use tokio::sync::{mpsc, watch, Mutex, RwLock};
use uuid::Uuid;

use crate::{
    address::{self, Recipient, ReplyTo},
    backoff::Backoff,
    connection::{push_as, signed_hello, ClientError, Connection, TlsOptions},
    cursor::LocalCursor,
    keys::{self, Adopted},
    profile::Profile,
    seal,
};

/// How a session acknowledges what its consumer surfaced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Acknowledge as read (someone read it) rather than only surfaced.
    pub read: bool,
    /// Acknowledge only if the consumer is still there this long after surfacing (a
    /// notification written to a pipe is not yet read: a client killed with it unread must
    /// get it again).
    pub confirm_after: Option<Duration>,
}

/// A message for the consumer, opened.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The message as pushed.
    pub message: Message,
    /// Its body opened (a coordination event's summary; a marker when it cannot be opened).
    pub text: String,
    /// A previous run was interrupted while surfacing it: it may have been shown already.
    pub repeat: bool,
}

/// What the consumer did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Shown: record and acknowledge it.
    Surfaced,
    /// Not shown (the consumer cannot now): leave it in the inbox.
    Left,
    /// The consumer is gone: leave it, and stop the session.
    Stop,
}

/// The consumer side of the delivery policy.
pub trait Surface: Send + Sync + 'static {
    /// Show one message.
    fn surface(&self, incoming: &Incoming) -> impl Future<Output = Outcome> + Send;
    /// Whether the consumer is still there (asked before a confirm-later acknowledgement).
    fn alive(&self) -> bool {
        true
    }
}

/// What happened to the session, for its consumer.
#[derive(Debug)]
pub enum Event {
    /// Connected (again) to a node.
    Connected(ops::Welcome),
    /// Low-priority messages wait in the inbox.
    Digest(Digest),
    /// A peer joined, left or changed.
    Peer(PeerEvent),
    /// A message went through the mesh (watch mode).
    Routed(Routed),
    /// The mesh key arrived and was kept.
    KeyStored,
    /// A granted mesh key did not match the owner's commitment and was refused.
    KeyRefused {
        /// Who granted it.
        granted_by: Option<Uuid>,
    },
    /// This member's mesh key moved to a new epoch (rotated here or elsewhere).
    KeyRotated {
        /// The current epoch.
        epoch: u32,
    },
    /// The mesh key was handed to a new member.
    KeyGranted {
        /// Its name.
        to: String,
    },
    /// The connection closed; the session reconnects after `retry_in`.
    Disconnected {
        /// The close code, if the broker sent one.
        code: Option<CloseCode>,
        /// When it tries again.
        retry_in: Duration,
    },
}

fn events_extend(events: &mpsc::UnboundedSender<Event>, more: impl IntoIterator<Item = Event>) {
    for ev in more {
        let _ = events.send(ev);
    }
}

/// What a session is.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// `Session` (present, pushed to) or `Watch` (every mesh event).
    pub mode: SessionMode,
    /// What the session shows its peers and how it is gated.
    pub profile: SessionProfile,
    /// How it acknowledges.
    pub policy: Policy,
}

const RECENT_SENDERS: usize = 1000;

struct Inner {
    home: PathBuf,
    profile: RwLock<Profile>,
    options: StdMutex<SessionOptions>,
    conn: watch::Sender<Option<Arc<Connection>>>,
    cursor: Mutex<LocalCursor>,
    recent: StdMutex<VecDeque<ReplyTo>>,
}

/// A session of one member (see the module doc). Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

/// Open a connection to any broker of the profile (starting at a random one) and say hello.
pub async fn connect(
    profile: &Profile,
    mode: SessionMode,
    cursor: Option<&LocalCursor>,
    session_profile: SessionProfile,
) -> Result<(Connection, ops::Welcome), ClientError> {
    let session = profile.session_key().map_err(ClientError::Keys)?;
    let tls = TlsOptions { ca_file: profile.ca_file.clone() };
    let start = crypto::random_below(profile.brokers.len().max(1) as u32) as usize;
    let (conn, _) = crate::connection::open_any(&profile.brokers, start, &tls).await?;
    // A cursor that has seen nothing says nothing: the broker then picks the start.
    let wire = cursor.map(LocalCursor::to_wire).filter(|c| c.watermark > 0 || !c.acked.is_empty());
    let hello = signed_hello(profile, profile.session_id, session.public_key(), mode, wire, session_profile)?;
    let welcome = conn.call(&hello).await?;
    Ok((conn, welcome))
}

/// A message's body as text (`profile`'s keys open it).
pub fn open_text(profile: &Profile, m: &Message) -> String {
    let (Ok(session), Ok(member)) = (profile.session_key(), profile.member_key()) else {
        return "[keys unusable]".into();
    };
    match seal::open(m, &session, &member, profile.keyring().as_ref()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "[cannot decrypt: not sealed to this session or no mesh key yet]".into(),
    }
}

impl Session {
    /// A session of `profile` (its session id and key), its cursor beside the profile.
    pub fn new(home: PathBuf, profile: Profile, options: SessionOptions) -> Session {
        let cursor = LocalCursor::load(profile.cursor_path(&home));
        Session {
            inner: Arc::new(Inner {
                home,
                profile: RwLock::new(profile),
                options: StdMutex::new(options),
                conn: watch::channel(None).0,
                cursor: Mutex::new(cursor),
                recent: StdMutex::default(),
            }),
        }
    }

    /// The profile in use (with the mesh key once it arrived).
    pub async fn profile(&self) -> Profile {
        self.inner.profile.read().await.clone()
    }

    fn options(&self) -> SessionOptions {
        self.inner.options.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The current connection, waiting up to `wait` for a (re)connect in progress.
    pub async fn conn_within(&self, wait: Duration) -> Result<Arc<Connection>, ClientError> {
        let mut rx = self.inner.conn.subscribe();
        let found = match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        };
        found.ok_or_else(|| ClientError::Connect {
            url: String::new(),
            reason: "not connected to a broker (still trying); retry shortly".into(),
        })
    }

    /// The current connection (waiting up to 10 s for a reconnect).
    pub async fn conn(&self) -> Result<Arc<Connection>, ClientError> {
        self.conn_within(Duration::from_secs(10)).await
    }

    /// Call an op on the current connection.
    pub async fn call<O: Op>(&self, body: &O) -> Result<O::Reply, ClientError> {
        self.conn().await?.call(body).await
    }

    /// Call an op the broker may hold for up to `server_wait`.
    pub async fn call_waiting<O: Op>(&self, body: &O, server_wait: Duration) -> Result<O::Reply, ClientError> {
        self.conn().await?.call_waiting(body, server_wait).await
    }

    /// Connect once (no push loop): for one command on a control connection, or before
    /// pulling the inbox. Learns the key commitment and adopts a granted key.
    pub async fn connect_once(&self) -> Result<ops::Welcome, ClientError> {
        let options = self.options();
        let profile = self.profile().await;
        let cursor = self.inner.cursor.lock().await.clone();
        let (conn, welcome) = connect(&profile, options.mode, Some(&cursor), options.profile).await?;
        self.welcomed(&conn, &welcome).await;
        self.inner.conn.send_replace(Some(Arc::new(conn)));
        Ok(welcome)
    }

    async fn welcomed(&self, conn: &Connection, welcome: &ops::Welcome) -> Vec<Event> {
        let mut p = self.inner.profile.write().await;
        if let Err(e) = keys::learn_commitment(&self.inner.home, &mut p, welcome) {
            tracing::warn!(error = %e, "could not keep the mesh key commitment");
        }
        self.inner.cursor.lock().await.advance(welcome.cursor.watermark);
        let mut events = Vec::new();
        if let Some(sealed) = welcome.sealed_mesh_key.as_deref() {
            events.extend(self.adopt(&mut p, conn, sealed, None).await);
        }
        let behind = p.keyring().is_some_and(|r| r.epoch() < welcome.key_epoch);
        if behind || (welcome.key_rotation_due && p.keyring().is_some()) {
            events.extend(self.catch_up_keys(&mut p, conn).await);
        }
        events
    }

    /// Take rotated keys and rotate when due; the event when the epoch moved.
    async fn catch_up_keys(&self, p: &mut Profile, conn: &Connection) -> Option<Event> {
        let before = p.keyring().map(|r| r.epoch());
        match keys::catch_up(&self.inner.home, p, conn).await {
            Ok((epoch, _)) if Some(epoch) != before && p.keyring().is_some_and(|r| r.epoch() == epoch) => {
                Some(Event::KeyRotated { epoch })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not bring the mesh keys up to date");
                None
            }
        }
    }

    /// Keep the keys a call brought up to date in this session's profile too.
    async fn keep_keys(&self, from: &Profile) {
        let mut p = self.inner.profile.write().await;
        let newer = from.keyring().map(|r| r.epoch()) > p.keyring().map(|r| r.epoch());
        if newer || from.retired_mesh_keys.len() > p.retired_mesh_keys.len() {
            p.mesh_key.clone_from(&from.mesh_key);
            p.key_epoch = from.key_epoch;
            p.retired_mesh_keys.clone_from(&from.retired_mesh_keys);
        }
    }

    async fn adopt(&self, p: &mut Profile, conn: &Connection, sealed: &[u8], by: Option<Uuid>) -> Option<Event> {
        match keys::adopt(&self.inner.home, p, sealed, by, conn).await {
            Ok(Adopted::Stored) => Some(Event::KeyStored),
            Ok(Adopted::Refused { granted_by }) => Some(Event::KeyRefused { granted_by }),
            Ok(Adopted::Nothing) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the granted mesh key");
                None
            }
        }
    }

    /// Close the current connection politely.
    pub async fn close(&self) {
        if let Some(conn) = self.inner.conn.send_replace(None) {
            conn.close().await;
        }
    }

    /// Change whether the session takes pushes (`pull_only`), now and for later hellos.
    pub async fn set_pull_only(&self, pull_only: bool) -> Result<(), ClientError> {
        self.inner.options.lock().unwrap_or_else(std::sync::PoisonError::into_inner).profile.pull_only = pull_only;
        let conn = self.inner.conn.borrow().clone();
        if let Some(conn) = conn {
            conn.call(&ops::SetProfile { pull_only: Some(pull_only), ..Default::default() }).await?;
        }
        Ok(())
    }

    /// Stay connected until the consumer stops or the broker ends the session for good
    /// (member removed, session replaced): surface messages, report everything else.
    pub async fn run<S: Surface>(
        &self,
        surface: Arc<S>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<(), ClientError> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let options = self.options();
            let profile = self.profile().await;
            let cursor = self.inner.cursor.lock().await.clone();
            let (mut conn, welcome) = match connect(&profile, options.mode, Some(&cursor), options.profile).await {
                Ok(c) => c,
                Err(e) if e.is_transient() => {
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, delay_ms = d.as_millis() as u64, "broker unreachable; retrying");
                    let _ = events.send(Event::Disconnected { code: None, retry_in: d });
                    tokio::time::sleep(d).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            backoff.reset();
            let mut pushes = conn.take_pushes();
            let conn = Arc::new(conn);
            let adopted = self.welcomed(&conn, &welcome).await;
            let _ = events.send(Event::Connected(welcome));
            for ev in adopted {
                let _ = events.send(ev);
            }
            self.inner.conn.send_replace(Some(conn.clone()));
            while let Some(push) = pushes.recv().await {
                if let Some(m) = push_as::<Message>(&push) {
                    if self.deliver(&conn, m, &surface).await == Outcome::Stop {
                        return Ok(());
                    }
                } else if let Some(d) = push_as::<Digest>(&push) {
                    let _ = events.send(Event::Digest(d));
                } else if let Some(p) = push_as::<PeerEvent>(&push) {
                    let _ = events.send(Event::Peer(p));
                } else if let Some(r) = push_as::<Routed>(&push) {
                    let _ = events.send(Event::Routed(r));
                } else if let Some(req) = push_as::<KeyRequest>(&push) {
                    let p = self.profile().await;
                    match keys::grant(&p, &conn, &req).await {
                        Ok(true) => {
                            let _ = events.send(Event::KeyGranted { to: req.display_name });
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "key grant failed"),
                    }
                } else if let Some(k) = push_as::<plexus_proto::keys::KeyEpoch>(&push) {
                    let mut p = self.inner.profile.write().await;
                    let behind = p.keyring().is_some_and(|r| r.epoch() < k.epoch);
                    if behind || (k.rotation_due && p.keyring().is_some()) {
                        if let Some(ev) = self.catch_up_keys(&mut p, &conn).await {
                            let _ = events.send(ev);
                        }
                    }
                } else if let Some(k) = push_as::<MeshKey>(&push) {
                    let mut p = self.inner.profile.write().await;
                    if let Some(ev) = self.adopt(&mut p, &conn, &k.sealed_mesh_key, k.granted_by).await {
                        let stored = matches!(ev, Event::KeyStored);
                        let _ = events.send(ev);
                        // The owner's key came first; a rotated mesh also granted the current one.
                        if stored {
                            events_extend(&events, self.catch_up_keys(&mut p, &conn).await);
                        }
                    }
                }
            }
            self.inner.conn.send_replace(None);
            let code = conn.closed().flatten();
            if let Some(code) = code.filter(|c| !c.should_reconnect()) {
                return Err(ClientError::Closed(Some(code)));
            }
            let d = conn.retry_hint().unwrap_or_else(|| backoff.next_delay());
            let _ = events.send(Event::Disconnected { code, retry_in: d });
            tokio::time::sleep(d).await;
        }
    }

    /// Apply the delivery policy to one pushed message.
    async fn deliver<S: Surface>(&self, conn: &Arc<Connection>, m: Message, surface: &Arc<S>) -> Outcome {
        let policy = self.options().policy;
        let incoming = {
            let mut cursor = self.inner.cursor.lock().await;
            if cursor.seen(m.seq) {
                drop(cursor);
                // Surfaced before (the ack was lost): acknowledge again, show nothing.
                self.ack(conn, vec![m.seq], policy.read).await;
                return Outcome::Surfaced;
            }
            let repeat = cursor.interrupted(m.seq);
            if let Err(e) = cursor.begin(m.seq) {
                tracing::warn!(error = %e, "could not save the cursor; leaving the message in the inbox");
                return Outcome::Left;
            }
            let text = open_text(&*self.inner.profile.read().await, &m);
            Incoming { message: m, text, repeat }
        };
        self.remember_sender(&incoming.message);
        let seq = incoming.message.seq;
        let outcome = surface.surface(&incoming).await;
        match outcome {
            Outcome::Surfaced => match policy.confirm_after {
                None => {
                    self.record_and_ack(conn, vec![seq], policy.read).await;
                    // A consumer that has had enough (e.g. a count reached) ends the session
                    // only once this message is recorded and acknowledged.
                    if !surface.alive() {
                        return Outcome::Stop;
                    }
                }
                Some(after) => {
                    let (session, conn, surface) = (self.clone(), conn.clone(), surface.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        // A consumer gone by now may never have read it: it stays in flight
                        // (and in the inbox) for the next run.
                        if surface.alive() {
                            session.record_and_ack(&conn, vec![seq], policy.read).await;
                        }
                    });
                }
            },
            Outcome::Left => {
                let _ = self.inner.cursor.lock().await.abandon(seq);
            }
            // In flight stays marked: the next run shows it again as a possible repeat.
            Outcome::Stop => {}
        }
        outcome
    }

    async fn record_and_ack(&self, conn: &Connection, seqs: Vec<u64>, read: bool) {
        if let Err(e) = self.inner.cursor.lock().await.record_all(&seqs) {
            tracing::warn!(error = %e, "could not save the cursor");
            return;
        }
        self.ack(conn, seqs, read).await;
    }

    async fn ack(&self, conn: &Connection, seqs: Vec<u64>, read: bool) {
        match conn.call(&ops::Ack { seqs: seqs.clone(), read }).await {
            Ok(a) => self.inner.cursor.lock().await.confirm(&seqs, a.cursor.watermark),
            Err(e) => tracing::debug!(error = %e, "ack failed; the cursor resends it on reconnect"),
        }
    }

    /// Pull up to `limit` unread messages (held `next` and `low` included) through the same
    /// policy, acknowledged as read. Returns how many were surfaced and whether more wait.
    pub async fn inbox<S: Surface>(&self, limit: u32, surface: &S) -> Result<(usize, bool), ClientError> {
        let conn = self.conn().await?;
        let items = conn.call(&ops::Inbox { limit }).await?;
        let mut shown = Vec::new();
        let mut listed = Vec::new();
        for m in items.messages {
            let seq = m.seq;
            let incoming = {
                let mut cursor = self.inner.cursor.lock().await;
                if cursor.seen(seq) {
                    // Being surfaced by this process already (a push), or surfaced before:
                    // its own acknowledgement covers it.
                    if !cursor.in_flight(seq) {
                        listed.push(seq);
                    }
                    continue;
                }
                let repeat = cursor.interrupted(seq);
                cursor.begin(seq)?;
                let text = open_text(&*self.inner.profile.read().await, &m);
                Incoming { message: m, text, repeat }
            };
            self.remember_sender(&incoming.message);
            match surface.surface(&incoming).await {
                Outcome::Surfaced => {
                    shown.push(seq);
                    listed.push(seq);
                }
                Outcome::Left => {
                    self.inner.cursor.lock().await.abandon(seq)?;
                }
                Outcome::Stop => break,
            }
        }
        self.inner.cursor.lock().await.record_all(&shown)?;
        if !listed.is_empty() {
            let a = conn.call(&ops::Ack { seqs: listed.clone(), read: true }).await?;
            self.inner.cursor.lock().await.confirm(&listed, a.cursor.watermark);
        }
        Ok((shown.len(), items.more))
    }

    fn remember_sender(&self, m: &Message) {
        let mut r = self.inner.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if r.len() >= RECENT_SENDERS {
            r.pop_front();
        }
        r.push_back(ReplyTo { message: m.id, session: m.sender_session, session_pubkey: m.sender_pubkey.clone() });
    }

    /// The session that sent message `id`, if it was surfaced here lately.
    fn recent_sender(&self, id: Uuid) -> Option<ReplyTo> {
        let r = self.inner.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        r.iter().rev().find(|s| s.message == id).cloned()
    }

    /// Resolve a recipient: `to` (a name, `@group`, `*`, `session:<id>`) or, for a reply,
    /// exactly the session that sent `reply_to`.
    pub async fn recipient(&self, to: Option<&str>, reply_to: Option<Uuid>) -> Result<Recipient, ClientError> {
        let conn = self.conn().await?;
        if let Some(original) = reply_to {
            return match self.recent_sender(original) {
                Some(r) => Ok(Recipient::Reply(r)),
                None => Ok(Recipient::Reply(address::reply_to_from_inbox(&conn, original).await?)),
            };
        }
        let to = to.ok_or_else(|| ClientError::Address("say who it is for, or which message it replies to".into()))?;
        address::resolve(&conn, &self.profile().await, to).await
    }

    /// Seal `text` for `to` and send it; returns the message id and the broker's answer.
    pub async fn send(&self, to: &Recipient, text: &str, priority: Priority) -> Result<(Uuid, ops::Sent), ClientError> {
        let id = Uuid::new_v4();
        let conn = self.conn().await?;
        let mut profile = self.profile().await;
        let sent = address::send_text(&conn, &self.inner.home, &mut profile, to, text, priority, id).await;
        self.keep_keys(&profile).await;
        Ok((id, sent?))
    }

    /// Seal `text` for a reminder to `to` (a member or group; `me` for yourself).
    pub async fn seal_for(
        &self,
        to: &str,
        text: &str,
    ) -> Result<(plexus_proto::types::Target, Sealing, Vec<u8>, Vec<u8>), ClientError> {
        let conn = self.conn().await?;
        let profile = self.profile().await;
        let recipient = address::resolve(&conn, &profile, to).await?;
        address::seal(&profile, &recipient, text.as_bytes())
    }
}
