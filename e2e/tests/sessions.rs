//! Session identity, replies, per-recipient states and presence events.

use std::time::Duration;

use plexus_client::{
    connection::push_as,
    seal::{open, SealTo},
};
use plexus_e2e::{raw_session, session_for, Broker, Mesh, RawSession, TestDb};
use plexus_proto::{
    ops,
    push::{Message, PeerChange, PeerEvent},
    types::{DeliveryState, SessionMode, SessionProfile, Target},
};
use uuid::Uuid;

async fn next_message(s: &mut RawSession) -> Option<Message> {
    loop {
        let push = tokio::time::timeout(Duration::from_secs(10), s.conn.next_push()).await.ok()??;
        if let Some(m) = push_as::<Message>(&push) {
            return Some(m);
        }
    }
}

async fn no_message(s: &mut RawSession) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(700), s.conn.next_push()).await {
            Err(_) | Ok(None) => return true,
            Ok(Some(p)) if p.push == "message" => return false,
            Ok(Some(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_reaches_exactly_the_sending_session() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    // Two windows of alice, one of bob.
    let mut a1 = session_for(&broker.url, &alice, SessionMode::Session).await;
    let mut a2 = session_for(&broker.url, &alice, SessionMode::Session).await;
    let mut b = session_for(&broker.url, &bob, SessionMode::Session).await;

    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    let q = Uuid::new_v4();
    a1.send_sealed(q, Target::Member(bob.member_id), SealTo::Member(&bob_pk), b"question", None).await.unwrap();
    let got = next_message(&mut b).await.expect("bob got the question");
    assert_eq!(open(&got, &b.key, &bob.member_key().unwrap(), None).unwrap(), b"question");
    assert_eq!(got.sender_session, a1.session_id);

    // Whatever target the client names, a reply goes to the original sender's session.
    let to = SealTo::Session(&got.sender_pubkey);
    b.send_sealed(Uuid::new_v4(), Target::Member(alice.member_id), to, b"answer", Some(q)).await.unwrap();
    let reply = next_message(&mut a1).await.expect("a1 got the reply");
    assert_eq!(open(&reply, &a1.key, &alice.member_key().unwrap(), None).unwrap(), b"answer");
    assert!(no_message(&mut a2).await, "the sibling session saw the reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_recipient_states_move_queued_pushed_acked_read() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (mesh.peers[0].profile(), mesh.peers[1].profile(), mesh.peers[2].profile());
    let a = session_for(&broker.url, &alice, SessionMode::Control).await;
    let mut b = session_for(&broker.url, &bob, SessionMode::Session).await;
    let c = session_for(&broker.url, &carol, SessionMode::Session).await;
    c.conn.close().await;
    let carol_gone = plexus_e2e::wait_until_async(Duration::from_secs(10), || async {
        let peers = a.conn.call(&ops::Peers {}).await.ok()?;
        peers.peers.iter().all(|p| p.session_id != c.session_id).then_some(())
    })
    .await;
    assert!(carol_gone.is_some(), "carol's session did not leave");

    let id = Uuid::new_v4();
    a.send_sealed(id, Target::All, SealTo::Mesh(&alice.keyring().unwrap()), b"to all", None).await.unwrap();
    let m = next_message(&mut b).await.unwrap();

    let state_of =
        |st: &ops::MessageState, sid: Uuid| st.recipients.iter().find(|r| r.session_id == sid).map(|r| r.state);
    let st = plexus_e2e::wait_until_async(Duration::from_secs(10), || async {
        let st = a.conn.call(&ops::MessageStatus { id }).await.ok()?;
        (state_of(&st, b.session_id) == Some(DeliveryState::Pushed)).then_some(st)
    })
    .await
    .expect("bob's state became pushed");
    assert_eq!(state_of(&st, c.session_id), Some(DeliveryState::Queued), "offline carol is queued: {st:?}");

    b.conn.call(&ops::Ack { seqs: vec![m.seq], read: false }).await.unwrap();
    let st = a.conn.call(&ops::MessageStatus { id }).await.unwrap();
    assert_eq!(state_of(&st, b.session_id), Some(DeliveryState::Acked));
    b.conn.call(&ops::Ack { seqs: vec![m.seq], read: true }).await.unwrap();
    let st = a.conn.call(&ops::MessageStatus { id }).await.unwrap();
    assert_eq!(state_of(&st, b.session_id), Some(DeliveryState::Read));
    // States never move backwards.
    b.conn.call(&ops::Ack { seqs: vec![m.seq], read: false }).await.unwrap();
    let st = a.conn.call(&ops::MessageStatus { id }).await.unwrap();
    assert_eq!(state_of(&st, b.session_id), Some(DeliveryState::Read));
    // Bob (not the sender) cannot inspect it.
    assert!(b.conn.call(&ops::MessageStatus { id }).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_leaves_and_status_are_events_and_peers_lists_them() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let mut a = session_for(&broker.url, &alice, SessionMode::Session).await;
    let sp = SessionProfile {
        summary: Some("reviewing".into()),
        groups: vec![plexus_proto::types::GroupRole { name: "eng".into(), role: Some("lead".into()) }],
        ..SessionProfile::default()
    };
    let b = raw_session(&broker.url, &bob, None, SessionMode::Session, None, sp).await.unwrap();

    let mut changes = Vec::new();
    let want = |changes: &Vec<(PeerChange, String)>| changes.len() >= 3;
    b.conn
        .call(&ops::SetStatus {
            status: plexus_proto::types::Status::Working,
            source: plexus_proto::types::StatusSource::Hook,
        })
        .await
        .unwrap();
    let peers = a.conn.call(&ops::Peers {}).await.unwrap();
    let bob_peer = peers.peers.iter().find(|p| p.session_id == b.session_id).expect("bob listed");
    assert_eq!(bob_peer.status, plexus_proto::types::Status::Working);
    assert_eq!(bob_peer.profile.summary.as_deref(), Some("reviewing"));
    assert_eq!(bob_peer.profile.groups[0].role.as_deref(), Some("lead"));
    b.conn.close().await;
    while !want(&changes) {
        let push = tokio::time::timeout(Duration::from_secs(10), a.conn.next_push())
            .await
            .expect("peer events")
            .expect("open");
        if let Some(ev) = push_as::<PeerEvent>(&push) {
            if ev.peer.session_id == b.session_id {
                changes.push((ev.change, ev.peer.status.as_str().to_owned()));
            }
        }
    }
    assert_eq!(changes[0].0, PeerChange::Joined);
    assert_eq!(changes[1], (PeerChange::Updated, "working".to_owned()));
    assert_eq!(changes[2].0, PeerChange::Left);
    let peers = a.conn.call(&ops::Peers {}).await.unwrap();
    assert!(peers.peers.iter().all(|p| p.session_id != b.session_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_reconnects_unchanged_causes_no_presence_flap() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let mut a = session_for(&broker.url, &alice, SessionMode::Session).await;
    let key = plexus_crypto::BoxKeypair::generate().unwrap();
    let sid = uuid::Uuid::new_v4();
    let first =
        raw_session(&broker.url, &bob, Some((sid, key.clone())), SessionMode::Session, None, SessionProfile::default())
            .await
            .unwrap();
    // The same session connects again (as after a network blip) and takes over.
    let second =
        raw_session(&broker.url, &bob, Some((sid, key)), SessionMode::Session, None, SessionProfile::default())
            .await
            .unwrap();
    let closed = plexus_e2e::wait_until(Duration::from_secs(10), || first.conn.closed()).await;
    assert_eq!(closed, Some(Some(plexus_proto::CloseCode::SessionReplaced)));
    let mut changes = Vec::new();
    while let Ok(Some(push)) = tokio::time::timeout(Duration::from_millis(800), a.conn.next_push()).await {
        if let Some(ev) = push_as::<PeerEvent>(&push) {
            if ev.peer.session_id == sid {
                changes.push(ev.change);
            }
        }
    }
    assert_eq!(changes, vec![PeerChange::Joined], "a reconnect must not show as leave/join or update");
    let peers = a.conn.call(&ops::Peers {}).await.unwrap();
    assert_eq!(peers.peers.iter().filter(|p| p.session_id == sid).count(), 1, "no ghost duplicate");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_gets_what_reached_its_member_offline_but_not_a_siblings_history() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    // Nobody of bob's is online when alice writes.
    let a = session_for(&broker.url, &alice, SessionMode::Control).await;
    a.send_sealed(Uuid::new_v4(), Target::Member(bob.member_id), SealTo::Member(&bob_pk), b"while-away", None)
        .await
        .unwrap();
    // Bob's agent starts a fresh session (new id, no cursor): the message is there.
    let mut agent = session_for(&broker.url, &bob, SessionMode::Session).await;
    let got = next_message(&mut agent).await.expect("the new session got what arrived while bob was away");
    assert_eq!(open(&got, &agent.key, &bob.member_key().unwrap(), None).unwrap(), b"while-away");
    agent.conn.call(&ops::Ack { seqs: vec![got.seq], read: true }).await.unwrap();
    agent.conn.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second agent window later does not inherit what the first already read.
    let mut second = session_for(&broker.url, &bob, SessionMode::Session).await;
    assert!(no_message(&mut second).await, "a sibling's history was replayed to a new session");
}

/// Delivery state is a cursor per session, not a row per delivery: acknowledgements out of
/// order (a `low` message left unread in the inbox, a pushed one not acknowledged) survive the
/// node being killed, and nothing acknowledged is surfaced again; an acknowledgement from a
/// control connection while the session is away holds too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_acknowledgements_are_a_cursor_that_survives_a_kill() {
    let db = TestDb::create().await;
    let mut broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let bob_pk = bob.member_key().unwrap().public_key().to_vec();
    let bob_session = (Uuid::new_v4(), plexus_crypto::BoxKeypair::generate().unwrap());
    let url = broker.url.clone();
    let connect_bob = |mode| {
        let (url, bob, s) = (url.clone(), bob.clone(), bob_session.clone());
        async move { raw_session(&url, &bob, Some(s), mode, None, SessionProfile::default()).await.unwrap() }
    };
    let mut b = connect_bob(SessionMode::Session).await;
    let a = session_for(&broker.url, &alice, SessionMode::Control).await;
    let to_bob = |text: &'static str, priority| {
        let a = &a;
        let pk = bob_pk.clone();
        let bob_id = bob.member_id;
        async move {
            let id = Uuid::new_v4();
            let sent = a
                .send_at(id, Target::Member(bob_id), SealTo::Member(&pk), text.as_bytes(), None, priority)
                .await
                .unwrap();
            (id, sent.seq)
        }
    };
    let (low, low_seq) = to_bob("unread low", plexus_proto::types::Priority::Low).await;
    let (first, first_seq) = to_bob("first", plexus_proto::types::Priority::Now).await;
    let (second, second_seq) = to_bob("second", plexus_proto::types::Priority::Now).await;
    let (third, third_seq) = to_bob("third", plexus_proto::types::Priority::Now).await;
    let mut pushed = Vec::new();
    while pushed.len() < 3 {
        pushed.push(next_message(&mut b).await.expect("pushed").seq);
    }
    assert_eq!(pushed, [first_seq, second_seq, third_seq], "`low` waits in the inbox");
    let acked = b.conn.call(&ops::Ack { seqs: vec![first_seq, third_seq], read: false }).await.unwrap();
    assert_eq!(acked.cursor.watermark, low_seq - 1, "the unread `low` holds the reported watermark");

    assert_eq!(db.scalar_i64("SELECT count(*) FROM receipts").await, 0, "an acknowledgement wrote a row of its own");
    let cursor = db
        .scalar_i64(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{}' AND watermark = {third_seq}
               AND unacked = ARRAY[{low_seq}, {second_seq}]::bigint[]",
            bob_session.0
        ))
        .await;
    assert_eq!(cursor, 1, "bob's row holds the cursor: all to {third_seq} but {low_seq} and {second_seq}");

    broker.kill9();
    broker.start_again().await;
    let mut b = connect_bob(SessionMode::Session).await;
    assert_eq!(b.welcome.cursor.watermark, low_seq - 1);
    assert_eq!(next_message(&mut b).await.map(|m| m.seq), Some(second_seq), "the unacknowledged push again");
    assert!(no_message(&mut b).await, "an acknowledged message was pushed again");
    let inbox = b.conn.call(&ops::Inbox { limit: 10 }).await.unwrap();
    let waiting: Vec<u64> = inbox.messages.iter().map(|m| m.seq).collect();
    assert_eq!(waiting, [low_seq, second_seq]);

    // Message status is derived from the cursor (and "pushed" from the live session).
    let a = session_for(&broker.url, &alice, SessionMode::Control).await;
    let state = |id| {
        let a = &a;
        async move {
            let st = a.conn.call(&ops::MessageStatus { id }).await.unwrap();
            st.recipients.iter().find(|r| r.session_id == bob_session.0).map(|r| r.state)
        }
    };
    assert_eq!(state(first).await, Some(DeliveryState::Acked));
    assert_eq!(state(third).await, Some(DeliveryState::Acked));
    assert_eq!(state(low).await, Some(DeliveryState::Queued), "a `low` in the inbox was not pushed");
    let second_pushed = plexus_e2e::wait_until_async(Duration::from_secs(10), || async {
        (state(second).await == Some(DeliveryState::Pushed)).then_some(())
    })
    .await;
    assert!(
        second_pushed.is_some(),
        "the pushed message never showed as pushed: {:?}",
        a.conn.call(&ops::MessageStatus { id: second }).await
    );

    // Bob's session goes away; a control connection of it reads `low` and acknowledges the
    // rest. The next connection is handed nothing.
    b.conn.close().await;
    let control = connect_bob(SessionMode::Control).await;
    control.conn.call(&ops::Ack { seqs: vec![low_seq], read: true }).await.unwrap();
    control.conn.call(&ops::Ack { seqs: vec![second_seq], read: false }).await.unwrap();
    assert_eq!(state(low).await, Some(DeliveryState::Read));
    assert_eq!(state(second).await, Some(DeliveryState::Acked), "acknowledged while the session was away");
    let mut b = connect_bob(SessionMode::Session).await;
    assert!(no_message(&mut b).await, "an acknowledged message was pushed again");
    assert!(b.conn.call(&ops::Inbox { limit: 10 }).await.unwrap().messages.is_empty());
    assert_eq!(b.welcome.cursor.watermark, third_seq);
    assert_eq!(db.scalar_i64("SELECT count(*) FROM receipts").await, 1, "only the read receipt is a row");
}
