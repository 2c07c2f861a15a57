//! `plexus mcp` driven by an independent client — the official MCP Python SDK (`e2e/mcp/client.py`,
//! installed from PyPI into a virtualenv on first use) — against a real broker: the full agent
//! scenario, no acknowledgement without a listening client, and hooks that flip status and
//! release held messages.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use plexus_e2e::{bin, mcp_client_script, mcp_python, wait_until, Broker, Mesh, Peer, TestDb};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// A `client.py listen` process: the stand-in for an agent with `plexus mcp` attached.
struct Listener {
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Listener {
    fn start(peer: &Peer, session: &str) -> Listener {
        let mut child = Command::new(mcp_python())
            .arg(mcp_client_script())
            .args(["listen", bin("plexus").to_str().unwrap(), peer.home.to_str().unwrap(), session])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the MCP client");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
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
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let mut agent = Listener::start(bo, "hooked");
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
