//! Members as people meet them through the CLI: names are identities (no impersonation),
//! groups are durable membership, a status change needs a present session, and delivery
//! state names the sessions that can still read a message.

use std::time::Duration;

use plexus_e2e::{wait_until, Broker, Mesh, Peer, TestDb};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

/// Run a CLI command expected to fail; its one JSON error document.
fn refused(peer: &Peer, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = peer.run(&all);
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitee_cannot_take_a_members_name() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let alice = &mesh.peers[0];
    let code = alice.json(&["invite", "create", "--uses", "1"])["code"].as_str().unwrap().to_owned();

    let mallory = Peer::new("mallory");
    for name in ["alice", "ALICE"] {
        let error = refused(&mallory, &["join", &code, "--broker", &broker.url, "--name", name]);
        assert_eq!(error["error"]["code"], "already_exists", "{error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("taken") && message.contains("try"), "no suggestion: {message}");
    }
    assert_eq!(alice.json(&["members"])["members"].as_array().map(Vec::len), Some(2), "a refused join added someone");

    // The refusal used nothing up: the invite still admits her under a name of her own.
    mallory.json(&["join", &code, "--broker", &broker.url, "--name", "mallory", "--wait", "0"]);
    let names: Vec<String> = alice.json(&["members"])["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("alice")).count(), 1, "{names:?}");
    // Addressing alice by name still reaches the owner.
    let follower = alice.spawn_json(&["inbox", "--follow"]);
    mesh.peers[1].json(&["send", "alice", "for the real alice"]);
    assert!(follower.wait_text("for the real alice", T).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_joined_and_left_from_the_cli_and_an_empty_group_is_refused() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);

    let error = refused(alice, &["send", "@eng", "anyone?"]);
    assert!(error["error"]["message"].as_str().unwrap_or_default().contains("nobody is in @eng"), "{error}");

    let joined = bob.json(&["group", "join", "@eng", "--role", "lead"]);
    assert_eq!(joined["groups"][0]["name"], "eng");
    let groups = alice.json(&["group", "list"])["groups"].clone();
    assert_eq!(groups[0]["name"], "eng");
    assert_eq!(groups[0]["members"][0]["name"], "bob");
    assert_eq!(groups[0]["members"][0]["role"], "lead");

    // Membership is the member's: a session that says nothing of groups is still in @eng.
    let follower = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || alice.json(&["peers"])["peers"].as_array().filter(|p| !p.is_empty()).map(|_| ()))
        .await
        .is_some());
    alice.json(&["send", "@eng", "standup in 5"]);
    assert!(follower.wait_text("standup in 5", T).await);

    bob.json(&["group", "leave", "eng"]);
    let error = refused(alice, &["send", "@eng", "still there?"]);
    assert!(error["error"]["message"].as_str().unwrap_or_default().contains("nobody is in @eng"), "{error}");
    let error = refused(bob, &["group", "leave", "eng"]);
    assert_eq!(error["error"]["code"], "not_found", "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_without_a_present_session_is_refused() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let alice = &mesh.peers[0];
    let error = refused(alice, &["status", "set", "working"]);
    assert_eq!(error["error"]["code"], "not_found", "{error}");
    assert!(error["error"]["message"].as_str().unwrap_or_default().contains("present session"), "{error}");

    let follower = alice.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || alice.json(&["status", "show"])["present"].as_bool().filter(|p| *p)).await.is_some());
    assert_eq!(alice.json(&["status", "set", "working"])["status"], "working");
    drop(follower);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_state_drops_dead_sessions_and_names_the_members_next_session() {
    let db = TestDb::create().await;
    // No grace: a session that is not present and never got the message stops counting at once.
    let broker = Broker::start_with(&db, &[("PLEXUS_DELIVERY__DEAD_SESSION_GRACE_SECS", "0")]).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    let mut gone = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || alice.json(&["peers"])["peers"].as_array().filter(|p| p.len() == 1).map(|_| ()))
        .await
        .is_some());
    gone.stop();
    assert!(wait_until(T, || alice.json(&["peers"])["peers"].as_array().filter(|p| p.is_empty()).map(|_| ()))
        .await
        .is_some());

    let id = alice.json(&["send", "bob", "while you were out"])["id"].as_str().unwrap().to_owned();
    let recipients = alice.json(&["message", "status", &id])["recipients"].clone();
    assert_eq!(recipients.as_array().map(Vec::len), Some(1), "{recipients}");
    assert_eq!(recipients[0]["session_id"], Value::Null, "a dead session counted: {recipients}");
    assert_eq!(recipients[0]["name"], "bob");
    assert_eq!(recipients[0]["state"], "queued");

    // bob's next session reads it, and the state says which session did.
    let inbox = bob.json(&["inbox"]);
    assert!(inbox.to_string().contains("while you were out"), "{inbox}");
    let read = wait_until(T, || {
        let r = alice.json(&["message", "status", &id])["recipients"].clone();
        (r[0]["state"] == "read" && r[0]["session_id"].is_string()).then_some(())
    })
    .await;
    assert!(read.is_some(), "{}", alice.json(&["message", "status", &id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_with_no_key_holder_online_shows_progress_and_the_key_arrives_later() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let alice = &mesh.peers[0];
    let code = alice.json(&["invite", "create"])["code"].as_str().unwrap().to_owned();

    // Nobody holding the mesh key is online: the joiner is told what it waits for, as it waits.
    let carol = Peer::new("carol");
    let out = carol.run(&["join", &code, "--broker", &broker.url, "--name", "carol", "--wait", "6"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("waiting for a member who holds the mesh key"), "{stderr}");
    assert!(stderr.contains("still waiting for the mesh key (5s"), "no progress while waiting: {stderr}");
    assert!(stdout.contains("the mesh key arrives when a member holding it is online"), "{stdout}");

    // Later, with both online, the key arrives and the follower says so.
    let carol_follows = carol.spawn_json(&["inbox", "--follow"]);
    let _alice_follows = alice.spawn_json(&["inbox", "--follow"]);
    assert!(carol_follows.wait_line(T, |l| l["mesh_key"] == "received").await, "{:?}", carol_follows.lines());
    alice.json(&["send", "*", "now you can read this"]);
    assert!(carol_follows.wait_text("now you can read this", T).await);
}

/// README's promise: message bodies and reminder bodies are end-to-end encrypted (the broker
/// stores ciphertext); coordination data is readable by the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_holds_no_message_or_reminder_text_and_does_hold_coordination_data() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    bob.json(&["group", "join", "eng"]);
    let follower = bob.spawn_json(&["inbox", "--follow"]);
    alice.json(&["send", "bob", "direct-secret-8841", "--priority", "now"]);
    alice.json(&["send", "@eng", "group-secret-8842", "--priority", "now"]);
    alice.json(&["send", "*", "broadcast-secret-8843", "--priority", "now"]);
    alice.json(&["remind", "add", "reminder-secret-8844", "--in", "1s", "--to", "bob", "--priority", "now"]);
    alice.json(&["remind", "add", "cron-secret-8845", "--cron", "0 9 * * *", "--to", "@eng"]);
    // Delivered and readable to the people they were for.
    for text in ["direct-secret-8841", "group-secret-8842", "broadcast-secret-8843", "reminder-secret-8844"] {
        assert!(follower.wait_text(text, T).await, "{text} never reached bob");
    }
    for text in
        ["direct-secret-8841", "group-secret-8842", "broadcast-secret-8843", "reminder-secret-8844", "cron-secret-8845"]
    {
        assert_eq!(db.tables_containing(text).await, Vec::<String>::new(), "{text} is readable in the database");
    }
    // Coordination data is not sealed: the broker must read it (versions, overlaps, search).
    alice.json(&["state", "set", "release/plan", "state-visible-8846"]);
    let readable = db.tables_containing("state-visible-8846").await;
    assert!(readable.contains(&"state_entries".to_owned()), "{readable:?}");
}
