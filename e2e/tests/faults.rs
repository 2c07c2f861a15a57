//! Correctness under faults (issue 10): lock waiters whose node or request is gone never hold
//! a path, a session never holds two grants of one lock, a give-up names the current blocker;
//! cursors never skip unread messages, a cursor from the future cannot silence a member, new
//! sessions do not receive what a sibling already acknowledged, also after its node died.

use std::time::Duration;

use plexus_client::{
    connection::{push_as, ClientError},
    seal::SealTo,
};
use plexus_e2e::{raw_session, session_for, wait_until_async, Broker, Mesh, RawSession, TestDb};
use plexus_proto::{
    coord::{self as c, LockMode},
    ops,
    push::{Message, PeerEvent},
    types::{Cursor, Priority, SessionMode, SessionProfile, Target},
    ErrorCode,
};
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

fn acquire(pattern: &str, wait_ms: u64) -> c::LockAcquire {
    c::LockAcquire { pattern: pattern.into(), mode: LockMode::Exclusive, ttl_ms: 60_000, wait_ms, reason: None }
}

async fn waiters(s: &RawSession) -> usize {
    s.conn.call(&c::LockList {}).await.map(|l| l.waiters.len()).unwrap_or(usize::MAX)
}

async fn wait_for_waiters(s: &RawSession, n: usize) {
    let ok = wait_until_async(T, || async { (waiters(s).await == n).then_some(()) }).await;
    assert!(ok.is_some(), "the queue never had {n} waiter(s)");
}

