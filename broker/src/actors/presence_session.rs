//! PresenceSession: one per present session on this node. Owns the session's status engine,
//! its priority gate, the messages addressed to it that are not acknowledged yet (pushed,
//! held or waiting in the inbox) and its outbound sink. On start it registers with the mesh
//! router, announces itself and replays from its cursor; on stop it announces the leave
//! (unless a newer connection of the same session replaced it).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use plexus_proto::{
    push::{Digest, KeyRequest, MeshKey, Message, PeerChange, PeerEvent},
    types::{Cursor, PeerInfo, SessionProfile, Status, StatusSource},
    CloseCode,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use super::{env::SessionEnv, mesh_actor::MeshMsg, ConnHandle};
use crate::{
    cluster::{MeshEvent, PushedMark},
    routing::{gate, Addressing, Gate},
    status::StatusState,
    store::{cursors::StoredCursor, log::Addressee},
};

/// Most unacknowledged sequences a saved cursor lists; past them it claims less (its watermark
/// stops below the rest), and acknowledgements above are listed one by one instead.
const MAX_SAVED_UNACKED: usize = 1000;

/// Most waiting sequences a pushed mark lists (see [`SessionState::pushed_mark`]).
const MAX_REPORTED_WAITING: usize = 32;

/// Who the session is, fixed at hello.
#[derive(Debug)]
pub struct SessionSpec {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Member.
    pub member_id: Uuid,
    /// Member's ed25519 key.
    pub member_pubkey: Vec<u8>,
    /// Whether the member can hand out the mesh key (owner, or already granted).
    pub holds_mesh_key: bool,
    /// Member's display name.
    pub member_name: String,
    /// Session's x25519 key.
    pub session_pubkey: Vec<u8>,
    /// Profile at hello.
    pub profile: SessionProfile,
    /// What the session acknowledged, as stored at hello.
    pub cursor: StoredCursor,
    /// Head of the log when the session was first seen.
    pub created_seq: u64,
    /// Connection time.
    pub connected_at_ms: u64,
    /// Outbound side of the connection.
    pub conn: ConnHandle,
}

impl SessionSpec {
    fn display_name(&self, profile: &SessionProfile) -> String {
        profile.display_name.clone().unwrap_or_else(|| self.member_name.clone())
    }
}

/// Messages to a presence session.
pub enum SessionMsg {
    /// A live message addressed to this session, with its push frame when the router encoded
    /// it once for every local recipient.
    Deliver(Arc<Message>, Option<bytes::Bytes>),
    /// Replay from the cursor (sent to itself at start).
    Replay,
    /// The client acknowledged these sequences.
    Acked(Vec<u64>, RpcReplyPort<Acknowledged>),
    /// A status report.
    SetStatus(Status, StatusSource, RpcReplyPort<(Status, StatusSource)>),
    /// Profile change (summary, visibility, pull-only); already validated and persisted.
    SetProfile(plexus_proto::ops::SetProfile, RpcReplyPort<()>),
    /// The member's groups changed (the router already readdressed this session).
    Groups(Vec<plexus_proto::types::GroupRole>),
    /// The member's blocks, mutes or subscriptions changed.
    Controls(plexus_proto::controls::Controls),
    /// Another session's presence changed.
    PeerEvent(Arc<PeerEvent>),
    /// A member waits for the mesh key.
    KeyRequest(KeyRequest),
    /// This member's mesh key arrived (sealed, and who granted it).
    MeshKey(Vec<u8>, Option<Uuid>),
    /// The mesh key's epoch changed or a rotation became due.
    KeyEpoch(plexus_proto::keys::KeyEpoch),
    /// A command routed through the mesh (from a control connection of the same member).
    Command(crate::cluster::SessionCommand),
    /// Periodic TTL sweep.
    Sweep,
    /// The mesh router was restarted: register with the new one.
    Reregister(ActorRef<MeshMsg>),
    /// A permission request of this member was made or decided (its other devices show it).
    Approval(Arc<plexus_proto::room::ApprovalPush>),
    /// A newer connection of the same session took over: close without a leave.
    Replaced,
    /// Close the connection with a code and stop.
    Close(CloseCode),
    /// The connection ended.
    Disconnected,
}

/// What a session made of an acknowledgement.
#[derive(Debug)]
pub struct Acknowledged {
    /// The cursor to report to the client.
    pub cursor: Cursor,
    /// What to save before reporting it.
    pub save: StoredCursor,
    /// The sequences taken (those the session was handed).
    pub seqs: Vec<u64>,
}

/// Where an unacknowledged message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Pushed,
    Held,
    Inbox,
}

/// The actor.
pub struct PresenceSession;

