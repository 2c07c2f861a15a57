//! Component test against real Postgres: concurrent log writers (as two nodes would run)
//! never let a reader that follows `seq > cursor` skip a message, and ids stay idempotent.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use plexus_broker::store::{
    self,
    log::{LogWriter, NewMessage},
    meshes,
};
use plexus_e2e::TestDb;
use plexus_proto::types::{Priority, Sealing, Target};
use uuid::Uuid;

fn msg(mesh_id: Uuid, member: Uuid, id: Uuid) -> NewMessage {
    NewMessage {
        mesh_id,
        id,
        target: Target::All,
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sender_member: member,
        sender_session: Uuid::new_v4(),
        sender_name: "w".into(),
        sender_pubkey: vec![0; 32],
        sender_member_pubkey: vec![0; 32],
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![1; 32],
        key_epoch: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_let_a_cursor_skip() {
    let db = TestDb::create().await;
    let pool_a = store::connect(&db.url, 8).unwrap();
    let pool_b = store::connect(&db.url, 8).unwrap();
    store::migrate::migrate(&pool_a).await.unwrap();
    let (mesh_id, member) = (Uuid::new_v4(), Uuid::new_v4());
    meshes::create_mesh(&pool_a, mesh_id, "m", member, &[1; 32], "w", None).await.unwrap();

    let noop: store::log::OnCommit = Arc::new(|_, _| {});
    let writers =
        [LogWriter::start(pool_a.clone(), 2, 64, noop.clone()), LogWriter::start(pool_b.clone(), 2, 64, noop)];
    const PER_TASK: usize = 300;
    let mut tasks = Vec::new();
    for t in 0..6 {
        let w = writers[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..PER_TASK {
                seqs.push(w.append(msg(mesh_id, member, Uuid::new_v4())).await.unwrap().seq);
            }
            seqs
        }));
    }

    // A tailing reader: if a later sequence ever became visible before an earlier one, the
    // cursor would move past the earlier one and never see it.
    let reader_pool = pool_a.clone();
    let reader = tokio::spawn(async move {
        let client = reader_pool.get().await.unwrap();
        let mut cursor = 0i64;
        let mut seen = BTreeSet::new();
        let total = (6 * PER_TASK) as i64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while cursor < total && tokio::time::Instant::now() < deadline {
            let rows = client
                .query("SELECT seq FROM events WHERE mesh_id = $1 AND seq > $2 ORDER BY seq", &[&mesh_id, &cursor])
                .await
                .unwrap();
            for r in rows {
                let s: i64 = r.get(0);
                seen.insert(s);
                cursor = cursor.max(s);
            }
        }
        seen
    });

    let mut acked = BTreeSet::new();
    for t in tasks {
        for s in t.await.unwrap() {
            assert!(acked.insert(s), "sequence {s} handed out twice");
        }
    }
    let seen = reader.await.unwrap();
    let expected: BTreeSet<i64> = (1..=(6 * PER_TASK) as i64).collect();
    assert_eq!(acked.iter().map(|s| *s as i64).collect::<BTreeSet<_>>(), expected, "sequences are not gapless");
    assert_eq!(seen, expected, "the tailing reader skipped {} sequences", expected.difference(&seen).count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_from_two_writers_is_stored_once() {
    let db = TestDb::create().await;
    let pool = store::connect(&db.url, 8).unwrap();
    store::migrate::migrate(&pool).await.unwrap();
    let (mesh_id, member) = (Uuid::new_v4(), Uuid::new_v4());
    meshes::create_mesh(&pool, mesh_id, "m", member, &[1; 32], "w", None).await.unwrap();
    let noop: store::log::OnCommit = Arc::new(|_, _| {});
    let w1 = LogWriter::start(pool.clone(), 1, 64, noop.clone());
    let w2 = LogWriter::start(store::connect(&db.url, 4).unwrap(), 1, 64, noop);
    let id = Uuid::new_v4();
    let (a, b, c) = tokio::join!(
        w1.append(msg(mesh_id, member, id)),
        w2.append(msg(mesh_id, member, id)),
        w1.append(msg(mesh_id, member, id))
    );
    let results = [a, b, c];
    let ok: Vec<_> = results.iter().map(|r| r.as_ref().expect("no writer may fail on a duplicate")).collect();
    assert_eq!(ok.iter().filter(|s| !s.duplicate).count(), 1, "exactly one original: {ok:?}");
    assert!(ok.windows(2).all(|w| w[0].seq == w[1].seq), "one id, one sequence: {ok:?}");
    assert_eq!(db.scalar_i64(&format!("SELECT count(*) FROM events WHERE id = '{id}'")).await, 1);
}
