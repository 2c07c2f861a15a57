//! The per-mesh event log: a group-committing writer and the queries that read the log back
//! (replay, inbox, message status, retention).
//!
//! Commit order equals sequence order: a batch takes its sequences by bumping
//! `meshes.head_seq` inside the writing transaction, so the mesh row stays locked until commit
//! and no later sequence can become visible before an earlier one. Duplicates are found by the
//! insert itself (`ON CONFLICT DO NOTHING RETURNING`), not by a lookup before it: the hot path
//! is two statements per mesh.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use deadpool_postgres::Pool;
use plexus_proto::{
    ops::Sent,
    push::Message,
    types::{DeliveryState, Priority, Sealing, Target},
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    cursors::StoredCursor, millis, priority_from_i16, priority_to_i16, sealing_from_i16, sealing_to_i16,
    target_from_row, target_to_row, StoreError,
};

/// Event kinds in the log.
pub const KIND_MESSAGE: i16 = 1;

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Sender-chosen id.
    pub id: Uuid,
    /// Resolved target (a reply is already rewritten to the original sender's session).
    pub target: Target,
    /// Priority.
    pub priority: Priority,
    /// Replied-to message id.
    pub reply_to: Option<Uuid>,
    /// Subtype.
    pub subtype: Option<String>,
    /// Sender member.
    pub sender_member: Uuid,
    /// Sender session.
    pub sender_session: Uuid,
    /// Sender display name.
    pub sender_name: String,
    /// Sender session x25519 key.
    pub sender_pubkey: Vec<u8>,
    /// Sender member ed25519 key.
    pub sender_member_pubkey: Vec<u8>,
    /// Sealing.
    pub sealing: Sealing,
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext.
    pub ciphertext: Vec<u8>,
    /// For a send sealed with the mesh key: the key epoch its nonce names, which must be the
    /// mesh's current one with no rotation due when it commits. `None`: not checked (reminder
    /// firings carry bodies sealed when they were set; broker-written events are plain).
    pub key_epoch: Option<u32>,
}

impl NewMessage {
    /// The message as routed once committed at `seq`.
    fn committed(&self, seq: u64, sent_at_ms: u64) -> Message {
        Message {
            seq,
            id: self.id,
            sender_member: self.sender_member,
            sender_session: self.sender_session,
            sender_name: self.sender_name.clone(),
            sender_pubkey: self.sender_pubkey.clone(),
            sender_member_pubkey: self.sender_member_pubkey.clone(),
            target: self.target.clone(),
            priority: self.priority,
            reply_to: self.reply_to,
            subtype: self.subtype.clone(),
            sealing: self.sealing,
            nonce: self.nonce.clone(),
            ciphertext: self.ciphertext.clone(),
            sent_at_ms,
        }
    }
}

/// Called once per newly committed message, in sequence order per mesh, after commit.
pub type OnCommit = Arc<dyn Fn(Uuid, Arc<Message>) + Send + Sync>;

struct WriteReq {
    msg: NewMessage,
    reply: oneshot::Sender<Result<Sent, AppendError>>,
}

/// What a writer is asked to do, in order.
// Writes are nearly every job; boxing them would allocate once per message for nothing.
#[allow(clippy::large_enum_variant)]
enum Job {
    Write(WriteReq),
    /// Answered once everything queued before it has been through a commit.
    Flush(oneshot::Sender<()>),
}

/// Handle to the log writers. Cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    shards: Arc<Vec<mpsc::Sender<Job>>>,
}

/// The writer is gone, the write failed, or the message was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The database write failed (nothing was committed for this message).
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
    /// The writer stopped.
    #[error("log writer stopped")]
    Stopped,
    /// Sealed with a mesh key that is not current (see [`NewMessage::key_epoch`]); not stored.
    #[error("stale mesh key (current epoch {}, rotation due: {})", .0.epoch, .0.rotation_due)]
    StaleKey(super::keys::KeyState),
}

impl LogWriter {
    /// Start `shards` writer tasks on the current runtime.
    pub fn start(pool: Pool, shards: usize, max_batch: usize, on_commit: OnCommit) -> LogWriter {
        let mut senders = Vec::with_capacity(shards);
        for shard in 0..shards {
            let (tx, rx) = mpsc::channel(max_batch * 4);
            senders.push(tx);
            let pool = pool.clone();
            let on_commit = on_commit.clone();
            tokio::spawn(async move { run_writer(shard, pool, rx, max_batch, on_commit).await });
        }
        LogWriter { shards: Arc::new(senders) }
    }