/// Start-up arguments.
pub struct SessionArgs {
    /// Identity.
    pub spec: Arc<SessionSpec>,
    /// The mesh router.
    pub router: ActorRef<MeshMsg>,
    /// What the session uses of the node.
    pub env: Arc<SessionEnv>,
}

/// State.
pub struct SessionState {
    spec: Arc<SessionSpec>,
    router: ActorRef<MeshMsg>,
    env: Arc<SessionEnv>,
    profile: SessionProfile,
    status: StatusState,
    pending: BTreeMap<u64, (Arc<Message>, Standing)>,
    /// The pending sequences not pushed (held, or in the inbox).
    waiting: std::collections::BTreeSet<u64>,
    /// Every addressed sequence at or below it has been handed to this session (live or
    /// replay) or was acknowledged before.
    seen_through: u64,
    /// The pushed mark last reported to the presence directory.
    reported_pushed: Option<PushedMark>,
    replaying: bool,
    holds_mesh_key: bool,
    replaced: bool,
    /// The member's blocks, mutes and event subscriptions.
    controls: plexus_proto::controls::Controls,
}

impl SessionState {
    fn addressing(&self) -> Addressing {
        Addressing {
            session_id: self.spec.session_id,
            member_id: self.spec.member_id,
            groups: self.profile.groups.iter().map(|g| g.name.clone()).collect(),
            visible: self.profile.visible,
        }
    }

    fn peer_info(&self) -> PeerInfo {
        PeerInfo {
            session_id: self.spec.session_id,
            member_id: self.spec.member_id,
            display_name: self.spec.display_name(&self.profile),
            session_pubkey: self.spec.session_pubkey.clone(),
            status: self.status.status,
            status_source: self.status.source,
            status_since_ms: self.status.changed_at_ms,
            profile: SessionProfile { status: self.status.status, ..self.profile.clone() },
            connected_at_ms: self.spec.connected_at_ms,
        }
    }

    /// Everything addressed and `<= watermark` is acknowledged.
    fn cursor(&self) -> Cursor {
        // Replay skips acknowledged messages and gating only holds later ones back, so every
        // addressed message below the first pending one is acknowledged.
        let watermark = match self.pending.keys().next() {
            Some(first) => first - 1,
            None => self.seen_through,
        };
        Cursor { watermark, acked: Vec::new() }
    }

    /// What to save so the acknowledgement of `acked` outlives this node: those sequences, and
    /// once replay is done, everything this session knows (all it was handed but `pending`).
    fn durable(&self, acked: &[u64]) -> StoredCursor {
        let explicit = StoredCursor::acks(acked);
        if self.replaying {
            // Below `seen_through` may be messages replay has not handed over yet.
            return explicit;
        }
        let mut unacked: Vec<u64> = self.pending.keys().copied().take(MAX_SAVED_UNACKED + 1).collect();
        let watermark = if unacked.len() > MAX_SAVED_UNACKED {
            unacked.pop().map(|s| s - 1).unwrap_or(self.seen_through)
        } else {
            self.seen_through
        };
        // The acknowledged sequences left `pending` already, so only those above a watermark
        // lowered by the cap need listing: this is the snapshot merged with `explicit`.
        let acked_above = explicit.acked_above.into_iter().filter(|&s| s > watermark).collect();
        StoredCursor { watermark, unacked, acked_above }
    }

    /// What was pushed: everything handed over but the first waiting messages (a long inbox
    /// is cut short by stopping the mark below the rest).
    fn pushed_mark(&self) -> PushedMark {
        let mut waiting: Vec<u64> = self.waiting.iter().copied().take(MAX_REPORTED_WAITING + 1).collect();
        let through = if waiting.len() > MAX_REPORTED_WAITING {
            waiting.pop().map(|s| s - 1).unwrap_or(self.seen_through)
        } else {
            self.seen_through
        };
        PushedMark { through, waiting }
    }

    fn report_pushed(&mut self) {
        let mark = self.pushed_mark();
        if self.reported_pushed.as_ref() != Some(&mark) {
            self.reported_pushed = Some(mark.clone());
            self.env.presence.mark_pushed(self.spec.mesh_id, self.spec.session_id, mark);
        }
    }

    fn set_standing(&mut self, seq: u64, standing: Standing) {
        if let Some(entry) = self.pending.get_mut(&seq) {
            entry.1 = standing;
            if standing == Standing::Pushed {
                self.waiting.remove(&seq);
            } else {
                self.waiting.insert(seq);
            }
        }
    }

    fn remove_pending(&mut self, seq: u64) -> bool {
        self.waiting.remove(&seq);
        self.pending.remove(&seq).is_some()
    }

