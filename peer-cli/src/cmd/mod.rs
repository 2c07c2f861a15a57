//! The commands behind the command line, one module per area; [`run`] dispatches a parsed
//! command line to them.
//!
//! - [`mesh`] — meshes, invites, joining, members, groups, who is online.
//! - [`messages`] — send, inbox (once or followed), ack, status, message status, watch.
//! - [`coord`] — state, locks, reminders, tasks, threads, memory, search.
//! - [`rooms`] — session rooms: attach, the wheel, prompts, approvals, drive grants, guard.
//! - [`audit`] — the audit log: list, and verify the chain locally.
//! - [`webhooks`] — webhooks in: add, list, remove.
//! - [`doctor`] — the checks.

pub(crate) mod audit;
pub(crate) mod coord;
pub(crate) mod doctor;
pub(crate) mod mesh;
pub(crate) mod messages;
pub(crate) mod rooms;
pub(crate) mod webhooks;

use anyhow::Result;
use clap::CommandFactory;
use plexus_proto::controls::ControlKind;

use self::coord::CoordCmd;
use crate::{
    cli::{Cli, Command, MemberCmd, MessageCmd},
    ctx::Ctx,
};

/// Run a parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        home: cli.home.clone().unwrap_or_else(plexus_client::profile::home),
        mesh: cli.mesh.clone(),
        json: cli.json,
    };
    match cli.command {
        Command::Mesh(cmd) => mesh::mesh(&ctx, cmd).await,
        Command::Invite(cmd) => mesh::invite(&ctx, cmd).await,
        Command::Join(args) => mesh::join(&ctx, args).await,
        Command::Link { code, yes } => mesh::link(&ctx, &code, yes).await,
        Command::Peers => mesh::peers(&ctx).await,
        Command::Members => mesh::members(&ctx).await,
        Command::Member(MemberCmd::Remove { who }) => mesh::member_remove(&ctx, &who).await,
        Command::Key(cmd) => mesh::key(&ctx, cmd).await,
        Command::Group(cmd) => mesh::group(&ctx, cmd).await,
        Command::Send(args) => messages::send(&ctx, args).await,
        Command::Inbox(args) => messages::inbox(&ctx, args).await,
        Command::Ack { seqs } => messages::ack(&ctx, seqs).await,
        Command::Status(cmd) => messages::status(&ctx, cmd).await,
        Command::Message(MessageCmd::Status { id }) => messages::message_status(&ctx, id).await,
        Command::Watch => messages::watch(&ctx).await,
        Command::Doctor => doctor::doctor(&ctx).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "plexus", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)?;
            ctx.emit(serde_json::json!({"dir": dir}), || format!("wrote man pages to {}", dir.display()));
            Ok(())
        }
        Command::Mcp { session, groups } => crate::mcp::run(&ctx, session, groups).await,
        Command::Install { claude, codex } => {
            let paths = crate::install::Paths::from_env()?;
            let (claude, codex) = match (claude, codex) {
                (false, false) => (true, paths.codex.parent().is_some_and(std::path::Path::exists)),
                other => other,
            };
            let cmd = crate::install::Command::current(ctx.mesh.as_deref())?;
            let r = crate::install::install(&paths, &cmd, claude, codex)?;
            ctx.emit(serde_json::to_value(&r)?, || {
                let mut out: Vec<String> = r.wrote.iter().map(|w| format!("wrote {w}")).collect();
                out.extend(r.notes.iter().map(|n| format!("note: {n}")));
                out.join("\n")
            });
            Ok(())
        }
        Command::Uninstall => {
            let r = crate::install::uninstall(&crate::install::Paths::from_env()?)?;
            ctx.emit(serde_json::to_value(&r)?, || {
                if r.wrote.is_empty() {
                    "nothing to remove".into()
                } else {
                    r.wrote.iter().map(|w| format!("updated {w}")).collect::<Vec<_>>().join("\n")
                }
            });
            Ok(())
        }
        Command::Launch { args } => crate::install::launch(&args),
        Command::Hook { event } => {
            if let Err(e) = crate::hook::run(&ctx, &event).await {
                // A hook must never fail the agent.
                tracing::warn!(error = %format!("{e:#}"), "hook not delivered");
            }
            Ok(())
        }
        Command::Attach { target, take, once } => rooms::attach(&ctx, &target, take, once).await,
        Command::Wheel(cmd) => rooms::wheel(&ctx, cmd).await,
        Command::Prompt { target, text } => rooms::prompt(&ctx, &target, &text).await,
        Command::Approvals => rooms::approvals(&ctx).await,
        Command::Approve { id, reason } => rooms::decide(&ctx, &id, true, reason).await,
        Command::Deny { id, reason } => rooms::decide(&ctx, &id, false, reason).await,
        Command::Grant(cmd) => rooms::grant(&ctx, cmd).await,
        Command::Guard(cmd) => rooms::guard(&ctx, cmd).await,
        Command::Audit(cmd) => audit::audit(&ctx, cmd).await,
        Command::Webhook(cmd) => webhooks::webhook(&ctx, cmd).await,
        Command::Block { member, off } => mesh::control(&ctx, &member, ControlKind::Block, !off).await,
        Command::Mute { member, off } => mesh::control(&ctx, &member, ControlKind::Mute, !off).await,
        Command::Subscribe { kinds, all } => mesh::subscribe(&ctx, if all { None } else { Some(kinds) }).await,
        Command::Controls => mesh::show_controls(&ctx).await,
        Command::State(cmd) => coord::run(&ctx, CoordCmd::State(cmd)).await,
        Command::Task(cmd) => coord::run(&ctx, CoordCmd::Task(cmd)).await,
        Command::Lock(cmd) => coord::run(&ctx, CoordCmd::Lock(cmd)).await,
        Command::Remind(cmd) => coord::run(&ctx, CoordCmd::Remind(cmd)).await,
        Command::Thread(cmd) => coord::run(&ctx, CoordCmd::Thread(cmd)).await,
        Command::Remember { text, tags } => coord::run(&ctx, CoordCmd::Remember { body: text, tags }).await,
        Command::Recall { query, limit } => coord::run(&ctx, CoordCmd::Recall { query, limit }).await,
        Command::Forget { number } => coord::run(&ctx, CoordCmd::Forget { number }).await,
        Command::Search { query, limit } => coord::run(&ctx, CoordCmd::Search { query, limit }).await,
    }
}
