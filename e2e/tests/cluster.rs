//! Several broker processes sharing Postgres and Redis: peers spread over nodes see one mesh.

use std::time::Duration;

use plexus_e2e::{wait_until, Broker, Mesh, TestDb};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_presence_and_status_cross_nodes() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 3).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    // alice on node 0, bob on node 1, carol on node 2.
    bob.set_brokers(&[&nodes[1].url]);
    carol.set_brokers(&[&nodes[2].url]);

    let bob_f = bob.spawn_json(&["inbox", "--follow", "--groups", "eng/backend"]);
    let carol_f = carol.spawn_json(&["inbox", "--follow", "--status", "working"]);
    // Presence is one directory: every node lists both.
    for node_peer in [alice, bob, carol] {
        let listed = wait_until(T, || {
            let n = names(&node_peer.json(&["peers"]));
            (n == ["bob", "carol"]).then_some(())
        })
        .await;
        assert!(listed.is_some(), "peers differ across nodes");
    }

    for prio in ["now", "next"] {
        alice.json(&["send", "bob", &format!("dm-{prio}"), "--priority", prio]);
        alice.json(&["send", "@eng", &format!("group-{prio}"), "--priority", prio]);
        alice.json(&["send", "*", &format!("all-{prio}"), "--priority", prio]);
    }
    alice.json(&["send", "carol", "low-for-carol", "--priority", "low"]);
    for prio in ["now", "next"] {
        for t in [format!("dm-{prio}"), format!("group-{prio}"), format!("all-{prio}")] {
            assert!(bob_f.wait_text(&t, T).await, "bob (node 1) missed {t}: {:?}", bob_f.texts());
        }
    }
    // Carol is working: only `now` arrives; `next` waits until she is idle.
    assert!(carol_f.wait_text("all-now", T).await);
    assert!(!carol_f.texts().contains(&"all-next".to_owned()));
    // Her status change, made through node 0, reaches her session on node 2.
    let mut carol_on_0 = carol.profile();
    carol_on_0.brokers = vec![nodes[0].url.clone()];
    carol_on_0.save(&carol.home).unwrap();
    carol.json(&["status", "set", "idle"]);
    assert!(carol_f.wait_text("all-next", T).await, "held message not released across nodes");
    let status = wait_until(T, || {
        let peers = bob.json(&["peers"]);
        peers.as_array().unwrap().iter().any(|p| p["name"] == "carol" && p["status"] == "idle").then_some(())
    })
    .await;
    assert!(status.is_some(), "status change not visible on another node");
    assert!(carol_f.wait_line(T, |v| v.get("digest").is_some()).await, "low not announced across nodes");

    // Exactly once each.
    let mut texts = bob_f.texts();
    let n = texts.len();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), n, "bob surfaced something twice");
}