    fn offer(&mut self, msg: Arc<Message>, frame: Option<bytes::Bytes>) {
        if self.pending.contains_key(&msg.seq) || self.spec.cursor.acked(msg.seq) {
            return;
        }
        self.seen_through = self.seen_through.max(msg.seq);
        if self.controls.blocked.contains(&msg.sender_member) {
            // Never surfaced; counted as handled, so the cursor moves past it and the sender
            // sees nothing different from a delivery.
            return;
        }
        let standing = if self.quiet(&msg) {
            Standing::Inbox
        } else {
            match self.gate(msg.priority) {
                Gate::Push => {
                    match frame {
                        Some(frame) => self.push_frame(&msg, frame),
                        None => self.push_message(&msg),
                    }
                    Standing::Pushed
                }
                Gate::Hold => Standing::Held,
                Gate::Inbox => Standing::Inbox,
            }
        };
        if standing != Standing::Pushed {
            self.waiting.insert(msg.seq);
        }
        self.pending.insert(msg.seq, (msg, standing));
    }

    /// Whether the member asked not to be pushed this: its sender is muted, or it is an event
    /// of a kind the member is not subscribed to.
    fn quiet(&self, msg: &Message) -> bool {
        let unsubscribed = msg.sealing == plexus_proto::types::Sealing::Plain
            && msg.subtype.as_deref().is_some_and(|s| !self.controls.wants_kind(s));
        unsubscribed || self.controls.muted.contains(&msg.sender_member)
    }

    /// Priority gating; a pull-only session is never pushed to.
    fn gate(&self, priority: plexus_proto::types::Priority) -> Gate {
        if self.profile.pull_only {
            Gate::Inbox
        } else {
            gate(priority, self.status.status)
        }
    }

    /// The session can take pushes now: what waited in the inbox only because it could not is
    /// gated again by its priority.
    fn regate_inbox(&mut self) {
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (m, s))| {
                *s == Standing::Inbox && m.priority != plexus_proto::types::Priority::Low && !self.quiet(m)
            })
            .map(|(k, _)| *k)
            .collect();
        for seq in waiting {
            let Some(msg) = self.pending.get(&seq).map(|(m, _)| m.clone()) else { continue };
            let standing = match self.gate(msg.priority) {
                Gate::Push => Standing::Pushed,
                Gate::Hold => Standing::Held,
                Gate::Inbox => Standing::Inbox,
            };
            self.set_standing(seq, standing);
            if standing == Standing::Pushed {
                self.push_message(&msg);
            }
        }
    }

    fn push_message(&self, msg: &Message) {
        if let Some(frame) = crate::actors::encode_push(msg) {
            self.push_frame(msg, frame);
        }
    }

    fn push_frame(&self, msg: &Message, frame: bytes::Bytes) {
        if self.spec.conn.push_encoded::<Message>(frame) {
            let latency = self.env.clock.now_ms().saturating_sub(msg.sent_at_ms) as f64 / 1000.0;
            crate::metrics::delivery_latency().with_label_values(&[msg.priority.as_str()]).observe(latency);
        }
    }

    /// On becoming idle: push held messages in order, then announce the inbox.
    fn release_held(&mut self) {
        if self.profile.pull_only {
            return;
        }
        let held: Vec<u64> = self.pending.iter().filter(|(_, (_, s))| *s == Standing::Held).map(|(k, _)| *k).collect();
        for seq in held {
            if let Some(msg) = self.pending.get(&seq).map(|(m, _)| m.clone()) {
                self.set_standing(seq, Standing::Pushed);
                self.push_message(&msg);
            }
        }
        self.send_digest();
    }

    fn send_digest(&self) {
        if self.status.status != Status::Idle || self.profile.pull_only {
            return;
        }
        let mut senders: Vec<String> = Vec::new();
        let mut count = 0u32;
        for (msg, standing) in self.pending.values() {
            if *standing == Standing::Inbox {
                count += 1;
                if senders.len() < 10 && !senders.contains(&msg.sender_name) {
                    senders.push(msg.sender_name.clone());
                }
            }
        }
        if count > 0 {
            self.spec.conn.push(&Digest { low_unread: count, senders });
        }
    }

    async fn announce(&self, change: PeerChange) {
        let peer = self.peer_info();
        let previous = self.env.presence.upsert(self.spec.mesh_id, peer.clone()).await;
        // A session already listed (it reconnected before its old entry was reaped, perhaps on
        // another node) is not a join; if nothing peers can see changed, it is not an event at
        // all. This is what keeps a reconnect storm from fanning out n² presence pushes.
        let change = match (&previous, change) {
            (Some(old), _) if same_for_peers(old, &peer) => return,
            (Some(_), PeerChange::Joined) => PeerChange::Updated,
            (_, change) => change,
        };
        self.env.fanout.publish(self.spec.mesh_id, MeshEvent::Peer(Arc::new(PeerEvent { change, peer })));
    }
}

