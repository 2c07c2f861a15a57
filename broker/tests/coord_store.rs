//! Component tests of coordination over real Postgres, without a broker process: the lock
//! grace of a session that ended, and which reminders a node may claim.

use std::{sync::Arc, time::Duration};

use plexus_broker::{
    cluster::{memory::MemoryFanOut, FanOut, MeshEvent, SingleNode},
    config::CoordinationConfig,
    coord::{self, Caller, Coord},
    store::{self, meshes},
};
use plexus_e2e::TestDb;
use plexus_proto::{
    coord::{LockAcquire, LockList, LockMode, RemindCreate, Schedule},
    types::{Priority, Role, Sealing, Target},
};
use uuid::Uuid;

struct World {
    _db: TestDb,
    coord: Coord,
    owner: Caller,
    events: Arc<std::sync::Mutex<Vec<String>>>,
}

fn config(lock_grace_secs: u64) -> CoordinationConfig {
    CoordinationConfig {
        lock_grace_secs,
        lock_sweep_interval_ms: 500,
        lock_wait_poll_ms: 200,
        reminder_claim_interval_ms: 1000,
        reminder_horizon_secs: 60,
        reminder_claim_batch: 100,
        max_state_keys: 10_000,
        max_memories: 10_000,
    }
}

async fn world(lock_grace_secs: u64) -> World {
    let db = TestDb::create().await;
    let pool = store::connect(&db.url, 4).expect("pool");
    store::migrate::migrate(&pool).await.expect("migrate");
    let (mesh_id, member_id) = (Uuid::new_v4(), Uuid::new_v4());
    meshes::create_mesh(&pool, mesh_id, "m", member_id, &[1; 32], "owner", None).await.expect("mesh");
    let fanout = Arc::new(MemoryFanOut::default());
    let events: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = events.clone();
    fanout.subscribe(
        mesh_id,
        Arc::new(move |e| {
            if let MeshEvent::Message(m) = e {
                seen.lock().unwrap().push(m.subtype.clone().unwrap_or_default());
            }
        }),
    );
    let coord = Coord {
        pool,
        fanout,
        lock_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        node_id: "n1".into(),
        liveness: Arc::new(SingleNode("n1".into())),
        cfg: config(lock_grace_secs),
        reminders_due_soon: Arc::default(),
    };
    let owner = Caller {
        mesh_id,
        member_id,
        session_id: Uuid::new_v4(),
        name: "owner".into(),
        role: Role::Owner,
        session_pubkey: vec![2; 32],
        member_pubkey: vec![1; 32],
    };
    World { _db: db, coord, owner, events }
}

fn acquire(pattern: &str) -> LockAcquire {
    LockAcquire { pattern: pattern.into(), mode: LockMode::Exclusive, ttl_ms: 600_000, wait_ms: 0, reason: None }
}

async fn held(w: &World) -> Vec<String> {
    coord::locks::list(&w.coord, &w.owner, LockList {})
        .await
        .expect("list")
        .locks
        .into_iter()
        .map(|l| l.pattern)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_locks_go_after_the_grace_unless_it_returns() {
    let w = world(0).await;
    let (mesh, session) = (w.owner.mesh_id, w.owner.session_id);
    coord::locks::acquire(&w.coord, &w.owner, acquire("src/a.rs"), || true).await.expect("free lock");

    // It went away and came back before any sweep: its lock is still its own.
    coord::locks::session_ended(&w.coord, mesh, session).await;
    coord::locks::session_started(&w.coord, mesh, session).await;
    coord::locks::sweep(&w.coord).await.expect("sweep");
    assert_eq!(held(&w).await, ["src/a.rs"], "a session that returned lost its lock");

    // Gone for good: with no grace left, the next sweep frees the lock and says so.
    coord::locks::session_ended(&w.coord, mesh, session).await;
    coord::locks::sweep(&w.coord).await.expect("sweep");
    assert!(held(&w).await.is_empty(), "a gone session's lock outlived its grace");
    assert!(w.events.lock().unwrap().iter().any(|s| s == "lock.expired"), "{:?}", w.events.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_grace_a_gone_sessions_locks_are_kept() {
    let w = world(3600).await;
    coord::locks::acquire(&w.coord, &w.owner, acquire("src/b.rs"), || true).await.expect("free lock");
    coord::locks::session_ended(&w.coord, w.owner.mesh_id, w.owner.session_id).await;
    coord::locks::sweep(&w.coord).await.expect("sweep");
    assert_eq!(held(&w).await, ["src/b.rs"]);
    let mut other = w.owner.clone();
    other.session_id = Uuid::new_v4();
    let refused = coord::locks::acquire(&w.coord, &other, acquire("src/b.rs"), || true).await;
    assert!(refused.is_err(), "another session took a lock still in its holder's grace");
}

fn remind_in(after: Duration) -> RemindCreate {
    RemindCreate {
        schedule: Schedule::In { after_ms: after.as_millis() as u64 },
        target: Target::All,
        priority: Priority::Now,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![1; 32],
        label: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claims_reminders_due_within_its_horizon_and_not_a_live_nodes() {
    let w = world(15).await;
    let soon = coord::reminders::remind_create(
        &w.coord,
        &w.owner,
        RemindCreate { target: Target::Member(w.owner.member_id), ..remind_in(Duration::from_secs(30)) },
    )
    .await
    .expect("reminder");
    let later = coord::reminders::remind_create(
        &w.coord,
        &w.owner,
        RemindCreate { target: Target::Member(w.owner.member_id), ..remind_in(Duration::from_secs(3600)) },
    )
    .await
    .expect("reminder");
    let pool = &w.coord.pool;
    let horizon = Duration::from_secs(60);
    let live = |nodes: &[&str]| nodes.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();

    let a = store::reminders::claim_due(pool, "a", &live(&["a", "b"]), horizon, 100).await.expect("claim");
    assert_eq!(a.iter().map(|r| r.id).collect::<Vec<_>>(), [soon.id], "only what is due within the horizon");
    let b = store::reminders::claim_due(pool, "b", &live(&["a", "b"]), horizon, 100).await.expect("claim");
    assert!(b.is_empty(), "b took a reminder owned by live node a");
    let again = store::reminders::claim_due(pool, "a", &live(&["a", "b"]), horizon, 100).await.expect("claim");
    assert!(again.is_empty(), "a steady state claims nothing");
    assert_eq!(store::reminders::own_due(pool, "a", horizon, 100).await.expect("own").len(), 1);

    // a's lease lapsed: b takes its reminders over.
    let b = store::reminders::claim_due(pool, "b", &live(&["b"]), horizon, 100).await.expect("claim");
    assert_eq!(b.iter().map(|r| r.id).collect::<Vec<_>>(), [soon.id]);
    let far =
        store::reminders::claim_due(pool, "b", &live(&["b"]), Duration::from_secs(7200), 100).await.expect("claim");
    assert_eq!(far.iter().map(|r| r.id).collect::<Vec<_>>(), [later.id]);
}
