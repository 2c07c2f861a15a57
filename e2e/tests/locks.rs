//! Locks across real broker processes: mutual exclusion and increasing fencing tokens under
//! contention from two nodes, FIFO waiters, glob and mode overlap, expiry and renew, admin
//! force-release, and a killed holder's locks passing to the next waiter after the grace.

use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use plexus_client::connection::{push_as, ClientError};
use plexus_e2e::{raw_session, session_for, wait_until_async, Broker, Mesh, RawSession, TestDb};
use plexus_proto::{
    coord::{self as c, LockMode},
    push::Message,
    types::{SessionMode, SessionProfile},
    ErrorCode,
};

const T: Duration = Duration::from_secs(30);

fn acquire(pattern: &str, mode: LockMode, wait_ms: u64) -> c::LockAcquire {
    c::LockAcquire { pattern: pattern.into(), mode, ttl_ms: 60_000, wait_ms, reason: Some("test".into()) }
}

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Remote { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn release(s: &RawSession, token: u64) {
    s.conn.call(&c::LockRelease { token, force: false, reason: None }).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_from_two_nodes_never_has_two_holders_and_tokens_increase() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo"]).await;
    let mut clients = Vec::new();
    for i in 0..12 {
        clients.push(session_for(&nodes[i % 2].url, &mesh.peers[i % 2].profile(), SessionMode::Control).await);
    }
    let holders = Arc::new(AtomicI64::new(0));
    let last_token = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(AtomicU64::new(0));
    let rounds = 4;
    let work = clients.iter().enumerate().map(|(i, s)| {
        let (holders, last_token, grants) = (holders.clone(), last_token.clone(), grants.clone());
        async move {
            for _ in 0..rounds {
                // Half lock the file, half a glob covering it: every pair conflicts.
                let pattern = if i % 2 == 0 { "src/auth/login.rs" } else { "src/**/*.rs" };
                let lock = s.conn.call_waiting(&acquire(pattern, LockMode::Exclusive, 60_000), T).await.expect("grant");
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                let previous = last_token.swap(lock.token, Ordering::SeqCst);
                assert!(lock.token > previous, "token {} after {previous}", lock.token);
                grants.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                release(s, lock.token).await;
            }
        }
    });
    futures_util::future::join_all(work).await;
    assert_eq!(grants.load(Ordering::SeqCst), 12 * rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_in_order_and_shared_locks_coexist() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo", "cy"]).await;
    let mut s: Vec<RawSession> = Vec::new();
    for p in &mesh.peers {
        s.push(session_for(&node.url, &p.profile(), SessionMode::Control).await);
    }

    // Shared locks overlap freely; an exclusive one on an overlapping glob does not.
    let r1 = s[0].conn.call(&acquire("docs/**", LockMode::Shared, 0)).await.unwrap();
    let r2 = s[1].conn.call(&acquire("docs/api.md", LockMode::Shared, 0)).await.unwrap();
    let refused = s[2].conn.call(&acquire("docs/*.md", LockMode::Exclusive, 0)).await;
    match refused {
        Err(ClientError::Remote { code: ErrorCode::Conflict, message }) => {
            assert!(message.contains("holds docs/") && message.contains("shared"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Disjoint paths never conflict.
    let other = s[2].conn.call(&acquire("src/**", LockMode::Exclusive, 0)).await.unwrap();
    release(&s[0], r1.token).await;
    release(&s[1], r2.token).await;
    release(&s[2], other.token).await;

    // ana holds; bo queues, then cy queues: bo is served first, cy after bo releases.
    let held = s[0].conn.call(&acquire("a.rs", LockMode::Exclusive, 0)).await.unwrap();
    let bo = async { s[1].conn.call_waiting(&acquire("a.rs", LockMode::Exclusive, 20_000), T).await };
    let cy = async {
        let queued = wait_until_async(T, || async {
            (s[2].conn.call(&c::LockList {}).await.ok()?.waiters.len() == 1).then_some(())
        })
        .await;
        assert!(queued.is_some(), "bo never queued");
        s[2].conn.call_waiting(&acquire("a.rs", LockMode::Exclusive, 20_000), T).await
    };
    let releaser = async {
        let both = wait_until_async(T, || async {
            (s[0].conn.call(&c::LockList {}).await.ok()?.waiters.len() == 2).then_some(())
        })
        .await;
        assert!(both.is_some(), "cy never queued");
        release(&s[0], held.token).await;
    };
    let (bo, cy, ()) = tokio::join!(
        async {
            let g = bo.await.expect("bo granted");
            // Holding it, bo sees cy still queued, then lets go.
            let list = s[1].conn.call(&c::LockList {}).await.unwrap();
            assert_eq!(list.waiters.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["cy"]);
            release(&s[1], g.token).await;
            g
        },
        cy,
        releaser
    );
    let cy = cy.expect("cy granted");
    assert!(bo.token > held.token && cy.token > bo.token, "{} {} {}", held.token, bo.token, cy.token);
    assert_eq!(cy.holder_name, "cy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_renew_force_release_and_bad_patterns() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let ana = session_for(&node.url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let mut bo =
        raw_session(&node.url, &mesh.peers[1].profile(), None, SessionMode::Session, None, SessionProfile::default())
            .await
            .unwrap();
    let mut bo_pushes = bo.conn.take_pushes();

    // An expired holder's renew fails, and the path is free again.
    let short = c::LockAcquire { ttl_ms: 1000, ..acquire("tmp/x", LockMode::Exclusive, 0) };
    let lock = bo.conn.call(&short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(code(bo.conn.call(&c::LockRenew { token: lock.token, ttl_ms: 60_000 }).await), ErrorCode::Conflict);
    let again = ana.conn.call(&acquire("tmp/x", LockMode::Exclusive, 0)).await.unwrap();
    assert!(again.token > lock.token);
    release(&ana, again.token).await;

    // A live holder renews; another member may not release it; the owner force-releases and
    // the holder is told at once.
    let held = bo.conn.call(&acquire("schema.sql", LockMode::Exclusive, 0)).await.unwrap();
    let renewed = bo.conn.call(&c::LockRenew { token: held.token, ttl_ms: 120_000 }).await.unwrap();
    assert!(renewed.expires_at_ms > held.expires_at_ms);
    let not_yours = ana.conn.call(&c::LockRelease { token: held.token, force: false, reason: None }).await;
    assert_eq!(code(not_yours), ErrorCode::Forbidden);
    ana.conn
        .call(&c::LockRelease { token: held.token, force: true, reason: Some("release is blocked".into()) })
        .await
        .unwrap();
    let told = tokio::time::timeout(T, async {
        while let Some(p) = bo_pushes.recv().await {
            if let Some(m) = push_as::<Message>(&p) {
                if m.subtype.as_deref() == Some("lock.force_released") {
                    return Some(m);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("holder told of the force-release");
    let event: c::CoordEvent = serde_json::from_slice(&told.ciphertext).unwrap();
    assert!(
        event.summary.contains("force-released your lock on schema.sql")
            && event.summary.contains("release is blocked")
    );
    assert_eq!(told.priority, plexus_proto::types::Priority::Now);
    // A member (not admin) cannot force.
    let mine = ana.conn.call(&acquire("ana-only", LockMode::Exclusive, 0)).await.unwrap();
    let forced = bo.conn.call(&c::LockRelease { token: mine.token, force: true, reason: None }).await;
    assert_eq!(code(forced), ErrorCode::Forbidden);

    for bad in ["../etc/passwd", "a//b", "src/[ab].rs", "src/{a,b}", "a/***", "x**/y", "", &"p".repeat(600)] {
        let r = ana.conn.call(&acquire(bad, LockMode::Exclusive, 0)).await;
        assert_eq!(code(r), ErrorCode::InvalidField, "pattern {bad:?}");
    }
    let r = ana.conn.call(&c::LockAcquire { ttl_ms: 10, ..acquire("ok", LockMode::Exclusive, 0) }).await;
    assert_eq!(code(r), ErrorCode::InvalidField);
    let listed = ana.conn.call(&c::LockList {}).await.unwrap();
    assert_eq!(listed.locks.iter().map(|l| l.pattern.as_str()).collect::<Vec<_>>(), ["ana-only"]);
    drop(bo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_lock_passes_to_the_waiter_after_the_grace() {
    let db = TestDb::create().await;
    let env = [("PLEXUS_REDIS__NODE_TTL_SECS", "2"), ("PLEXUS_COORDINATION__LOCK_GRACE_SECS", "2")];
    let mut nodes = Broker::cluster_with(&db, 2, &env).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo"]).await;
    // bo's present session on node 1 holds the lock; ana waits on node 0.
    let bo = raw_session(
        &nodes[1].url,
        &mesh.peers[1].profile(),
        None,
        SessionMode::Session,
        None,
        SessionProfile::default(),
    )
    .await
    .unwrap();
    let held = bo.conn.call(&acquire("deploy/prod", LockMode::Exclusive, 0)).await.unwrap();
    let ana = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let wait_req = acquire("deploy/prod", LockMode::Exclusive, 60_000);
    let waiting = ana.conn.call_waiting(&wait_req, Duration::from_secs(60));
    let url0 = nodes[0].url.clone();
    let killer = async {
        let queued = wait_until_async(T, || async {
            let list = session_for(&url0, &mesh.peers[0].profile(), SessionMode::Control).await;
            (list.conn.call(&c::LockList {}).await.ok()?.waiters.len() == 1).then_some(())
        })
        .await;
        assert!(queued.is_some());
        nodes[1].kill9();
        std::time::Instant::now()
    };
    let (granted, killed_at) = tokio::join!(waiting, killer);
    let granted = granted.expect("ana got the lock after the holder's node died");
    assert!(granted.token > held.token);
    assert_eq!(granted.holder_name, "ana");
    // Not before the node's liveness lapsed and the grace ran (2 s + 2 s, minus scheduling).
    assert!(killed_at.elapsed() >= Duration::from_secs(2), "granted after {:?}", killed_at.elapsed());
    drop(bo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_on_one_node_wakes_the_waiter_on_another_without_polling() {
    // The backstop poll is ten minutes: only the wake through Redis can hand the lock over
    // within the test's wait.
    let db = TestDb::create().await;
    let nodes = Broker::cluster_with(&db, 2, &[("PLEXUS_COORDINATION__LOCK_WAIT_POLL_MS", "600000")]).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo"]).await;
    let ana = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let bo = session_for(&nodes[1].url, &mesh.peers[1].profile(), SessionMode::Control).await;
    for round in 0..3 {
        let held = ana.conn.call(&acquire("shared.rs", LockMode::Exclusive, 0)).await.expect("ana takes it");
        let request = acquire("shared.rs", LockMode::Exclusive, 120_000);
        let waiting = bo.conn.call_waiting(&request, T);
        let release_when_queued = async {
            let queued = wait_until_async(T, || async {
                (ana.conn.call(&c::LockList {}).await.ok()?.waiters.len() == 1).then_some(())
            })
            .await;
            assert!(queued.is_some(), "bo never queued (round {round})");
            release(&ana, held.token).await;
        };
        let (granted, ()) = tokio::join!(waiting, release_when_queued);
        let granted = granted.unwrap_or_else(|e| panic!("bo was not woken in round {round}: {e}"));
        assert!(granted.token > held.token);
        release(&bo, granted.token).await;
    }
}