/// Whether two entries of one session look the same to its peers (connection time and the
/// moment the status was set do not count).
fn same_for_peers(a: &PeerInfo, b: &PeerInfo) -> bool {
    a.display_name == b.display_name
        && a.session_pubkey == b.session_pubkey
        && a.status == b.status
        && a.status_source == b.status_source
        && a.profile == b.profile
}

/// A peer as announced when it is gone for the receivers: who it was, nothing of what it did.
fn redacted(peer: &PeerInfo) -> PeerInfo {
    PeerInfo {
        profile: SessionProfile {
            display_name: peer.profile.display_name.clone(),
            agent_kind: peer.profile.agent_kind.clone(),
            ..SessionProfile::default()
        },
        ..peer.clone()
    }
}

/// Remove a session from presence and publish its leave (used on stop and on crash); false
/// when the entry was not this node's to remove (the session is present elsewhere). A hidden
/// session's leave goes to its own member only, like every other event about it.
pub async fn announce_gone(env: &SessionEnv, spec: &SessionSpec, profile: &SessionProfile) -> bool {
    if env.presence.remove(spec.mesh_id, spec.session_id).await {
        crate::metrics::sessions().dec();
        let peer = PeerInfo {
            session_id: spec.session_id,
            member_id: spec.member_id,
            display_name: spec.display_name(profile),
            session_pubkey: spec.session_pubkey.clone(),
            status: Status::Idle,
            status_source: StatusSource::Manual,
            status_since_ms: env.clock.now_ms(),
            profile: profile.clone(),
            connected_at_ms: spec.connected_at_ms,
        };
        env.fanout.publish(spec.mesh_id, MeshEvent::Peer(Arc::new(PeerEvent { change: PeerChange::Left, peer })));
        return true;
    }
    false
}