    /// Wait until every message queued so far has been through a commit (used on drain).
    pub async fn flush(&self) {
        for shard in self.shards.iter() {
            let (done, flushed) = oneshot::channel();
            if shard.send(Job::Flush(done)).await.is_ok() {
                // A writer that stopped has nothing left to commit.
                let _ = flushed.await;
            }
        }
    }

    /// Append a message; resolves after commit. The sender's ack waits on this.
    pub async fn append(&self, msg: NewMessage) -> Result<Sent, AppendError> {
        self.enqueue(msg).await?.await
    }

    /// Queue a message for the next group commit and return a future of its outcome. Messages
    /// enqueued one after another by one caller get increasing sequences.
    pub async fn enqueue(
        &self,
        msg: NewMessage,
    ) -> Result<impl std::future::Future<Output = Result<Sent, AppendError>>, AppendError> {
        let shard = (msg.mesh_id.as_u128() % self.shards.len() as u128) as usize;
        let (reply, rx) = oneshot::channel();
        self.shards[shard].send(Job::Write(WriteReq { msg, reply })).await.map_err(|_| AppendError::Stopped)?;
        Ok(async move {
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(AppendError::Stopped),
            }
        })
    }
}

async fn run_writer(shard: usize, pool: Pool, mut rx: mpsc::Receiver<Job>, max_batch: usize, on_commit: OnCommit) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        match first {
            Job::Write(req) => batch.push(req),
            Job::Flush(done) => flushes.push(done),
        }
        // Whatever arrived while the previous batch was committing joins this one.
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(Job::Write(req)) => batch.push(req),
                Ok(Job::Flush(done)) => flushes.push(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            continue;
        }
        let n = batch.len();
        crate::metrics::log_batch_size().observe(n as f64);
        let started = std::time::Instant::now();
        let written = write_batch(&pool, &batch).await;
        crate::metrics::pg_query_seconds().with_label_values(&["log_batch"]).observe(started.elapsed().as_secs_f64());
        match written {
            Ok(results) => {
                for (req, result) in batch.drain(..).zip(results) {
                    let reply = match result {
                        Ok((sent, committed)) => {
                            if let Some(m) = committed {
                                on_commit(req.msg.mesh_id, m);
                            }
                            Ok(sent)
                        }
                        Err(key) => Err(AppendError::StaleKey(key)),
                    };
                    let _ = req.reply.send(reply);
                }
            }
            Err(e) => {
                tracing::warn!(shard, batch = n, error = %e, "log batch failed");
                let e = Arc::new(e);
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(AppendError::Store(e.clone())));
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Stored (or a duplicate), or refused for a stale mesh key.
type BatchResult = Result<(Sent, Option<Arc<Message>>), super::keys::KeyState>;

async fn write_batch(pool: &Pool, batch: &[WriteReq]) -> Result<Vec<BatchResult>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let now = SystemTime::now();

    // Group by mesh, in mesh-id order so concurrent writers lock mesh rows in one order.
    let mut by_mesh: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        by_mesh.entry(r.msg.mesh_id).or_default().push(i);
    }
    let mut meshes: Vec<Uuid> = by_mesh.keys().copied().collect();
    meshes.sort();

    // Sequences: one per distinct id in the batch, taken under the mesh row's lock (held until
    // commit). An id that turns out to be stored already leaves a gap, which cursors tolerate.
    let bump = tx.prepare_cached("UPDATE meshes SET head_seq = head_seq + $2 WHERE id = $1 RETURNING head_seq").await?;
    let mut assigned: Vec<Option<i64>> = vec![None; batch.len()];
    let mut first_of: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    let mut fresh: Vec<(usize, i64)> = Vec::new();
    let mut stale: HashMap<usize, super::keys::KeyState> = HashMap::new();
    for mesh in &meshes {
        // Checked under the mesh row's lock, which a rotation or removal also takes: no
        // message sealed under a retired key commits after the change.
        if by_mesh[mesh].iter().any(|&i| batch[i].msg.key_epoch.is_some()) {
            let key = super::keys::state(&tx, *mesh, true)
                .await?
                .ok_or(StoreError::Corrupt("message for an unknown mesh"))?;
            for &i in &by_mesh[mesh] {
                if batch[i].msg.key_epoch.is_some_and(|e| e != key.epoch || key.rotation_due) {
                    stale.insert(i, key);
                }
            }
        }
        let firsts: Vec<usize> = by_mesh[mesh]
            .iter()
            .copied()
            .filter(|i| !stale.contains_key(i))
            .filter(|&i| match first_of.entry((*mesh, batch[i].msg.id)) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                    true
                }
                std::collections::hash_map::Entry::Occupied(_) => false,
            })
            .collect();
        let row = tx.query_opt(&bump, &[mesh, &(firsts.len() as i64)]).await?;
        let head: i64 = row.ok_or(StoreError::Corrupt("message for an unknown mesh"))?.get(0);
        let start = head - firsts.len() as i64 + 1;
        for (k, &i) in firsts.iter().enumerate() {
            assigned[i] = Some(start + k as i64);
            fresh.push((i, start + k as i64));
        }
    }

    let inserted: std::collections::HashSet<(Uuid, Uuid)> =
        if fresh.is_empty() { Default::default() } else { insert_events(&tx, batch, &fresh, now).await? };
    // Ids that were already stored: report their original sequence.
    let mut existing: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for mesh in &meshes {
        let dupes: Vec<Uuid> = fresh
            .iter()
            .map(|&(i, _)| &batch[i].msg)
            .filter(|m| m.mesh_id == *mesh && !inserted.contains(&(m.mesh_id, m.id)))
            .map(|m| m.id)
            .collect();
        if dupes.is_empty() {
            continue;
        }
        let rows = tx
            .query(
                "SELECT e.id, e.seq FROM unnest($2::uuid[]) AS d(id) JOIN events e ON e.mesh_id = $1 AND e.id = d.id",
                &[mesh, &dupes],
            )
            .await?;
        for r in rows {
            existing.insert((*mesh, r.get(0)), r.get(1));
        }
    }
    tx.commit().await?;

    let sent_at_ms = millis(now);
    let mut results = Vec::with_capacity(batch.len());
    for (i, req) in batch.iter().enumerate() {
        if let Some(key) = stale.get(&i) {
            results.push(Err(*key));
            continue;
        }
        let m = &req.msg;
        let key = (m.mesh_id, m.id);
        let first = first_of.get(&key).copied().unwrap_or(i);
        if let Some(&seq) = existing.get(&key) {
            results.push(Ok((Sent { seq: seq as u64, duplicate: true }, None)));
            continue;
        }
        let seq = assigned[first].ok_or(StoreError::Corrupt("no sequence assigned"))?;
        if first != i || !inserted.contains(&key) {
            results.push(Ok((Sent { seq: seq as u64, duplicate: true }, None)));
            continue;
        }
        let message = Arc::new(m.committed(seq as u64, sent_at_ms));
        results.push(Ok((Sent { seq: seq as u64, duplicate: false }, Some(message))));
    }
    Ok(results)
}

