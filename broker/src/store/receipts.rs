//! Per-recipient delivery state, batched: pushes and acks from every session of the node go
//! through one writer that upserts them in one statement per batch. A receipt only ever moves
//! forward (`pushed < acked < read`). The same writer saves sessions' advancing watermarks as
//! acks move them, so a read position survives its node dying.

use std::{collections::HashMap, sync::Arc};

use deadpool_postgres::Pool;
use plexus_proto::types::DeliveryState;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::StoreError;

/// Stored number of a delivery state (queued is the absence of a row).
pub fn state_to_i16(s: DeliveryState) -> i16 {
    match s {
        DeliveryState::Queued => 0,
        DeliveryState::Pushed => 1,
        DeliveryState::Acked => 2,
        DeliveryState::Read => 3,
    }
}

/// Inverse of [`state_to_i16`].
pub fn state_from_i16(n: Option<i16>) -> DeliveryState {
    match n {
        Some(1) => DeliveryState::Pushed,
        Some(2) => DeliveryState::Acked,
        Some(3) => DeliveryState::Read,
        _ => DeliveryState::Queued,
    }
}

struct ReceiptReq {
    mesh_id: Uuid,
    session_id: Uuid,
    seqs: Vec<u64>,
    state: DeliveryState,
    /// A watermark to save instead of receipts (`seqs` empty).
    watermark: Option<u64>,
    done: Option<oneshot::Sender<Result<(), Arc<StoreError>>>>,
}

/// Handle to the receipt writer.
#[derive(Clone)]
pub struct ReceiptWriter {
    tx: mpsc::Sender<ReceiptReq>,
}

impl ReceiptWriter {
    /// Start the writer task on the current runtime.
    pub fn start(pool: Pool, max_batch: usize) -> ReceiptWriter {
        let (tx, rx) = mpsc::channel(max_batch * 8);
        tokio::spawn(run(pool, rx, max_batch));
        ReceiptWriter { tx }
    }

    /// Record states without waiting (pushes).
    pub fn record(&self, mesh_id: Uuid, session_id: Uuid, seqs: Vec<u64>, state: DeliveryState) {
        let req = ReceiptReq { mesh_id, session_id, seqs, state, watermark: None, done: None };
        if self.tx.try_send(req).is_err() {
            // A lost "pushed" receipt only makes message_status say "queued" for a while; it never
            // affects delivery, so shedding it under overload is the right trade.
            crate::metrics::receipts_dropped().inc();
        }
    }

    /// Record states and wait until they are committed (acks).
    pub async fn commit(
        &self,
        mesh_id: Uuid,
        session_id: Uuid,
        seqs: Vec<u64>,
        state: DeliveryState,
    ) -> Result<(), Arc<StoreError>> {
        let (done, rx) = oneshot::channel();
        let req = ReceiptReq { mesh_id, session_id, seqs, state, watermark: None, done: Some(done) };
        if self.tx.send(req).await.is_err() {
            return Err(Arc::new(StoreError::Corrupt("receipt writer stopped")));
        }
        rx.await.unwrap_or_else(|_| Err(Arc::new(StoreError::Corrupt("receipt writer stopped"))))
    }
}

impl ReceiptWriter {
    /// Save a session's advanced watermark (never moves it back), without waiting. A lost one
    /// only makes a later session replay more, which receipts then filter.
    pub fn watermark(&self, mesh_id: Uuid, session_id: Uuid, watermark: u64) {
        let req = ReceiptReq {
            mesh_id,
            session_id,
            seqs: Vec::new(),
            state: DeliveryState::Acked,
            watermark: Some(watermark),
            done: None,
        };
        if self.tx.try_send(req).is_err() {
            crate::metrics::receipts_dropped().inc();
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<ReceiptReq>, max_batch: usize) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = write(&pool, &batch).await.map_err(Arc::new);
        crate::metrics::pg_query_seconds()
            .with_label_values(&["receipts_batch"])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(error = %e, "receipt batch failed");
        }
        for req in batch.drain(..) {
            if let Some(done) = req.done {
                let _ = done.send(result.clone());
            }
        }
    }
}

async fn write(pool: &Pool, batch: &[ReceiptReq]) -> Result<(), StoreError> {
    // One upsert cannot touch a row twice, so merge to the highest state per key first.
    let mut merged: HashMap<(Uuid, Uuid, i64), i16> = HashMap::new();
    let mut watermarks: HashMap<(Uuid, Uuid), i64> = HashMap::new();
    for req in batch {
        if let Some(w) = req.watermark {
            let e = watermarks.entry((req.mesh_id, req.session_id)).or_insert(0);
            *e = (*e).max(w.min(i64::MAX as u64) as i64);
        }
        let s = state_to_i16(req.state);
        for &seq in &req.seqs {
            let e = merged.entry((req.mesh_id, req.session_id, seq as i64)).or_insert(s);
            *e = (*e).max(s);
        }
    }
    let client = pool.get().await?;
    if !watermarks.is_empty() {
        let (mut meshes, mut sessions, mut marks) = (Vec::new(), Vec::new(), Vec::new());
        for ((m, s), w) in watermarks {
            meshes.push(m);
            sessions.push(s);
            marks.push(w);
        }
        client
            .execute(
                "UPDATE sessions s SET watermark = v.w, last_seen_at = now()
                 FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS v(m, id, w)
                 WHERE s.mesh_id = v.m AND s.id = v.id AND s.watermark < v.w",
                &[&meshes, &sessions, &marks],
            )
            .await?;
    }
    if merged.is_empty() {
        return Ok(());
    }
    let mut meshes = Vec::with_capacity(merged.len());
    let mut sessions = Vec::with_capacity(merged.len());
    let mut seqs = Vec::with_capacity(merged.len());
    let mut states = Vec::with_capacity(merged.len());
    for ((m, s, q), st) in merged {
        meshes.push(m);
        sessions.push(s);
        seqs.push(q);
        states.push(st);
    }
    client
        .execute(
            "INSERT INTO receipts (mesh_id, session_id, seq, state)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::smallint[])
             ON CONFLICT (mesh_id, session_id, seq) DO UPDATE SET state = EXCLUDED.state, at = now()
             WHERE receipts.state < EXCLUDED.state",
            &[&meshes, &sessions, &seqs, &states],
        )
        .await?;
    Ok(())
}
