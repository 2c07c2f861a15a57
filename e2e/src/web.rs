//! Browser scenarios (`web/tests/*.mjs`, Playwright's `playwright-core` driving Debian's
//! Chromium) and the harness side of their conversation: each request is a JSON line on the
//! script's stdout, answered with a JSON line on its stdin; `{"done": true}` ends a scenario
//! that passed. Screenshots go to `$CARGO_TARGET_DIR/web-screenshots`.

use std::{path::PathBuf, process::Stdio};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use crate::{Broker, Peer};

/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the scenarios save screenshots.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("web-screenshots")
}

/// The web app's address on a broker node.
pub fn http(broker: &Broker) -> String {
    format!("http://127.0.0.1:{}/", broker.port)
}

/// A running browser scenario.
pub struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Whether it said `done`.
    pub finished: bool,
}

impl Script {
    /// Start `web/tests/<name>` with the web app at `urls` (`PLEXUS_WEB_A`, `PLEXUS_WEB_B`, …).
    pub fn start(name: &str, urls: &[String]) -> Script {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "Debian's chromium is needed for the browser tests (scripts/test.sh installs it)"
        );
        let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web");
        assert!(
            web.join("node_modules/playwright-core").exists(),
            "run scripts/web.sh first (it installs playwright-core)"
        );
        let shots = screenshots_dir();
        std::fs::create_dir_all(&shots).expect("screenshot directory");
        let mut cmd = Command::new("node");
        cmd.arg(format!("tests/{name}"))
            .current_dir(&web)
            .env("PLEXUS_WEB_SHOTS", &shots)
            .env("PLEXUS_CHROMIUM", CHROMIUM)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (i, url) in urls.iter().enumerate() {
            cmd.env(format!("PLEXUS_WEB_{}", (b'A' + i as u8) as char), url);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Script { child, stdin, lines, finished: false }
    }

    /// The next request, or `None` once the scenario ended (see [`Script::finished`]).
    pub async fn next(&mut self) -> Option<Value> {
        while let Ok(Some(line)) = self.lines.next_line().await {
            let Ok(req) = serde_json::from_str::<Value>(&line) else {
                eprintln!("[web] {line}");
                continue;
            };
            if req.get("done").is_some() {
                self.finished = true;
                return None;
            }
            return Some(req);
        }
        None
    }

    /// Answer a request.
    pub async fn reply(&mut self, reply: Value) {
        self.stdin.write_all(format!("{reply}\n").as_bytes()).await.expect("answer the script");
    }

    /// Wait for the script to end; true when it passed.
    pub async fn passed(mut self) -> bool {
        let status = self.child.wait().await.expect("the script ends");
        self.finished && status.success()
    }
}

/// Answer a `{"do": "cli", "args": [...]}` request: the CLI command as `peer`, with `--json`.
pub fn cli(peer: &Peer, req: &Value) -> Value {
    let id = req["id"].clone();
    let mut all = vec!["--json".to_owned()];
    all.extend(req["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = peer.run(&refs);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        serde_json::json!({"id": id, "ok": serde_json::from_str::<Value>(stdout.trim()).unwrap_or(Value::Null)})
    } else {
        serde_json::json!({"id": id, "err": format!("plexus {all:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr))})
    }
}
