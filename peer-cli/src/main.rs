//! `plexus`: the peer CLI. Every command prints text for people and JSON with `--json`.

mod commands;
mod coord_cmds;
mod hook;
mod install;
mod mcp;
mod mcp_tools;
mod process;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plexus",
    version,
    about = "Join a Plexus mesh: presence, messages and coordination for agents and humans"
)]
pub struct Cli {
    /// Config directory (default: $XDG_CONFIG_HOME/plexus or ~/.config/plexus).
    #[arg(long, global = true, env = "PLEXUS_HOME")]
    pub home: Option<PathBuf>,
    /// Which mesh profile to use (default: the first one created or joined).
    #[arg(long, global = true, env = "PLEXUS_MESH")]
    pub mesh: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create and manage meshes.
    #[command(subcommand)]
    Mesh(MeshCmd),
    /// Create, list and revoke invites (owner or admin).
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Join a mesh with an invite code.
    Join(JoinArgs),
    /// List present sessions.
    Peers,
    /// List members of the mesh.
    Members,
    /// Remove a member (owner or admin).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Groups you are in: join, leave, list (membership is yours, for every session).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Send a message: to a member name, `@group`, `*` (everyone) or `session:<id>`.
    Send(SendArgs),
    /// Show unread messages (and acknowledge them); `--follow` stays connected.
    Inbox(InboxArgs),
    /// Acknowledge messages by sequence number.
    Ack {
        /// Sequence numbers.
        seqs: Vec<u64>,
    },
    /// Set or show this session's status.
    #[command(subcommand)]
    Status(StatusCmd),
    /// Delivery state of a message you sent.
    #[command(subcommand)]
    Message(MessageCmd),
    /// Live tail of every mesh event.
    Watch,
    /// Shared key-value state with versions and compare-and-set.
    #[command(subcommand)]
    State(coord_cmds::StateCmd),
    /// Locks on paths and globs: acquire (optionally waiting), renew, release, list.
    #[command(subcommand)]
    Lock(coord_cmds::LockCmd),
    /// Reminders to yourself, a member or a group: one-shot (--in, --at) or cron.
    #[command(subcommand)]
    Remind(coord_cmds::RemindCmd),
    /// Tasks: create, claim, submit for review, approve or request changes.
    #[command(subcommand)]
    Task(coord_cmds::TaskCmd),
    /// Threads that wait on someone: open, reply, resolve, list.
    #[command(subcommand)]
    Thread(coord_cmds::ThreadCmd),
    /// Remember a note for the whole mesh.
    Remember {
        /// Text.
        text: String,
        /// Tags (comma-separated; weighted above the text in recall).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Full-text recall of memories, most relevant first.
    Recall {
        /// Words (web-search syntax: "exact phrase", -exclude, or).
        query: String,
        /// Most shown.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Forget a memory (its author or an admin).
    Forget {
        /// Memory number.
        number: u64,
    },
    /// Search memories, tasks and threads at once.
    Search {
        /// Words (same syntax as recall).
        query: String,
        /// Most shown.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Check configuration, keys, broker reachability and clock skew.
    Doctor,
    /// Run the MCP server an agent (Claude Code, Codex, any MCP client) talks to over stdio.
    Mcp {
        /// Keep this session identity across agent restarts (default: one per agent process).
        #[arg(long, env = "PLEXUS_SESSION")]
        session: Option<String>,
        /// Join these groups at start (comma-separated); membership is the member's and durable.
        #[arg(long, value_delimiter = ',', env = "PLEXUS_GROUPS")]
        groups: Vec<String>,
    },
    /// Register `plexus mcp`, the status hooks and a skill with Claude Code (and Codex).
    Install {
        /// Only Claude Code.
        #[arg(long)]
        claude: bool,
        /// Only Codex.
        #[arg(long)]
        codex: bool,
    },
    /// Remove exactly what `install` added.
    Uninstall,
    /// Start Claude Code with the plexus channel enabled (extra arguments go to claude).
    Launch {
        /// Arguments for claude.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Report an agent hook event (SessionStart, UserPromptSubmit, Stop, …) as status; reads the
    /// hook JSON on stdin. Registered by `plexus install`.
    Hook {
        /// Event name.
        event: String,
    },
}

#[derive(Subcommand)]
pub enum MeshCmd {
    /// Create a mesh you own on a broker.
    Create {
        /// Mesh name.
        name: String,
        /// Broker URL(s), e.g. ws://127.0.0.1:7700 (repeat or comma-separate for several).
        #[arg(long, required = true, value_delimiter = ',')]
        broker: Vec<String>,
        /// Your display name.
        #[arg(long, default_value = "owner")]
        display_name: String,
        /// Operator token, if the broker gates mesh creation.
        #[arg(long, env = "PLEXUS_OPERATOR_TOKEN")]
        operator_token: Option<String>,
        /// Extra CA (PEM) to trust for wss://.
        #[arg(long)]
        ca_file: Option<String>,
    },
    /// List the meshes configured here.
    List,
}

#[derive(Subcommand)]
pub enum InviteCmd {
    /// Create an invite code.
    Create {
        /// Role granted: member or admin.
        #[arg(long, default_value = "member")]
        role: String,
        /// How many people may use it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires_in: String,
        /// Groups whoever joins with it is in (comma-separated, e.g. eng,eng/backend).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// List invites.
    List,
    /// Revoke an invite.
    Revoke {
        /// Code.
        code: String,
    },
}

#[derive(Args)]
pub struct JoinArgs {
    /// Invite code.
    pub code: String,
    /// Broker URL(s).
    #[arg(long, required = true, value_delimiter = ',')]
    pub broker: Vec<String>,
    /// Your display name.
    #[arg(long)]
    pub name: String,
    /// Seconds to wait for a member to hand over the mesh key.
    #[arg(long, default_value_t = 20)]
    pub wait: u64,
    /// Extra CA (PEM) to trust for wss://.
    #[arg(long)]
    pub ca_file: Option<String>,
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// Join a group (e.g. eng or eng/backend); `@eng` messages then reach you.
    Join {
        /// Group name (with or without @).
        name: String,
        /// Your role in it (e.g. lead).
        #[arg(long)]
        role: Option<String>,
    },
    /// Leave a group.
    Leave {
        /// Group name.
        name: String,
    },
    /// Every group of the mesh and its members.
    List,
}

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Remove a member by name or id.
    Remove {
        /// Display name or member id (prefix).
        who: String,
    },
}

#[derive(Args)]
pub struct SendArgs {
    /// Recipient: member name, @group, *, or session:<id>.
    pub target: String,
    /// Text.
    pub text: String,
    /// now, next or low.
    #[arg(long, default_value = "next")]
    pub priority: String,
    /// Reply to this message id (goes to exactly the session that sent it).
    #[arg(long)]
    pub reply_to: Option<uuid::Uuid>,
    /// Message id (default: random). Resending the same id is a no-op.
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
}

#[derive(Args)]
pub struct InboxArgs {
    /// Stay connected and print messages as they are pushed.
    #[arg(long)]
    pub follow: bool,
    /// Most messages to show.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Join these groups first (comma-separated, e.g. eng,eng/backend); membership is durable.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Initial status while following.
    #[arg(long, default_value = "idle")]
    pub status: String,
    /// Exit after this many messages (with --follow).
    #[arg(long)]
    pub count: Option<usize>,
}

#[derive(Subcommand)]
pub enum StatusCmd {
    /// Set status: idle, working or dnd.
    Set {
        /// New status.
        status: String,
        /// Source: manual, hook or jsonl.
        #[arg(long, default_value = "manual")]
        source: String,
        /// Summary of what you are doing.
        #[arg(long)]
        summary: Option<String>,
    },
    /// Show this session's presence.
    Show,
}

#[derive(Subcommand)]
pub enum MessageCmd {
    /// Per-recipient delivery state.
    Status {
        /// Message id.
        id: uuid::Uuid,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PLEXUS_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    if let Err(e) = commands::run(cli).await {
        if json {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}
