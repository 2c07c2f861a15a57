//! What every command shares: where the profiles live, which mesh, text or `--json` output
//! (exactly one JSON document per command, errors included), a one-shot connection, and the
//! parsers for the small value types people type.

use std::{io::IsTerminal, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};
use plexus_client::{Connection, Profile, Session, SessionOptions};
use plexus_proto::{
    ops,
    types::{GroupRole, Priority, SessionMode, SessionProfile, Status, StatusSource},
};
use serde_json::Value;

/// The command's output has been printed, including its failure: exit 1 without printing
/// another document.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(pub(crate) String);

pub(crate) struct Ctx {
    pub(crate) home: PathBuf,
    pub(crate) mesh: Option<String>,
    pub(crate) json: bool,
}

impl Ctx {
    /// Print one result: `value` with `--json`, else the text.
    pub(crate) fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    /// Whether people read the output (text to a terminal): tables get headers then.
    pub(crate) fn tty(&self) -> bool {
        !self.json && std::io::stdout().is_terminal()
    }

    pub(crate) fn profile(&self) -> Result<Profile> {
        Ok(Profile::load(&self.home, self.mesh.as_deref())?)
    }

    /// A session of this profile's own session id, not connected yet.
    pub(crate) fn session(&self, profile: Profile, mode: SessionMode, sp: SessionProfile) -> Session {
        Session::new(self.home.clone(), profile, SessionOptions { mode, profile: sp, policy: Default::default() })
    }

    /// One command's connection: a control session (not present, no pushes).
    pub(crate) async fn control(&self) -> Result<(Session, Arc<Connection>)> {
        let p = self.profile()?;
        let sp = session_profile(&p, Status::Idle, &[]);
        let session = self.session(p, SessionMode::Control, sp);
        session.connect_once().await?;
        let conn = session.conn().await?;
        Ok((session, conn))
    }
}

fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// What a person's session shows its peers; `groups` are joined (membership is durable).
pub(crate) fn session_profile(p: &Profile, status: Status, groups: &[String]) -> SessionProfile {
    SessionProfile {
        display_name: Some(p.display_name.clone()),
        status,
        groups: groups.iter().map(|g| GroupRole { name: g.trim_start_matches('@').to_owned(), role: None }).collect(),
        cwd: std::env::current_dir().ok().map(|d| d.display().to_string()),
        host: host_name(),
        agent_kind: Some("human".into()),
        ..SessionProfile::default()
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?} (use e.g. 30m, 24h, 7d)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("bad duration unit in {s:?} (s, m, h or d)"),
    };
    Ok(Duration::from_secs(secs))
}

pub(crate) fn millis(d: &str) -> Result<u64> {
    Ok(parse_duration(d)?.as_millis() as u64)
}

pub(crate) fn parse_priority(s: &str) -> Result<Priority> {
    Ok(match s {
        "now" => Priority::Now,
        "next" => Priority::Next,
        "low" => Priority::Low,
        _ => bail!("priority is now, next or low"),
    })
}

pub(crate) fn parse_status(s: &str) -> Result<Status> {
    Ok(match s {
        "idle" => Status::Idle,
        "working" => Status::Working,
        "dnd" => Status::Dnd,
        _ => bail!("status is idle, working or dnd"),
    })
}

pub(crate) fn parse_source(s: &str) -> Result<StatusSource> {
    Ok(match s {
        "manual" => StatusSource::Manual,
        "hook" => StatusSource::Hook,
        "jsonl" => StatusSource::Jsonl,
        _ => bail!("source is manual, hook or jsonl"),
    })
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The members of the mesh (for resolving names).
pub(crate) async fn members(conn: &Connection) -> Result<Vec<plexus_proto::types::MemberInfo>> {
    Ok(conn.call(&ops::Members {}).await?.members)
}
