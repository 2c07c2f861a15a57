//! Graceful drain: a rolling restart of a three-node cluster under load, each node SIGTERMed
//! in turn. Every node exits cleanly by itself; no acknowledged message is lost or doubled;
//! the follower and the sender resume on the other nodes every time.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use plexus_e2e::{http_get, send_through_failures, wait_until, Broker, Mesh, SendProgress, TestDb};

const N: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_and_doubles_nothing() {
    let db = TestDb::create().await;
    let env = [
        ("PLEXUS_NODE__DRAIN_READY_DELAY_MS", "200"),
        ("PLEXUS_NODE__DRAIN_RETRY_JITTER_MS", "500"),
        ("PLEXUS_REDIS__NODE_TTL_SECS", "3"),
    ];
    let mut nodes = Broker::cluster_with(&db, 3, &env).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let mesh = Mesh::create(&nodes[0], &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    bob.set_brokers(&urls.iter().map(String::as_str).collect::<Vec<_>>());
    let receiver = bob.spawn_json(&["inbox", "--follow"]);

    let progress = Arc::new(SendProgress::default());
    let sender = tokio::spawn(send_through_failures(
        urls.clone(),
        alice.profile(),
        bob.profile(),
        N,
        "r-",
        Duration::from_millis(15),
        progress.clone(),
    ));
    let (acked, moved) = (&progress.acked, &progress.retries);

    // Each node in turn: SIGTERM while traffic flows, wait for a clean exit, start it again.
    for (k, node) in nodes.iter_mut().enumerate() {
        let target = (acked.load(Ordering::SeqCst) + 20).min(N);
        let progressed = wait_until(Duration::from_secs(60), || (acked.load(Ordering::SeqCst) >= target).then_some(()));
        assert!(progressed.await.is_some());
        let clean = node.terminate(Duration::from_secs(25)).await;
        assert!(clean, "node {k} did not drain and exit by itself:\n{}", node.log_text());
        assert!(node.log_text().contains("drained"), "node {k} log has no drain");
        node.start_again().await;
    }
    tokio::time::timeout(Duration::from_secs(120), sender).await.expect("sender finished").unwrap();
    // The sender sat on one of the drained nodes at least once.
    assert!(moved.load(Ordering::SeqCst) > 0, "no send was ever interrupted; the test proved nothing");

    let all = wait_until(Duration::from_secs(60), || (receiver.texts().len() >= N).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in receiver.texts() {
        *counts.entry(t).or_default() += 1;
    }
    let missing: Vec<usize> = (0..N).filter(|i| !counts.contains_key(&format!("r-{i}"))).collect();
    let doubled: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        all.is_some() && missing.is_empty(),
        "missing {} messages, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(doubled.is_empty(), "surfaced twice: {doubled:?}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM events").await, N as i64, "a resend was stored twice");
    // The follower is present again after the last restart.
    let present = wait_until(Duration::from_secs(30), || {
        let peers = alice.json(&["peers"])["peers"].clone();
        peers.as_array()?.iter().any(|p| p["name"] == "bob").then_some(())
    })
    .await;
    assert!(present.is_some(), "bob's session did not resume");
    for n in &nodes {
        assert_eq!(http_get(n.port, "/ready").map(|r| r.0), Some(200));
    }
}
