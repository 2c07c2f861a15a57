//! Several broker processes sharing Postgres and Redis: peers spread over nodes see one mesh.

use std::time::Duration;

use plexus_client::{connection::push_as, seal::SealTo};
use plexus_e2e::{raw_session, session_for, wait_until, wait_until_async, Broker, Mesh, RawSession, TestDb};
use plexus_proto::{
    ops,
    push::Message,
    types::{DeliveryState, SessionMode, SessionProfile, Target},
};
use serde_json::Value;
use uuid::Uuid;

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
            let n = names(&node_peer.json(&["peers"])["peers"]);
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
        let peers = bob.json(&["peers"])["peers"].clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_reaped_once_and_its_peers_resume_elsewhere() {
    let db = TestDb::create().await;
    let mut nodes = Broker::cluster_with(&db, 2, &[("PLEXUS_REDIS__NODE_TTL_SECS", "2")]).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    let (url0, url1) = (nodes[0].url.clone(), nodes[1].url.clone());
    bob.set_brokers(&[&url1]);
    carol.set_brokers(&[&url0]);
    alice.set_brokers(&[&url0, &url1]);

    let watch = bob.spawn_json(&["watch"]);
    let _carol_f = carol.spawn_json(&["inbox", "--follow"]);
    let alice_f = alice.spawn_json(&["inbox", "--follow"]);
    let carol_session = carol.profile().session_id.to_string();
    assert!(
        wait_until(T, || (names(&bob.json(&["peers"])["peers"]) == ["alice", "carol"]).then_some(())).await.is_some(),
        "both followers present"
    );

    nodes[0].kill9();
    // Carol only knows the dead node: the survivor reaps her within the TTL, once.
    assert!(
        watch
            .wait_line(T, |v| v["event"] == "peer"
                && v["change"] == "left"
                && v["peer"]["session_id"] == carol_session.as_str())
            .await,
        "carol's session was never reaped; survivor log:\n{}",
        nodes[1].log_text()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leaves = watch
        .lines()
        .iter()
        .filter(|v| v["event"] == "peer" && v["change"] == "left" && v["peer"]["session_id"] == carol_session.as_str())
        .count();
    assert_eq!(leaves, 1, "a dead node's session must leave exactly once");
    // Alice, who knows both nodes, is present again (on the survivor) and gets new messages.
    assert!(wait_until(T, || (names(&bob.json(&["peers"])["peers"]) == ["alice"]).then_some(())).await.is_some());
    bob.json(&["send", "alice", "after the failover", "--priority", "now"]);
    assert!(alice_f.wait_text("after the failover", T).await, "alice did not resume on the surviving node");
}

/// A private Redis for tests that restart it.
struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = plexus_e2e::free_port();
        let dir = std::env::temp_dir().join(format!("plexus-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = OwnRedis { port, dir, child: None };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        let up = wait_until(T, || std::net::TcpStream::connect(("127.0.0.1", port)).ok()).await;
        assert!(up.is_some(), "redis did not start");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_traffic_loses_and_doubles_nothing() {
    let db = TestDb::create().await;
    let mut redis = OwnRedis::start().await;
    let url = redis.url();
    let nodes = Broker::cluster_with(&db, 2, &[("PLEXUS_REDIS__URL", &url)]).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    alice.set_brokers(&[&nodes[0].url]);
    bob.set_brokers(&[&nodes[1].url]);
    let bob_f = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || (names(&alice.json(&["peers"])["peers"]) == ["bob"]).then_some(())).await.is_some());

    const N: usize = 60;
    for i in 0..N {
        if i == N / 3 {
            redis.kill();
        }
        if i == N / 3 + 5 {
            // Degraded, not down: the nodes stay ready while Redis is gone.
            for n in &nodes {
                assert_eq!(plexus_e2e::http_get(n.port, "/ready").map(|r| r.0), Some(200));
            }
        }
        if i == 2 * N / 3 {
            redis.spawn().await;
        }
        // Sends keep working while Redis is down: they only need Postgres.
        alice.json(&["send", "bob", &format!("r-{i}"), "--priority", "now"]);
    }
    let all = wait_until(Duration::from_secs(30), || (bob_f.texts().len() >= N).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts = bob_f.texts();
    let missing: Vec<usize> = (0..N).filter(|i| !texts.contains(&format!("r-{i}"))).collect();
    assert!(all.is_some() && missing.is_empty(), "lost across the Redis restart: {missing:?}");
    assert_eq!(texts.len(), N, "doubled across the Redis restart: {texts:?}");
}

async fn next_message(s: &mut RawSession) -> Option<Message> {
    loop {
        let push = tokio::time::timeout(Duration::from_secs(10), s.conn.next_push()).await.ok()??;
        if let Some(m) = push_as::<Message>(&push) {
            return Some(m);
        }
    }
}

/// "Pushed" is kept in Redis per present session: the status asked on one node shows a push
/// made on another, a session that leaves is `queued` again (it gets the message on its next
/// connection), and its acknowledgement, saved by its node, is `acked` everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_status_sees_a_push_made_on_another_node() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let a = session_for(&nodes[0].url, &alice, SessionMode::Control).await;
    let mut b = session_for(&nodes[1].url, &bob, SessionMode::Session).await;
    let pk = bob.member_key().unwrap().public_key().to_vec();
    let id = Uuid::new_v4();
    a.send_sealed(id, Target::Member(bob.member_id), SealTo::Member(&pk), b"hi", None).await.unwrap();
    let seq = next_message(&mut b).await.expect("pushed on node 1").seq;

    let bob_session = b.session_id;
    let state = || {
        let a = &a;
        async move {
            let st = a.conn.call(&ops::MessageStatus { id }).await.ok()?;
            st.recipients.iter().find(|r| r.session_id == bob_session).map(|r| r.state)
        }
    };
    let became = |want: DeliveryState| {
        let state = &state;
        async move { wait_until_async(T, || async { (state().await == Some(want)).then_some(()) }).await.is_some() }
    };
    assert!(became(DeliveryState::Pushed).await, "node 0 never saw node 1's push: {:?}", state().await);

    let key = b.key.clone();
    b.conn.close().await;
    assert!(became(DeliveryState::Queued).await, "a session that left still counts as pushed: {:?}", state().await);

    let sp = SessionProfile::default();
    let mut b =
        raw_session(&nodes[1].url, &bob, Some((bob_session, key)), SessionMode::Session, None, sp).await.unwrap();
    assert_eq!(next_message(&mut b).await.map(|m| m.seq), Some(seq), "replayed on the next connection");
    assert!(became(DeliveryState::Pushed).await);
    b.conn.call(&ops::Ack { seqs: vec![seq], read: false }).await.unwrap();
    assert_eq!(state().await, Some(DeliveryState::Acked));
}
