//! The web app in real Chromium (Debian's `chromium`, driven by Playwright's `playwright-core`
//! from `web/tests/app.mjs`) against a real two-node cluster with Postgres and Redis, beside a
//! member on the CLI. The browser scenario asks this harness, one JSON line at a time, for
//! what only the harness can do: run a CLI command as a peer, kill or restart a node, search
//! the database for plaintext, wait for a line of the CLI follower. Screenshots go to
//! `$CARGO_TARGET_DIR/web-screenshots`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use plexus_e2e::{raw_session, wait_until, Broker, Mesh, RawSession, TestDb};
use plexus_proto::types::{SessionMode, SessionProfile, Status};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

const CHROMIUM: &str = "/usr/bin/chromium";

fn screenshots_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("web-screenshots")
}

fn http(broker: &Broker) -> String {
    format!("http://127.0.0.1:{}/", broker.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_in_chromium_work_with_agents_and_the_cli_across_a_cluster() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "Debian's chromium is needed for the browser tests (scripts/test.sh installs it)"
    );
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "run scripts/web.sh first (it installs playwright-core)"
    );
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
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let mut script = Command::new("node")
        .arg("tests/app.mjs")
        .current_dir(&web)
        .env("PLEXUS_WEB_A", http(&nodes[0]))
        .env("PLEXUS_WEB_B", http(&nodes[1]))
        .env("PLEXUS_WEB_SHOTS", &shots)
        .env("PLEXUS_CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node web/tests/app.mjs");
    let mut to_script = script.stdin.take().expect("stdin");
    let mut lines = BufReader::new(script.stdout.take().expect("stdout")).lines();
    let mut finished = false;
    let mut agents: Vec<RawSession> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(req) = serde_json::from_str::<Value>(&line) else {
            eprintln!("[web] {line}");
            continue;
        };
        if req.get("done").is_some() {
            finished = true;
            break;
        }
        let id = req["id"].clone();
        let reply = match req["do"].as_str().unwrap_or_default() {
            "cli" => {
                let args: Vec<String> = req["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                let mut all = vec!["--json".to_owned()];
                all.extend(args);
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                let out = carol.run(&refs);
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() {
                    json!({"id": id, "ok": serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null)})
                } else {
                    json!({"id": id, "err": format!("plexus {all:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr))})
                }
            }
            "kill" => {
                nodes[req["node"].as_u64().unwrap_or(0) as usize].kill9();
                json!({"id": id, "ok": true})
            }
            "restart" => {
                nodes[req["node"].as_u64().unwrap_or(0) as usize].start_again().await;
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
        to_script.write_all(format!("{reply}\n").as_bytes()).await.expect("answer the script");
    }
    let status = script.wait().await.expect("the script ends");
    assert!(
        finished && status.success(),
        "the browser scenario failed (see [web] lines above); screenshots in {}",
        shots.display()
    );
    for name in [
        "desktop-lobby",
        "desktop-messages",
        "desktop-tasks",
        "desktop-locks",
        "phone-lobby",
        "phone-messages",
        "phone-tasks",
    ] {
        let shot = shots.join(format!("{name}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 5_000), "missing screenshot {}", shot.display());
    }
}
