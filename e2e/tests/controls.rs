//! Per-peer controls across two nodes: a blocked member's messages never reach the blocker
//! (live, replayed or in the inbox) and the sender sees nothing different; a muted member's
//! messages wait in the inbox instead of being pushed; event subscriptions keep unwanted
//! coordination events from being pushed. Absence is checked by a later marker that does
//! arrive.

use std::time::Duration;

use plexus_e2e::{Broker, Follower, Mesh, Peer, TestDb};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);

fn texts(f: &Follower) -> Vec<String> {
    f.lines().iter().map(Value::to_string).collect()
}

async fn saw(f: &Follower, needle: &str) -> bool {
    f.wait_line(T, |l| l.to_string().contains(needle)).await
}

fn inbox(p: &Peer) -> String {
    p.json(&["inbox"]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_mutes_and_subscriptions_hold_across_nodes() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo", "cy"]).await;
    let (ana, bo, cy) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    ana.set_brokers(&[&nodes[1].url]);
    bo.set_brokers(&[&nodes[0].url]);
    ana.json(&["group", "join", "eng"]);
    let mut follow = ana.spawn_json(&["inbox", "--follow"]);

    // Block: direct and group messages from bo stop; cy's still arrive; bo is not told.
    let shown = ana.json(&["block", "bo"]);
    assert_eq!(shown["blocked"][0], "bo");
    let sent = bo.json(&["send", "ana", "from bo, blocked", "--priority", "now"]);
    bo.json(&["send", "@eng", "to eng from bo, blocked", "--priority", "now"]);
    cy.json(&["send", "ana", "marker one from cy", "--priority", "now"]);
    assert!(saw(&follow, "marker one from cy").await);
    assert!(
        !texts(&follow).iter().any(|t| t.contains("blocked")),
        "a blocked member reached ana: {:?}",
        texts(&follow)
    );
    assert!(!inbox(ana).contains("blocked"), "blocked messages in ana's inbox");
    let status = bo.json(&["message", "status", sent["id"].as_str().unwrap()]).to_string();
    assert!(!status.contains("block"), "bo was told: {status}");

    // It also holds for what was sent while ana was away (replay).
    follow.stop();
    bo.json(&["send", "ana", "while away, blocked", "--priority", "now"]);
    cy.json(&["send", "ana", "marker two from cy", "--priority", "now"]);
    let mut follow = ana.spawn_json(&["inbox", "--follow"]);
    assert!(saw(&follow, "marker two from cy").await);
    assert!(!texts(&follow).iter().any(|t| t.contains("blocked")));

    // Unblocked: bo reaches ana again.
    ana.json(&["block", "bo", "--off"]);
    bo.json(&["send", "ana", "bo is back", "--priority", "now"]);
    assert!(saw(&follow, "bo is back").await);

    // Mute: cy's messages are not pushed but wait in the inbox.
    ana.json(&["mute", "cy"]);
    cy.json(&["send", "ana", "quiet please", "--priority", "now"]);
    bo.json(&["send", "ana", "marker three from bo", "--priority", "now"]);
    assert!(saw(&follow, "marker three from bo").await);
    assert!(!texts(&follow).iter().any(|t| t.contains("quiet please")), "a muted member was pushed");
    follow.stop();
    assert!(inbox(ana).contains("quiet please"), "a muted message is not in the inbox");
    ana.json(&["mute", "cy", "--off"]);

    // Subscriptions: only task events are pushed.
    let mut follow = ana.spawn_json(&["inbox", "--follow"]);
    let subscribed = ana.json(&["subscribe", "task"]);
    assert_eq!(subscribed["kinds"][0], "task");
    bo.json(&["state", "set", "deploy/freeze", "on"]);
    bo.json(&["task", "create", "write the release notes"]);
    assert!(saw(&follow, "write the release notes").await);
    assert!(!texts(&follow).iter().any(|t| t.contains("deploy/freeze")), "an unsubscribed event was pushed");
    follow.stop();
    assert!(inbox(ana).contains("deploy/freeze"), "the unsubscribed event is not in the inbox");
    let all = ana.json(&["subscribe", "--all"]);
    assert!(all["kinds"].is_null());

    // Refusals.
    assert!(!ana.run(&["block", "ana"]).status.success(), "blocked oneself");
    assert!(!ana.run(&["subscribe", "Task!"]).status.success());
}