async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[WriteReq],
    fresh: &[(usize, i64)],
    now: SystemTime,
) -> Result<std::collections::HashSet<(Uuid, Uuid)>, StoreError> {
    let n = fresh.len();
    let mut mesh_ids = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut tkinds = Vec::with_capacity(n);
    let mut tids: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut tgroups: Vec<Option<String>> = Vec::with_capacity(n);
    let mut reply_tos: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut subtypes: Vec<Option<String>> = Vec::with_capacity(n);
    let mut smembers = Vec::with_capacity(n);
    let mut ssessions = Vec::with_capacity(n);
    let mut snames = Vec::with_capacity(n);
    let mut spubkeys: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut smpubkeys: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut sealings = Vec::with_capacity(n);
    let mut nonces: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut cts: Vec<Vec<u8>> = Vec::with_capacity(n);
    for &(i, seq) in fresh {
        let m = &batch[i].msg;
        let (tk, tid, tg) = target_to_row(&m.target);
        mesh_ids.push(m.mesh_id);
        seqs.push(seq);
        ids.push(m.id);
        priorities.push(priority_to_i16(m.priority));
        tkinds.push(tk);
        tids.push(tid);
        tgroups.push(tg);
        reply_tos.push(m.reply_to);
        subtypes.push(m.subtype.clone());
        smembers.push(m.sender_member);
        ssessions.push(m.sender_session);
        snames.push(m.sender_name.clone());
        spubkeys.push(m.sender_pubkey.clone());
        smpubkeys.push(m.sender_member_pubkey.clone());
        sealings.push(sealing_to_i16(m.sealing));
        nonces.push(m.nonce.clone());
        cts.push(m.ciphertext.clone());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (mesh_id, seq, id, kind, priority, target_kind, target_id, target_group, reply_to,
             subtype, sender_member, sender_session, sender_name, sender_pubkey, sender_member_pubkey,
             sealing, nonce, ciphertext, created_at)
         SELECT mesh_id, seq, id, $19, priority, tk, tid, tg, rt, st, sm, ss, sn, sp, smp, sl, nc, ct, $18
         FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::smallint[], $5::smallint[], $6::uuid[], $7::text[],
                     $8::uuid[], $9::text[], $10::uuid[], $11::uuid[], $12::text[], $13::bytea[], $14::bytea[],
                     $15::smallint[], $16::bytea[], $17::bytea[])
              AS t(mesh_id, seq, id, priority, tk, tid, tg, rt, st, sm, ss, sn, sp, smp, sl, nc, ct)
         ON CONFLICT (mesh_id, id) DO NOTHING
         RETURNING mesh_id, id",
        )
        .await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &mesh_ids,
                &seqs,
                &ids,
                &priorities,
                &tkinds,
                &tids,
                &tgroups,
                &reply_tos,
                &subtypes,
                &smembers,
                &ssessions,
                &snames,
                &spubkeys,
                &smpubkeys,
                &sealings,
                &nonces,
                &cts,
                &now,
                &KIND_MESSAGE,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Append one message inside the caller's transaction, so a coordination change and its event
