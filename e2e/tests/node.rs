//! The broker node itself: configuration, migrations, TLS, health and metrics.

use std::process::Command;

use plexus_e2e::{bin, free_port, http_get, raw_session, Broker, Mesh, TestDb};
use plexus_proto::types::{SessionMode, SessionProfile};

fn broker_cmd() -> Command {
    let mut c = Command::new(bin("plexus-broker"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PLEXUS_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn default_config_is_valid_and_unknown_keys_are_rejected() {
    let dir = std::env::temp_dir().join(format!("plexus-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = broker_cmd().arg("default-config").output().unwrap();
    assert!(out.status.success());
    let good = dir.join("good.toml");
    std::fs::write(&good, &out.stdout).unwrap();
    let ok = broker_cmd().args(["check-config", "--config"]).arg(&good).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[http]\nlisten = \"127.0.0.1:1\"\nlisten_typo = \"x\"\n").unwrap();
    let rejected = broker_cmd().args(["check-config", "--config"]).arg(&bad).output().unwrap();
    assert!(!rejected.status.success());
    assert!(
        String::from_utf8_lossy(&rejected.stderr).contains("listen_typo"),
        "{}",
        String::from_utf8_lossy(&rejected.stderr)
    );

    // Other PLEXUS_* variables (the CLI's, the scripts') are not configuration.
    let others = broker_cmd().arg("check-config").env("PLEXUS_HOME", "/x").env("PLEXUS_PG_PORT", "1").output().unwrap();
    assert!(others.status.success(), "{}", String::from_utf8_lossy(&others.stderr));
    let env_typo = broker_cmd().arg("check-config").env("PLEXUS_DATABASE__POOL_SIZE", "lots").output().unwrap();
    assert!(!env_typo.status.success(), "a non-numeric pool size must be rejected");
    let tls_half = broker_cmd().arg("check-config").env("PLEXUS_HTTP__TLS_LISTEN", "127.0.0.1:1").output().unwrap();
    assert!(!tls_half.status.success(), "tls_listen without cert/key must be rejected");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_migrating_an_empty_database_at_once() {
    let db = TestDb::create().await;
    let (a, b) = tokio::join!(Broker::start(&db), Broker::start(&db));
    assert_eq!(http_get(a.port, "/ready").unwrap().0, 200);
    assert_eq!(http_get(b.port, "/ready").unwrap().0, 200);
    // Each migration applied exactly once, all of them.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql")))
        .count() as i64;
    assert_eq!(db.scalar_i64("SELECT count(*) FROM schema_migrations").await, files);
    assert_eq!(db.scalar_i64("SELECT max(version) FROM schema_migrations").await, files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_schema_newer_than_the_binary() {
    let db = TestDb::create().await;
    drop(Broker::start(&db).await);
    db.scalar_i64("WITH x AS (INSERT INTO schema_migrations (version, name) VALUES (999, 'future') RETURNING 1) SELECT count(*) FROM x").await;
    let out = broker_cmd()
        .env("PLEXUS_DATABASE__URL", &db.url)
        .env("PLEXUS_HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("newer than this binary"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let bob = mesh.peers[1].spawn_json(&["inbox", "--follow"]);
    mesh.peers[0].json(&["send", "bob", "counted", "--priority", "now"]);
    assert!(bob.wait_text("counted", std::time::Duration::from_secs(20)).await);
    assert_eq!(http_get(broker.port, "/health").unwrap(), (200, "ok\n".into()));
    let metrics = http_get(broker.port, "/metrics").unwrap().1;
    for series in [
        "plexus_connections",
        "plexus_sessions",
        "plexus_messages_routed_total{priority=\"now\",target=\"member\"} 1",
        "plexus_delivery_latency_seconds_bucket",
        "plexus_pg_pool_connections",
        "plexus_log_batch_size_count",
    ] {
        assert!(metrics.contains(series), "missing {series} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_tls_from_config() {
    let db = TestDb::create().await;
    let dir = std::env::temp_dir().join(format!("plexus-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls_port = free_port();
    let broker = Broker::start_with(
        &db,
        &[
            ("PLEXUS_HTTP__TLS_LISTEN", &format!("127.0.0.1:{tls_port}")),
            ("PLEXUS_HTTP__TLS_CERT", cert_path.to_str().unwrap()),
            ("PLEXUS_HTTP__TLS_KEY", key_path.to_str().unwrap()),
        ],
    )
    .await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let mut profile = mesh.peers[0].profile();
    let wss = format!("wss://localhost:{tls_port}");
    profile.brokers = vec![wss.clone()];
    // Without trusting the self-signed CA the handshake fails...
    assert!(raw_session(&wss, &profile, None, SessionMode::Control, None, SessionProfile::default()).await.is_err());
    // ...and with it, the CLI talks to the broker over TLS.
    profile.ca_file = Some(cert_path.to_str().unwrap().to_owned());
    profile.save(&mesh.peers[0].home).unwrap();
    let peers = mesh.peers[0].json(&["peers"])["peers"].clone();
    assert!(peers.is_array());
    // Doctor's broker checks pass over TLS (the agent-setup checks are install.rs's business).
    let out = mesh.peers[0].run(&["--json", "doctor"]);
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
    let doctor: serde_json::Value = serde_json::from_str(&first).unwrap();
    for check in ["profile", "broker", "clock skew", "key file mode"] {
        let row = doctor["checks"].as_array().unwrap().iter().find(|c| c["check"] == check).cloned();
        assert_eq!(row.as_ref().map(|r| r["ok"].clone()), Some(serde_json::Value::Bool(true)), "{check}: {doctor}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_creation_can_be_gated_by_an_operator_token() {
    let db = TestDb::create().await;
    let broker = Broker::start_with(&db, &[("PLEXUS_MESHES__OPERATOR_TOKEN", "s3cret-token")]).await;
    let p = plexus_e2e::Peer::new("op");
    let denied = p.run(&["--json", "mesh", "create", "gated", "--broker", &broker.url]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("operator token"),
        "{}",
        String::from_utf8_lossy(&denied.stdout)
    );
    let wrong =
        p.run(&["--json", "mesh", "create", "gated", "--broker", &broker.url, "--operator-token", "s3cret-tokem"]);
    assert!(!wrong.status.success());
    assert_eq!(db.scalar_i64("SELECT count(*) FROM meshes").await, 0);
    p.json(&["mesh", "create", "gated", "--broker", &broker.url, "--operator-token", "s3cret-token"]);
    assert_eq!(db.scalar_i64("SELECT count(*) FROM meshes").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bounds_the_log() {
    let db = TestDb::create().await;
    let broker = Broker::start_with(
        &db,
        &[("PLEXUS_DELIVERY__RETENTION_MAX_EVENTS", "5"), ("PLEXUS_DELIVERY__RETENTION_INTERVAL_SECS", "1")],
    )
    .await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    for i in 0..12 {
        mesh.peers[0].json(&["send", "bob", &format!("r{i}")]);
    }
    let bounded = plexus_e2e::wait_until_async(std::time::Duration::from_secs(15), || async {
        (db.scalar_i64("SELECT count(*) FROM events").await <= 5).then_some(())
    })
    .await;
    assert!(bounded.is_some(), "retention did not trim the log");
    // What is left is the newest, and it is still delivered.
    assert_eq!(db.scalar_i64("SELECT min(seq) FROM events").await, 8);
    let inbox = mesh.peers[1].json(&["inbox"]);
    let texts: Vec<&str> = inbox["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["r7", "r8", "r9", "r10", "r11"]);
}
