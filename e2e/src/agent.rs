//! An agent as Claude Code runs one: `e2e/mcp/client.py` running `plexus mcp` through the
//! official MCP Python SDK, invoking `plexus hook …` with Claude Code's hook JSON on stdin and
//! appending the assistant's turns to a transcript file.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};

use crate::{bin, mcp_client_script, mcp_python, wait_until, Peer};

const T: Duration = Duration::from_secs(30);

/// The agent: an MCP client running `plexus mcp`, whose stdin lines run hooks and tools.
pub struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: Lines,
    /// The transcript file its hooks name.
    pub transcript: PathBuf,
    /// Its working directory, a repository (`.git` inside).
    pub repo: PathBuf,
}

/// The lines an MCP client process prints, parsed as JSON, collected as they come.
pub type Lines = Arc<Mutex<Vec<Value>>>;

/// Start `e2e/mcp/client.py` with `args` and extra environment; its stdin, and its JSON lines.
pub fn spawn_client(args: &[&str], env: &[(&str, &str)]) -> (Child, ChildStdin, Lines) {
    let mut child = Command::new(mcp_python())
        .arg(mcp_client_script())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the MCP client");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(v);
            }
        }
    });
    (child, stdin, lines)
}

impl Agent {
    /// Start it for `peer`, with extra environment.
    pub fn start(peer: &Peer, env: &[(&str, &str)]) -> Agent {
        let home = peer.home.to_str().unwrap();
        let (child, stdin, lines) = spawn_client(&["listen", bin("plexus").to_str().unwrap(), home, "room-agent"], env);
        let repo = peer.home.join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src")).unwrap();
        Agent { child, stdin, lines, transcript: peer.home.join("transcript.jsonl"), repo }
    }

    /// Lines printed so far (notifications, hook results, tool results).
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line satisfying `pred`.
    pub async fn wait(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        wait_until(T, || self.lines().into_iter().find(&pred)).await
    }

    /// A command line to the client.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Run a hook as Claude Code does; returns its result line (rc, stdout, ms).
    pub async fn hook(&mut self, event: &str, input: Value) -> Value {
        let before = self.lines().iter().filter(|l| l["hook"] == event).count();
        self.hook_start(event, input);
        let lines = &self.lines;
        let done = wait_until(T + T, || {
            let l = lines.lock().unwrap();
            let mine: Vec<&Value> = l.iter().filter(|l| l["hook"] == event).collect();
            mine.get(before).map(|v| (*v).clone())
        })
        .await;
        done.unwrap_or_else(|| panic!("hook {event} never returned"))
    }

    /// Start a hook without waiting for it.
    pub fn hook_start(&mut self, event: &str, mut input: Value) {
        input["session_id"] = json!("claude-session-1");
        input["transcript_path"] = json!(self.transcript.to_string_lossy());
        input["cwd"] = json!(self.repo.to_string_lossy());
        input["hook_event_name"] = json!(event);
        let line = format!("hookjson {event} {input}");
        self.command(&line);
    }

    /// Claude Code appends the assistant's turn to its transcript.
    pub fn say(&self, text: &str) {
        let line =
            json!({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}});
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.transcript).unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
