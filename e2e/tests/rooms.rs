//! Session rooms end to end: an "agent" (`e2e/mcp/client.py` running `plexus mcp` through the
//! official MCP Python SDK, and invoking `plexus hook …` with Claude Code's hook JSON on stdin,
//! appending to a transcript file as Claude Code does) watched, driven and answered by people
//! on another broker node through `plexus attach`, the wheel, `plexus approve/deny`, and locks
//! that hold for edits and commits.

use std::{path::Path, process::Command, time::Duration};

use plexus_e2e::{agent::Agent, bin, wait_until, Broker, Follower, Mesh, Peer, TestDb};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

/// The agent session's id, once it is present.
async fn agent_session(watcher: &Peer, name: &str) -> String {
    let id = wait_until(T, || {
        let peers = watcher.json(&["peers"])["peers"].clone();
        let p = peers.as_array()?.iter().find(|p| p["name"] == name && p["agent"] == "claude-code")?.clone();
        p["session_id"].as_str().map(str::to_owned)
    })
    .await;
    id.unwrap_or_else(|| panic!("{name}'s agent never became present"))
}

fn entries(f: &Follower) -> Vec<Value> {
    f.lines().into_iter().filter(|l| l.get("seq").is_some()).collect()
}

fn rooms(f: &Follower) -> Vec<Value> {
    f.lines().into_iter().filter_map(|l| l.get("room").cloned()).collect()
}

/// Wait until the room's latest state satisfies `pred`.
async fn wait_room(f: &Follower, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_until(T, || rooms(f).pop().filter(&pred))
        .await
        .unwrap_or_else(|| panic!("room never showed {what}: {:?}", rooms(f).last()))
}

