//! Sessions' durable delivery state: one cursor per session in its own row, and "read"
//! receipts. Acknowledgements from every session of the node go through one writer that merges
//! them per session and writes each session's row once per batch, so the cost of delivery state
//! grows with the sessions acknowledging, not with the messages they acknowledge.
//!
//! A cursor is a set of acknowledged sequences in a form that stays small: everything addressed
//! to the session at or below `watermark` except `unacked`, plus `acked_above`. Since
//! acknowledgements only grow, cursors merge by union ([`StoredCursor::merge`]; the same
//! function is `cursor_merge` in SQL), so writers on different nodes need no ordering.

use std::{collections::HashMap, sync::Arc};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::StoreError;

/// A session's acknowledged sequences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCursor {
    /// Every message addressed to the session at or below this is acknowledged, except
    /// `unacked`.
    pub watermark: u64,
    /// At or below `watermark`, not acknowledged (ascending).
    pub unacked: Vec<u64>,
    /// Above `watermark`, acknowledged (ascending).
    pub acked_above: Vec<u64>,
}

impl StoredCursor {
    /// A claim that exactly these sequences are acknowledged.
    pub fn acks(seqs: &[u64]) -> StoredCursor {
        StoredCursor { watermark: 0, unacked: Vec::new(), acked_above: sorted(seqs.to_vec()) }
    }

    /// Whether the cursor counts `seq` as acknowledged (if it was addressed to the session).
    pub fn acked(&self, seq: u64) -> bool {
        (seq <= self.watermark && self.unacked.binary_search(&seq).is_err())
            || self.acked_above.binary_search(&seq).is_ok()
    }

    /// The highest sequence with nothing unacknowledged at or below it (what a client may
    /// treat as done).
    pub fn contiguous(&self) -> u64 {
        self.unacked.first().map(|s| s - 1).unwrap_or(self.watermark)
    }

    /// The union of two cursors' acknowledged sets.
    pub fn merge(&self, other: &StoredCursor) -> StoredCursor {
        let watermark = self.watermark.max(other.watermark);
        let unacked = sorted(
            self.unacked
                .iter()
                .chain(&other.unacked)
                .copied()
                .filter(|&q| q <= watermark && !self.acked(q) && !other.acked(q))
                .collect(),
        );
        let acked_above =
            sorted(self.acked_above.iter().chain(&other.acked_above).copied().filter(|&q| q > watermark).collect());
        StoredCursor { watermark, unacked, acked_above }
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// A cursor as read back from a row (`watermark`, `unacked`, `acked_above` columns).
pub fn from_row(watermark: i64, unacked: Vec<i64>, acked_above: Vec<i64>) -> StoredCursor {
    let seqs = |v: Vec<i64>| sorted(v.into_iter().filter_map(|s| u64::try_from(s).ok()).collect());
    StoredCursor { watermark: watermark.max(0) as u64, unacked: seqs(unacked), acked_above: seqs(acked_above) }
}

/// A sequence array as a Postgres array literal (rows of one batch carry arrays of different
/// lengths, which `unnest` of a two-dimensional array cannot).
fn array_literal(seqs: &[u64]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + seqs.len() * 8);
    out.push('{');
    for (i, s) in seqs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", (*s).min(i64::MAX as u64));
    }
    out.push('}');
    out
}

enum Job {
    Merge(Uuid, Uuid, StoredCursor),
    Read(Uuid, Uuid, Vec<u64>),
}

struct Req {
    job: Job,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// Handle to the cursor writer.
#[derive(Clone)]
pub struct CursorWriter {
    tx: mpsc::Sender<Req>,
}

impl CursorWriter {
    /// Start the writer task on the current runtime.
    pub fn start(pool: Pool, max_batch: usize) -> CursorWriter {
        let (tx, rx) = mpsc::channel(max_batch * 8);
        tokio::spawn(run(pool, rx, max_batch));
        CursorWriter { tx }
    }

    /// Merge `cursor` into the session's stored one; resolves once committed.
    pub async fn save(&self, mesh_id: Uuid, session_id: Uuid, cursor: StoredCursor) -> Result<(), Arc<StoreError>> {
        self.submit(Job::Merge(mesh_id, session_id, cursor)).await
    }

    /// Record that the session's reader read these sequences; resolves once committed.
    pub async fn read(&self, mesh_id: Uuid, session_id: Uuid, seqs: Vec<u64>) -> Result<(), Arc<StoreError>> {
        self.submit(Job::Read(mesh_id, session_id, seqs)).await
    }

    async fn submit(&self, job: Job) -> Result<(), Arc<StoreError>> {
        let stopped = || Arc::new(StoreError::Corrupt("cursor writer stopped"));
        let (done, rx) = oneshot::channel();
        self.tx.send(Req { job, done }).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<Req>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    // Whatever queued while the previous batch committed joins the next one.
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let (jobs, dones): (Vec<Job>, Vec<_>) = batch.drain(..).map(|r| (r.job, r.done)).unzip();
        let started = std::time::Instant::now();
        let result = write(&pool, jobs).await.map_err(Arc::new);
        crate::metrics::pg_query_seconds()
            .with_label_values(&["cursors_batch"])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "cursor batch failed");
        }
        for done in dones {
            let _ = done.send(result.clone());
        }
    }
}

