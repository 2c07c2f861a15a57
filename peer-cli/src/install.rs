//! `plexus install` / `uninstall` / `launch`: register the MCP server and the status hooks with
//! Claude Code (user scope: `~/.claude.json`, `~/.claude/settings.json`, a skill file) and the
//! MCP server with Codex (`~/.codex/config.toml`, edited in place so comments and formatting
//! survive). Install is idempotent; uninstall removes only what install added — entries are
//! recognized by being this tool's (`plexus mcp`, `plexus hook …`), not by position.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde_json::{json, Map, Value};

/// Claude Code hook events `plexus hook` understands.
pub(crate) const HOOK_EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "Stop",
    "Notification",
    "SessionEnd",
];

/// The hook events Codex has (no Notification or SessionEnd).
pub(crate) const CODEX_HOOK_EVENTS: &[&str] =
    &["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PermissionRequest", "Stop"];

/// Claude Code's time limit for our hook of `event`, seconds: a permission request waits for a
/// person (`PLEXUS_APPROVAL_WAIT_SECS`, default 120); every other hook returns within seconds.
fn hook_timeout(event: &str) -> u64 {
    if event == "PermissionRequest" {
        600
    } else {
        10
    }
}

const SKILL: &str = include_str!("skill.md");

/// Where each agent keeps its configuration.
pub(crate) struct Paths {
    /// `~/.claude.json` (user-scope MCP servers).
    pub(crate) claude_json: PathBuf,
    /// `~/.claude/settings.json` (hooks).
    pub(crate) claude_settings: PathBuf,
    /// `~/.claude/skills/plexus/SKILL.md`.
    pub(crate) skill: PathBuf,
    /// `~/.codex/config.toml`.
    pub(crate) codex: PathBuf,
    /// `~/.codex/hooks.json` (Codex's hooks, the same shape as Claude Code's).
    pub(crate) codex_hooks: PathBuf,
}

impl Paths {
    /// From `$HOME` (and `$CLAUDE_CONFIG_DIR`, `$CODEX_HOME` when set).
    pub(crate) fn from_env() -> Result<Paths> {
        let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| anyhow!("HOME is not set"))?;
        let claude_dir =
            std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".claude"));
        let codex_dir = std::env::var_os("CODEX_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".codex"));
        Ok(Paths {
            claude_json: home.join(".claude.json"),
            claude_settings: claude_dir.join("settings.json"),
            skill: claude_dir.join("skills/plexus/SKILL.md"),
            codex: codex_dir.join("config.toml"),
            codex_hooks: codex_dir.join("hooks.json"),
        })
    }
}

/// What the agent runs: this binary, with the config home and mesh pinned when not default.
pub(crate) struct Command {
    /// Absolute path of `plexus`.
    pub(crate) program: String,
    /// Arguments before the subcommand (`--mesh NAME`).
    pub(crate) global_args: Vec<String>,
    /// Environment (`PLEXUS_HOME` when set).
    pub(crate) env: Map<String, Value>,
}

impl Command {
    /// For the running binary.
    pub(crate) fn current(mesh: Option<&str>) -> Result<Command> {
        let program = std::env::current_exe()?.to_string_lossy().into_owned();
        let mut env = Map::new();
        if let Some(h) = std::env::var_os("PLEXUS_HOME") {
            env.insert("PLEXUS_HOME".into(), Value::String(h.to_string_lossy().into_owned()));
        }
        let global_args = mesh.map(|m| vec!["--mesh".to_owned(), m.to_owned()]).unwrap_or_default();
        Ok(Command { program, global_args, env })
    }

    fn mcp_args(&self) -> Vec<String> {
        let mut a = self.global_args.clone();
        a.push("mcp".into());
        a
    }

