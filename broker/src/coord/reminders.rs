//! Reminders: creating, listing and cancelling them, schedule arithmetic (cron in a time zone
//! via `croner` + `chrono-tz`), and the firing step the reminder actors run.
//!
//! Firing is exactly-once without a distributed transaction: the delivery goes through the
//! log writer with an id derived from (reminder, firing number), so a second attempt at the
//! same firing — a racing node, or a retry after a crash between the two steps — is dropped by
//! the log's id dedupe; then a compare-and-set on (`next_fire_at`, `fire_count`) advances the
//! reminder, and only one attempt can win it. A firing that finds the reminder already moved
//! on or cancelled sends nothing.

use std::{
    str::FromStr,
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use plexus_proto::coord::Schedule;
use uuid::Uuid;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

use plexus_proto::{
    coord as c,
    types::{Role, Target},
};

use super::{change::member_name, Caller, Coord};
use crate::{
    error::OpError,
    store::{
        self,
        log::{LogWriter, NewMessage},
        reminders::ReminderRow,
    },
};

/// A parsed repeating schedule.
pub struct Repeating {
    cron: Cron,
    tz: Tz,
}

impl Repeating {
    /// Parse `expr` in time zone `tz`, with errors a person can act on.
    pub fn parse(expr: &str, tz: &str) -> Result<Repeating, OpError> {
        let tz: Tz = tz.parse().map_err(|_| OpError::InvalidValue("tz", format!("unknown time zone {tz:?}")))?;
        let cron =
            Cron::from_str(expr).map_err(|e| OpError::InvalidValue("cron", format!("invalid cron {expr:?}: {e}")))?;
        Ok(Repeating { cron, tz })
    }

    /// The first run strictly after `t`. After downtime this is the next *future* slot, which
    /// is what makes a missed cron run fire once rather than once per missed slot.
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let local = DateTime::<Utc>::from(t).with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(SystemTime::from(next.with_timezone(&Utc)))
    }
}

/// When a new reminder first fires (and its cron and time zone, for repeating ones).
pub fn first_fire(schedule: &Schedule, now: SystemTime) -> Result<(SystemTime, Option<(String, String)>), OpError> {
    match schedule {
        Schedule::At { at_ms } => {
            let at = store::from_millis(*at_ms);
            if at <= now {
                return Err(OpError::InvalidValue("at", "that time is in the past".into()));
            }
            if at > now + Duration::from_millis(plexus_proto::coord::MAX_REMIND_AHEAD_MS) {
                return Err(OpError::InvalidValue("at", "more than 10 years ahead".into()));
            }
            Ok((at, None))
        }
        Schedule::In { after_ms } => Ok((now + Duration::from_millis(*after_ms), None)),
        Schedule::Cron { expr, tz } => {
            let repeating = Repeating::parse(expr, tz)?;
            let first = repeating
                .next_after(now)
                .ok_or_else(|| OpError::InvalidValue("cron", format!("{expr:?} never fires")))?;
            Ok((first, Some((expr.clone(), tz.clone()))))
        }
    }
}

/// What a firing attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Delivered; the reminder continues at this time (cron) or is done (None).
    Sent(Option<SystemTime>),
    /// Another node fired it first, or it was cancelled: nothing sent by us.
    Skipped,
}

/// The message id of firing number `count` of reminder `id`: the same on every node.
pub fn firing_id(id: Uuid, count: i64) -> Uuid {
    Uuid::new_v5(&id, &count.to_be_bytes())
}

/// One firing request from a reminder actor.
struct FireReq {
    row: ReminderRow,
    done: oneshot::Sender<Result<Fired, OpError>>,
}

/// The node's firing batcher. Reminder actors decide *when*; this does the firing of every
/// reminder that came due meanwhile in one pass — one read of their state, one group commit of
/// their deliveries, one compare-and-set statement — so a thousand due in the same second cost
/// a few round trips, not three thousand.
#[derive(Clone)]
pub struct Firer {
    tx: mpsc::Sender<FireReq>,
}

impl Firer {
    /// Start the batcher on the current runtime.
    pub fn start(pool: Pool, log: LogWriter, max_batch: usize) -> Firer {
        let (tx, rx) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(pool, log, rx, max_batch));
        Firer { tx }
    }

    /// Fire `row` if it is still due as the caller saw it.
    pub async fn fire(&self, row: ReminderRow) -> Result<Fired, OpError> {
        let (done, rx) = oneshot::channel();
        self.tx.send(FireReq { row, done }).await.map_err(|_| OpError::Internal("reminder firer stopped"))?;
        rx.await.unwrap_or(Err(OpError::Internal("reminder firer stopped")))
    }
}

