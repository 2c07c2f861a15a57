//! `plexus install` / `uninstall` against a fake home holding other tools' settings: install
//! twice leaves one registration, uninstall removes only what install added, everything else
//! survives byte for byte where the format allows it (TOML comments included), and doctor then
//! passes.

use std::{path::Path, process::Command};

use plexus_e2e::{bin, bin_dir, Broker, Mesh, TestDb};
use serde_json::{json, Value};

const OTHER_CLAUDE_JSON: &str = r#"{
  "numStartups": 12,
  "oauthAccount": {"emailAddress": "dev@example.com"},
  "mcpServers": {
    "github": {"type": "stdio", "command": "gh-mcp", "args": ["serve"]}
  }
}"#;

const OTHER_SETTINGS: &str = r#"{
  "model": "opus",
  "hooks": {
    "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "/usr/local/bin/log-prompt"}]}],
    "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/guard"}]}]
  }
}"#;

const OTHER_CODEX: &str =
    "# my codex settings\nmodel = \"o4\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\" # keep me\nargs = []\n";

fn plexus(home: &Path, plexus_home: &Path, args: &[&str]) -> std::process::Output {
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    Command::new(bin("plexus"))
        .env("HOME", home)
        .env("PLEXUS_HOME", plexus_home)
        .env("PATH", path)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .args(args)
        .output()
        .expect("run plexus")
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ours(settings: &Value, event: &str) -> usize {
    settings["hooks"][event]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| h["command"].as_str().is_some_and(|c| c.contains("plexus") && c.contains(&format!("hook {event}"))))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_is_idempotent_and_uninstall_removes_only_its_own() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let plexus_home = &mesh.peers[0].home;
    let home = std::env::temp_dir().join(format!("plexus-install-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(home.join(".claude.json"), OTHER_CLAUDE_JSON).unwrap();
    std::fs::write(home.join(".claude/settings.json"), OTHER_SETTINGS).unwrap();
    std::fs::write(home.join(".codex/config.toml"), OTHER_CODEX).unwrap();

    for _ in 0..2 {
        let out = plexus(&home, plexus_home, &["install"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let cfg = json_file(&home.join(".claude.json"));
    assert_eq!(cfg["numStartups"], 12);
    assert_eq!(cfg["oauthAccount"]["emailAddress"], "dev@example.com");
    assert_eq!(cfg["mcpServers"]["github"]["command"], "gh-mcp");
    let server = &cfg["mcpServers"]["plexus"];
    assert_eq!(server["args"], json!(["mcp"]));
    assert!(server["command"].as_str().unwrap().ends_with("/plexus"));
    assert_eq!(server["env"]["PLEXUS_HOME"], plexus_home.to_str().unwrap());
    assert_eq!(cfg["mcpServers"].as_object().unwrap().len(), 2);

    let settings = json_file(&home.join(".claude/settings.json"));
    assert_eq!(settings["model"], "opus");
    for event in [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PermissionRequest",
        "Stop",
        "Notification",
        "SessionEnd",
    ] {
        assert_eq!(ours(&settings, event), 1, "{event}: {settings}");
    }
    let prompt_hooks: Vec<String> = settings["hooks"]["UserPromptSubmit"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .map(|h| h["command"].as_str().unwrap().to_owned())
        .collect();
    assert!(prompt_hooks.contains(&"/usr/local/bin/log-prompt".to_owned()), "{prompt_hooks:?}");
    assert_eq!(settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"], "/usr/local/bin/guard");
    assert!(home.join(".claude/skills/plexus/SKILL.md").exists());

    let codex = std::fs::read_to_string(home.join(".codex/config.toml")).unwrap();
    assert!(codex.starts_with("# my codex settings\n"), "{codex}");
    assert!(codex.contains("command = \"docs-mcp\" # keep me"), "{codex}");
    assert_eq!(codex.matches("[mcp_servers.plexus]").count(), 1, "{codex}");
    assert!(codex.contains("PLEXUS_AGENT_KIND = \"codex\""), "{codex}");
    let codex_hooks = json_file(&home.join(".codex/hooks.json"));
    for event in ["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest", "Stop"] {
        assert_eq!(ours(&codex_hooks, event), 1, "{event}: {codex_hooks}");
    }

    // With everything registered, doctor passes.
    let out = plexus(&home, plexus_home, &["--json", "doctor"]);
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doctor["ok"], true, "{doctor}");

    let out = plexus(&home, plexus_home, &["uninstall"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let original: Value = serde_json::from_str(OTHER_CLAUDE_JSON).unwrap();
    assert_eq!(json_file(&home.join(".claude.json")), original);
    let original: Value = serde_json::from_str(OTHER_SETTINGS).unwrap();
    assert_eq!(json_file(&home.join(".claude/settings.json")), original);
    assert!(!home.join(".claude/skills/plexus").exists());
    assert_eq!(std::fs::read_to_string(home.join(".codex/config.toml")).unwrap(), OTHER_CODEX);
    assert!(!home.join(".codex/hooks.json").exists(), "install created it; uninstall removes it");

    // With no agent set up at all (a person using the CLI), doctor passes and says how to add
    // one — in exactly one JSON document.
    let out = plexus(&home, plexus_home, &["--json", "doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "one document: {stdout}");
    let doctor: Value = serde_json::from_str(&stdout).unwrap();
    assert!(out.status.success(), "{doctor}");
    let reg =
        doctor["checks"].as_array().unwrap().iter().find(|c| c["check"] == "Claude Code MCP registration").unwrap();
    assert_eq!(reg["state"], "info");
    assert!(reg["detail"].as_str().unwrap().contains("plexus install"));

    // A half-done setup (registered, hooks gone) fails and names the fix — still one document.
    assert!(plexus(&home, plexus_home, &["install", "--claude"]).status.success());
    std::fs::write(home.join(".claude/settings.json"), OTHER_SETTINGS).unwrap();
    let out = plexus(&home, plexus_home, &["--json", "doctor"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "one document: {stdout}");
    let doctor: Value = serde_json::from_str(&stdout).unwrap();
    let hooks = doctor["checks"].as_array().unwrap().iter().find(|c| c["check"] == "Claude Code hooks").unwrap();
    assert_eq!(hooks["ok"], false);
    assert!(hooks["detail"].as_str().unwrap().contains("fix: plexus install"), "{hooks}");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let dir = std::env::temp_dir().join(format!("plexus-man-{}", uuid::Uuid::new_v4().simple()));
    let (home, plexus_home) = (dir.join("home"), dir.join("plexus"));
    for shell in ["bash", "zsh", "fish"] {
        let out = plexus(&home, &plexus_home, &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["send", "inbox", "lock", "remind", "group", "leave"] {
            assert!(script.contains(command), "{shell} completion lacks {command}");
        }
    }
    let out = plexus(&home, &plexus_home, &["man", dir.join("man").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for page in ["plexus.1", "plexus-send.1", "plexus-mesh-leave.1", "plexus-lock-acquire.1"] {
        let text = std::fs::read_to_string(dir.join("man").join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is not a man page");
    }
    let help = plexus(&home, &plexus_home, &["remind", "add", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Example"), "no examples in --help");
    let _ = std::fs::remove_dir_all(dir);
}
