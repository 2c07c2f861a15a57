//! The session room in real Chromium (`web/tests/room.mjs`) at phone width: a person in the
//! browser on one node watches an agent connected to the other (the MCP Python SDK client
//! running `plexus mcp`, its hooks run here as Claude Code runs them), takes the wheel, prompts
//! it, and allows its permission request — the hook prints the allow decision.

use std::time::Duration;

use plexus_e2e::{
    agent::Agent,
    wait_until,
    web::{http, screenshots_dir, Script},
    Broker, Mesh, TestDb,
};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_on_a_phone_watches_drives_and_approves_an_agent_on_another_node() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana"]).await;
    let ana = &mesh.peers[0];
    ana.set_brokers(&[&nodes[0].url]);
    // Ana on the CLI hands the mesh key to the person who joins.
    let _follower = ana.spawn_json(&["inbox", "--follow"]);
    let mut agent = Agent::start(ana, &[("PLEXUS_APPROVAL_WAIT_SECS", "60")]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let session = wait_until(T, || {
        let peers = ana.json(&["peers"])["peers"].clone();
        peers.as_array()?.iter().find(|p| p["agent"] == "claude-code")?["session_id"].as_str().map(str::to_owned)
    })
    .await
    .expect("the agent session");
    agent.hook("SessionStart", json!({"source": "startup"})).await;
    agent.hook("UserPromptSubmit", json!({"prompt": "fix the flaky login test"})).await;
    agent.say("Looking at the login test first.");
    agent.hook("PreToolUse", json!({"tool_name": "Read", "tool_input": {"file_path": "src/login.rs"}})).await;

    let mut script = Script::start("room.mjs", &[http(&nodes[0]), http(&nodes[1])]);
    while let Some(req) = script.next().await {
        let id = req["id"].clone();
        let reply = match req["do"].as_str().unwrap_or_default() {
            "cli" => plexus_e2e::web::cli(ana, &req),
            "agent_session" => json!({"id": id, "ok": session}),
            "hook" => {
                let r = agent.hook(req["event"].as_str().unwrap_or_default(), req["input"].clone()).await;
                json!({"id": id, "ok": r})
            }
            "agent_saw" => {
                let text = req["text"].as_str().unwrap_or_default().to_owned();
                let seen = agent
                    .wait(|l| l["meta"]["kind"] == "prompt" && l["content"].as_str().is_some_and(|c| c.contains(&text)))
                    .await;
                json!({"id": id, "ok": seen.is_some_and(|l| l["meta"]["from"] == "bo" && l["meta"]["trust"] == "authorized_driver")})
            }
            "permission" => {
                agent.hook_start("PermissionRequest", req["input"].clone());
                json!({"id": id, "ok": true})
            }
            "permission_result" => match agent.wait(|l| l["hook"] == "PermissionRequest").await {
                Some(line) => json!({"id": id, "ok": line}),
                None => json!({"id": id, "err": "the permission hook never returned"}),
            },
            "db_search" => {
                let tables = db.tables_containing(req["needle"].as_str().unwrap_or_default()).await;
                json!({"id": id, "ok": tables})
            }
            other => json!({"id": id, "err": format!("the harness cannot {other}")}),
        };
        script.reply(reply).await;
    }
    assert!(script.passed().await, "the browser scenario failed (see [web] lines above)");
    let shot = screenshots_dir().join("phone-room.png");
    assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 5_000), "missing screenshot {}", shot.display());
}
