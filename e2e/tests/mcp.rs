//! `plexus mcp` driven by an independent client — the official MCP Python SDK (`e2e/mcp/client.py`,
//! installed from PyPI into a virtualenv on first use) — against a real broker: the full agent
//! scenario, no acknowledgement without a listening client, and hooks that flip status and
//! release held messages.

use std::{
    io::Write,
    process::{Child, ChildStdin, Command},
    time::Duration,
};

use plexus_e2e::{
    agent::{spawn_client, Lines},
    bin, mcp_client_script, mcp_python, wait_until, Broker, Mesh, Peer, TestDb,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// A `client.py listen` process: the stand-in for an agent with `plexus mcp` attached.
struct Listener {
    child: Child,
    stdin: ChildStdin,
    lines: Lines,
}

impl Listener {
    fn start(peer: &Peer, session: &str) -> Listener {
        Listener::start_with_env(peer, session, &[])
    }

    /// With extra environment for the client, its `plexus mcp` and its hooks.
    fn start_with_env(peer: &Peer, session: &str, env: &[(&str, &str)]) -> Listener {
        Listener::spawn_env(&["listen", bin("plexus").to_str().unwrap(), peer.home.to_str().unwrap(), session], env)
    }

    /// A client without channel support (started as a plain MCP client would start it) that
    /// joins `groups`.
    fn start_pull_only(peer: &Peer, session: &str, groups: &str) -> Listener {
        Listener::spawn(&["pull", bin("plexus").to_str().unwrap(), peer.home.to_str().unwrap(), session, groups])
    }

    fn spawn(args: &[&str]) -> Listener {
        Listener::spawn_env(args, &[])
    }

    fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Listener {
        let (child, stdin, lines) = spawn_client(args, env);
        Listener { child, stdin, lines }
    }

    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// Contents of the channel notifications received so far.
    fn contents(&self) -> Vec<String> {
        self.lines().iter().filter_map(|l| l["content"].as_str().map(str::to_owned)).collect()
    }

    async fn wait(&self, pred: impl Fn(&Value) -> bool) -> bool {
        wait_until(T, || self.lines().iter().any(&pred).then_some(())).await.is_some()
    }

    fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_present(watcher: &Peer, name: &str) {
    let present = wait_until(T, || {
        let peers = watcher.json(&["peers"])["peers"].clone();
        peers.as_array()?.iter().any(|p| p["name"] == name).then_some(())
    })
    .await;
    assert!(present.is_some(), "{name} never became present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_mcp_client_drives_two_agent_sessions() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let out = Command::new(mcp_python())
        .arg(mcp_client_script())
        .args(["drive", bin("plexus").to_str().unwrap()])
        .arg(&mesh.peers[0].home)
        .arg(&mesh.peers[1].home)
        .output()
        .expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().ends_with("OK"),
        "MCP scenario failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains("pydantic")).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_without_a_listening_client() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let mut first = Listener::start(bo, "agent-1");
    assert!(first.wait(|l| l["ready"] == true).await);
    wait_present(ana, "bo").await;
    for i in 0..10 {
        ana.json(&["send", "bo", &format!("m{i}"), "--priority", "now"]);
    }
    assert!(wait_until(T, || (first.contents().len() >= 3).then_some(())).await.is_some());
    // The agent dies mid-stream; its server sees stdin close and exits without acking more.
    first.kill();
    // Let the reader drain what the dead client printed before it died.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = first.contents();
    for i in 10..20 {
        ana.json(&["send", "bo", &format!("m{i}"), "--priority", "now"]);
    }
    // The agent resumes its conversation with the same session identity.
    let mut second = Listener::start(bo, "agent-1");
    assert!(second.wait(|l| l["ready"] == true).await);
    second.command("inbox");
    assert!(second.wait(|l| l.get("inbox").is_some()).await);
    let got_all = wait_until(T, || {
        let mut seen: Vec<String> = before.clone();
        seen.extend(second.contents());
        for l in second.lines() {
            for m in l["inbox"]["messages"].as_array().into_iter().flatten() {
                seen.push(m["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        (0..20).all(|i| seen.iter().any(|c| c.ends_with(&format!("\nm{i}")) || c == &format!("m{i}"))).then_some(())
    })
    .await;
    assert!(got_all.is_some(), "lost messages: before {before:?}, after {:?}", second.lines());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_events_flip_status_and_release_held_messages() {
    hooks_flip_status(&[]).await;
}

/// Without `/proc` (macOS, the BSDs): the hook and the server find their shared agent with
/// `ps`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_find_their_server_without_proc() {
    hooks_flip_status(&[("PLEXUS_PROC_ROOT", "/nonexistent")]).await;
}

/// With the identity `plexus launch` puts in the agent's environment, which works on any
/// platform (no process tree at all: `ps` is not even on the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_find_their_server_by_the_launch_identity() {
    hooks_flip_status(&[
        ("PLEXUS_PROC_ROOT", "/nonexistent"),
        ("PLEXUS_AGENT_ID", "e2e-agent-7"),
        ("PATH", "/nonexistent"),
    ])
    .await;
}

async fn hooks_flip_status(env: &[(&str, &str)]) {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let mut agent = Listener::start_with_env(bo, "hooked", env);
    assert!(agent.wait(|l| l["ready"] == true).await);
    wait_present(ana, "bo").await;

    let status_of_bo = || {
        let peers = ana.json(&["peers"])["peers"].clone();
        peers.as_array().and_then(|a| a.iter().find(|p| p["name"] == "bo").cloned())
    };
    agent.command("hook UserPromptSubmit");
    assert!(agent.wait(|l| l["hook"] == "UserPromptSubmit" && l["rc"] == 0).await);
    let working =
        wait_until(T, || status_of_bo().filter(|p| p["status"] == "working").map(|p| p["source"].clone())).await;
    assert_eq!(working, Some(Value::from("hook")), "status not set by the hook");

    ana.json(&["send", "bo", "held-until-idle", "--priority", "next"]);
    ana.json(&["send", "bo", "urgent", "--priority", "now"]);
    assert!(wait_until(T, || agent.contents().iter().any(|c| c.ends_with("urgent")).then_some(())).await.is_some());
    assert!(!agent.contents().iter().any(|c| c.ends_with("held-until-idle")), "next was pushed while working");

    agent.command("hook Stop");
    assert!(agent.wait(|l| l["hook"] == "Stop").await);
    let released =
        wait_until(T, || agent.contents().iter().any(|c| c.ends_with("held-until-idle")).then_some(())).await;
    assert!(released.is_some(), "held message not released when the hook reported idle");
    assert_eq!(status_of_bo().map(|p| p["status"].clone()), Some(Value::from("idle")));
}

/// Delivery state of `id` (sent by `sender`) for the recipient session `session`.
fn state_for(sender: &Peer, id: &str, session: &Value) -> Option<String> {
    let status = sender.json(&["message", "status", id]);
    status["recipients"].as_array()?.iter().find(|r| &r["session_id"] == session)?["state"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_channels_reads_every_priority_and_its_groups_through_the_inbox() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let mut agent = Listener::start_pull_only(bo, "plain-client", "eng");
    assert!(agent.wait(|l| l["ready"] == true).await);
    wait_present(ana, "bo").await;
    let peers = ana.json(&["peers"])["peers"].clone();
    let session = peers.as_array().unwrap().iter().find(|p| p["name"] == "bo").unwrap()["session_id"].clone();

    let mut ids = Vec::new();
    for (text, priority) in [("p-now", "now"), ("p-next", "next"), ("p-low", "low")] {
        ids.push(ana.json(&["send", "bo", text, "--priority", priority])["id"].as_str().unwrap().to_owned());
    }
    // bo's agent joined @eng through `plexus mcp --groups eng`.
    ana.json(&["send", "@eng", "to-eng", "--priority", "now"]);
    ana.json(&["remind", "add", "eng-reminder", "--in", "1s", "--to", "@eng", "--priority", "now"]);
    // Nothing was pushed to a client that cannot surface it, so nothing claims it was.
    for id in &ids {
        assert_eq!(state_for(ana, id, &session).as_deref(), Some("queued"), "a message bo never saw");
    }

    let wanted = ["p-now", "p-next", "p-low", "to-eng", "eng-reminder"];
    let inbox_replies = |agent: &Listener| agent.lines().iter().filter(|l| l.get("inbox").is_some()).count();
    let deadline = std::time::Instant::now() + T;
    let texts = loop {
        let asked = inbox_replies(&agent);
        agent.command("inbox");
        assert!(
            wait_until(T, || (inbox_replies(&agent) > asked).then_some(())).await.is_some(),
            "inbox tool did not answer"
        );
        let mut texts: Vec<String> = Vec::new();
        for l in agent.lines() {
            assert_eq!(l["notifications"].as_u64().unwrap_or(0), 0, "a channel notification reached a plain client");
            for m in l["inbox"]["messages"].as_array().into_iter().flatten() {
                texts.push(m["text"].as_str().unwrap_or_default().to_owned());
            }
        }
        if wanted.iter().all(|w| texts.iter().any(|t| t == w)) {
            break texts;
        }
        assert!(std::time::Instant::now() < deadline, "never read everything through the inbox tool: {texts:?}");
    };
    for w in wanted {
        assert_eq!(texts.iter().filter(|t| *t == w).count(), 1, "{w} surfaced more than once: {texts:?}");
    }
    // Read through the tool, and said so.
    for id in &ids {
        let read = wait_until(T, || (state_for(ana, id, &session).as_deref() == Some("read")).then_some(())).await;
        assert!(read.is_some(), "{id}: {:?}", state_for(ana, id, &session));
    }
}