async fn run(pool: Pool, log: LogWriter, mut rx: mpsc::Receiver<FireReq>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let reqs = std::mem::take(&mut batch);
        match deliver(&pool, &log, &reqs).await {
            // The compare-and-set runs while the next batch is delivered: a reminder's actor
            // waits for its reply before re-arming, so no reminder is in two batches at once.
            Ok(sent) => {
                tokio::spawn(advance(pool.clone(), reqs, sent));
            }
            Err(e) => {
                tracing::warn!(batch = reqs.len(), error = %e, "firing reminders failed");
                for req in reqs {
                    let _ = req.done.send(Err(OpError::Internal("firing failed")));
                }
            }
        }
    }
}

/// Deliver every request still due as its actor saw it; returns (index, was a duplicate).
async fn deliver(pool: &Pool, log: &LogWriter, batch: &[FireReq]) -> Result<Vec<(usize, bool)>, OpError> {
    let keys: Vec<(Uuid, Uuid)> = batch.iter().map(|r| (r.row.mesh_id, r.row.id)).collect();
    let current = store::reminders::firing_states(pool, &keys).await?;
    let mut commits = Vec::new();
    for (i, req) in batch.iter().enumerate() {
        let r = &req.row;
        let Some(due) = r.next_fire_at else { continue };
        // Cancelled, or already moved on (another node fired it): nothing to send.
        if current.get(&(r.mesh_id, r.id)) != Some(&(due, r.fire_count)) {
            continue;
        }
        let msg = NewMessage {
            mesh_id: r.mesh_id,
            id: firing_id(r.id, r.fire_count),
            target: r.target.clone(),
            priority: r.priority,
            reply_to: None,
            subtype: Some("reminder".to_owned()),
            sender_member: r.creator_member,
            sender_session: r.creator_session,
            sender_name: r.creator_name.clone(),
            sender_pubkey: r.creator_session_pubkey.clone(),
            sender_member_pubkey: r.creator_member_pubkey.clone(),
            sealing: r.sealing,
            nonce: r.nonce.clone(),
            ciphertext: r.ciphertext.clone(),
            key_epoch: None,
        };
        let commit = log.enqueue(msg).await.map_err(|_| OpError::Internal("log writer stopped"))?;
        commits.push((i, commit));
    }
    let mut sent = Vec::with_capacity(commits.len());
    for (i, commit) in commits {
        let s = commit.await.map_err(|_| OpError::Internal("log write failed"))?;
        sent.push((i, s.duplicate));
    }
    Ok(sent)
}

/// Compare-and-set the delivered ones and answer every actor of the batch.
async fn advance(pool: Pool, batch: Vec<FireReq>, sent: Vec<(usize, bool)>) {
    let now = SystemTime::now();
    let mut outcomes: Vec<Result<Fired, OpError>> = (0..batch.len()).map(|_| Ok(Fired::Skipped)).collect();
    let mut rows = Vec::with_capacity(sent.len());
    let mut nexts = Vec::with_capacity(sent.len());
    for &(i, _) in &sent {
        let r = &batch[i].row;
        let next = match (&r.cron, &r.tz) {
            (Some(expr), tz) => match Repeating::parse(expr, tz.as_deref().unwrap_or("UTC")) {
                Ok(rep) => rep.next_after(now),
                Err(e) => {
                    outcomes[i] = Err(e);
                    continue;
                }
            },
            (None, _) => None,
        };
        rows.push(store::reminders::Advance {
            mesh_id: r.mesh_id,
            id: r.id,
            due: r.next_fire_at.unwrap_or(now),
            count: r.fire_count,
            next,
        });
        nexts.push((i, next));
    }
    let duplicates: std::collections::HashSet<usize> = sent.iter().filter(|(_, dup)| *dup).map(|(i, _)| *i).collect();
    match store::reminders::advance_all(&pool, &rows).await {
        Ok(advanced) => {
            for (i, next) in nexts {
                let r = &batch[i].row;
                if !advanced.contains(&(r.mesh_id, r.id)) {
                    continue;
                }
                if !duplicates.contains(&i) {
                    let late = now.duration_since(r.next_fire_at.unwrap_or(now)).unwrap_or_default();
                    crate::metrics::reminder_lateness_seconds().observe(late.as_secs_f64());
                }
                outcomes[i] = Ok(Fired::Sent(next));
            }
        }
        Err(e) => {
            // Delivered but not advanced: the retry's delivery has the same id and is dropped
            // by the log, and its compare-and-set then advances it.
            tracing::warn!(error = %e, "advancing fired reminders failed");
            for &(i, _) in &sent {
                outcomes[i] = Err(OpError::Internal("advancing failed"));
            }
        }
    }
    for (req, outcome) in batch.into_iter().zip(outcomes) {
        let _ = req.done.send(outcome);
    }
}