impl Actor for PresenceSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let now = args.env.clock.now_ms();
        let spec = args.spec;
        let state = SessionState {
            profile: spec.profile.clone(),
            status: StatusState::new(spec.profile.status, StatusSource::Manual, now),
            pending: BTreeMap::new(),
            waiting: std::collections::BTreeSet::new(),
            seen_through: spec.cursor.contiguous(),
            reported_pushed: None,
            replaying: true,
            holds_mesh_key: spec.holds_mesh_key,
            replaced: false,
            controls: plexus_proto::controls::Controls::default(),
            router: args.router,
            env: args.env,
            spec,
        };
        let _ = state.router.cast(MeshMsg::Register { addressing: state.addressing(), actor: myself.clone() });
        crate::metrics::sessions().inc();
        state.announce(PeerChange::Joined).await;
        state.env.locks.session_started(state.spec.mesh_id, state.spec.session_id).await;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = myself.cast(SessionMsg::Replay);
        let every = state.env.sweep_every.max(Duration::from_millis(10));
        myself.send_interval(every, || SessionMsg::Sweep);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.router.cast(MeshMsg::Unregister { session_id: state.spec.session_id, actor: myself.get_id() });
        if state.replaced {
            crate::metrics::sessions().dec();
        } else if announce_gone(&state.env, &state.spec, &state.profile).await {
            // Only when the entry was still ours: a session already present on another node
            // keeps its locks.
            state.env.locks.session_ended(state.spec.mesh_id, state.spec.session_id).await;
        }
        state.env.backlog.report(state.spec.session_id, None);
        // Acknowledgements were saved as they came; this saves what moved the cursor without
        // one (blocked senders, messages to others), so the next replay starts further on.
        if !state.replaying {
            if let Err(e) =
                state.env.store.save_cursor(state.spec.mesh_id, state.spec.session_id, state.durable(&[])).await
            {
                tracing::warn!(session_id = %state.spec.session_id, error = %e, "could not save the cursor");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Deliver(m, frame) => {
                state.offer(m, frame);
                if !state.replaying {
                    state.send_digest_if_low_arrived();
                }
            }
            SessionMsg::Replay => self.on_replay(state).await,
            SessionMsg::Acked(seqs, reply) => {
                let cursor = state.acked(seqs);
                let _ = reply.send(cursor);
            }
            SessionMsg::SetStatus(status, source, reply) => {
                state.set_status(status, source).await;
                let _ = reply.send((state.status.status, state.status.source));
            }
            SessionMsg::SetProfile(change, reply) => {
                state.set_profile(change).await;
                let _ = reply.send(());
            }
            SessionMsg::Command(command) => match command {
                crate::cluster::SessionCommand::SetStatus(status, source) => state.set_status(status, source).await,
                crate::cluster::SessionCommand::SetProfile(change) => state.set_profile(change).await,
                crate::cluster::SessionCommand::Acked(seqs) => {
                    // Saved by the control connection that sent them.
                    state.acked(seqs);
                }
            },
            SessionMsg::Groups(groups) => {
                state.profile.groups = groups;
                state.announce(PeerChange::Updated).await;
            }
            SessionMsg::Controls(controls) => {
                state.controls = controls;
                // A block covers what is waiting too; an unmute lets it be pushed.
                let blocked: Vec<u64> = state
                    .pending
                    .iter()
                    .filter(|(_, (m, _))| state.controls.blocked.contains(&m.sender_member))
                    .map(|(k, _)| *k)
                    .collect();
                for seq in blocked {
                    state.remove_pending(seq);
                }
                if !state.replaying {
                    state.regate_inbox();
                }
            }
            SessionMsg::PeerEvent(ev) => {
                if ev.peer.session_id != state.spec.session_id {
                    state.spec.conn.push(&*ev);
                }
            }
            SessionMsg::KeyRequest(req) => {
                if state.holds_mesh_key && req.member_id != state.spec.member_id {
                    state.spec.conn.push(&req);
                }
            }
            SessionMsg::MeshKey(sealed, granted_by) => {
                state.holds_mesh_key = true;
                state.spec.conn.push(&MeshKey { sealed_mesh_key: sealed, granted_by });
            }
            SessionMsg::Sweep => {
                // Overdue is what was pushed and not acknowledged; held and low messages wait
                // legitimately (for idle, or for someone to read the inbox).
                let pushed: Vec<u64> =
                    state.pending.values().filter(|(_, s)| *s == Standing::Pushed).map(|(m, _)| m.sent_at_ms).collect();
                let oldest = pushed.iter().min().copied();
                state.env.backlog.report(state.spec.session_id, oldest.map(|t| (pushed.len(), t)));
                if state.status.sweep(&state.env.rules, state.env.clock.now_ms()) {
                    state.announce(PeerChange::Updated).await;
                    state.release_held();
                }
            }
            SessionMsg::Reregister(router) => {
                state.router = router;
                let _ = state.router.cast(MeshMsg::Register { addressing: state.addressing(), actor: myself.clone() });
            }
            SessionMsg::Approval(push) => {
                state.spec.conn.push(&*push);
            }
            SessionMsg::KeyEpoch(epoch) => {
                state.spec.conn.push(&epoch);
            }
            SessionMsg::Replaced => {
                state.replaced = true;
                state.spec.conn.close(CloseCode::SessionReplaced);
                myself.stop(Some("replaced".into()));
            }
            SessionMsg::Close(code) => {
                state.spec.conn.close(code);
                myself.stop(Some("closed".into()));
            }
            SessionMsg::Disconnected => myself.stop(Some("disconnected".into())),
        }
        state.report_pushed();
        Ok(())
    }
}

impl SessionState {
    /// Drop acknowledged sequences; answers the cursor to report and what to save first. An
    /// acknowledgement of a sequence this session was never handed is ignored: it may not exist
    /// yet, and acknowledging it would silence the message that later gets it.
    fn acked(&mut self, mut seqs: Vec<u64>) -> Acknowledged {
        seqs.retain(|&s| self.remove_pending(s) || s <= self.seen_through);
        Acknowledged { cursor: self.cursor(), save: self.durable(&seqs), seqs }
    }

    async fn set_status(&mut self, status: Status, source: StatusSource) {
        if self.status.report(status, source, &self.env.rules, self.env.clock.now_ms()) {
            self.announce(PeerChange::Updated).await;
            if self.status.status == Status::Idle {
                self.release_held();
            }
        }
    }

    async fn set_profile(&mut self, change: plexus_proto::ops::SetProfile) {
        if let Some(summary) = change.summary {
            self.profile.summary = if summary.is_empty() { None } else { Some(summary) };
        }
        if let Some(pull_only) = change.pull_only {
            let was = self.profile.pull_only;
            self.profile.pull_only = pull_only;
            if was && !pull_only {
                self.regate_inbox();
            }
        }
        let was_visible = self.profile.visible;
        if let Some(visible) = change.visible {
            self.profile.visible = visible;
        }
        let _ = self.router.cast(MeshMsg::Readdress(self.addressing()));
        if was_visible && !self.profile.visible {
            // To everyone but its member the session is gone now; the leave says no more than
            // that (no summary, cwd or groups).
            let gone = PeerEvent { change: PeerChange::Left, peer: redacted(&self.peer_info()) };
            self.env.fanout.publish(self.spec.mesh_id, MeshEvent::Peer(Arc::new(gone)));
            self.announce(PeerChange::Updated).await;
        } else if !was_visible && self.profile.visible {
            let peer = self.peer_info();
            self.env.presence.upsert(self.spec.mesh_id, peer.clone()).await;
            let joined = PeerEvent { change: PeerChange::Joined, peer };
            self.env.fanout.publish(self.spec.mesh_id, MeshEvent::Peer(Arc::new(joined)));
        } else {
            self.announce(PeerChange::Updated).await;
        }
    }

