//! Durability: `kill -9` of the broker while a peer is sending. Every message the sender saw
//! acknowledged is delivered exactly once; none is surfaced twice.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use plexus_e2e::{send_through_failures, wait_until, Broker, Mesh, SendProgress, TestDb};

const N: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_sending_1000_loses_and_doubles_nothing() {
    let db = TestDb::create().await;
    let mut broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let url = broker.url.clone();
    let receiver = mesh.peers[1].spawn_json(&["inbox", "--follow"]);
    let (retries, receiver) = send_through_a_kill(&db, &mesh, receiver, url, || {
        let b = &mut broker;
        async move {
            b.kill9();
            tokio::time::sleep(Duration::from_millis(300)).await;
            b.restart().await;
        }
    })
    .await;
    assert!(retries > 0, "the kill did not interrupt the sender; the test proved nothing");
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_receivers_node_under_load_in_a_cluster() {
    let db = TestDb::create().await;
    let mut nodes = plexus_e2e::Broker::cluster_with(&db, 2, &[("PLEXUS_REDIS__NODE_TTL_SECS", "2")]).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob"]).await;
    mesh.peers[1].set_brokers(&[&nodes[0].url, &nodes[1].url]);
    let receiver = mesh.peers[1].spawn_json(&["inbox", "--follow"]);
    // Find the node the receiver landed on: the only one with a session.
    let sessions = |port: u16| {
        plexus_e2e::http_get(port, "/metrics")
            .and_then(|(_, m)| m.lines().find(|l| l.starts_with("plexus_sessions ")).map(str::to_owned))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<i64>().ok()))
            .unwrap_or(0)
    };
    let (p0, p1) = (nodes[0].port, nodes[1].port);
    let home = wait_until(Duration::from_secs(20), || match (sessions(p0), sessions(p1)) {
        (1, 0) => Some(0),
        (0, 1) => Some(1),
        _ => None,
    })
    .await
    .expect("receiver present on one node");
    let other = 1 - home;
    // The sender uses the surviving node only.
    let url = nodes[other].url.clone();
    let (_, receiver) = send_through_a_kill(&db, &mesh, receiver, url, || {
        let n = &mut nodes[home];
        async move { n.kill9() }
    })
    .await;
    drop(receiver);
}

/// Alice sends N messages to Bob over `url`, retrying unacknowledged ones with the same id;
/// after a third are acknowledged, `kill` runs. Then every message must reach Bob's follower
/// exactly once and be stored once. Returns the sender's retry count.
async fn send_through_a_kill<F, Fut>(
    db: &TestDb,
    mesh: &Mesh,
    receiver: plexus_e2e::Follower,
    url: String,
    kill: F,
) -> (u32, plexus_e2e::Follower)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    let progress = Arc::new(SendProgress::default());
    let sender = tokio::spawn(send_through_failures(
        vec![url],
        alice.profile(),
        bob.profile(),
        N,
        "m-",
        Duration::ZERO,
        progress.clone(),
    ));
    let acked = &progress.acked;
    assert!(wait_until(Duration::from_secs(60), || (acked.load(Ordering::SeqCst) >= N / 3).then_some(()))
        .await
        .is_some());
    kill().await;
    tokio::time::timeout(Duration::from_secs(120), sender).await.expect("sender finished").unwrap();
    let retries = progress.retries.load(Ordering::SeqCst) as u32;

    let all = wait_until(Duration::from_secs(60), || (receiver.texts().len() >= N).then_some(())).await;
    // Give any duplicate a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in receiver.texts() {
        *counts.entry(t).or_default() += 1;
    }
    let missing: Vec<usize> = (0..N).filter(|i| !counts.contains_key(&format!("m-{i}"))).collect();
    let doubled: Vec<(&String, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        all.is_some() && missing.is_empty(),
        "missing {} messages, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(doubled.is_empty(), "surfaced twice: {doubled:?}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM events").await, N as i64, "a resend was stored twice");
    (retries, receiver)
}
