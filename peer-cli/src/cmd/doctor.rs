//! `plexus doctor`: every check a user could get wrong, each with its fix. A person who never
//! set up an agent is not failed for it: the agent checks then only say how to.

use anyhow::Result;
use plexus_proto::types::{SessionMode, Status};
use serde_json::{json, Value};

use crate::{
    ctx::{now_ms, session_profile, Ctx, Reported},
    install,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Fail,
    Info,
}

struct Check {
    name: String,
    level: Level,
    detail: String,
}

impl Check {
    fn new(name: &str, ok: bool, detail: String) -> Check {
        Check { name: name.into(), level: if ok { Level::Ok } else { Level::Fail }, detail }
    }
}

pub(crate) async fn doctor(ctx: &Ctx) -> Result<()> {
    let mut checks: Vec<Check> = Vec::new();
    let profile = ctx.profile();
    match &profile {
        Ok(p) => checks.push(Check::new("profile", true, format!("{} at {}", p.name, p.path(&ctx.home).display()))),
        Err(e) => checks.push(Check::new("profile", false, format!("{e}; fix: plexus mesh create or plexus join"))),
    }
    if let Ok(p) = &profile {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p.path(&ctx.home)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            let ok = mode & 0o077 == 0;
            let detail = if ok {
                format!("{mode:o}")
            } else {
                format!("{mode:o} is readable by others; fix: chmod 600 {}", p.path(&ctx.home).display())
            };
            checks.push(Check::new("key file mode", ok, detail));
        }
        checks.push(Check::new(
            "mesh key",
            p.mesh_key.is_some(),
            if p.mesh_key.is_some() {
                "present".into()
            } else {
                "not yet granted; fix: stay online (plexus inbox --follow) while a member holding it is online".into()
            },
        ));
        let started = now_ms();
        let sp = session_profile(p, Status::Idle, &[]);
        match plexus_client::session::connect(p, SessionMode::Control, None, sp).await {
            Ok((conn, w)) => {
                let rtt = now_ms().saturating_sub(started);
                checks.push(Check::new(
                    "broker",
                    true,
                    format!("{} reachable, node {}, protocol v{}", conn.url, w.node_id, plexus_proto::PROTOCOL_VERSION),
                ));
                let skew = (w.server_time_ms as i64 - (started + rtt / 2) as i64).unsigned_abs();
                let detail = if skew < 30_000 {
                    format!("{skew} ms")
                } else {
                    format!("{skew} ms; fix: sync your clock (hello is rejected past the broker's window)")
                };
                checks.push(Check::new("clock skew", skew < 30_000, detail));
                conn.close().await;
            }
            Err(e) => checks.push(Check::new(
                "broker",
                false,
                format!("{e}; fix: check the URL in {} and that the broker runs", p.path(&ctx.home).display()),
            )),
        }
    }
    if let Ok(paths) = install::Paths::from_env() {
        let agent: Vec<Check> =
            install::checks(&paths).into_iter().map(|(name, ok, detail)| Check::new(&name, ok, detail)).collect();
        // Nothing of an agent set up at all: a person using the CLI only. Say how, fail nothing.
        let none = agent.iter().filter(|c| c.name != "plexus on PATH").all(|c| c.level == Level::Fail);
        for mut c in agent {
            if none && c.name != "plexus on PATH" {
                c.level = Level::Info;
                c.detail = "no agent set up here (to add one: plexus install)".into();
            }
            checks.push(c);
        }
    }
    let all_ok = checks.iter().all(|c| c.level != Level::Fail);
    let rows: Vec<Value> = checks
        .iter()
        .map(|c| {
            let state = match c.level {
                Level::Ok => "ok",
                Level::Fail => "fail",
                Level::Info => "info",
            };
            json!({"check": c.name, "ok": c.level != Level::Fail, "state": state, "detail": c.detail})
        })
        .collect();
    ctx.emit(json!({"ok": all_ok, "checks": rows}), || {
        checks
            .iter()
            .map(|c| {
                let mark = match c.level {
                    Level::Ok => "ok  ",
                    Level::Fail => "FAIL",
                    Level::Info => "--  ",
                };
                format!("{mark} {:<28} {}", c.name, c.detail)
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    if !all_ok {
        return Err(Reported("some checks failed".into()).into());
    }
    Ok(())
}