/// commit together or not at all. Takes its sequence under the mesh row's lock like the group
/// writer does, so commit order still equals sequence order. Publish the returned message only
/// after the transaction commits.
pub async fn append_in(tx: &deadpool_postgres::Transaction<'_>, m: &NewMessage) -> Result<Arc<Message>, StoreError> {
    let bump = tx.prepare_cached("UPDATE meshes SET head_seq = head_seq + 1 WHERE id = $1 RETURNING head_seq").await?;
    let seq: i64 = tx.query_opt(&bump, &[&m.mesh_id]).await?.ok_or(StoreError::Corrupt("unknown mesh"))?.get(0);
    let (tk, tid, tg) = target_to_row(&m.target);
    let now = SystemTime::now();
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO events (mesh_id, seq, id, kind, priority, target_kind, target_id, target_group, reply_to,
             subtype, sender_member, sender_session, sender_name, sender_pubkey, sender_member_pubkey,
             sealing, nonce, ciphertext, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .await?,
        &[
            &m.mesh_id,
            &seq,
            &m.id,
            &KIND_MESSAGE,
            &priority_to_i16(m.priority),
            &tk,
            &tid,
            &tg,
            &m.reply_to,
            &m.subtype,
            &m.sender_member,
            &m.sender_session,
            &m.sender_name,
            &m.sender_pubkey,
            &m.sender_member_pubkey,
            &sealing_to_i16(m.sealing),
            &m.nonce,
            &m.ciphertext,
            &now,
        ],
    )
    .await?;
    Ok(Arc::new(m.committed(seq as u64, millis(now))))
}

const MESSAGE_COLS: &str = "e.seq, e.id, e.priority, e.target_kind, e.target_id, e.target_group, e.reply_to, e.subtype,
    e.sender_member, e.sender_session, e.sender_name, e.sender_pubkey, e.sender_member_pubkey, e.sealing, e.nonce,
    e.ciphertext, e.created_at";

fn message_from_row(r: &tokio_postgres::Row) -> Result<Message, StoreError> {
    Ok(Message {
        seq: r.get::<_, i64>("seq") as u64,
        id: r.get("id"),
        sender_member: r.get("sender_member"),
        sender_session: r.get("sender_session"),
        sender_name: r.get("sender_name"),
        sender_pubkey: r.get("sender_pubkey"),
        sender_member_pubkey: r.get("sender_member_pubkey"),
        target: target_from_row(r.get("target_kind"), r.get("target_id"), r.get("target_group"))?,
        priority: priority_from_i16(r.get("priority"))?,
        reply_to: r.get("reply_to"),
        subtype: r.get("subtype"),
        sealing: sealing_from_i16(r.get("sealing"))?,
        nonce: r.get("nonce"),
        ciphertext: r.get("ciphertext"),
        sent_at_ms: millis(r.get("created_at")),
    })
}

