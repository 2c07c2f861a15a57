//! The audit chain in Postgres without a broker process: retention deletes old entries behind
//! a checkpoint from which the remaining chain still verifies, and appends continue it.

use plexus_broker::store::{self, audit};
use plexus_e2e::TestDb;
use plexus_proto::audit::{entry_bytes, AuditList};
use uuid::Uuid;

async fn add(pool: &deadpool_postgres::Pool, mesh: Uuid, n: usize) {
    for i in 0..n {
        let mut client = pool.get().await.expect("client");
        let tx = client.transaction().await.expect("tx");
        let actor = audit::Actor { member: Some(Uuid::nil()), name: "ana" };
        audit::append(&tx, mesh, actor, "invite.created", &format!("INV{i}…"), serde_json::json!({ "i": i }))
            .await
            .expect("append");
        tx.commit().await.expect("commit");
    }
}

/// Recompute the chain from the checkpoint the way `plexus audit verify` does.
async fn verifies(pool: &deadpool_postgres::Pool, mesh: Uuid) -> (u64, usize) {
    let page =
        audit::list(pool, mesh, &AuditList { after: 0, limit: 1000, since_ms: None, actor: None }).await.expect("list");
    let (mut seq, mut prev) = (page.checkpoint_seq, page.checkpoint_hash.clone());
    for e in &page.entries {
        assert_eq!(e.seq, seq + 1, "a gap after the checkpoint");
        assert_eq!(plexus_crypto::hash32(&entry_bytes(mesh, &prev, e)).to_vec(), e.hash, "entry {}", e.seq);
        (seq, prev) = (e.seq, e.hash.clone());
    }
    assert_eq!(seq, page.head_seq);
    (page.checkpoint_seq, page.entries.len())
}

#[tokio::test]
async fn retention_keeps_the_chain_verifiable_behind_a_checkpoint() {
    let db = TestDb::create().await;
    let pool = store::connect(&db.url, 4).expect("pool");
    store::migrate::migrate(&pool).await.expect("migrate");
    let (mesh, other) = (Uuid::new_v4(), Uuid::new_v4());
    add(&pool, mesh, 5).await;
    add(&pool, other, 2).await;
    assert_eq!(verifies(&pool, mesh).await, (0, 5));

    // Everything so far is old enough to go.
    audit::prune_before(&pool, plexus_broker::clock::now_ms() + 1).await.expect("retention");
    assert_eq!(verifies(&pool, mesh).await, (5, 0));
    assert_eq!(verifies(&pool, other).await, (2, 0));

    add(&pool, mesh, 3).await;
    assert_eq!(verifies(&pool, mesh).await, (5, 3), "new entries continue from the checkpoint");
}