    fn hook_command(&self, event: &str) -> String {
        let mut parts = vec![shell_quote(&self.program)];
        parts.extend(self.global_args.iter().map(|a| shell_quote(a)));
        parts.push("hook".into());
        parts.push(event.into());
        let env: Vec<String> =
            self.env.iter().map(|(k, v)| format!("{k}={}", shell_quote(v.as_str().unwrap_or_default()))).collect();
        if env.is_empty() {
            parts.join(" ")
        } else {
            format!("{} {}", env.join(" "), parts.join(" "))
        }
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Whether a hook command is one of ours: `[ENV=…] …/plexus [global args] hook <Event>`.
fn is_our_hook(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(prog) =
        words.iter().position(|w| Path::new(w.trim_matches('\'')).file_name().is_some_and(|n| n == "plexus"))
    else {
        return false;
    };
    words[prog + 1..].contains(&"hook")
}

fn read_json(path: &Path) -> Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(json!({})),
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; not touching it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("plexus-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    // Keep the original's permissions (~/.claude.json holds credentials).
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    write_atomic(path, &(serde_json::to_string_pretty(v)? + "\n"))
}

/// Remove our hook entries from a settings object; drop containers left empty by that.
fn strip_hooks(settings: &mut Value) {
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else { return };
    for event in HOOK_EVENTS {
        let Some(groups) = hooks.get_mut(*event).and_then(Value::as_array_mut) else { continue };
        for g in groups.iter_mut() {
            if let Some(list) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                list.retain(|h| !h.get("command").and_then(Value::as_str).is_some_and(is_our_hook));
            }
        }
        groups.retain(|g| g.get("hooks").and_then(Value::as_array).is_none_or(|l| !l.is_empty()));
        if groups.is_empty() {
            hooks.remove(*event);
        }
    }
    if hooks.is_empty() {
        if let Some(o) = settings.as_object_mut() {
            o.remove("hooks");
        }
    }
}

/// Put our hook command for each of `events` into a settings file's `hooks` (after removing
/// any of ours already there).
fn add_hooks(path: &Path, cmd: &Command, events: &[&str]) -> Result<()> {
    let mut settings = read_json(path)?;
    strip_hooks(&mut settings);
    let obj = settings.as_object_mut().ok_or_else(|| anyhow!("{} is not a JSON object", path.display()))?;
    let hooks = obj.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks.as_object_mut().ok_or_else(|| anyhow!("hooks is not an object"))?;
    for event in events {
        let groups = hooks.entry(*event).or_insert_with(|| json!([]));
        let groups = groups.as_array_mut().ok_or_else(|| anyhow!("hooks.{event} is not a list"))?;
        groups.push(
            json!({"hooks": [{"type": "command", "command": cmd.hook_command(event), "timeout": hook_timeout(event)}]}),
        );
    }
    write_json(path, &settings)
}

/// Remove our hooks from a settings file; whether it changed.
fn remove_hooks(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let mut settings = read_json(path)?;
    let before = settings.clone();
    strip_hooks(&mut settings);
    if settings == before {
        return Ok(false);
    }
    if settings.as_object().is_some_and(serde_json::Map::is_empty) {
        // Nothing but our hooks was in it.
        std::fs::remove_file(path)?;
    } else {
        write_json(path, &settings)?;
    }
    Ok(true)
}

/// What install changed, for the report.
#[derive(Default, serde::Serialize)]
pub(crate) struct Report {
    /// Files written.
    pub(crate) wrote: Vec<String>,
    /// Notes for the user.
    pub(crate) notes: Vec<String>,
}

/// Register everything (idempotent).
pub(crate) fn install(paths: &Paths, cmd: &Command, claude: bool, codex: bool) -> Result<Report> {
    let mut r = Report::default();
    if claude {
        let mut cfg = read_json(&paths.claude_json)?;
        let servers = cfg
            .as_object_mut()
            .ok_or_else(|| anyhow!("{} is not a JSON object", paths.claude_json.display()))?
            .entry("mcpServers")
            .or_insert_with(|| json!({}));
        let servers = servers.as_object_mut().ok_or_else(|| anyhow!("mcpServers is not an object"))?;
        servers.insert(
            plexus_client::agent::SERVER_NAME.into(),
            json!({"type": "stdio", "command": cmd.program, "args": cmd.mcp_args(), "env": cmd.env}),
        );
        write_json(&paths.claude_json, &cfg)?;
        r.wrote.push(paths.claude_json.display().to_string());

        add_hooks(&paths.claude_settings, cmd, HOOK_EVENTS)?;
        r.wrote.push(paths.claude_settings.display().to_string());

        write_atomic(&paths.skill, SKILL)?;
        r.wrote.push(paths.skill.display().to_string());
        r.notes.push("start Claude Code with `plexus launch` to receive pushed messages (channels)".into());
    }
    if codex {
        let text = std::fs::read_to_string(&paths.codex).unwrap_or_default();
        let mut doc: toml_edit::DocumentMut =
            text.parse().with_context(|| format!("{} is not valid TOML; not touching it", paths.codex.display()))?;
        let servers = doc.entry("mcp_servers").or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        let servers = servers.as_table_mut().ok_or_else(|| anyhow!("mcp_servers is not a table"))?;
        let mut entry = toml_edit::Table::new();
        entry.insert("command", toml_edit::value(cmd.program.clone()));
        let mut args = toml_edit::Array::new();
        for a in cmd.mcp_args() {
            args.push(a);
        }
        entry.insert("args", toml_edit::value(args));
        // The lobby shows the agent as Codex.
        let mut env = toml_edit::InlineTable::new();
        env.insert("PLEXUS_AGENT_KIND", "codex".into());
        for (k, v) in &cmd.env {
            env.insert(k, v.as_str().unwrap_or_default().into());
        }
        entry.insert("env", toml_edit::value(env));
        servers.insert(plexus_client::agent::SERVER_NAME, toml_edit::Item::Table(entry));
        write_atomic(&paths.codex, &doc.to_string())?;
        r.wrote.push(paths.codex.display().to_string());
        add_hooks(&paths.codex_hooks, cmd, CODEX_HOOK_EVENTS)?;
        r.wrote.push(paths.codex_hooks.display().to_string());
        r.notes.push(
            "Codex asks you to trust new hooks once; its stream shows prompts, tool calls and permission requests"
                .into(),
        );
    }
    Ok(r)
}

/// Remove what install added, and nothing else.
pub(crate) fn uninstall(paths: &Paths) -> Result<Report> {
    let mut r = Report::default();
    if paths.claude_json.exists() {
        let mut cfg = read_json(&paths.claude_json)?;
        let removed = cfg
            .get_mut("mcpServers")
            .and_then(Value::as_object_mut)
            .and_then(|s| s.remove(plexus_client::agent::SERVER_NAME))
            .is_some();
        if removed {
            if cfg["mcpServers"].as_object().is_some_and(serde_json::Map::is_empty) {
                if let Some(o) = cfg.as_object_mut() {
                    o.remove("mcpServers");
                }
            }
            write_json(&paths.claude_json, &cfg)?;
            r.wrote.push(paths.claude_json.display().to_string());
        }
    }
    if remove_hooks(&paths.claude_settings)? {
        r.wrote.push(paths.claude_settings.display().to_string());
    }
    if remove_hooks(&paths.codex_hooks)? {
        r.wrote.push(paths.codex_hooks.display().to_string());
    }
    if std::fs::read_to_string(&paths.skill).is_ok_and(|s| s == SKILL) {
        std::fs::remove_file(&paths.skill)?;
        if let Some(dir) = paths.skill.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        r.wrote.push(format!("removed {}", paths.skill.display()));
    }
    if let Ok(text) = std::fs::read_to_string(&paths.codex) {
        let mut doc: toml_edit::DocumentMut =
            text.parse().with_context(|| format!("{} is not valid TOML; not touching it", paths.codex.display()))?;
        let removed = doc
            .get_mut("mcp_servers")
            .and_then(toml_edit::Item::as_table_mut)
            .and_then(|t| t.remove(plexus_client::agent::SERVER_NAME))
            .is_some();
        if removed {
            if doc.get("mcp_servers").and_then(toml_edit::Item::as_table).is_some_and(toml_edit::Table::is_empty) {
                doc.remove("mcp_servers");
            }
            write_atomic(&paths.codex, &doc.to_string())?;
            r.wrote.push(paths.codex.display().to_string());
        }
    }
    Ok(r)
}

/// What `plexus doctor` checks about the agent setup: (check, ok, detail or fix).
pub(crate) fn checks(paths: &Paths) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("plexus").is_file()))
        .unwrap_or(false);
    out.push((
        "plexus on PATH".into(),
        on_path,
        if on_path {
            "yes".into()
        } else {
            "no; fix: put the plexus binary in a directory on PATH (install registers its absolute path anyway)".into()
        },
    ));
    let cfg = read_json(&paths.claude_json).unwrap_or(Value::Null);
    let server = cfg.get("mcpServers").and_then(|s| s.get(plexus_client::agent::SERVER_NAME));
    let registered = server.is_some();
    out.push((
        "Claude Code MCP registration".into(),
        registered,
        match server.and_then(|s| s.get("command")).and_then(Value::as_str) {
            Some(cmd) if Path::new(cmd).exists() => format!("{cmd} (in {})", paths.claude_json.display()),
            Some(cmd) => format!("{cmd} does not exist; fix: plexus install"),
            None => "missing; fix: plexus install".into(),
        },
    ));
    let settings = read_json(&paths.claude_settings).unwrap_or(Value::Null);
    let missing: Vec<&str> = HOOK_EVENTS
        .iter()
        .copied()
        .filter(|e| {
            !settings["hooks"][*e].as_array().into_iter().flatten().any(|g| {
                g["hooks"].as_array().into_iter().flatten().any(|h| h["command"].as_str().is_some_and(is_our_hook))
            })
        })
        .collect();
    out.push((
        "Claude Code hooks".into(),
        missing.is_empty(),
        if missing.is_empty() {
            "all registered".into()
        } else {
            format!("missing {}; fix: plexus install", missing.join(", "))
        },
    ));
    if paths.codex.exists() {
        let has = std::fs::read_to_string(&paths.codex)
            .ok()
            .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok())
            .is_some_and(|d| d.get("mcp_servers").and_then(|s| s.get(plexus_client::agent::SERVER_NAME)).is_some());
        out.push((
            "Codex MCP registration".into(),
            has,
            if has { paths.codex.display().to_string() } else { "missing; fix: plexus install --codex".into() },
        ));
    }
    out
}

