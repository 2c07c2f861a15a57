//! CLI commands for watching and administering a mesh, through real processes.

use std::time::Duration;

use plexus_e2e::{wait_until, Broker, Mesh, TestDb};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_tails_messages_and_presence() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    let watch = alice.spawn_json(&["watch"]);
    // Watch is not presence: alice is not listed while only watching.
    assert!(wait_until(T, || bob.json(&["peers"])["peers"]
        .as_array()
        .map(std::vec::Vec::is_empty)
        .unwrap_or(false)
        .then_some(()))
    .await
    .is_some());
    let bob_f = bob.spawn_json(&["inbox", "--follow"]);
    assert!(
        watch.wait_line(T, |v| v["event"] == "peer" && v["change"] == "joined" && v["peer"]["name"] == "bob").await
    );
    bob.json(&["send", "*", "seen by the watcher"]);
    assert!(
        watch.wait_line(T, |v| v["event"] == "message" && v["message"]["text"] == "seen by the watcher").await,
        "{:?}",
        watch.lines()
    );
    drop(bob_f);
    assert!(watch.wait_line(T, |v| v["event"] == "peer" && v["change"] == "left").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_and_member_removal_through_the_cli() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);

    let inv = alice.json(&["invite", "create", "--uses", "2", "--expires-in", "1h"]);
    let code = inv["code"].as_str().unwrap().to_owned();
    let list = alice.json(&["invite", "list"])["invites"].clone();
    assert!(list.as_array().unwrap().iter().any(|i| i["code"] == code.as_str() && i["revoked"] == false));
    alice.json(&["invite", "revoke", &code]);
    let list = alice.json(&["invite", "list"])["invites"].clone();
    assert!(list.as_array().unwrap().iter().any(|i| i["code"] == code.as_str() && i["revoked"] == true));
    let carol = plexus_e2e::Peer::new("carol");
    let out = carol.run(&["--json", "join", &code, "--broker", &broker.url, "--name", "carol"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"), "{}", String::from_utf8_lossy(&out.stdout));

    // Bob may not administer; alice removes him and his live follower is cut off.
    let denied = bob.run(&["invite", "list"]);
    assert!(!denied.status.success());
    let mut follower = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || (alice.json(&["peers"])["peers"].as_array().map(std::vec::Vec::len) == Some(1))
        .then_some(()))
    .await
    .is_some());
    alice.json(&["member", "remove", "bob"]);
    let members: Vec<Value> = alice.json(&["members"])["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 1);
    assert!(wait_until(T, || (alice.json(&["peers"])["peers"].as_array().map(std::vec::Vec::is_empty) == Some(true))
        .then_some(()))
    .await
    .is_some());
    let gone = bob.run(&["peers"]);
    assert!(!gone.status.success(), "a removed member could still connect");
    follower.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_leaves_the_mesh_and_its_sessions_close() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    let mut follower = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || (alice.json(&["peers"])["peers"].as_array().map(std::vec::Vec::len) == Some(1))
        .then_some(()))
    .await
    .is_some());

    let unconfirmed = bob.run(&["mesh", "leave"]);
    assert!(!unconfirmed.status.success(), "leaving without --yes must not happen");
    assert_eq!(alice.json(&["members"])["members"].as_array().unwrap().len(), 2);

    let left = bob.json(&["mesh", "leave", "--yes"]);
    assert!(left["left"].is_string(), "{left}");
    let members: Vec<String> = alice.json(&["members"])["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(members, ["alice"]);
    // His follower was a live session: it is closed, and he shows as gone.
    assert!(wait_until(T, || (alice.json(&["peers"])["peers"].as_array().map(std::vec::Vec::is_empty) == Some(true))
        .then_some(()))
    .await
    .is_some());
    assert!(follower.wait_exit(T).await, "the follower outlived its membership");
    // This machine forgot the mesh.
    assert_eq!(bob.json(&["mesh", "list"])["meshes"].as_array().map(Vec::len), Some(0));

    // The owner cannot leave: a mesh always has one.
    let refused = alice.run(&["--json", "mesh", "leave", "--yes"]);
    assert!(!refused.status.success());
    let error: Value = serde_json::from_slice(&refused.stdout).expect("one JSON error document");
    assert_eq!(error["error"]["code"], "forbidden", "{error}");
    assert_eq!(alice.json(&["members"])["members"].as_array().unwrap().len(), 1);
    follower.stop();
}