    fn send_digest_if_low_arrived(&self) {
        if let Some((_, (_, Standing::Inbox))) = self.pending.iter().next_back() {
            self.send_digest();
        }
    }
}

impl PresenceSession {
    async fn on_replay(&self, state: &mut SessionState) {
        let who = Addressee {
            mesh_id: state.spec.mesh_id,
            session_id: state.spec.session_id,
            member_id: state.spec.member_id,
            visible: state.profile.visible,
            created_seq: state.spec.created_seq,
            cursor: state.spec.cursor.clone(),
        };
        match state.env.store.controls(state.spec.mesh_id, state.spec.member_id).await {
            Ok(c) => state.controls = c,
            Err(e) => {
                tracing::warn!(session_id = %state.spec.session_id, error = %e, "controls unavailable; none applied");
            }
        }
        let batch = state.env.replay_batch.max(1);
        let mut after = state.spec.cursor.contiguous();
        loop {
            let slot = state.env.replay_slots.acquire().await;
            let fetched = state.env.store.unacked_for(&who, after, batch).await;
            drop(slot);
            match fetched {
                Ok(messages) => {
                    let n = messages.len();
                    for m in messages {
                        after = m.seq;
                        state.offer(Arc::new(m), None);
                    }
                    if n < batch as usize {
                        break;
                    }
                    // Pace heavy replays so one reconnecting session cannot monopolise the pool.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(session_id = %state.spec.session_id, error = %e, "replay failed; closing so the peer retries");
                    state.spec.conn.close(CloseCode::ServerShutdown);
                    break;
                }
            }
        }
        state.replaying = false;
        state.send_digest();
        if !state.holds_mesh_key {
            // A grant published between the hello's read of the member and this session's
            // registration reached no session; the stored grant closes that window.
            if let Ok(Some(me)) = state.env.store.member(state.spec.mesh_id, state.spec.member_id).await {
                if let Some(sealed) = me.sealed_mesh_key {
                    state.holds_mesh_key = true;
                    state.spec.conn.push(&MeshKey { sealed_mesh_key: sealed, granted_by: me.key_granted_by });
                }
            }
        }
        if state.holds_mesh_key {
            if let Ok(waiting) = state.env.store.pending_key_requests(state.spec.mesh_id).await {
                for m in waiting {
                    if let Some(claim_pubkey) = m.claim_pubkey {
                        state.spec.conn.push(&KeyRequest {
                            member_id: m.id,
                            display_name: m.display_name,
                            member_pubkey: m.pubkey,
                            claim_pubkey,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The session actor on paused time, with in-memory presence, fan-out and store.

    use std::time::Duration;

    use plexus_proto::types::Priority;
    use tokio::time::sleep;

    use super::*;
    use crate::{
        actors::{
            env::SessionEnv,
            fakes::{self, lock, Client},
        },
        clock::{Clock, TokioClock},
        cluster::{
            memory::{MemoryFanOut, MemoryPresence},
            PresenceDirectory,
        },
        metrics::Backlog,
        status::StatusRules,
    };

    /// A mesh router that takes registrations and routes nothing (the tests deliver directly).
    struct NullRouter;

    impl Actor for NullRouter {
        type Msg = MeshMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<MeshMsg>, (): ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    const WORKING_TTL: Duration = Duration::from_secs(60);
    const SWEEP: Duration = Duration::from_secs(5);

    struct Harness {
        session: ActorRef<SessionMsg>,
        client: Client,
        presence: Arc<MemoryPresence>,
        store: Arc<fakes::Store>,
        locks: Arc<fakes::Locks>,
        backlog: Arc<Backlog>,
        clock: Arc<dyn Clock>,
        spec: Arc<SessionSpec>,
    }

    impl Harness {
        async fn start(status: Status) -> Harness {
            let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
            let presence = Arc::new(MemoryPresence::default());
            let store = Arc::new(fakes::Store::default());
            let locks = Arc::new(fakes::Locks::default());
            let backlog = Arc::new(Backlog::default());
            let env = Arc::new(SessionEnv {
                store: store.clone(),
                presence: presence.clone(),
                fanout: Arc::new(MemoryFanOut::default()),
                locks: locks.clone(),
                backlog: backlog.clone(),
                rules: StatusRules { freshness: Duration::from_secs(30), working_ttl: WORKING_TTL },
                replay_batch: 100,
                replay_slots: Arc::new(tokio::sync::Semaphore::new(1)),
                sweep_every: SWEEP,
                clock: clock.clone(),
            });
            let (conn, client) = Client::new();
            let spec = Arc::new(SessionSpec {
                mesh_id: Uuid::new_v4(),
                session_id: Uuid::new_v4(),
                member_id: Uuid::new_v4(),
                member_pubkey: vec![0; 32],
                holds_mesh_key: true,
                member_name: "agent".into(),
                session_pubkey: vec![0; 32],
                profile: SessionProfile { status, ..SessionProfile::default() },
                cursor: crate::store::cursors::StoredCursor::default(),
                created_seq: 0,
                connected_at_ms: clock.now_ms(),
                conn,
            });
            let (router, _) = Actor::spawn(None, NullRouter, ()).await.expect("router");
            let args = SessionArgs { spec: spec.clone(), router, env };
            let (session, _) = Actor::spawn(None, PresenceSession, args).await.expect("session");
            Harness { session, client, presence, store, locks, backlog, clock, spec }
        }

        /// Let the actor work through what is due at the current (paused) instant.
        async fn settle(&mut self) {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            self.client.drain();
        }

        async fn listed_status(&self) -> Option<Status> {
            self.presence.list(self.spec.mesh_id).await.into_iter().next().map(|p| p.status)
        }

        fn deliver(&self, seq: u64, priority: Priority) {
            let m = fakes::message(seq, priority, self.clock.now_ms());
            self.session.cast(SessionMsg::Deliver(m, None)).expect("session alive");
        }

        async fn set_status(&self, status: Status, source: StatusSource) {
            let reply = self.session.call(|r| SessionMsg::SetStatus(status, source, r), None).await;
            assert!(matches!(reply, Ok(ractor::rpc::CallResult::Success(_))));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn working_nobody_re_reports_turns_idle_at_the_ttl_and_releases_held_messages() {
        let mut h = Harness::start(Status::Working).await;
        h.settle().await;
        h.deliver(1, Priority::Next);
        h.deliver(2, Priority::Now);
        h.settle().await;
        assert_eq!(h.client.messages, [2], "`now` is pushed at once, `next` waits for idle");
        let mark = h.presence.pushed_marks(h.spec.mesh_id).await.remove(&h.spec.session_id).expect("a pushed mark");
        assert_eq!(mark, PushedMark { through: 2, waiting: vec![1] });
        assert_eq!(PushedMark::decode(&mark.encode()), Some(mark), "as stored in Redis");

        sleep(WORKING_TTL - SWEEP * 2).await;
        h.settle().await;
        assert_eq!(h.client.messages, [2], "held before the TTL");
        assert_eq!(h.listed_status().await, Some(Status::Working));

        sleep(SWEEP * 3).await;
        h.settle().await;
        assert_eq!(h.client.messages, [2, 1], "the sweep found working stale and released the held message");
        assert_eq!(h.listed_status().await, Some(Status::Idle));
        let marks = h.presence.pushed_marks(h.spec.mesh_id).await;
        assert_eq!(marks.get(&h.spec.session_id), Some(&PushedMark { through: 2, waiting: vec![] }), "all pushed now");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_report_keeps_working_past_the_first_ttl() {
        let mut h = Harness::start(Status::Working).await;
        h.deliver(1, Priority::Next);
        sleep(WORKING_TTL - SWEEP).await;
        h.set_status(Status::Working, StatusSource::Hook).await;
        sleep(SWEEP * 3).await;
        h.settle().await;
        assert!(h.client.messages.is_empty(), "re-reported working still holds `next`");
        assert_eq!(h.listed_status().await, Some(Status::Working));
        sleep(WORKING_TTL).await;
        h.settle().await;
        assert_eq!(h.client.messages, [1], "a TTL after the last report it is idle");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_reported_releases_held_messages_at_once() {
        let mut h = Harness::start(Status::Working).await;
        h.deliver(1, Priority::Next);
        h.deliver(2, Priority::Low);
        h.settle().await;
        assert!(h.client.messages.is_empty());
        h.set_status(Status::Idle, StatusSource::Hook).await;
        h.settle().await;
        assert_eq!(h.client.messages, [1], "`next` goes out on idle; `low` stays in the inbox");
    }

    /// The backlog gauges (and the `PlexusBacklogGrowing` alert on them) count what is overdue:
    /// pushed and not acknowledged. A held `next` and an unread `low` wait legitimately.
    /// A long inbox keeps what is saved and reported small: a saved cursor lists at most
    /// `MAX_SAVED_UNACKED` (its watermark stops below the rest, and acks above are listed
    /// one by one), a pushed mark at most `MAX_REPORTED_WAITING`.
    #[tokio::test(start_paused = true)]
    async fn a_long_inbox_is_cut_short_in_what_is_saved_and_reported() {
        let mut h = Harness::start(Status::Idle).await;
        let unread = MAX_SAVED_UNACKED as u64 + 5;
        for seq in 1..=unread {
            h.deliver(seq, Priority::Low);
        }
        h.deliver(unread + 1, Priority::Now);
        h.settle().await;
        let mark = h.presence.pushed_marks(h.spec.mesh_id).await.remove(&h.spec.session_id).expect("a mark");
        assert_eq!(mark.waiting, (1..=MAX_REPORTED_WAITING as u64).collect::<Vec<_>>());
        assert_eq!(mark.through, MAX_REPORTED_WAITING as u64, "the mark stops below the 33rd waiting");
        assert!(!mark.pushed(unread + 1), "conservative: said queued, never pushed when it was not");

        let Ok(ractor::rpc::CallResult::Success(taken)) =
            h.session.call(|r| SessionMsg::Acked(vec![unread + 1], r), None).await
        else {
            panic!("the session did not answer");
        };
        let save = taken.save;
        assert_eq!(save.unacked.len(), MAX_SAVED_UNACKED);
        assert_eq!(save.watermark, MAX_SAVED_UNACKED as u64, "below the first unlisted unread message");
        assert_eq!(save.acked_above, [unread + 1], "the ack above it is listed");
        assert!((1..=unread).all(|s| !save.acked(s)), "no unread message is saved as acknowledged");
    }

    #[tokio::test(start_paused = true)]
    async fn the_backlog_counts_only_pushes_not_acknowledged() {
        let mut h = Harness::start(Status::Working).await;
        h.deliver(1, Priority::Next);
        h.deliver(2, Priority::Low);
        sleep(SWEEP * 2).await;
        h.settle().await;
        assert_eq!(h.backlog.summary(h.clock.now_ms()).0, 0, "held and low messages are not overdue");

        h.deliver(3, Priority::Now);
        sleep(SWEEP * 2).await;
        h.settle().await;
        let (messages, oldest) = h.backlog.summary(h.clock.now_ms());
        assert_eq!(messages, 1, "the pushed, unacknowledged message is");
        assert!(oldest >= SWEEP.as_secs_f64(), "its age is counted from its commit: {oldest}");

        // 99 was never handed over (it may not exist yet): acknowledging it is ignored.
        let Ok(ractor::rpc::CallResult::Success(taken)) =
            h.session.call(|r| SessionMsg::Acked(vec![3, 99], r), None).await
        else {
            panic!("the session did not answer");
        };
        assert_eq!(taken.seqs, [3]);
        assert_eq!(taken.cursor.watermark, 0, "the held `next` keeps the reported watermark down");
        let all_but_waiting = StoredCursor { watermark: 3, unacked: vec![1, 2], acked_above: vec![] };
        assert_eq!(taken.save, all_but_waiting, "the save is everything handed over but what waits");
        sleep(SWEEP * 2).await;
        h.settle().await;
        assert_eq!(h.backlog.summary(h.clock.now_ms()).0, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_ends_starts_its_locks_grace_and_a_replaced_one_does_not() {
        let mut gone = Harness::start(Status::Idle).await;
        gone.settle().await;
        assert_eq!(*lock(&gone.locks.calls), ["started"], "a present session owns its locks");
        gone.deliver(1, Priority::Now);
        gone.settle().await;
        gone.session.cast(SessionMsg::Disconnected).expect("alive");
        gone.settle().await;
        assert_eq!(*lock(&gone.locks.calls), ["started", "ended"]);
        assert_eq!(gone.listed_status().await, None, "a gone session leaves presence");
        let saved = lock(&gone.store.cursors).clone();
        let unacknowledged = StoredCursor { watermark: 1, unacked: vec![1], acked_above: vec![] };
        assert_eq!(saved, [(gone.spec.session_id, unacknowledged)], "its cursor is saved as it ends");

        let mut replaced = Harness::start(Status::Idle).await;
        replaced.settle().await;
        replaced.session.cast(SessionMsg::Replaced).expect("alive");
        replaced.settle().await;
        assert_eq!(
            *lock(&replaced.locks.calls),
            ["started"],
            "a session replaced by a newer connection keeps its locks (the new one holds them)"
        );
        assert_eq!(replaced.client.closed, [CloseCode::SessionReplaced]);
    }
}