/// `plexus launch`: Claude Code with this server's channel enabled.
pub(crate) fn launch(args: &[String]) -> Result<()> {
    let claude = std::env::var("PLEXUS_CLAUDE").unwrap_or_else(|_| "claude".into());
    let mut c = std::process::Command::new(&claude);
    c.arg("--dangerously-load-development-channels")
        .arg(format!("server:{}", plexus_client::agent::SERVER_NAME))
        .args(args);
    // The MCP server Claude Code spawns inherits this: it tells it pushes will be surfaced.
    c.env(plexus_client::agent::CHANNELS_ENV, "1");
    // And this ties the agent's hooks to that server without looking at the process tree.
    c.env(plexus_client::agent::AGENT_ENV, uuid::Uuid::new_v4().to_string());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = c.exec();
        Err(anyhow!("could not start {claude}: {err}; is Claude Code installed and on PATH?"))
    }
    #[cfg(not(unix))]
    {
        let status = c.status().with_context(|| format!("starting {claude}"))?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_only_our_hooks() {
        assert!(is_our_hook("/usr/local/bin/plexus hook Stop"));
        assert!(is_our_hook("PLEXUS_HOME=/x '/opt/my tools/plexus' --mesh team hook SessionStart"));
        assert!(is_our_hook("PLEXUS_HOME=/x /opt/plexus --mesh team hook SessionStart"));
        assert!(!is_our_hook("/usr/bin/other-tool hook Stop"));
        assert!(!is_our_hook("echo plexus"));
    }
}
