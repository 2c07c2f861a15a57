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

/// A received request: its headers (lowercased names) and body.
type Request = (std::collections::HashMap<String, String>, String);

/// A local HTTP endpoint that records every request and answers with a settable status,
/// optionally after a delay.
struct Receiver {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Receiver { port, seen: Default::default(), status: Default::default(), delay_ms: Default::default() };
        r.status.store(503, Ordering::SeqCst);
        let (seen, status, delay) = (r.seen.clone(), r.status.clone(), r.delay_ms.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (seen, status, delay) = (seen.clone(), status.clone(), delay.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut headers = std::collections::HashMap::new();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap_or(0);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.trim_end().split_once(": ") {
                            headers.insert(k.to_ascii_lowercase(), v.to_owned());
                        }
                    }
                    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap_or(());
                    seen.lock().unwrap().push((headers, String::from_utf8_lossy(&body).into_owned()));
                    std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst)));
                    let code = status.load(Ordering::SeqCst);
                    let mut out = stream;
                    let _ = write!(out, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                });
            }
        });
        r
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// Idempotency keys of the requests, in arrival order.
    fn keys(&self) -> Vec<String> {
        self.requests().iter().map(|(h, _)| h.get("x-plexus-idempotency-key").cloned().unwrap_or_default()).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_delivered_out_signed_in_order_at_least_once_across_a_node_death() {
    use std::sync::atomic::Ordering;
    let db = TestDb::create().await;
    let mut env = plexus_e2e::cluster_env();
    env.push(("PLEXUS_WEBHOOKS__MAX_FAILURES".into(), "1000".into()));
    let with = |id: &'static str| {
        let mut e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e.push(("PLEXUS_NODE__ID", id));
        e
    };
    let mut nodes = [Broker::start_with(&db, &with("hooks-a")).await, Broker::start_with(&db, &with("hooks-b")).await];
    let mesh = Mesh::create(&nodes[0], &["ana"]).await;
    let ana = &mesh.peers[0];
    ana.set_brokers(&[&nodes[0].url, &nodes[1].url]);
    let rx = Receiver::start();
    let url = format!("http://127.0.0.1:{}/hook", rx.port);
    let sub = ana.json(&["webhook", "subscribe", &url, "--kinds", "task"]);
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let wait = |pred: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while !pred() {
            assert!(std::time::Instant::now() < deadline, "timed out; requests: {:?}", rx.keys());
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // The receiver is down: the first task's event is retried with the same key.
    ana.json(&["task", "create", "first task"]);
    ana.json(&["state", "set", "not/subscribed", "x"]);
    ana.json(&["task", "create", "second task"]);
    wait(&|| rx.requests().len() >= 3);
    let keys = rx.keys();
    assert!(keys.iter().all(|k| *k == keys[0]), "retries of one event carry one key, in order: {keys:?}");

    // It comes back: everything arrives in order, signed; state.set is not subscribed.
    rx.status.store(200, Ordering::SeqCst);
    wait(&|| rx.requests().iter().any(|(_, b)| b.contains("second task")));
    let reqs = rx.requests();
    let bodies: Vec<&String> = reqs.iter().map(|(_, b)| b).collect();
    let first = bodies.iter().position(|b| b.contains("first task")).unwrap();
    let second = bodies.iter().position(|b| b.contains("second task")).unwrap();
    assert!(first < second);
    assert!(!bodies.iter().any(|b| b.contains("not/subscribed")), "an unsubscribed kind went out");
    for (headers, body) in &reqs {
        let ts = &headers["x-plexus-timestamp"];
        let key = plexus_crypto::unhex(&secret).unwrap();
        let mac = plexus_crypto::hmac_sha256(&key, &[&plexus_proto::webhook::signed_bytes(ts, body.as_bytes())]);
        assert_eq!(headers["x-plexus-signature"], format!("sha256={}", plexus_crypto::hex(&mac)));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["id"].as_str().unwrap(), headers["x-plexus-idempotency-key"]);
    }

    // The delivering node dies mid-request: the other node delivers it again, same key.
    rx.delay_ms.store(3000, Ordering::SeqCst);
    let before = rx.requests().len();
    ana.json(&["task", "create", "third task"]);
    wait(&|| rx.requests().iter().skip(before).any(|(_, b)| b.contains("third task")));
    let holder = db
        .scalar_i64("SELECT (CASE WHEN lease_node = 'hooks-a' THEN 0 ELSE 1 END)::bigint FROM webhook_subscriptions")
        .await;
    nodes[holder as usize].kill9();
    rx.delay_ms.store(0, Ordering::SeqCst);
    wait(&|| rx.requests().iter().skip(before).filter(|(_, b)| b.contains("third task")).count() >= 2);
    let third: Vec<String> = rx
        .requests()
        .iter()
        .skip(before)
        .filter(|(_, b)| b.contains("third task"))
        .map(|(h, _)| h["x-plexus-idempotency-key"].clone())
        .collect();
    assert!(third.iter().all(|k| *k == third[0]), "a redelivery carries the same key: {third:?}");
    let other = 1 - holder as usize;
    let delivered_by =
        db.scalar_i64("SELECT count(*) FROM webhook_attempts WHERE status = 200 AND node = 'hooks-a' OR status = 200 AND node = 'hooks-b'").await;
    assert!(delivered_by >= 3);
    let by_survivor = db
        .scalar_i64(&format!(
            "SELECT count(*) FROM webhook_attempts WHERE status = 200 AND node = '{}'",
            if other == 0 { "hooks-a" } else { "hooks-b" }
        ))
        .await;
    assert!(by_survivor >= 1, "the surviving node never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_failing_too_often_is_disabled_and_audited() {
    let db = TestDb::create().await;
    let node = Broker::start_with(&db, &[("PLEXUS_WEBHOOKS__MAX_FAILURES", "2")]).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let ana = &mesh.peers[0];
    let rx = Receiver::start();
    let sub = ana.json(&["webhook", "subscribe", &format!("http://127.0.0.1:{}/", rx.port), "--kinds", "task"]);
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    ana.json(&["task", "create", "never delivered"]);
    let disabled = plexus_e2e::wait_until(Duration::from_secs(30), || {
        let list = ana.json(&["webhook", "list"]);
        (list["subscriptions"][0]["disabled"] == true).then_some(list)
    })
    .await
    .unwrap_or_else(|| panic!("never disabled: {}", node.log_text()));
    assert_eq!(disabled["subscriptions"][0]["failures"], 2);
    assert_eq!(rx.requests().len(), 2);
    let audit = ana.json(&["audit", "list"]).to_string();
    assert!(audit.contains("webhook.disabled") && audit.contains("webhook.subscribed"), "{audit}");
    // The delivery log shows both tries of the one event and what the receiver answered.
    let log = ana.json(&["webhook", "log", &sub_id]);
    let attempts = log["attempts"].as_array().unwrap();
    let tries: Vec<(u64, u64, u64)> = attempts
        .iter()
        .map(|a| (a["seq"].as_u64().unwrap(), a["attempt"].as_u64().unwrap(), a["status"].as_u64().unwrap_or(0)))
        .collect();
    let seq = tries[0].0;
    let refused = rx.status.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert_eq!(tries, [(seq, 1, refused), (seq, 2, refused)], "{log}");
    let unknown = ana.run(&["--json", "webhook", "log", &uuid::Uuid::new_v4().to_string()]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stdout).contains("not_found"));
}
