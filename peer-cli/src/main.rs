//! `plexus`: the peer CLI, the MCP server an agent talks to, and its hooks — thin adapters over
//! `plexus-client`. Every command prints text for people, or exactly one JSON document with
//! `--json` (errors too: `{"error": {"code", "message"}}`).
//!
//! # Layout
//! - [`cli`] — the command line (clap): commands, arguments, help and examples.
//! - [`cmd`] — the commands, one module per area.
//! - [`ctx`] — what commands share: profile, output, a one-shot connection, parsers.
//! - [`render`] — how things read, as text and as JSON.
//! - [`mcp`] — `plexus mcp`: the stdio MCP server and its tools.
//! - [`hook`] — `plexus hook`: agent hook events to the agent's session.
//! - [`install`] — `plexus install|uninstall|launch` for Claude Code and Codex.

mod cli;
mod cmd;
mod ctx;
mod hook;
mod install;
mod mcp;
mod render;

use clap::Parser;
use serde_json::json;

/// `NotFound` → `not_found`: error codes as the protocol document names them.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn error_json(e: &anyhow::Error) -> serde_json::Value {
    let code = match e.downcast_ref::<plexus_client::ClientError>() {
        Some(plexus_client::ClientError::Remote { code, .. }) => snake(&format!("{code:?}")),
        Some(plexus_client::ClientError::Connect { .. } | plexus_client::ClientError::Closed(_)) => {
            "unreachable".into()
        }
        _ => "local".into(),
    };
    json!({"error": {"code": code, "message": format!("{e:#}")}})
}

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PLEXUS_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    if let Err(e) = cmd::run(cli).await {
        if e.downcast_ref::<ctx::Reported>().is_none() {
            if json {
                println!("{}", error_json(&e));
            } else {
                eprintln!("error: {e:#}");
            }
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_codes_read_as_the_protocol_names_them() {
        assert_eq!(super::snake("NotFound"), "not_found");
        assert_eq!(super::snake("Conflict"), "conflict");
        assert_eq!(super::snake("OperatorTokenRequired"), "operator_token_required");
    }
}