// ---------------------------------------------------------------------------------------------
// Ops

/// `remind_create`: schedule a sealed reminder for a member or group.
pub async fn remind_create(coord: &Coord, a: &Caller, b: c::RemindCreate) -> Result<c::Reminder, OpError> {
    let now = std::time::SystemTime::now();
    let (first, repeating) = first_fire(&b.schedule, now)?;
    if let Target::Member(m) = b.target {
        member_name(coord, a.mesh_id, m).await?;
    }
    let (cron, tz) = match repeating {
        Some((expr, tz)) => (Some(expr), Some(tz)),
        None => (None, None),
    };
    let row = ReminderRow {
        mesh_id: a.mesh_id,
        id: Uuid::new_v4(),
        number: 0,
        creator_member: a.member_id,
        creator_session: a.session_id,
        creator_name: a.name.clone(),
        creator_session_pubkey: a.session_pubkey.clone(),
        creator_member_pubkey: a.member_pubkey.clone(),
        label: b.label,
        target: b.target,
        priority: b.priority,
        sealing: b.sealing,
        nonce: b.nonce,
        ciphertext: b.ciphertext,
        cron,
        tz,
        next_fire_at: Some(first),
        fire_count: 0,
        cancelled: false,
    };
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let stored = store::reminders::insert(&tx, &row).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    // Due before the next periodic claim: claim now, so short reminders are not late.
    let soon = std::time::Duration::from_millis(coord.cfg.reminder_claim_interval_ms * 2);
    if first <= now + soon {
        coord.reminders_due_soon.notify_one();
    }
    Ok(stored.info())
}

/// `remind_list`: the caller's reminders (or all, for `all`), soonest first.
pub async fn remind_list(coord: &Coord, a: &Caller, b: c::RemindList) -> Result<c::Reminders, OpError> {
    let client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let creator = (!b.all).then_some(a.member_id);
    let rows = store::reminders::list(&client, a.mesh_id, creator, b.include_done).await?;
    Ok(c::Reminders { reminders: rows.iter().map(ReminderRow::info).collect() })
}

/// `remind_cancel`: cancel a reminder (its creator or an admin).
pub async fn remind_cancel(coord: &Coord, a: &Caller, b: c::RemindCancel) -> Result<c::Reminder, OpError> {
    let mut client = coord.pool.get().await.map_err(store::StoreError::from)?;
    let tx = client.transaction().await.map_err(store::StoreError::from)?;
    let row = store::reminders::lock(&tx, a.mesh_id, b.number).await?.ok_or(OpError::NotFound("reminder"))?;
    if row.creator_member != a.member_id && a.role < Role::Admin {
        return Err(OpError::Forbidden("only its creator or an admin may cancel a reminder"));
    }
    if row.cancelled || row.next_fire_at.is_none() {
        return Err(OpError::Conflict(format!("reminder #{} is already cancelled or done", row.number)));
    }
    let cancelled = store::reminders::cancel(&tx, a.mesh_id, row.id).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(cancelled.info())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_in_a_time_zone_and_errors_that_say_why() {
        let r = Repeating::parse("0 9 * * *", "Asia/Tokyo").unwrap();
        // 2026-01-01T00:00:00Z is 09:00 in Tokyo; strictly after it, the next is a day later.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(r.next_after(t), Some(t + Duration::from_secs(86_400)));
        assert_eq!(r.next_after(t - Duration::from_secs(1)), Some(t));

        let bad_tz = Repeating::parse("0 9 * * *", "Mars/Olympus").err().unwrap().to_string();
        assert!(bad_tz.contains("unknown time zone \"Mars/Olympus\""), "{bad_tz}");
        let bad_cron = Repeating::parse("61 * * * *", "UTC").err().unwrap().to_string();
        assert!(bad_cron.contains("invalid cron"), "{bad_cron}");
        let past = first_fire(&Schedule::At { at_ms: 1 }, SystemTime::now()).err().unwrap().to_string();
        assert!(past.contains("in the past"), "{past}");
    }

    #[test]
    fn a_missed_cron_run_fires_once_then_resumes_on_schedule() {
        let r = Repeating::parse("*/5 * * * *", "UTC").unwrap();
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        // Down for an hour past a due slot: the next run is the next future slot, not the
        // twelve missed ones.
        let after_downtime = base + Duration::from_secs(3600 + 60);
        assert_eq!(r.next_after(after_downtime), Some(base + Duration::from_secs(3600 + 300)));
    }

    #[test]
    fn firing_ids_are_stable_per_firing() {
        let id = Uuid::new_v4();
        assert_eq!(firing_id(id, 3), firing_id(id, 3));
        assert_ne!(firing_id(id, 3), firing_id(id, 4));
    }
}