fn texts(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!("{}:{}", e["kind"].as_str().unwrap_or_default(), e["body"]["text"].as_str().unwrap_or_default())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_on_another_node_watch_the_agent_live_take_the_wheel_and_prompt_it() {
    let db = TestDb::create().await;
    let mut nodes =
        Broker::cluster_with(&db, 2, &[("PLEXUS_ROOMS__WHEEL_GRACE_SECS", "2"), ("PLEXUS_REDIS__NODE_TTL_SECS", "3")])
            .await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo", "cy"]).await;
    let (ana, bo, cy) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    ana.set_brokers(&[&nodes[0].url]);
    bo.set_brokers(&[&nodes[1].url]);
    cy.set_brokers(&[&nodes[1].url]);

    let mut agent = Agent::start(ana, &[]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let session = agent_session(bo, "ana").await;

    // Work before anyone watches: replayed from the log.
    agent.hook("SessionStart", json!({"source": "startup"})).await;
    agent.hook("UserPromptSubmit", json!({"prompt": "fix the flaky login test"})).await;
    agent.say("Looking at the login test first.");
    agent.hook("PreToolUse", json!({"tool_name": "Bash", "tool_input": {"command": "cargo test login"}})).await;
    let big = "line of output\n".repeat(700_000);
    let r = agent.hook("PostToolUse", json!({"tool_name": "Bash", "tool_response": {"stdout": big}})).await;
    assert_eq!(r["rc"], 0);

    let mut viewer = bo.spawn_json(&["attach", &session]);
    let replayed = wait_until(T, || {
        let e = entries(&viewer);
        (e.len() >= 5).then_some(e)
    })
    .await
    .expect("replay");
    assert_eq!(
        texts(&replayed)[..3],
        ["session_start:startup", "prompt:fix the flaky login test", "assistant:Looking at the login test first."]
    );
    assert_eq!(replayed[3]["kind"], "tool_call");
    assert_eq!(replayed[4]["kind"], "tool_result");
    assert_eq!(replayed[4]["body"]["truncated"], true, "a 10 MB tool result is cut with a marker");
    assert!(replayed[4]["body"]["text"].as_str().unwrap().contains("truncated"));

    // Live, in order, exactly once.
    agent.say("Found it: a race on the session cookie.");
    agent.hook("Stop", json!({})).await;
    agent.hook("Notification", json!({"message": "Claude is waiting for your input"})).await;
    let all = wait_until(T, || {
        let e = entries(&viewer);
        (e.len() >= 8).then_some(e)
    })
    .await
    .expect("live tail");
    assert_eq!(
        texts(&all)[5..],
        ["assistant:Found it: a race on the session cookie.", "status:", "notice:Claude is waiting for your input"]
    );
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order or repeated: {seqs:?}");
    // The broker stores ciphertext only.
    for needle in ["fix the flaky login test", "race on the session cookie", "cargo test login"] {
        assert!(db.tables_containing(needle).await.is_empty(), "{needle} stored in plaintext");
    }

    // Presence in the room.
    wait_room(&viewer, "bo viewing", |r| {
        r["viewers"].as_array().is_some_and(|v| v.iter().any(|v| v["display_name"] == "bo"))
    })
    .await;

    // The wheel: bo may not drive until ana grants it; cy never may.
    let refused = bo.run(&["wheel", "take", &session]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("drive"), "{}", String::from_utf8_lossy(&refused.stderr));
    ana.json(&["grant", "drive", "bo"]);
    viewer.type_line("/take");
    let held = wait_room(&viewer, "bo's wheel", |r| r["wheel"]["holder_name"] == "bo").await;
    let token = held["wheel"]["token"].as_u64().unwrap();

    // A prompt from the holder reaches the agent as a channel notification from bo.
    viewer.type_line("please also run the integration tests");
    let prompt = agent.wait(|l| l["meta"]["kind"] == "prompt").await.expect("the prompt never reached the agent");
    assert_eq!(prompt["meta"]["from"], "bo");
    assert_eq!(prompt["meta"]["trust"], "authorized_driver");
    let content = prompt["content"].as_str().unwrap();
    assert!(content.contains("please also run the integration tests") && content.contains("wheel"), "{content}");

    // Without the wheel: refused.
    let no_wheel = cy.run(&["prompt", &session, "delete everything"]);
    assert!(!no_wheel.status.success(), "cy prompted without the wheel");
    let ana_no_wheel = ana.run(&["--json", "attach", &session, "--once"]);
    assert!(ana_no_wheel.status.success());

    // Request and pass: ana (the session's member) asks, bo passes.
    let mut ana_view = ana.spawn_json(&["attach", &session]);
    wait_room(&ana_view, "ana viewing", |r| r["viewers"].as_array().is_some_and(|v| v.len() == 2)).await;
    ana_view.type_line("/request");
    wait_room(&viewer, "ana's request", |r| r["wheel"]["requested_by"] == "ana").await;
    viewer.type_line("/pass ana");
    let passed = wait_room(&viewer, "ana's wheel", |r| r["wheel"]["holder_name"] == "ana").await;
    assert!(passed["wheel"]["token"].as_u64().unwrap() > token, "fencing token did not increase");

    // The holder disconnects: the wheel is free after the grace (2 s here), for every viewer.
    ana_view.stop();
    wait_room(&viewer, "a free wheel", |r| {
        r["wheel"].is_null() && r["viewers"].as_array().is_some_and(|v| v.len() == 1)
    })
    .await;

    // The holder's node dies: once the cluster sees it dead, its viewers leave and the wheel is
    // freed after the grace.
    let ana_view = ana.spawn_json(&["attach", &session]);
    wait_room(&ana_view, "both viewing", |r| r["viewers"].as_array().is_some_and(|v| v.len() == 2)).await;
    viewer.type_line("/take");
    wait_room(&ana_view, "bo's wheel again", |r| r["wheel"]["holder_name"] == "bo").await;
    nodes[1].kill9();
    wait_room(&ana_view, "the dead node's wheel freed", |r| {
        r["wheel"].is_null() && r["viewers"].as_array().is_some_and(|v| v.len() == 1 && v[0]["display_name"] == "ana")
    })
    .await;
    viewer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_requests_are_answered_by_authorised_people_or_asked_locally() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo", "cy"]).await;
    let (ana, bo, cy) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    bo.set_brokers(&[&nodes[1].url]);
    let mut agent = Agent::start(bo, &[("PLEXUS_APPROVAL_WAIT_SECS", "20")]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let session = agent_session(ana, "bo").await;

    // Denied from the CLI by the session's own member, with the reason shown to the agent.
    agent.hook_start("PermissionRequest", json!({"tool_name": "Bash", "tool_input": {"command": "git push --force"}}));
    let pending = wait_until(T, || {
        let list = bo.json(&["approvals"])["approvals"].as_array().cloned()?;
        list.first().cloned()
    })
    .await
    .expect("the request never showed in plexus approvals");
    assert_eq!(pending["tool"], "Bash");
    assert!(pending["input"].as_str().unwrap().contains("git push --force"));
    let id = pending["id"].as_str().unwrap().to_owned();
    // cy was not granted: refused, and nothing changes.
    let refused = cy.run(&["approve", &id]);
    assert!(!refused.status.success(), "an unauthorised member answered");
    bo.json(&["deny", &id[..8], "--reason", "never force-push main"]);
    let done = agent.wait(|l| l["hook"] == "PermissionRequest").await.unwrap();
    let out: Value = serde_json::from_str(done["stdout"].as_str().unwrap()).expect("decision JSON");
    assert_eq!(out["hookSpecificOutput"]["hookEventName"], "PermissionRequest");
    assert_eq!(out["hookSpecificOutput"]["decision"]["behavior"], "deny");
    let message = out["hookSpecificOutput"]["decision"]["message"].as_str().unwrap();
    assert!(message.contains("never force-push main") && message.contains("bo"), "{message}");

    // Allowed by a member bo granted, from another node.
    bo.json(&["grant", "drive", "ana"]);
    agent.hook_start("PermissionRequest", json!({"tool_name": "Write", "tool_input": {"file_path": "/tmp/x"}}));
    let id2 = wait_until(T, || {
        let list = ana.json(&["approvals"])["approvals"].as_array().cloned()?;
        list.iter().find(|a| a["tool"] == "Write").and_then(|a| a["id"].as_str().map(str::to_owned))
    })
    .await
    .expect("ana never saw the request");
    ana.json(&["approve", &id2]);
    let done =
        wait_until(T, || agent.lines().into_iter().filter(|l| l["hook"] == "PermissionRequest").nth(1)).await.unwrap();
    let out: Value = serde_json::from_str(done["stdout"].as_str().unwrap()).expect("decision JSON");
    assert_eq!(out["hookSpecificOutput"]["decision"]["behavior"], "allow");
    // A second answer changes nothing.
    assert!(!bo.run(&["deny", &id2]).status.success());

    // Every decision is in the stream: who, what, and why.
    // (The hook hands its last entry to the agent's server, which publishes it right after.)
    let decisions = wait_until(T, || {
        let stream = bo.run(&["--json", "attach", &session, "--once"]);
        let lines: Vec<Value> =
            String::from_utf8_lossy(&stream.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let decisions: Vec<Value> = lines.into_iter().filter(|l| l["kind"] == "permission_decision").collect();
        (decisions.len() == 2).then_some(decisions)
    })
    .await
    .expect("both decisions in the stream");
    assert_eq!(decisions[0]["body"]["outcome"], "deny");
    assert_eq!(decisions[0]["body"]["by"], "bo");
    assert_eq!(decisions[0]["body"]["text"], "never force-push main");
    assert_eq!(decisions[1]["body"]["outcome"], "allow");
    assert_eq!(decisions[1]["body"]["by"], "ana");

    // An admin answers without a grant.
    let invite = ana.json(&["invite", "create", "--role", "admin"]);
    let dee = Peer::new("dee");
    let code = invite["code"].as_str().unwrap();
    dee.json(&["join", code, "--broker", &nodes[1].url, "--name", "dee", "--wait", "0"]);
    agent.hook_start("PermissionRequest", json!({"tool_name": "Bash", "tool_input": {"command": "make deploy"}}));
    let id3 =
        wait_until(T, || dee.json(&["approvals"])["approvals"].as_array()?.first()?["id"].as_str().map(str::to_owned))
            .await
            .expect("the admin never saw the request");
    dee.json(&["approve", &id3]);
    let done = wait_until(T, || agent.lines().into_iter().filter(|l| l["hook"] == "PermissionRequest").nth(2))
        .await
        .expect("the third request never ended");
    assert!(done["stdout"].as_str().unwrap().contains("\"allow\""), "{done}");
    drop(agent);

    // Nobody answers: no decision (Claude Code asks locally), never an automatic allow.
    let mut agent = Agent::start(bo, &[("PLEXUS_APPROVAL_WAIT_SECS", "2")]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let r =
        agent.hook("PermissionRequest", json!({"tool_name": "Bash", "tool_input": {"command": "rm -rf build"}})).await;
    assert_eq!(r["rc"], 0);
    assert_eq!(r["stdout"], "", "an unanswered request must print no decision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_commits_to_paths_another_session_locked_are_refused() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let mut agent = Agent::start(ana, &[]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    agent_session(bo, "ana").await;
    let file = agent.repo.join("src/auth.rs").to_string_lossy().into_owned();
    let edit = |path: &str| json!({"tool_name": "Edit", "tool_input": {"file_path": path, "old_string": "a", "new_string": "b"}});

    // Nobody holds it: the edit goes ahead (no output).
    assert_eq!(agent.hook("PreToolUse", edit(&file)).await["stdout"], "");

    let lock = bo.json(&["lock", "acquire", "src/**", "--reason", "refactoring auth"]);
    let token = lock["token"].as_u64().unwrap();
    let r = agent.hook("PreToolUse", edit(&file)).await;
    let out: Value = serde_json::from_str(r["stdout"].as_str().unwrap()).expect("deny JSON");
    assert_eq!(out["hookSpecificOutput"]["permissionDecision"], "deny");
    let why = out["hookSpecificOutput"]["permissionDecisionReason"].as_str().unwrap();
    assert!(why.contains("bo") && why.contains("src/**") && why.contains(&token.to_string()), "{why}");
    // Other tools are not edits.
    assert_eq!(
        agent.hook("PreToolUse", json!({"tool_name": "Read", "tool_input": {"file_path": file}})).await["stdout"],
        ""
    );

    // Advisory mode only warns.
    ana.json(&["guard", "mode", "advisory"]);
    let r = agent.hook("PreToolUse", edit(&file)).await;
    let out: Value = serde_json::from_str(r["stdout"].as_str().unwrap()).expect("advisory JSON");
    assert!(out.get("hookSpecificOutput").is_none());
    assert!(out["systemMessage"].as_str().unwrap().contains("bo holds src/**"));
    ana.json(&["guard", "mode", "enforce"]);
    assert!(!bo.run(&["guard", "mode", "lenient"]).status.success());

    // The holder itself may edit: the agent's own lock.
    bo.json(&["lock", "release", &token.to_string()]);
    agent.command(r#"tool lock {"action": "acquire", "pattern": "src/auth.rs"}"#);
    assert!(agent.wait(|l| l["tool"] == "lock" && l["error"] == false).await.is_some());
    assert_eq!(agent.hook("PreToolUse", edit(&file)).await["stdout"], "", "the holder was refused its own lock");

    // Commits: the pre-commit guard refuses staged files another member holds.
    let repo = bo.home.join("commit-repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).current_dir(&repo).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("src/auth.rs"), "fn main() {}\n").unwrap();
    git(&["add", "src/auth.rs"]);
    let guard = |peer: &Peer, dir: &Path| {
        Command::new(bin("plexus"))
            .env("PLEXUS_HOME", &peer.home)
            .args(["guard", "check"])
            .current_dir(dir)
            .output()
            .expect("guard")
    };
    let out = guard(bo, &repo);
    assert!(!out.status.success(), "a commit of a file ana's agent holds went through");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ana") && err.contains("src/auth.rs"), "{err}");
    let installed = Command::new(bin("plexus"))
        .env("PLEXUS_HOME", &bo.home)
        .args(["guard", "install"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    assert!(std::fs::read_to_string(repo.join(".git/hooks/pre-commit")).unwrap().contains("plexus guard check"));
    // Its own member's lock does not block ana.
    assert!(guard(ana, &repo).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_while_the_agent_works_loses_no_stream_entry() {
    let db = TestDb::create().await;
    let mut node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let bo = &mesh.peers[1];
    let mut agent = Agent::start(&mesh.peers[0], &[]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let session = agent_session(bo, "ana").await;
    agent.hook("UserPromptSubmit", json!({"prompt": "before the outage"})).await;

    node.kill9();
    for i in 0..5 {
        let r = agent.hook("UserPromptSubmit", json!({"prompt": format!("during the outage {i}")})).await;
        assert_eq!(r["rc"], 0);
        // Bounded by the hook's own timeouts (2 s socket, 3 s direct), whatever the broker does.
        assert!(r["ms"].as_u64().unwrap() < 6_000, "hook blocked the agent: {r}");
    }
    node.start_again().await;
    agent.hook("UserPromptSubmit", json!({"prompt": "after the outage"})).await;

    let want: Vec<String> = std::iter::once("prompt:before the outage".to_owned())
        .chain((0..5).map(|i| format!("prompt:during the outage {i}")))
        .chain(std::iter::once("prompt:after the outage".to_owned()))
        .collect();
    let got = wait_until(T + T, || {
        let out = bo.run(&["--json", "attach", &session, "--once"]);
        let lines: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let e: Vec<Value> = lines.into_iter().filter(|l| l.get("seq").is_some()).collect();
        let t = texts(&e);
        (t == want).then_some(t)
    })
    .await;
    assert!(got.is_some(), "the stream lost or reordered entries across the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_keeps_its_newest_entries_within_its_bound_and_outlives_its_agent() {
    let db = TestDb::create().await;
    let node = Broker::start_with(&db, &[("PLEXUS_ROOMS__MAX_STREAM_BYTES", "3000")]).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let bo = &mesh.peers[1];
    let mut agent = Agent::start(&mesh.peers[0], &[]);
    assert!(agent.wait(|l| l["ready"] == true).await.is_some());
    let session = agent_session(bo, "ana").await;
    for i in 0..30 {
        agent
            .hook("UserPromptSubmit", json!({"prompt": format!("prompt number {i:02} with some words to fill it")}))
            .await;
    }
    let read = || {
        let out = bo.run(&["--json", "attach", &session, "--once"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let lines = wait_until(T, || {
        let lines = read();
        lines
            .iter()
            .any(|l| l["body"]["text"].as_str().is_some_and(|t| t.starts_with("prompt number 29")))
            .then_some(lines)
    })
    .await
    .expect("the last entry never arrived");
    let e: Vec<&Value> = lines.iter().filter(|l| l.get("seq").is_some()).collect();
    assert!(e.len() < 30, "nothing was pruned at a 3000-byte bound");
    assert!(e.len() >= 10, "pruned far below the bound: {} left", e.len());
    let pruned = lines.iter().find_map(|l| l["pruned_below"].as_u64()).expect("readers are told about pruning");
    assert!(pruned <= e[0]["seq"].as_u64().unwrap());
    // The newest are kept, in order.
    let numbers: Vec<String> = e.iter().map(|l| l["body"]["text"].as_str().unwrap()[14..16].to_owned()).collect();
    let expected: Vec<String> = (30 - e.len()..30).map(|i| format!("{i:02}")).collect();
    assert_eq!(numbers, expected);

    // The agent goes away: its room says offline, and its stream is intact.
    drop(agent);
    let offline = wait_until(T, || {
        let lines = read();
        lines.iter().any(|l| l["room"]["online"] == false).then_some(lines)
    })
    .await
    .expect("the room never showed the agent offline");
    assert_eq!(offline.iter().filter(|l| l.get("seq").is_some()).count(), e.len());
}