/// Who a session is, for addressing queries.
#[derive(Debug, Clone)]
pub struct Addressee {
    /// Mesh.
    pub mesh_id: Uuid,
    /// Session.
    pub session_id: Uuid,
    /// Member.
    pub member_id: Uuid,
    /// Visible (hidden sessions skip broadcasts).
    pub visible: bool,
    /// Head of the log when the session was first seen: at or below it, what another session
    /// of the member acknowledged is not delivered again.
    pub created_seq: u64,
    /// What the session acknowledged, as stored.
    pub cursor: StoredCursor,
}

/// SQL predicate: event `e` is addressed to the session in params $1 mesh, $2 session,
/// $3 member, $4 visible. A group message is the member's when it joined the group (or a
/// sub-group) before the message was written.
const ADDRESSED: &str = "e.mesh_id = $1 AND e.kind = 1 AND (
        (e.target_kind = 0 AND e.target_id = $2)
     OR (e.target_kind = 1 AND e.target_id = $3)
     OR (e.target_kind = 2 AND e.sender_session <> $2 AND EXISTS (
            SELECT 1 FROM member_groups g WHERE g.mesh_id = e.mesh_id AND g.member_id = $3 AND g.joined_seq < e.seq
              AND (g.name = e.target_group OR left(g.name, length(e.target_group) + 1) = e.target_group || '/')))
     OR (e.target_kind = 3 AND $4 AND e.sender_session <> $2))";

/// Messages addressed to the session with `seq > after`, not acknowledged, in order. What
/// the member's other sessions acknowledged before this session existed counts as
/// acknowledged here too (a new session does not get history a sibling already read).
pub async fn unacked_for(pool: &Pool, who: &Addressee, after: u64, limit: u32) -> Result<Vec<Message>, StoreError> {
    let client = pool.get().await?;
    // A sibling `s` acknowledged `e` if its cursor says so and `e` was addressed to it too.
    let sql = format!(
        "SELECT {MESSAGE_COLS} FROM events e WHERE {ADDRESSED} AND e.seq > $5
           AND (e.seq > $8 OR e.seq = ANY ($9::bigint[])) AND e.seq <> ALL ($10::bigint[])
           AND NOT (e.seq <= $7 AND EXISTS (
                SELECT 1 FROM sessions s WHERE s.mesh_id = e.mesh_id AND s.member_id = $3 AND s.id <> $2
                  AND ((e.seq <= s.watermark AND e.seq <> ALL (s.unacked)) OR e.seq = ANY (s.acked_above))
                  AND (e.target_kind = 1 OR (e.target_kind = 2 AND e.sender_session <> s.id)
                       OR (e.target_kind = 3 AND s.visible AND e.sender_session <> s.id))))
         ORDER BY e.seq LIMIT $6"
    );
    let seqs = |v: &[u64]| v.iter().map(|s| (*s).min(i64::MAX as u64) as i64).collect::<Vec<i64>>();
    let rows = client
        .query(
            &sql,
            &[
                &who.mesh_id,
                &who.session_id,
                &who.member_id,
                &who.visible,
                &(after.min(i64::MAX as u64) as i64),
                &(limit as i64),
                &(who.created_seq.min(i64::MAX as u64) as i64),
                &(who.cursor.watermark.min(i64::MAX as u64) as i64),
                &seqs(&who.cursor.unacked),
                &seqs(&who.cursor.acked_above),
            ],
        )
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// One message by id (for replies and status queries).
pub async fn message_by_id(pool: &Pool, mesh_id: Uuid, id: Uuid) -> Result<Option<Message>, StoreError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {MESSAGE_COLS} FROM events e WHERE e.mesh_id = $1 AND e.id = $2");
    let row = client.query_opt(&sql, &[&mesh_id, &id]).await?;
    row.as_ref().map(message_from_row).transpose()
}