async fn write(pool: &Pool, jobs: Vec<Job>) -> Result<(), StoreError> {
    // One UPDATE cannot touch a row twice, so merge per session first.
    let mut cursors: HashMap<(Uuid, Uuid), StoredCursor> = HashMap::new();
    let mut reads: HashMap<(Uuid, Uuid, i64), ()> = HashMap::new();
    for job in jobs {
        match job {
            Job::Merge(m, s, c) => match cursors.entry((m, s)) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(c);
                }
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    let merged = slot.get().merge(&c);
                    slot.insert(merged);
                }
            },
            Job::Read(m, s, seqs) => {
                for q in seqs {
                    reads.insert((m, s, q.min(i64::MAX as u64) as i64), ());
                }
            }
        }
    }
    let client = pool.get().await?;
    if !cursors.is_empty() {
        let n = cursors.len();
        let (mut meshes, mut sessions, mut marks, mut unacked, mut above) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for ((m, s), c) in cursors {
            meshes.push(m);
            sessions.push(s);
            marks.push(c.watermark.min(i64::MAX as u64) as i64);
            unacked.push(array_literal(&c.unacked));
            above.push(array_literal(&c.acked_above));
        }
        let stmt = client
            .prepare_cached(
                "UPDATE sessions s SET (watermark, unacked, acked_above) =
                    (SELECT * FROM cursor_merge(s.watermark, s.unacked, s.acked_above, v.w, v.u::bigint[], v.a::bigint[])),
                    last_seen_at = now()
                 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[]) AS v(m, id, w, u, a)
                 WHERE s.mesh_id = v.m AND s.id = v.id",
            )
            .await?;
        client.execute(&stmt, &[&meshes, &sessions, &marks, &unacked, &above]).await?;
    }
    if !reads.is_empty() {
        let (mut meshes, mut sessions, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
        for (m, s, q) in reads.into_keys() {
            meshes.push(m);
            sessions.push(s);
            seqs.push(q);
        }
        client
            .execute(
                "INSERT INTO receipts (mesh_id, session_id, seq, state)
                 SELECT m, s, q, 3 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS v(m, s, q)
                 ON CONFLICT (mesh_id, session_id, seq) DO NOTHING",
                &[&meshes, &sessions, &seqs],
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(watermark: u64, unacked: &[u64], acked_above: &[u64]) -> StoredCursor {
        StoredCursor { watermark, unacked: unacked.to_vec(), acked_above: acked_above.to_vec() }
    }

    /// Every sequence up to `n` that `cursor` counts as acknowledged.
    fn set(cursor: &StoredCursor, n: u64) -> Vec<u64> {
        (1..=n).filter(|&q| cursor.acked(q)).collect()
    }

    #[test]
    fn merging_is_the_union_of_acknowledged_sets() {
        let cases = [
            (c(10, &[5], &[]), c(12, &[5, 11], &[])),
            (c(10, &[5], &[]), c(12, &[11], &[])),
            (c(5, &[2], &[8, 9]), c(7, &[2, 6], &[12])),
            (c(0, &[], &[3, 4]), c(3, &[1, 2], &[])),
            (c(20, &[1, 2, 3], &[]), c(0, &[], &[2, 25])),
            (StoredCursor::default(), c(4, &[4], &[6])),
        ];
        for (a, b) in cases {
            let merged = a.merge(&b);
            let union: Vec<u64> = (1..=30).filter(|&q| a.acked(q) || b.acked(q)).collect();
            assert_eq!(set(&merged, 30), union, "{a:?} ∪ {b:?} = {merged:?}");
            assert_eq!(merged, b.merge(&a), "commutative");
            assert_eq!(merged.merge(&a), merged, "idempotent");
            assert!(merged.unacked.iter().all(|&q| q <= merged.watermark));
            assert!(merged.acked_above.iter().all(|&q| q > merged.watermark));
        }
    }

    #[test]
    fn an_older_snapshot_never_takes_back_an_acknowledgement() {
        let before = c(10, &[5, 7], &[]);
        let after = c(10, &[7], &[]);
        assert!(after.merge(&before).acked(5), "5 was acknowledged in the later snapshot");
        assert!(!after.merge(&before).acked(7));
    }

    #[test]
    fn contiguous_stops_below_the_first_unacknowledged() {
        assert_eq!(c(10, &[4, 7], &[]).contiguous(), 3);
        assert_eq!(c(10, &[], &[12]).contiguous(), 10);
    }

    #[test]
    fn array_literals_are_what_postgres_reads() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(array_literal(&[1, 22, 333]), "{1,22,333}");
    }
}
