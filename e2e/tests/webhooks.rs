//! Webhooks in: a signed POST becomes an event from `webhook:<name>` delivered to its target;
//! a bad signature, a stale timestamp, an oversize body, a replay, an unknown or removed hook
//! are refused and store nothing; the secret never appears in the broker's log.

use std::time::Duration;

use plexus_e2e::{http_post, Broker, Mesh, TestDb};

fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = plexus_crypto::unhex(secret).expect("hex secret");
    let mac = plexus_crypto::hmac_sha256(&key, &[&plexus_proto::webhook::signed_bytes(timestamp, body)]);
    format!("sha256={}", plexus_crypto::hex(&mac))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_posts_become_events_and_everything_else_is_refused() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let hook = ana.json(&["webhook", "add", "ci", "--to", "bo", "--priority", "now"]);
    let (secret, path) = (hook["secret"].as_str().unwrap().to_owned(), hook["path"].as_str().unwrap().to_owned());
    assert!(hook["url"].as_str().unwrap().ends_with(&path));
    let follower = bo.spawn_json(&["inbox", "--follow"]);
    let events = || async { db.scalar_i64("SELECT count(*) FROM events WHERE subtype = 'webhook'").await };

    let post = |ts: String, sig: String, body: Vec<u8>| {
        let path = path.clone();
        let port = node.port;
        std::thread::spawn(move || {
            http_post(port, &path, &[("x-plexus-timestamp", &ts), ("x-plexus-signature", &sig)], &body)
                .expect("an answer")
                .0
        })
        .join()
        .unwrap()
    };
    let body = br#"{"build":"green","commit":"abc123"}"#.to_vec();
    let ts = now().to_string();

    // Refusals first: none stores anything.
    assert_eq!(post(ts.clone(), sign(&"00".repeat(32), &ts, &body), body.clone()), 401, "wrong secret");
    assert_eq!(post(ts.clone(), "sha256=zz".into(), body.clone()), 401, "not hex");
    let old = (now() - 600).to_string();
    assert_eq!(post(old.clone(), sign(&secret, &old, &body), body.clone()), 401, "stale timestamp");
    let big = vec![b'x'; 70 * 1024];
    assert_eq!(post(ts.clone(), sign(&secret, &ts, &big), big), 413, "oversize");
    let other = format!("/hooks/{}/{}", ana.profile().mesh_id, uuid::Uuid::new_v4());
    let unknown = http_post(
        node.port,
        &other,
        &[("x-plexus-timestamp", &ts), ("x-plexus-signature", &sign(&secret, &ts, &body))],
        &body,
    );
    assert_eq!(unknown.map(|r| r.0), Some(404));
    assert_eq!(events().await, 0);

    // A good one is delivered, once.
    let good = sign(&secret, &ts, &body);
    assert_eq!(post(ts.clone(), good.clone(), body.clone()), 202);
    assert_eq!(post(ts.clone(), good, body.clone()), 409, "a replay is refused");
    assert!(
        follower
            .wait_line(Duration::from_secs(20), |l| l.to_string().contains("webhook ci")
                && l.to_string().contains("abc123"))
            .await,
        "bo never got the webhook's event: {:?}",
        follower.lines()
    );
    assert_eq!(events().await, 1);
    let line = follower.lines().into_iter().find(|l| l.to_string().contains("abc123")).unwrap();
    assert_eq!(line["from"], "webhook:ci", "{line}");

    // Listed without its secret; removed, its URL stops accepting; both in the audit log.
    let list = ana.json(&["webhook", "list"]);
    assert_eq!(list["webhooks"][0]["name"], "ci");
    assert!(!list.to_string().contains(&secret));
    ana.json(&["webhook", "remove", hook["id"].as_str().unwrap()]);
    let ts2 = now().to_string();
    let body2 = b"after removal".to_vec();
    assert_eq!(post(ts2.clone(), sign(&secret, &ts2, &body2), body2), 404);
    let audit = ana.json(&["audit", "list"]).to_string();
    assert!(audit.contains("webhook.created") && audit.contains("webhook.deleted"));
    assert!(!audit.contains(&secret));
    assert!(!node.log_text().contains(&secret), "the secret is in the broker's log");
    // A member cannot add one.
    assert!(!bo.run(&["webhook", "add", "x", "--to", "ana"]).status.success());
}
