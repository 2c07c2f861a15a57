//! The command line: every command, argument and help text (clap). Nothing here runs; the
//! commands are in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "Examples:
  plexus mesh create my-team --broker ws://broker.example:7700 --display-name alice
  plexus invite create --uses 3 --groups eng        # prints: plexus join CODE --broker ... --name <you>
  plexus join K7QX2M9RTA --broker ws://broker.example:7700 --name bob
  plexus send alice \"can you review the parser?\" --priority now
  plexus send @eng \"deploy at 5\"
  plexus inbox --follow                             # stay online; hands the mesh key to joiners
  plexus lock acquire 'src/auth/**' --ttl 30m -r \"auth refactor\"
  plexus install && plexus launch                   # Claude Code with plexus as its team channel";

#[derive(Parser)]
#[command(
    name = "plexus",
    version,
    about = "Join a Plexus mesh: presence, messages and coordination for agents and humans",
    after_help = EXAMPLES
)]
pub(crate) struct Cli {
    /// Config directory (default: $XDG_CONFIG_HOME/plexus or ~/.config/plexus).
    #[arg(long, global = true, env = "PLEXUS_HOME")]
    pub(crate) home: Option<PathBuf>,
    /// Which mesh profile to use (default: the first one created or joined).
    #[arg(long, global = true, env = "PLEXUS_MESH")]
    pub(crate) mesh: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create and manage meshes.
    #[command(subcommand)]
    Mesh(MeshCmd),
    /// Create, list and revoke invites (owner or admin).
    #[command(subcommand)]
    Invite(InviteCmd),
    /// Link a browser (or another device) to the member you are here: it shows a code, you
    /// approve it here. The device then holds your member key; `plexus mesh leave` does not
    /// undo that, logging out on the device does.
    #[command(after_help = "Example:\n  plexus link ABCDE-FGHJK   # the code the browser shows")]
    Link {
        /// The code the device shows.
        code: String,
        /// Approve without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Join a mesh with an invite code.
    #[command(after_help = "Example:\n  plexus join K7QX2M9P --broker wss://plexus.example.com --name bo")]
    Join(JoinArgs),
    /// List present sessions.
    Peers,
    /// List members of the mesh.
    Members,
    /// Remove a member (owner or admin).
    #[command(subcommand)]
    Member(MemberCmd),
    /// The mesh key's epoch, and rotating it (done for you when a member is removed or leaves).
    #[command(subcommand)]
    Key(KeyCmd),
    /// Groups you are in: join, leave, list (membership is yours, for every session).
    #[command(subcommand)]
    Group(GroupCmd),
    /// Send a message: to a member name, `@group`, `*` (everyone) or `session:<id>`.
    #[command(
        after_help = "Examples:\n  plexus send bob \"the build is green\"\n  plexus send @eng/backend \"schema change at 5\" --priority now\n  plexus send '*' \"standup in 10\" --priority low\n  plexus send - \"yes\" --reply-to 3f2a5c1e-8d0b-4c1f-9a57-2b6d0e4f7a10   # to exactly the asking session"
    )]
    Send(SendArgs),
    /// Show unread messages (and acknowledge them); `--follow` stays connected.
    #[command(
        after_help = "Examples:\n  plexus inbox\n  plexus inbox --follow --groups eng   # online, in @eng; hands the mesh key to joiners"
    )]
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
    State(StateCmd),
    /// Locks on paths and globs: acquire (optionally waiting), renew, release, list.
    #[command(subcommand)]
    Lock(LockCmd),
    /// Reminders to yourself, a member or a group: one-shot (--in, --at) or cron.
    #[command(subcommand)]
    Remind(RemindCmd),
    /// Tasks: create, claim, submit for review, approve or request changes.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Threads that wait on someone: open, reply, resolve, list.
    #[command(subcommand)]
    Thread(ThreadCmd),
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:\n  plexus completions bash > ~/.local/share/bash-completion/completions/plexus")]
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for every command into a directory.
    #[command(after_help = "Example:\n  plexus man ~/.local/share/man/man1 && man plexus")]
    Man {
        /// Directory to write plexus.1, plexus-send.1, … into.
        dir: PathBuf,
    },
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
    /// Report an agent hook event (SessionStart, UserPromptSubmit, PreToolUse, PermissionRequest,
    /// Stop, …) to the session's stream and status; reads the hook JSON on stdin. Registered by
    /// `plexus install`.
    Hook {
        /// Event name.
        event: String,
    },
    /// Watch an agent session live: its stream from the start, then as it happens. Lines you
    /// type are prompts to it (with the wheel); /take, /request, /release, /pass NAME, /quit.
    #[command(
        after_help = "Examples:\n  plexus attach alice        # alice's most recent agent session\n  plexus attach 3f2a9c1e --take"
    )]
    Attach {
        /// An agent session id (or its first characters), or a member name (its latest session).
        target: String,
        /// Take the wheel on attaching.
        #[arg(long)]
        take: bool,
        /// Print the replay and exit instead of following.
        #[arg(long)]
        once: bool,
    },
    /// The wheel of an agent session: who drives it.
    #[command(subcommand)]
    Wheel(WheelCmd),
    /// Send a prompt into an agent session (takes its wheel if free).
    Prompt {
        /// Agent session id (or prefix) or member name.
        target: String,
        /// The prompt.
        text: String,
    },
    /// Permission requests waiting for you (of your sessions, of members who granted you, or
    /// any as an admin).
    Approvals,
    /// Allow a pending permission request.
    Approve {
        /// Request id (or its first characters).
        id: String,
        /// Why (shown in the session's stream).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a pending permission request; the reason is shown to the agent.
    Deny {
        /// Request id (or its first characters).
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let another member drive your agent sessions and answer their permission requests.
    #[command(subcommand)]
    Grant(GrantCmd),
    /// Locks that hold for commits: a pre-commit hook refusing files others hold exclusively.
    #[command(subcommand)]
    Guard(GuardCmd),
    /// The mesh's audit log (admins): every admin and trust action, hash-chained.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Webhooks in (admins): outside systems post signed events into the mesh.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Nothing from this member reaches you (they are not told); `--off` lifts it.
    Block {
        /// Member name.
        member: String,
        /// Lift the block.
        #[arg(long)]
        off: bool,
    },
    /// This member's messages wait in your inbox instead of being pushed; `--off` lifts it.
    Mute {
        /// Member name.
        member: String,
        /// Lift the mute.
        #[arg(long)]
        off: bool,
    },
    /// Which coordination events are pushed to you (the rest wait in the inbox).
    #[command(after_help = "Examples:\n  plexus subscribe task lock.force_released\n  plexus subscribe --all")]
    Subscribe {
        /// Kinds: task, lock, thread, state, memory, webhook, or a full subtype (task.claim).
        kinds: Vec<String>,
        /// Every kind again.
        #[arg(long, conflicts_with = "kinds")]
        all: bool,
    },
    /// Your blocks, mutes and subscriptions.
    Controls,
}

#[derive(Subcommand)]
pub(crate) enum WebhookCmd {
    /// Register one; prints its URL and its secret (shown once).
    #[command(after_help = "Example:\n  plexus webhook add ci --to @eng --priority next")]
    Add {
        /// Name (its events come from webhook:NAME).
        name: String,
        /// Where its events go: a member, session:ID, @group or *.
        #[arg(long)]
        to: String,
        /// now, next or low.
        #[arg(long, default_value = "next")]
        priority: String,
    },
    /// The mesh's webhooks in and out (never their secrets).
    List,
    /// Deliver the mesh's coordination events of some kinds to a URL (signed like webhooks in,
    /// retried, at least once; the event id is the idempotency key). Prints the secret once.
    #[command(
        after_help = "Example:\n  plexus webhook subscribe https://ci.example.com/plexus --kinds task,lock.force_released"
    )]
    Subscribe {
        /// http:// or https:// URL.
        url: String,
        /// Event kinds, comma-separated (task, lock, thread, state, memory, webhook, or a subtype).
        #[arg(long, value_delimiter = ',', required = true)]
        kinds: Vec<String>,
    },
    /// End an outbound subscription.
    Unsubscribe {
        /// Subscription id.
        id: uuid::Uuid,
    },
    /// An outbound subscription's delivery log: every attempt, its status or error.
    #[command(after_help = "Example:\n  plexus webhook log 0b6f2a1c-6d2e-4f1a-9c3b-5e8d7a4b2c10 --limit 20")]
    Log {
        /// Subscription id.
        id: uuid::Uuid,
        /// How many of the latest attempts.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Remove one: its URL stops accepting at once.
    Remove {
        /// Webhook id.
        id: uuid::Uuid,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// The mesh's key epoch, yours, and whether a rotation is due.
    Status,
    /// Make a new mesh key for everyone but the members who left (you must hold the current one).
    #[command(after_help = "Example:\n  plexus key rotate")]
    Rotate,
}

#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Entries, oldest first.
    #[command(after_help = "Examples:\n  plexus audit list --since 24h\n  plexus audit list --actor ana")]
    List {
        /// Only the last … (e.g. 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this member's actions.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Recompute the chain here; names the first entry that was altered or removed.
    Verify,
}

#[derive(Subcommand)]
pub(crate) enum WheelCmd {
    /// Take the wheel if free (the session's member and admins take it from anyone).
    Take {
        /// Agent session id (or prefix) or member name.
        target: String,
    },
    /// Ask the holder for it.
    Request {
        /// Agent session id (or prefix) or member name.
        target: String,
    },
    /// Pass it to a member watching the session.
    Pass {
        /// Agent session id (or prefix) or member name.
        target: String,
        /// The member to pass it to.
        to: String,
    },
    /// Let go.
    Release {
        /// Agent session id (or prefix) or member name.
        target: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum GrantCmd {
    /// Let a member drive your sessions.
    Drive {
        /// Member name.
        member: String,
    },
    /// Stop letting a member drive your sessions.
    Revoke {
        /// Member name.
        member: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum GuardCmd {
    /// Install the pre-commit hook in this repository.
    Install,
    /// Check the staged files against the mesh's locks (what the pre-commit hook runs).
    Check,
    /// Set the mesh's lock enforcement for agents' edits (admins): enforce or advisory.
    Mode {
        /// enforce | advisory
        value: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum MeshCmd {
    /// Create a mesh you own on a broker.
    #[command(after_help = "Example:\n  plexus mesh create acme --broker wss://plexus.example.com --display-name ana")]
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
    /// Make a mesh profile the default (when you belong to several meshes).
    #[command(after_help = "Example:\n  plexus mesh use acme")]
    Use {
        /// Profile name (as `plexus mesh list` shows it).
        name: String,
    },
    /// Leave the mesh for good: you are removed, your sessions close, and this machine forgets
    /// the mesh. Coming back takes a new invite. The owner cannot leave.
    #[command(after_help = "Example:\n  plexus mesh leave --yes")]
    Leave {
        /// Confirm: leaving cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum InviteCmd {
    /// Create an invite code.
    #[command(after_help = "Example:\n  plexus invite create --uses 3 --expires-in 7d --groups eng")]
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
pub(crate) struct JoinArgs {
    /// Invite code.
    pub(crate) code: String,
    /// Broker URL(s).
    #[arg(long, required = true, value_delimiter = ',')]
    pub(crate) broker: Vec<String>,
    /// Your display name.
    #[arg(long)]
    pub(crate) name: String,
    /// Seconds to wait for a member to hand over the mesh key.
    #[arg(long, default_value_t = 20)]
    pub(crate) wait: u64,
    /// Extra CA (PEM) to trust for wss://.
    #[arg(long)]
    pub(crate) ca_file: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum GroupCmd {
    /// Join a group (e.g. eng or eng/backend); `@eng` messages then reach you.
    #[command(after_help = "Example:\n  plexus group join eng/backend --role lead")]
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
pub(crate) enum MemberCmd {
    /// Remove a member by name or id.
    #[command(after_help = "Example:\n  plexus member remove bob")]
    Remove {
        /// Display name or member id (prefix).
        who: String,
    },
}

#[derive(Args)]
pub(crate) struct SendArgs {
    /// Recipient: member name, @group, *, or session:<id>.
    pub(crate) target: String,
    /// Text.
    pub(crate) text: String,
    /// now, next or low.
    #[arg(long, default_value = "next")]
    pub(crate) priority: String,
    /// Reply to this message id (goes to exactly the session that sent it).
    #[arg(long)]
    pub(crate) reply_to: Option<uuid::Uuid>,
    /// Message id (default: random). Resending the same id is a no-op.
    #[arg(long)]
    pub(crate) id: Option<uuid::Uuid>,
}

#[derive(Args)]
pub(crate) struct InboxArgs {
    /// Stay connected and print messages as they are pushed.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Most messages to show.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u32,
    /// Join these groups first (comma-separated, e.g. eng,eng/backend); membership is durable.
    #[arg(long, value_delimiter = ',')]
    pub(crate) groups: Vec<String>,
    /// Initial status while following.
    #[arg(long, default_value = "idle")]
    pub(crate) status: String,
    /// Exit after this many messages (with --follow).
    #[arg(long)]
    pub(crate) count: Option<usize>,
}

#[derive(Subcommand)]
pub(crate) enum StatusCmd {
    /// Set status: idle, working or dnd.
    #[command(after_help = "Example:\n  plexus status set working --summary \"migrating the schema\"")]
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
pub(crate) enum MessageCmd {
    /// Per-recipient delivery state.
    Status {
        /// Message id.
        id: uuid::Uuid,
    },
}

#[derive(Subcommand)]
pub(crate) enum StateCmd {
    /// Read a key.
    Get {
        /// Key.
        key: String,
    },
    /// Write a key (with --expect-version: only if it is at that version; 0 = must not exist).
    #[command(after_help = "Example:\n  plexus state set deploy/frozen true --expect-version 0   # only if unset")]
    Set {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Compare-and-set guard.
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// Delete a key.
    Delete {
        /// Key.
        key: String,
        /// Compare-and-delete guard.
        #[arg(long)]
        expect_version: Option<u64>,
    },
    /// List keys by prefix.
    List {
        /// Prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Most keys shown.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub(crate) enum LockCmd {
    /// Lock a path or glob (`*` within a segment, `?` one character, `**` any segments).
    #[command(
        after_help = "Example:\n  plexus lock acquire 'src/db/**' --ttl 10m --wait 2m --reason \"schema change\""
    )]
    Acquire {
        /// Path or glob, e.g. src/auth/login.rs or src/auth/**.
        pattern: String,
        /// Shared instead of exclusive (others may hold overlapping shared locks).
        #[arg(long)]
        shared: bool,
        /// Lifetime unless renewed, e.g. 90s, 10m, 2h.
        #[arg(long, default_value = "5m")]
        ttl: String,
        /// Wait in the queue this long if it is held (e.g. 30s); default: fail at once.
        #[arg(long)]
        wait: Option<String>,
        /// Why (shown to others).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Extend a lock you hold.
    Renew {
        /// Token printed by acquire.
        token: u64,
        /// New lifetime from now.
        #[arg(long, default_value = "5m")]
        ttl: String,
    },
    /// Release a lock you hold; --force (admins) releases anyone's and tells the holder.
    Release {
        /// Token.
        token: u64,
        /// Admin force-release.
        #[arg(long)]
        force: bool,
        /// Why (shown to the holder on force-release).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// List held locks and the queue.
    List,
}

#[derive(Subcommand)]
pub(crate) enum RemindCmd {
    /// Schedule a reminder: exactly one of --in, --at or --cron.
    #[command(
        after_help = "Examples:\n  plexus remind add \"check the canary\" --in 20m\n  plexus remind add \"standup\" --cron \"0 9 * * MON-FRI\" --tz Europe/Berlin --to @eng --label standup"
    )]
    Add {
        /// Text (sealed end to end; only the label is visible to the broker).
        text: String,
        /// After this long, e.g. 90s, 20m, 2h.
        #[arg(long = "in", conflicts_with_all = ["at", "cron"])]
        after: Option<String>,
        /// At this moment (RFC 3339, e.g. 2026-11-21T17:00:00+01:00).
        #[arg(long, conflicts_with = "cron")]
        at: Option<String>,
        /// Repeatedly, by a cron expression (5 fields, or 6 with seconds first).
        #[arg(long)]
        cron: Option<String>,
        /// Time zone of --cron (IANA name).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Who: `me` (default), a member name, or @group.
        #[arg(long, default_value = "me")]
        to: String,
        /// now, next or low.
        #[arg(long, default_value = "next")]
        priority: String,
        /// Label shown in lists. Not sealed, so there is none unless you give one.
        #[arg(long)]
        label: Option<String>,
    },
    /// List your reminders (--all: everyone's).
    List {
        /// Everyone's.
        #[arg(long)]
        all: bool,
        /// Include fired and cancelled ones.
        #[arg(long)]
        done: bool,
    },
    /// Cancel a reminder (yours, or any as an admin).
    Cancel {
        /// Reminder number.
        number: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum TaskCmd {
    /// Create a task.
    #[command(after_help = "Example:\n  plexus task create \"write the parser\" --assign bo --tags parser")]
    Create {
        /// Title.
        title: String,
        /// Description.
        #[arg(long, short, default_value = "")]
        description: String,
        /// simple, medium, complex or critical.
        #[arg(long)]
        complexity: Option<String>,
        /// Files it touches (comma-separated).
        #[arg(long, value_delimiter = ',')]
        files: Vec<String>,
        /// Tags (comma-separated).
        #[arg(long, value_delimiter = ',')]
        tags: Vec<String>,
        /// Task numbers that must be done first (comma-separated).
        #[arg(long, value_delimiter = ',')]
        depends_on: Vec<u64>,
        /// Assign to a member (name or id).
        #[arg(long)]
        assign: Option<String>,
    },
    /// List tasks (newest first).
    List {
        /// Only these statuses (comma-separated: todo,in_progress,review,done,blocked,cancelled).
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        /// Only tasks assigned to this member (name or id; `me` for yourself).
        #[arg(long)]
        assignee: Option<String>,
        /// Only tasks with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Most tasks shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a task and its history.
    Show {
        /// Task number.
        number: u64,
    },
    /// Claim a todo task (exactly one claimer wins).
    Claim {
        /// Task number.
        number: u64,
    },
    /// Give a claimed task back.
    Release {
        /// Task number.
        number: u64,
    },
    /// Submit your task for review.
    Submit {
        /// Task number.
        number: u64,
        /// Notes for the reviewer.
        #[arg(long, short)]
        notes: Option<String>,
    },
    /// Approve a task in review (owner or admin).
    Approve {
        /// Task number.
        number: u64,
    },
    /// Send a task in review back with feedback (owner or admin).
    RequestChanges {
        /// Task number.
        number: u64,
        /// What to change.
        feedback: String,
    },
    /// Mark a task blocked.
    Block {
        /// Task number.
        number: u64,
        /// Why.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Unblock a task.
    Unblock {
        /// Task number.
        number: u64,
    },
    /// Cancel a task (owner or admin).
    Cancel {
        /// Task number.
        number: u64,
        /// Why.
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Assign a todo task to a member (owner or admin).
    Assign {
        /// Task number.
        number: u64,
        /// Member name or id.
        who: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ThreadCmd {
    /// Open a thread.
    #[command(after_help = "Example:\n  plexus thread open \"schema for v2?\" \"which of the two?\" --waiting-on bo")]
    Open {
        /// Topic.
        topic: String,
        /// First post.
        body: String,
        /// Members who must answer (comma-separated names or ids).
        #[arg(long, value_delimiter = ',')]
        waiting_on: Vec<String>,
        /// now, next or low.
        #[arg(long, default_value = "next")]
        priority: String,
    },
    /// Reply in a thread (it then waits on the previous poster unless --waiting-on is given).
    Reply {
        /// Thread number.
        number: u64,
        /// Text.
        body: String,
        /// Members who must answer next (comma-separated names or ids).
        #[arg(long, value_delimiter = ',')]
        waiting_on: Option<Vec<String>>,
    },
    /// Resolve a thread.
    Resolve {
        /// Thread number.
        number: u64,
    },
    /// Show a thread with its posts.
    Show {
        /// Thread number.
        number: u64,
    },
    /// List open threads.
    List {
        /// Only threads waiting on you.
        #[arg(long)]
        mine: bool,
        /// Include resolved threads.
        #[arg(long)]
        all: bool,
        /// Most threads shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// Words of one example line as a POSIX shell would split them (quotes, `# comment`).
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
        for c in line.chars() {
            match (quote, c) {
                (None, '#') if !any => break,
                (None, '\'' | '"') => (quote, any) = (Some(c), true),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if any {
                        out.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                (_, c) => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(word);
        }
        out
    }

    fn examples(cmd: &clap::Command, found: &mut Vec<String>) {
        if let Some(help) = cmd.get_after_help() {
            for line in help.to_string().lines().map(str::trim).filter(|l| l.starts_with("plexus ")) {
                found.push(line.to_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            examples(sub, found);
        }
    }

    #[test]
    fn every_example_in_the_help_parses() {
        let mut found = Vec::new();
        examples(&Cli::command(), &mut found);
        assert!(found.len() >= 15, "examples went missing: {found:?}");
        for line in found {
            // The command itself, up to a shell operator (`> file`, `&& next`, `| pager`).
            let argv: Vec<String> =
                words(&line).into_iter().take_while(|w| !matches!(w.as_str(), ">" | ">>" | "|" | "&&")).collect();
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("the help example `{line}` does not parse: {e}");
            }
        }
    }
}