/// One addressed session of a message as stored.
#[derive(Debug, Clone)]
pub struct RecipientRow {
    /// Session.
    pub session_id: Uuid,
    /// Its member.
    pub member_id: Uuid,
    /// Member's display name.
    pub display_name: String,
    /// Acknowledged (by its cursor) or read (by a receipt); `Queued` otherwise.
    pub state: DeliveryState,
    /// When the session was last seen (hello, ack, disconnect).
    pub last_seen_ms: u64,
}

/// Per-recipient rows for a message: every session it addresses that existed when it was sent.
/// A session's cursor counts the message acknowledged only if the session existed when it was
/// written (a later session starts its cursor past history it never got).
pub async fn recipients(pool: &Pool, mesh_id: Uuid, msg: &Message) -> Result<Vec<RecipientRow>, StoreError> {
    let client = pool.get().await?;
    let (tk, tid, tg) = target_to_row(&msg.target);
    let rows = client
        .query(
            "SELECT s.id, s.member_id, m.display_name, st.state, s.last_seen_at
             FROM sessions s
             JOIN members m ON m.mesh_id = s.mesh_id AND m.id = s.member_id
             LEFT JOIN receipts r ON r.mesh_id = s.mesh_id AND r.session_id = s.id AND r.seq = $2
             CROSS JOIN LATERAL (SELECT CASE
                 WHEN r.state = 3 THEN 3::smallint
                 WHEN (s.created_seq < $2 AND $2 <= s.watermark AND $2 <> ALL (s.unacked)) OR $2 = ANY (s.acked_above)
                     THEN 2::smallint
                 END AS state) st
             WHERE s.mesh_id = $1 AND (st.state IS NOT NULL OR (m.removed_at IS NULL AND s.created_at <= $8))
               AND ( ($3::smallint = 0 AND s.id = $4::uuid)
                  OR ($3::smallint = 1 AND s.member_id = $4::uuid)
                  OR ($3::smallint = 2 AND s.id <> $6 AND EXISTS (SELECT 1 FROM member_groups g
                        WHERE g.mesh_id = s.mesh_id AND g.member_id = s.member_id AND g.joined_seq < $2
                          AND (g.name = $5::text OR left(g.name, length($5::text) + 1) = $5::text || '/')))
                  OR ($3::smallint = 3 AND s.visible AND s.id <> $6))
             ORDER BY s.display_name, s.id LIMIT $7",
            &[
                &mesh_id,
                &(msg.seq as i64),
                &tk,
                &tid,
                &tg,
                &msg.sender_session,
                &10_000i64,
                &super::from_millis(msg.sent_at_ms),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RecipientRow {
            session_id: r.get(0),
            member_id: r.get(1),
            display_name: r.get(2),
            state: match r.get::<_, Option<i16>>(3) {
                Some(3) => DeliveryState::Read,
                Some(_) => DeliveryState::Acked,
                None => DeliveryState::Queued,
            },
            last_seen_ms: millis(r.get(4)),
        })
        .collect())
}

/// Delete events past retention (age, and count per mesh) and read receipts of deleted events.
pub async fn apply_retention(pool: &Pool, max_age: std::time::Duration, max_events: u64) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let cutoff = SystemTime::now() - max_age;
    let by_age = client.execute("DELETE FROM events WHERE created_at < $1", &[&cutoff]).await?;
    let by_count = client
        .execute(
            "DELETE FROM events e USING meshes m WHERE e.mesh_id = m.id AND e.seq <= m.head_seq - $1",
            &[&(max_events.min(i64::MAX as u64) as i64)],
        )
        .await?;
    client
        .execute(
            "DELETE FROM receipts r WHERE r.seq < coalesce((SELECT min(seq) FROM events e WHERE e.mesh_id = r.mesh_id), 9223372036854775807)",
            &[],
        )
        .await?;
    Ok(by_age + by_count)
}

/// Messages of a mesh with `after < seq < before` (or no upper bound), in order.
pub async fn messages_between(
    pool: &Pool,
    mesh_id: Uuid,
    after: u64,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<Message>, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {MESSAGE_COLS} FROM events e WHERE e.mesh_id = $1 AND e.kind = 1 AND e.seq > $2 AND e.seq < $3
         ORDER BY e.seq LIMIT $4"
    );
    let upper = before.map(|b| b.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX);
    let rows = client.query(&sql, &[&mesh_id, &(after as i64), &upper, &(limit as i64)]).await?;
    rows.iter().map(message_from_row).collect()
}
