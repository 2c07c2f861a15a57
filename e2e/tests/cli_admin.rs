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
