//! The web app in real Chromium (Debian's `chromium`, driven by Playwright's `playwright-core`
//! from `web/tests/app.mjs`) against a real two-node cluster with Postgres and Redis, beside a
//! member on the CLI. The browser scenario asks this harness, one JSON line at a time, for
//! what only the harness can do: run a CLI command as a peer, kill or restart a node, search
//! the database for plaintext, wait for a line of the CLI follower. Screenshots go to
//! `$CARGO_TARGET_DIR/web-screenshots`.

use std::time::Duration;

use plexus_e2e::{
    raw_session, wait_until,
    web::{http, screenshots_dir, Script},
    Broker, Mesh, RawSession, TestDb,
};
use plexus_proto::types::{SessionMode, SessionProfile, Status};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_in_chromium_work_with_agents_and_the_cli_across_a_cluster() {
    let db = TestDb::create().await;
    let mut nodes = Broker::cluster(&db, 2).await;
    assert!(
        plexus_e2e::http_get(nodes[0].port, "/").is_some_and(|(s, body)| s == 200 && body.contains("<div id=\"app\"")),
        "the broker does not serve the web app (was web/dist built before the broker?)"
    );
    let mesh = Mesh::create(&nodes[0], &["carol"]).await;
    let carol = &mesh.peers[0];
    carol.set_brokers(&[&nodes[0].url, &nodes[1].url]);
    // Carol stays online on the CLI: she hands the mesh key to the people who join.
    let follower = carol.spawn_json(&["inbox", "--follow"]);

    let shots = screenshots_dir();
    let mut script = Script::start("app.mjs", &[http(&nodes[0]), http(&nodes[1])]);
    let mut agents: Vec<RawSession> = Vec::new();
    while let Some(req) = script.next().await {
        let id = req["id"].clone();
        let reply = match req["do"].as_str().unwrap_or_default() {
            "cli" => plexus_e2e::web::cli(carol, &req),
            "kill" => {
                nodes[req["node"].as_u64().unwrap_or(0) as usize].kill9();
                json!({"id": id, "ok": true})
            }
            "restart" => {
                nodes[req["node"].as_u64().unwrap_or(0) as usize].start_again().await;
                json!({"id": id, "ok": true})
            }
            "mesh_key_epochs" => {
                // The key epoch each stored group or broadcast body names, oldest first.
                let epochs: Vec<u32> = db
                    .bytea_column("SELECT nonce FROM events WHERE sealing = 2 ORDER BY seq")
                    .await
                    .iter()
                    .map(|n| plexus_crypto::mesh_key_epoch(n))
                    .collect();
                json!({"id": id, "ok": epochs})
            }
            "tamper_audit" => {
                // Alter one audit row behind the broker's back, as someone with the database could.
                let seq = req["seq"].as_i64().unwrap_or(1);
                db.execute(&format!("UPDATE audit_log SET detail = detail || ' (edited)' WHERE seq = {seq}")).await;
                json!({"id": id, "ok": true})
            }
            "untamper_audit" => {
                db.execute("UPDATE audit_log SET detail = replace(detail, ' (edited)', '')").await;
                json!({"id": id, "ok": true})
            }
            "db_search" => {
                let tables = db.tables_containing(req["needle"].as_str().unwrap_or_default()).await;
                json!({"id": id, "ok": tables})
            }
            "agent" => {
                // An agent session of carol's member on another machine, as `plexus mcp` would
                // present it.
                let text = |k: &str| req[k].as_str().map(str::to_owned);
                let profile = SessionProfile {
                    status: if req["status"] == "working" { Status::Working } else { Status::Idle },
                    summary: text("summary"),
                    host: text("host"),
                    cwd: text("cwd"),
                    agent_kind: text("kind"),
                    agent_model: text("model"),
                    ..SessionProfile::default()
                };
                let node = &nodes[req["node"].as_u64().unwrap_or(1) as usize];
                match raw_session(&node.url, &carol.profile(), None, SessionMode::Session, None, profile).await {
                    Ok(session) => {
                        agents.push(session);
                        json!({"id": id, "ok": true})
                    }
                    Err(e) => json!({"id": id, "err": e.to_string()}),
                }
            }
            "follower_saw" => {
                let needle = req["text"].as_str().unwrap_or_default().to_owned();
                let seen = wait_until(Duration::from_secs(20), || {
                    follower.lines().iter().any(|l| l.to_string().contains(&needle)).then_some(())
                })
                .await;
                json!({"id": id, "ok": seen.is_some()})
            }
            other => json!({"id": id, "err": format!("the harness cannot {other}")}),
        };
        script.reply(reply).await;
    }
    assert!(
        script.passed().await,
        "the browser scenario failed (see [web] lines above); screenshots in {}",
        shots.display()
    );
    for name in [
        "desktop-lobby",
        "desktop-messages",
        "desktop-tasks",
        "desktop-locks",
        "desktop-people",
        "phone-lobby",
        "phone-messages",
        "phone-tasks",
        "phone-people",
    ] {
        let shot = shots.join(format!("{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 5_000), "missing screenshot {}", shot.display());
    }
}