fn refusal(r: Result<impl std::fmt::Debug, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Remote { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_waiter_leaves_the_queue_and_is_granted_nothing() {
    let db = TestDb::create().await;
    let mut nodes = Broker::cluster_with(&db, 2, &[("PLEXUS_REDIS__NODE_TTL_SECS", "2")]).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob", "carol"]).await;
    let alice = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let bob = session_for(&nodes[1].url, &mesh.peers[1].profile(), SessionMode::Control).await;
    let carol = session_for(&nodes[0].url, &mesh.peers[2].profile(), SessionMode::Control).await;

    let held = alice.conn.call(&acquire("src/x.rs", 0)).await.unwrap();
    let bob_waits = tokio::spawn(async move { bob.conn.call_waiting(&acquire("src/x.rs", 120_000), T).await });
    wait_for_waiters(&alice, 1).await;
    nodes[1].kill9();
    alice.conn.call(&c::LockRelease { token: held.token, force: false, reason: None }).await.unwrap();

    // Carol gets the path once the dead node's waiter is gone — not bob, for a lock's TTL.
    let got = carol.conn.call_waiting(&acquire("src/x.rs", 20_000), T).await.expect("carol gets the lock");
    assert_eq!(got.holder_name, "carol");
    assert!(bob_waits.await.unwrap().is_err(), "bob's request died with its node");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM lock_waiters").await, 0, "a waiter row stayed behind");
    let to_bob = db.scalar_i64("SELECT count(*) FROM events WHERE subtype = 'lock.acquired' AND sender_name = 'bob'");
    assert_eq!(to_bob.await, 0, "a grant went to a request that was gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_fails_on_the_database_leaves_no_waiter_behind() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob", "carol"]).await;
    let alice = session_for(&node.url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let bob = session_for(&node.url, &mesh.peers[1].profile(), SessionMode::Control).await;
    let carol = session_for(&node.url, &mesh.peers[2].profile(), SessionMode::Control).await;

    let held = alice.conn.call(&acquire("db/schema.sql", 0)).await.unwrap();
    let bob_waits = tokio::spawn(async move { bob.conn.call_waiting(&acquire("db/schema.sql", 120_000), T).await });
    wait_for_waiters(&alice, 1).await;
    // The waiter's next look at the queue fails: the table is away for a moment.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("ALTER TABLE lock_waiters RENAME TO lock_waiters_away").await.unwrap();
    let failed = tokio::time::timeout(T, bob_waits).await.expect("the wait ended").unwrap();
    assert!(failed.is_err(), "the wait should fail while the database does");
    client.batch_execute("ALTER TABLE lock_waiters_away RENAME TO lock_waiters").await.unwrap();

    let gone =
        wait_until_async(T, || async { (db.scalar_i64("SELECT count(*) FROM lock_waiters").await == 0).then_some(()) })
            .await;
    assert!(gone.is_some(), "the failed waiter's row stayed in the queue");
    alice.conn.call(&c::LockRelease { token: held.token, force: false, reason: None }).await.unwrap();
    let got = carol.conn.call(&acquire("db/schema.sql", 0)).await.expect("nobody queued ahead of carol");
    assert_eq!(got.holder_name, "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_acquire_replaces_the_dead_one_and_tokens_never_go_back() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob"]).await;
    let alice = session_for(&node.url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let bob_profile = mesh.peers[1].profile();
    let (sid, key) = (Uuid::new_v4(), plexus_crypto::BoxKeypair::generate().unwrap());
    let open = |url: String, p: plexus_client::profile::Profile, key: plexus_crypto::BoxKeypair| async move {
        raw_session(&url, &p, Some((sid, key)), SessionMode::Control, None, SessionProfile::default()).await.unwrap()
    };
    // Two connections of one bob session: the first request is the one whose client gave up
    // on it (its connection is still open on the broker's side), the second its retry.
    let first = open(node.url.clone(), bob_profile.clone(), key.clone()).await;
    let retry = open(node.url.clone(), bob_profile.clone(), key.clone()).await;

    let held = alice.conn.call(&acquire("src/x.rs", 0)).await.unwrap();
    let dead = tokio::spawn(async move { first.conn.call_waiting(&acquire("src/x.rs", 60_000), T).await });
    wait_for_waiters(&alice, 1).await;
    let retried = tokio::spawn(async move {
        let lock = retry.conn.call_waiting(&acquire("src/x.rs", 60_000), T).await;
        (retry, lock)
    });
    let (code, _) = refusal(tokio::time::timeout(T, dead).await.expect("the first request ended").unwrap());
    assert_eq!(code, ErrorCode::Conflict, "the retry replaces the earlier request");
    wait_for_waiters(&alice, 1).await;
    alice.conn.call(&c::LockRelease { token: held.token, force: false, reason: None }).await.unwrap();
    let (retry, lock) = retried.await.unwrap();
    let lock = lock.expect("the retry gets the lock");

    let list = alice.conn.call(&c::LockList {}).await.unwrap();
    assert_eq!(list.locks.len(), 1, "one session holds one grant of one lock: {:?}", list.locks);
    // Asking again renews the same grant: never an older token.
    let again = retry.conn.call(&acquire("src/x.rs", 0)).await.unwrap();
    assert_eq!(again.token, lock.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_names_the_current_blocker() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob", "carol"]).await;
    let s: Vec<RawSession> = {
        let mut v = Vec::new();
        for p in &mesh.peers {
            v.push(session_for(&node.url, &p.profile(), SessionMode::Control).await);
        }
        v
    };
    // alice's lock expires after a second; carol, queued first, takes it over; bob gives up.
    alice_short(&s[0]).await;
    let carol_wants = acquire("plan.md", 20_000);
    let (carol, bob) = tokio::join!(s[2].conn.call_waiting(&carol_wants, T), async {
        wait_for_waiters(&s[0], 1).await;
        s[1].conn.call_waiting(&acquire("plan.md", 4_000), T).await
    });
    assert_eq!(carol.expect("carol took over").holder_name, "carol");
    let (code, message) = refusal(bob);
    assert_eq!(code, ErrorCode::Conflict);
    assert!(message.contains("carol holds plan.md") && !message.contains("alice"), "{message}");
}

async fn alice_short(alice: &RawSession) {
    alice.conn.call(&c::LockAcquire { ttl_ms: 1_000, ..acquire("plan.md", 0) }).await.unwrap();
}

/// §4: a follower surfaced thousands of messages while a `low` one waited unread; the unread
/// one is still in the inbox afterwards and was never reported read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_low_message_survives_a_long_follow() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    let a = std::sync::Arc::new(session_for(&node.url, &alice, SessionMode::Control).await);
    let low = Uuid::new_v4();
    a.send_at(low, Target::Member(bob.member_id), SealTo::Member(&bob_pk), b"the low one", None, Priority::Low)
        .await
        .unwrap();
    let n = 4200;
    let bob_id = bob.member_id;
    let mut follower = mesh.peers[1].spawn_json(&["inbox", "--follow", "--count", &n.to_string()]);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (a, bob_pk) = (a.clone(), bob_pk.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(8) {
                let text = format!("m{i}");
                a.send_at(
                    Uuid::new_v4(),
                    Target::Member(bob_id),
                    SealTo::Member(&bob_pk),
                    text.as_bytes(),
                    None,
                    Priority::Now,
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(follower.wait_exit(Duration::from_secs(180)).await, "the follower did not surface {n} messages");
    assert!(!follower.texts().iter().any(|t| t == "the low one"), "low is never pushed");
    let status = mesh.peers[0].json(&["message", "status", &low.to_string()]);
    assert!(!status.to_string().contains("\"read\""), "reported read before anyone read it: {status}");
    let inbox = mesh.peers[1].json(&["inbox"]);
    let texts: Vec<&str> = inbox["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["the low one"], "{inbox}");
}

/// §5: a hello claiming a cursor above the mesh head cannot silence the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_the_future_cannot_silence_a_member() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let future = Cursor { watermark: 1_000_000, acked: (1_000_001..1_000_100).collect() };
    let mut b = raw_session(&node.url, &bob, None, SessionMode::Session, Some(future), SessionProfile::default())
        .await
        .unwrap();
    assert!(b.welcome.cursor.watermark <= b.welcome.head_seq, "the cursor was not clamped: {:?}", b.welcome.cursor);
    let a = session_for(&node.url, &alice, SessionMode::Control).await;
    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    a.send_sealed(Uuid::new_v4(), Target::Member(bob.member_id), SealTo::Member(&bob_pk), b"hi bob", None)
        .await
        .unwrap();
    let pushed = tokio::time::timeout(T, async {
        loop {
            let p = b.conn.next_push().await?;
            if let Some(m) = push_as::<Message>(&p) {
                return Some(m);
            }
        }
    })
    .await
    .ok()
    .flatten();
    assert!(pushed.is_some(), "the session was silenced by its own cursor");
    // A new session of the member starts from a sane place too.
    let fresh = session_for(&node.url, &bob, SessionMode::Control).await;
    assert!(fresh.welcome.cursor.watermark <= fresh.welcome.head_seq);
}

async fn inbox_len(s: &RawSession) -> usize {
    s.conn.call(&ops::Inbox { limit: 100 }).await.unwrap().messages.len()
}

/// §6: a new session does not get what its member already read, even when the reading
/// session's node died before saving its position, or the sibling is still online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sessions_do_not_get_what_a_sibling_already_acknowledged() {
    let db = TestDb::create().await;
    let mut node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    let mut b1 = session_for(&node.url, &bob, SessionMode::Session).await;
    let a = session_for(&node.url, &alice, SessionMode::Control).await;
    for i in 0..20 {
        let text = format!("m{i}");
        a.send_sealed(Uuid::new_v4(), Target::Member(bob.member_id), SealTo::Member(&bob_pk), text.as_bytes(), None)
            .await
            .unwrap();
    }
    let mut acked = 0;
    while acked < 20 {
        let p = tokio::time::timeout(T, b1.conn.next_push()).await.expect("pushes").expect("open");
        if let Some(m) = push_as::<Message>(&p) {
            b1.conn.call(&ops::Ack { seqs: vec![m.seq], read: false }).await.unwrap();
            acked += 1;
        }
    }
    // With the sibling still online, a new session starts clean.
    let b2 = session_for(&node.url, &bob, SessionMode::Session).await;
    assert_eq!(inbox_len(&b2).await, 0, "a new session got what its sibling had read");
    // And after the node dies without saving anyone's position.
    node.kill9();
    drop((b1, b2));
    node.start_again().await;
    let b3 = session_for(&node.url, &bob, SessionMode::Session).await;
    assert_eq!(inbox_len(&b3).await, 0, "after a kill -9 a new session re-received read history");
}

/// §8: a hidden session's presence reaches only its own member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_sessions_are_not_announced_to_others() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (mesh.peers[0].profile(), mesh.peers[1].profile(), mesh.peers[2].profile());
    let mut a = session_for(&node.url, &alice, SessionMode::Session).await;
    let hidden = SessionProfile {
        visible: false,
        summary: Some("secret work".into()),
        cwd: Some("/home/bob/secret".into()),
        ..SessionProfile::default()
    };
    let b = raw_session(&node.url, &bob, None, SessionMode::Session, None, hidden).await.unwrap();
    b.conn.call(&ops::SetProfile { summary: Some("still secret".into()), ..Default::default() }).await.unwrap();
    b.conn.close().await;
    // carol's visible join comes after all of bob's events; alice sees it and nothing of bob.
    let c = session_for(&node.url, &carol, SessionMode::Session).await;
    let mut seen = Vec::new();
    let got_carol = tokio::time::timeout(T, async {
        while let Some(p) = a.conn.next_push().await {
            if let Some(ev) = push_as::<PeerEvent>(&p) {
                let who = ev.peer.session_id;
                seen.push(ev);
                if who == c.session_id {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(got_carol, "carol's join never arrived");
    assert!(seen.iter().all(|ev| ev.peer.session_id != b.session_id), "a hidden session was announced: {seen:?}");
}

/// §9: a member holding the mesh key cannot hand a joiner a forged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_mesh_key_is_refused_and_the_real_one_arrives() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["owner", "mallory"]).await;
    let code = mesh.peers[0].json(&["invite", "create"])["code"].as_str().unwrap().to_owned();
    // Only mallory is online when carol claims: mallory answers the key request with a forgery.
    let mallory = mesh.peers[1].profile();
    let mut m = session_for(&node.url, &mallory, SessionMode::Session).await;
    let carol = plexus_e2e::Peer::new("carol");
    let mut joining = carol.spawn_json(&["join", &code, "--broker", &node.url, "--name", "carol", "--wait", "60"]);
    let request = tokio::time::timeout(T, async {
        loop {
            let p = m.conn.next_push().await?;
            if let Some(r) = push_as::<plexus_proto::push::KeyRequest>(&p) {
                return Some(r);
            }
        }
    })
    .await
    .ok()
    .flatten()
    .expect("mallory saw carol's key request");
    let forged = plexus_crypto::seal_anonymous(&request.claim_pubkey, &plexus_crypto::generate_mesh_key()).unwrap();
    m.conn
        .call(&ops::KeyGrant { member_id: request.member_id, sealed_mesh_key: forged.clone(), epoch_keys: vec![] })
        .await
        .unwrap();
    // Carol refuses it; mallory may not try again; the owner's real key then arrives.
    let barred = wait_until_async(T, || async {
        let r = m
            .conn
            .call(&ops::KeyGrant { member_id: request.member_id, sealed_mesh_key: forged.clone(), epoch_keys: vec![] })
            .await;
        matches!(r, Err(ClientError::Remote { code: ErrorCode::Forbidden, .. })).then_some(())
    })
    .await;
    assert!(barred.is_some(), "the forgery was not refused");
    let owner_follows = mesh.peers[0].spawn_json(&["inbox", "--follow"]);
    assert!(joining.wait_exit(Duration::from_secs(60)).await, "carol's join did not finish");
    drop(owner_follows);
    let real = mesh.peers[0].profile().mesh_key.unwrap();
    assert_eq!(carol.profile().mesh_key, Some(real), "carol holds a key that is not the mesh's");
}
