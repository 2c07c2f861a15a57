//! The command implementations behind `main.rs`.

use std::{path::PathBuf, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use plexus_cli::{
    backoff::Backoff,
    client::{open_any, push_as, signed_hello, ClientError, Connection, TlsOptions},
    cursor::LocalCursor,
    profile::{home as default_home, slug, Profile},
    seal::{self, SealTo},
};
use plexus_crypto::{self as crypto, hex};
use plexus_proto::{
    ops,
    push::{Digest, KeyRequest, MeshKey, Message, PeerEvent, Routed},
    signing,
    types::{GroupRole, Priority, Role, SessionMode, SessionProfile, Status, StatusSource, Target},
    CloseCode,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    coord_cmds::{self, CoordCmd},
    Cli, Command, GroupCmd, InboxArgs, InviteCmd, JoinArgs, MemberCmd, MeshCmd, MessageCmd, SendArgs, StatusCmd,
};

pub(crate) struct Ctx {
    pub(crate) home: PathBuf,
    pub(crate) mesh: Option<String>,
    json: bool,
}

impl Ctx {
    pub(crate) fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", text());
        }
    }

    pub(crate) fn profile(&self) -> Result<Profile> {
        Ok(Profile::load(&self.home, self.mesh.as_deref())?)
    }
}

pub(crate) fn tls(p: &Profile) -> TlsOptions {
    TlsOptions { ca_file: p.ca_file.clone() }
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

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

/// Connect to any broker of the profile and say hello.
pub(crate) async fn connect(
    p: &Profile,
    mode: SessionMode,
    cursor: Option<&LocalCursor>,
    sp: SessionProfile,
) -> Result<(Connection, ops::Welcome), ClientError> {
    let session = p.session_key().map_err(ClientError::Keys)?;
    let start = crypto::random_below(p.brokers.len() as u32) as usize;
    let (conn, _) = open_any(&p.brokers, start, &tls(p)).await?;
    // A cursor that has seen nothing says nothing: the broker then picks the start.
    let wire = cursor.map(|c| c.to_wire()).filter(|c| c.watermark > 0 || !c.acked.is_empty());
    let hello = signed_hello(p, p.session_id, session.public_key(), mode, wire, sp)?;
    let welcome = conn.call(&hello).await?;
    Ok((conn, welcome))
}

pub(crate) async fn control(ctx: &Ctx) -> Result<(Profile, Connection, ops::Welcome)> {
    let mut p = ctx.profile()?;
    let (conn, welcome) = connect(&p, SessionMode::Control, None, session_profile(&p, Status::Idle, &[])).await?;
    adopt_welcome(ctx, &mut p, &welcome, &conn).await;
    Ok((p, conn, welcome))
}

/// Learn the owner's key commitment and take a mesh key granted meanwhile from a hello reply.
pub(crate) async fn adopt_welcome(ctx: &Ctx, p: &mut Profile, welcome: &ops::Welcome, conn: &Connection) -> bool {
    if p.learn_commitment(welcome) {
        let _ = p.save(&ctx.home);
    }
    adopt_mesh_key(ctx, p, welcome.sealed_mesh_key.as_deref(), None, conn).await
}

/// Take a granted mesh key if it is the one the owner committed to; refuse a forgery (the
/// broker then asks the other key holders again). True when the key was stored.
pub(crate) async fn adopt_mesh_key(
    ctx: &Ctx,
    p: &mut Profile,
    sealed: Option<&[u8]>,
    granted_by: Option<Uuid>,
    conn: &Connection,
) -> bool {
    let Some(sealed) = sealed else { return false };
    if p.mesh_key.is_some() {
        return false;
    }
    match p.accept_sealed_mesh_key(sealed) {
        plexus_cli::profile::KeyOutcome::Stored => p.save(&ctx.home).is_ok(),
        plexus_cli::profile::KeyOutcome::Forged => {
            let from = granted_by.map(|g| g.to_string()).unwrap_or_else(|| "an unknown member".into());
            eprintln!("warning: refused a mesh key granted by {from}: it is not the key the owner committed to");
            if let Err(e) = conn.call(&ops::KeyReject {}).await {
                tracing::warn!(error = %e, "could not refuse the forged key");
            }
            false
        }
        plexus_cli::profile::KeyOutcome::Unusable => false,
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

fn parse_source(s: &str) -> Result<StatusSource> {
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

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx { home: cli.home.clone().unwrap_or_else(default_home), mesh: cli.mesh.clone(), json: cli.json };
    match cli.command {
        Command::Mesh(MeshCmd::Create { name, broker, display_name, operator_token, ca_file }) => {
            mesh_create(&ctx, name, broker, display_name, operator_token, ca_file).await
        }
        Command::Mesh(MeshCmd::List) => mesh_list(&ctx),
        Command::Invite(cmd) => invite(&ctx, cmd).await,
        Command::Join(args) => join(&ctx, args).await,
        Command::Peers => peers(&ctx).await,
        Command::Members => members(&ctx).await,
        Command::Member(MemberCmd::Remove { who }) => member_remove(&ctx, &who).await,
        Command::Group(cmd) => group(&ctx, cmd).await,
        Command::Send(args) => send(&ctx, args).await,
        Command::Inbox(args) if args.follow => follow(&ctx, args).await,
        Command::Inbox(args) => inbox(&ctx, args).await,
        Command::Ack { seqs } => ack(&ctx, seqs).await,
        Command::Status(cmd) => status(&ctx, cmd).await,
        Command::Message(MessageCmd::Status { id }) => message_status(&ctx, id).await,
        Command::Watch => watch(&ctx).await,
        Command::Doctor => doctor(&ctx).await,
        Command::Mcp { session, groups } => crate::mcp::run(&ctx, session, groups).await,
        Command::Install { claude, codex } => {
            let paths = crate::install::Paths::from_env()?;
            let (claude, codex) = match (claude, codex) {
                (false, false) => (true, paths.codex.parent().is_some_and(|d| d.exists())),
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
        Command::State(cmd) => coord_cmds::run(&ctx, CoordCmd::State(cmd)).await,
        Command::Task(cmd) => coord_cmds::run(&ctx, CoordCmd::Task(cmd)).await,
        Command::Lock(cmd) => coord_cmds::run(&ctx, CoordCmd::Lock(cmd)).await,
        Command::Remind(cmd) => coord_cmds::run(&ctx, CoordCmd::Remind(cmd)).await,
        Command::Thread(cmd) => coord_cmds::run(&ctx, CoordCmd::Thread(cmd)).await,
        Command::Remember { text, tags } => coord_cmds::run(&ctx, CoordCmd::Remember { body: text, tags }).await,
        Command::Recall { query, limit } => coord_cmds::run(&ctx, CoordCmd::Recall { query, limit }).await,
        Command::Forget { number } => coord_cmds::run(&ctx, CoordCmd::Forget { number }).await,
        Command::Search { query, limit } => coord_cmds::run(&ctx, CoordCmd::Search { query, limit }).await,
    }
}

fn new_profile(
    name: &str,
    brokers: Vec<String>,
    ca_file: Option<String>,
    mesh_id: Uuid,
    member_id: Uuid,
    display_name: String,
    member: &crypto::SigningKey,
) -> Result<Profile> {
    let session = crypto::BoxKeypair::generate()?;
    Ok(Profile {
        name: slug(name),
        brokers,
        ca_file,
        mesh_id,
        mesh_name: name.to_owned(),
        member_id,
        display_name,
        member_secret: hex(member.secret_bytes()),
        session_id: Uuid::new_v4(),
        session_secret: hex(session.secret_bytes()),
        mesh_key: None,
        claim_secret: None,
        key_commitment: None,
    })
}

async fn mesh_create(
    ctx: &Ctx,
    name: String,
    brokers: Vec<String>,
    display_name: String,
    operator_token: Option<String>,
    ca_file: Option<String>,
) -> Result<()> {
    let member = crypto::SigningKey::generate()?;
    let (mesh_id, member_id) = (Uuid::new_v4(), Uuid::new_v4());
    let mut profile = new_profile(&name, brokers, ca_file, mesh_id, member_id, display_name.clone(), &member)?;
    if Profile::list(&ctx.home)?.contains(&profile.name) {
        bail!("a mesh profile named {} already exists here", profile.name);
    }
    let mesh_key = crypto::generate_mesh_key();
    profile.mesh_key = Some(hex(&mesh_key));
    // The commitment lets every joiner check the key it is granted, whoever grants it.
    let commitment = crypto::hash32(&signing::mesh_key_commitment_input(mesh_id, &mesh_key));
    profile.key_commitment = Some(hex(&commitment));
    let commitment_signature = member.sign(&signing::key_commitment_bytes(mesh_id, &commitment));
    let signed = signing::mesh_create_bytes(mesh_id, &name, member_id, member.public_key());
    let body = ops::MeshCreate {
        mesh_id,
        name: name.clone(),
        owner_member_id: member_id,
        owner_pubkey: member.public_key().to_vec(),
        owner_display_name: display_name,
        operator_token,
        signature: member.sign(&signed).to_vec(),
        key_commitment: Some(commitment.to_vec()),
        key_commitment_signature: Some(commitment_signature.to_vec()),
    };
    let (conn, _) = open_any(&profile.brokers, 0, &tls(&profile)).await?;
    conn.call(&body).await?;
    conn.close().await;
    profile.save(&ctx.home)?;
    ctx.emit(json!({"mesh_id": mesh_id, "member_id": member_id, "profile": profile.name}), || {
        format!("created mesh {name} ({mesh_id}); you are its owner.\nnext: plexus invite create")
    });
    Ok(())
}

fn mesh_list(ctx: &Ctx) -> Result<()> {
    let names = Profile::list(&ctx.home)?;
    let rows: Vec<Value> = names
        .iter()
        .filter_map(|n| Profile::load(&ctx.home, Some(n)).ok())
        .map(|p| json!({"profile": p.name, "mesh": p.mesh_name, "mesh_id": p.mesh_id, "brokers": p.brokers, "has_mesh_key": p.mesh_key.is_some()}))
        .collect();
    ctx.emit(json!(rows), || {
        rows.iter()
            .map(|r| format!("{}  {}  {}", r["profile"], r["mesh_id"], r["brokers"]))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn invite_code() -> String {
    // Crockford-style alphabet without look-alikes; 10 characters ≈ 50 bits.
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..10).map(|_| ALPHABET[crypto::random_below(ALPHABET.len() as u32) as usize] as char).collect()
}

async fn invite(ctx: &Ctx, cmd: InviteCmd) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    match cmd {
        InviteCmd::Create { role, uses, expires_in, groups } => {
            let role = match role.as_str() {
                "member" => Role::Member,
                "admin" => Role::Admin,
                _ => bail!("role is member or admin"),
            };
            let code = invite_code();
            let expires_at_ms = now_ms() + parse_duration(&expires_in)?.as_millis() as u64;
            let member = p.member_key().map_err(|e| anyhow!(e))?;
            let signed = signing::invite_bytes(p.mesh_id, &code, role, uses, expires_at_ms);
            let info = conn
                .call(&ops::InviteCreate {
                    code: code.clone(),
                    role,
                    max_uses: uses,
                    expires_at_ms,
                    signature: member.sign(&signed).to_vec(),
                    groups: groups.iter().map(|g| g.trim_start_matches('@').to_owned()).collect(),
                })
                .await?;
            let brokers = p.brokers.join(",");
            ctx.emit(json!({"code": info.code, "role": role.as_str(), "max_uses": uses, "expires_at_ms": expires_at_ms, "join": format!("plexus join {code} --broker {brokers} --name <your-name>")}), || {
                format!("invite {code} ({}, {uses} use(s), expires in {expires_in})\njoin with: plexus join {code} --broker {brokers} --name <your-name>", role.as_str())
            });
        }
        InviteCmd::List => {
            let list = conn.call(&ops::InviteList {}).await?;
            let rows: Vec<Value> = list.invites.iter().map(|i| json!({"code": i.code, "role": i.role.as_str(), "uses": i.uses, "max_uses": i.max_uses, "expires_at_ms": i.expires_at_ms, "revoked": i.revoked})).collect();
            ctx.emit(json!(rows), || {
                list.invites
                    .iter()
                    .map(|i| {
                        format!(
                            "{}  {}  {}/{} used{}",
                            i.code,
                            i.role.as_str(),
                            i.uses,
                            i.max_uses,
                            if i.revoked { "  revoked" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        InviteCmd::Revoke { code } => {
            conn.call(&ops::InviteRevoke { code: code.clone() }).await?;
            ctx.emit(json!({"revoked": code}), || format!("revoked {code}"));
        }
    }
    conn.close().await;
    Ok(())
}

async fn join(ctx: &Ctx, args: JoinArgs) -> Result<()> {
    let member = crypto::SigningKey::generate()?;
    let claim = crypto::BoxKeypair::generate()?;
    let member_id = Uuid::new_v4();
    let signed = signing::claim_bytes(&args.code, member_id, member.public_key(), claim.public_key());
    let body = ops::InviteClaim {
        code: args.code.clone(),
        member_id,
        member_pubkey: member.public_key().to_vec(),
        claim_pubkey: claim.public_key().to_vec(),
        display_name: args.name.clone(),
        signature: member.sign(&signed).to_vec(),
    };
    let tls_opts = TlsOptions { ca_file: args.ca_file.clone() };
    let (conn, _) = open_any(&args.broker, 0, &tls_opts).await?;
    let claimed = conn.call(&body).await?;
    conn.close().await;
    // The capability must be signed by the issuer the broker names.
    let cap = signing::invite_bytes(claimed.mesh_id, &args.code, claimed.role, claimed.max_uses, claimed.expires_at_ms);
    crypto::verify(&claimed.issuer_pubkey, &cap, &claimed.invite_signature)
        .context("the invite's signature does not verify")?;
    let mut p =
        new_profile(&claimed.mesh_name, args.broker, args.ca_file, claimed.mesh_id, member_id, args.name, &member)?;
    if Profile::list(&ctx.home)?.contains(&p.name) {
        p.name = format!("{}-{}", p.name, &member_id.simple().to_string()[..6]);
    }
    p.claim_secret = Some(hex(claim.secret_bytes()));
    p.save(&ctx.home)?;

    // Wait for a member holding the mesh key to seal it to our claim key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let cursor = LocalCursor::load(p.cursor_path(&ctx.home));
    let (mut conn, welcome) =
        connect(&p, SessionMode::Session, Some(&cursor), session_profile(&p, Status::Idle, &[])).await?;
    let mut got = adopt_welcome(ctx, &mut p, &welcome, &conn).await;
    while !got {
        match tokio::time::timeout_at(deadline, conn.next_push()).await {
            Ok(Some(push)) => {
                if let Some(k) = push_as::<MeshKey>(&push) {
                    got = adopt_mesh_key(ctx, &mut p, Some(&k.sealed_mesh_key), k.granted_by, &conn).await;
                }
            }
            _ => break,
        }
    }
    conn.close().await;
    ctx.emit(json!({"mesh_id": p.mesh_id, "member_id": member_id, "role": claimed.role.as_str(), "profile": p.name, "mesh_key": got}), || {
        let key = if got { "mesh key received" } else { "the mesh key will arrive when a member holding it is online (direct messages work already)" };
        format!("joined {} as {} ({}); {key}", claimed.mesh_name, p.display_name, claimed.role.as_str())
    });
    Ok(())
}

pub(crate) fn peer_json(p: &plexus_proto::types::PeerInfo) -> Value {
    json!({
        "session_id": p.session_id, "member_id": p.member_id, "name": p.display_name,
        "status": p.status.as_str(), "source": format!("{:?}", p.status_source).to_lowercase(),
        "summary": p.profile.summary, "groups": p.profile.groups.iter().map(|g| &g.name).collect::<Vec<_>>(),
        "host": p.profile.host, "cwd": p.profile.cwd, "agent": p.profile.agent_kind,
    })
}

async fn peers(ctx: &Ctx) -> Result<()> {
    let (_, conn, _) = control(ctx).await?;
    let list = conn.call(&ops::Peers {}).await?;
    conn.close().await;
    let rows: Vec<Value> = list.peers.iter().map(peer_json).collect();
    ctx.emit(json!(rows), || {
        if list.peers.is_empty() {
            return "no one is online".into();
        }
        list.peers
            .iter()
            .map(|p| {
                let groups: Vec<String> = p.profile.groups.iter().map(|g| format!("@{}", g.name)).collect();
                format!(
                    "{:<16} {:<8} {}  {}  {}",
                    p.display_name,
                    p.status.as_str(),
                    &p.session_id.to_string()[..8],
                    groups.join(","),
                    p.profile.summary.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn members(ctx: &Ctx) -> Result<()> {
    let (_, conn, _) = control(ctx).await?;
    let list = conn.call(&ops::Members {}).await?;
    conn.close().await;
    let rows: Vec<Value> = list.members.iter().map(|m| json!({"member_id": m.member_id, "name": m.display_name, "role": m.role.as_str(), "fingerprint": crypto::fingerprint(&m.pubkey)})).collect();
    ctx.emit(json!(rows), || {
        list.members
            .iter()
            .map(|m| format!("{:<16} {:<7} {}", m.display_name, m.role.as_str(), crypto::fingerprint(&m.pubkey)))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

pub(crate) fn find_member<'a>(
    list: &'a [plexus_proto::types::MemberInfo],
    who: &str,
) -> Result<&'a plexus_proto::types::MemberInfo> {
    let hits: Vec<_> = list
        .iter()
        .filter(|m| m.display_name.eq_ignore_ascii_case(who) || m.member_id.to_string().starts_with(who))
        .collect();
    match hits.len() {
        1 => Ok(hits[0]),
        0 => bail!("no member named {who:?}"),
        _ => bail!("{who:?} matches several members; use the member id"),
    }
}

async fn group(ctx: &Ctx, cmd: GroupCmd) -> Result<()> {
    let (_, conn, _) = control(ctx).await?;
    let mine = |g: &ops::MemberGroups| -> Value {
        json!({"groups": g.groups.iter().map(|g| json!({"name": g.name, "role": g.role})).collect::<Vec<_>>()})
    };
    let names = |g: &ops::MemberGroups| g.groups.iter().map(|g| format!("@{}", g.name)).collect::<Vec<_>>().join(" ");
    match cmd {
        GroupCmd::Join { name, role } => {
            let name = name.trim_start_matches('@').to_owned();
            let now = conn.call(&ops::GroupJoin { name: name.clone(), role }).await?;
            ctx.emit(mine(&now), || format!("joined @{name}; your groups: {}", names(&now)));
        }
        GroupCmd::Leave { name } => {
            let name = name.trim_start_matches('@').to_owned();
            let now = conn.call(&ops::GroupLeave { name: name.clone() }).await?;
            ctx.emit(mine(&now), || format!("left @{name}; your groups: {}", names(&now)));
        }
        GroupCmd::List => {
            let list = conn.call(&ops::GroupList {}).await?;
            let rows: Vec<Value> = list
                .groups
                .iter()
                .map(|g| json!({"name": g.name, "members": g.members.iter().map(|m| json!({"member_id": m.member_id, "name": m.display_name, "role": m.role})).collect::<Vec<_>>()}))
                .collect();
            ctx.emit(json!({"groups": rows}), || {
                if list.groups.is_empty() {
                    return "no groups yet (plexus group join <name>)".into();
                }
                list.groups
                    .iter()
                    .map(|g| {
                        let who: Vec<String> = g
                            .members
                            .iter()
                            .map(|m| match &m.role {
                                Some(r) => format!("{} ({r})", m.display_name),
                                None => m.display_name.clone(),
                            })
                            .collect();
                        format!("@{:<20} {}", g.name, who.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    conn.close().await;
    Ok(())
}

async fn member_remove(ctx: &Ctx, who: &str) -> Result<()> {
    let (_, conn, _) = control(ctx).await?;
    let list = conn.call(&ops::Members {}).await?;
    let m = find_member(&list.members, who)?;
    conn.call(&ops::MemberRemove { member_id: m.member_id }).await?;
    conn.close().await;
    ctx.emit(json!({"removed": m.member_id}), || format!("removed {}", m.display_name));
    Ok(())
}

async fn send(ctx: &Ctx, args: SendArgs) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    let priority = parse_priority(&args.priority)?;
    let id = args.id.unwrap_or_else(Uuid::new_v4);
    let sent = send_text(&p, &conn, &args.target, args.reply_to, None, &args.text, priority, id).await?;
    conn.close().await;
    ctx.emit(json!({"id": id, "seq": sent.seq, "duplicate": sent.duplicate}), || {
        format!("sent {id} (seq {}){}", sent.seq, if sent.duplicate { ", already stored" } else { "" })
    });
    Ok(())
}

/// Seal `text` for `to` (member name or id prefix, `@group`, `*`, `session:<id>`; or the
/// sender of `reply_to`) with `p`'s session key and send it with id `id`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_text(
    p: &Profile,
    conn: &Connection,
    to: &str,
    reply_to: Option<Uuid>,
    known_sender: Option<(Uuid, Vec<u8>)>,
    text: &str,
    priority: Priority,
    id: Uuid,
) -> Result<ops::Sent> {
    let session = p.session_key().map_err(|e| anyhow!(e))?;
    let text = text.as_bytes();
    let (target, sealed) = if let Some(original) = reply_to {
        // The reply is sealed to the original sender's session key, found in the inbox or
        // among present peers.
        let from_inbox = match known_sender {
            Some(s) => Some(s),
            None => {
                let inbox = conn.call(&ops::Inbox { limit: 1000 }).await?;
                inbox.messages.iter().find(|m| m.id == original).map(|m| (m.sender_session, m.sender_pubkey.clone()))
            }
        };
        let (sid, pk) = match from_inbox {
            Some(s) => s,
            None => bail!("message {original} is not in your inbox; reply with a member name instead"),
        };
        (Target::Session(sid), seal::seal_for(SealTo::Session(&pk), &session, text)?)
    } else if to == "*" {
        let key = p.mesh_key().ok_or_else(|| anyhow!("no mesh key yet: a member holding it must be online once"))?;
        (Target::All, seal::seal_for(SealTo::Mesh(&key), &session, text)?)
    } else if let Some(group) = to.strip_prefix('@') {
        let key = p.mesh_key().ok_or_else(|| anyhow!("no mesh key yet: a member holding it must be online once"))?;
        (Target::Group(group.to_owned()), seal::seal_for(SealTo::Mesh(&key), &session, text)?)
    } else if let Some(sid) = to.strip_prefix("session:") {
        let peers = conn.call(&ops::Peers {}).await?;
        let peer = peers
            .peers
            .iter()
            .find(|x| x.session_id.to_string().starts_with(sid))
            .ok_or_else(|| anyhow!("no present session {sid}"))?;
        (Target::Session(peer.session_id), seal::seal_for(SealTo::Session(&peer.session_pubkey), &session, text)?)
    } else {
        let list = conn.call(&ops::Members {}).await?;
        let m = find_member(&list.members, to)?;
        (Target::Member(m.member_id), seal::seal_for(SealTo::Member(&m.pubkey), &session, text)?)
    };
    let (sealing, nonce, ciphertext) = sealed;
    Ok(conn.call(&ops::Send { id, target, priority, reply_to, subtype: None, sealing, nonce, ciphertext }).await?)
}

pub(crate) fn message_json(m: &Message, text: &str) -> Value {
    json!({
        "seq": m.seq, "id": m.id, "from": m.sender_name, "from_member": m.sender_member,
        "from_session": m.sender_session, "fingerprint": crypto::fingerprint(&m.sender_member_pubkey),
        "priority": m.priority.as_str(), "subtype": m.subtype, "reply_to": m.reply_to,
        "target": match &m.target { Target::Session(_) => "session".to_owned(), Target::Member(_) => "member".to_owned(), Target::Group(g) => format!("@{g}"), Target::All => "*".to_owned() },
        "text": text, "sent_at_ms": m.sent_at_ms,
        // Coordination events (broker-written, unsealed) carry their object too.
        "event": (m.sealing == plexus_proto::types::Sealing::Plain)
            .then(|| serde_json::from_slice::<Value>(&m.ciphertext).ok())
            .flatten(),
    })
}

pub(crate) fn open_text(p: &Profile, m: &Message) -> String {
    let (Ok(session), Ok(member)) = (p.session_key(), p.member_key()) else { return "[keys unusable]".into() };
    match seal::open(m, &session, &member, p.mesh_key().as_deref()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => "[cannot decrypt: not sealed to this session or no mesh key yet]".into(),
    }
}

fn print_message(ctx: &Ctx, p: &Profile, m: &Message) {
    let text = open_text(p, m);
    ctx.emit(message_json(m, &text), || {
        format!(
            "[{}] #{} {} ({}): {}",
            m.priority.as_str(),
            m.seq,
            m.sender_name,
            crypto::fingerprint(&m.sender_member_pubkey),
            text
        )
    });
}

async fn inbox(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    let mut cursor = LocalCursor::load(p.cursor_path(&ctx.home));
    let items = conn.call(&ops::Inbox { limit: args.limit }).await?;
    let mut seqs = Vec::new();
    let mut shown = Vec::new();
    for m in &items.messages {
        seqs.push(m.seq);
        if cursor.seen(m.seq) {
            continue;
        }
        shown.push(message_json(m, &open_text(&p, m)));
        if !ctx.json {
            print_message(ctx, &p, m);
        }
        cursor.record(m.seq)?;
    }
    if !seqs.is_empty() {
        let acked = conn.call(&ops::Ack { seqs: seqs.clone(), read: true }).await?;
        cursor.confirm(&seqs, acked.cursor.watermark);
        cursor.save()?;
    }
    conn.close().await;
    if ctx.json {
        println!("{}", json!({"messages": shown, "more": items.more}));
    } else if shown.is_empty() {
        println!("no unread messages");
    }
    Ok(())
}

async fn ack(ctx: &Ctx, seqs: Vec<u64>) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    let mut cursor = LocalCursor::load(p.cursor_path(&ctx.home));
    for s in &seqs {
        cursor.record(*s)?;
    }
    let acked = conn.call(&ops::Ack { seqs: seqs.clone(), read: true }).await?;
    cursor.confirm(&seqs, acked.cursor.watermark);
    cursor.save()?;
    conn.close().await;
    ctx.emit(json!({"acked": seqs, "watermark": acked.cursor.watermark}), || {
        format!("acknowledged {} message(s)", seqs.len())
    });
    Ok(())
}

/// Seal the mesh key to a new member's claim key, if this profile holds it.
pub(crate) async fn grant_key(p: &Profile, conn: &Connection, req: &KeyRequest) {
    let Some(key) = p.mesh_key() else { return };
    if let Ok(sealed) = crypto::seal_anonymous(&req.claim_pubkey, &key) {
        match conn.call(&ops::KeyGrant { member_id: req.member_id, sealed_mesh_key: sealed }).await {
            Ok(_) => tracing::info!(member = %req.display_name, "handed the mesh key to a new member"),
            Err(e) => tracing::warn!(error = %e, "key grant failed"),
        }
    }
}

/// Stay connected as this profile's session, printing pushed messages; reconnect with backoff
/// and resume from the local cursor.
async fn follow(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    let mut p = ctx.profile()?;
    let status = parse_status(&args.status)?;
    let mut cursor = LocalCursor::load(p.cursor_path(&ctx.home));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut printed = 0usize;
    loop {
        let (mut conn, welcome) =
            match connect(&p, SessionMode::Session, Some(&cursor), session_profile(&p, status, &args.groups)).await {
                Ok(c) => c,
                Err(e) if e.is_transient() => {
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, delay_ms = d.as_millis() as u64, "reconnecting");
                    tokio::time::sleep(d).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
        backoff.reset();
        adopt_welcome(ctx, &mut p, &welcome, &conn).await;
        cursor.advance(welcome.cursor.watermark);
        if !ctx.json {
            eprintln!("following {} as {} (node {})", welcome.mesh_name, welcome.display_name, welcome.node_id);
        }
        while let Some(push) = conn.next_push().await {
            if let Some(m) = push_as::<Message>(&push) {
                if !cursor.seen(m.seq) {
                    print_message(ctx, &p, &m);
                    cursor.record(m.seq)?;
                    printed += 1;
                }
                // Acked after it is recorded locally: a crash in between re-delivers, and the
                // cursor suppresses the duplicate.
                match conn.call(&ops::Ack { seqs: vec![m.seq], read: false }).await {
                    Ok(a) => cursor.confirm(&[m.seq], a.cursor.watermark),
                    Err(e) => tracing::debug!(error = %e, "ack failed; will resend on reconnect"),
                }
                if args.count.is_some_and(|c| printed >= c) {
                    cursor.save()?;
                    conn.close().await;
                    return Ok(());
                }
            } else if let Some(d) = push_as::<Digest>(&push) {
                ctx.emit(json!({"digest": {"low_unread": d.low_unread, "senders": d.senders}}), || {
                    format!(
                        "({} low-priority message(s) waiting from {}; run `plexus inbox`)",
                        d.low_unread,
                        d.senders.join(", ")
                    )
                });
            } else if let Some(ev) = push_as::<PeerEvent>(&push) {
                if !ctx.json {
                    eprintln!("* {} {:?} ({})", ev.peer.display_name, ev.change, ev.peer.status.as_str());
                }
            } else if let Some(req) = push_as::<KeyRequest>(&push) {
                grant_key(&p, &conn, &req).await;
            } else if let Some(k) = push_as::<MeshKey>(&push) {
                adopt_mesh_key(ctx, &mut p, Some(&k.sealed_mesh_key), k.granted_by, &conn).await;
            }
        }
        match conn.closed().flatten() {
            Some(code) if !code.should_reconnect() => bail!("the broker closed this session: {code:?}"),
            code => {
                let d = conn.retry_hint().unwrap_or_else(|| backoff.next_delay());
                tracing::warn!(?code, delay_ms = d.as_millis() as u64, "connection lost; resuming");
                tokio::time::sleep(d).await;
            }
        }
    }
}

async fn status(ctx: &Ctx, cmd: StatusCmd) -> Result<()> {
    let (p, conn, _) = control(ctx).await?;
    match cmd {
        StatusCmd::Set { status, source, summary } => {
            let now =
                conn.call(&ops::SetStatus { status: parse_status(&status)?, source: parse_source(&source)? }).await?;
            if summary.is_some() {
                conn.call(&ops::SetProfile { summary, ..Default::default() }).await?;
            }
            ctx.emit(json!({"status": now.status.as_str()}), || format!("status {}", now.status.as_str()));
        }
        StatusCmd::Show => {
            let peers = conn.call(&ops::Peers {}).await?;
            match peers.peers.iter().find(|x| x.session_id == p.session_id) {
                Some(me) => ctx.emit(peer_json(me), || {
                    format!("{} is {} ({:?})", me.display_name, me.status.as_str(), me.status_source)
                }),
                None => ctx.emit(json!({"present": false}), || {
                    "this session is not present (run `plexus inbox --follow` or an agent with `plexus mcp`)".into()
                }),
            }
        }
    }
    conn.close().await;
    Ok(())
}

async fn message_status(ctx: &Ctx, id: Uuid) -> Result<()> {
    let (_, conn, _) = control(ctx).await?;
    let st = conn.call(&ops::MessageStatus { id }).await?;
    conn.close().await;
    let rows: Vec<Value> = st.recipients.iter().map(|r| json!({"session_id": r.session_id, "member_id": r.member_id, "name": r.display_name, "state": format!("{:?}", r.state).to_lowercase()})).collect();
    ctx.emit(json!({"seq": st.seq, "priority": st.priority.as_str(), "recipients": rows}), || {
        let mut s = format!("message {id} (seq {}, {})", st.seq, st.priority.as_str());
        for r in &st.recipients {
            s.push_str(&format!("\n  {:<16} {}  {:?}", r.display_name, &r.session_id.to_string()[..8], r.state));
        }
        s
    });
    Ok(())
}

async fn watch(ctx: &Ctx) -> Result<()> {
    let p = ctx.profile()?;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match connect(&p, SessionMode::Watch, None, session_profile(&p, Status::Idle, &[])).await {
            Ok((mut conn, welcome)) => {
                backoff.reset();
                if !ctx.json {
                    eprintln!("watching {} (node {})", welcome.mesh_name, welcome.node_id);
                }
                while let Some(push) = conn.next_push().await {
                    if let Some(r) = push_as::<Routed>(&push) {
                        let text = open_text(&p, &r.message);
                        ctx.emit(json!({"event": "message", "message": message_json(&r.message, &text)}), || {
                            format!(
                                "message #{} {} -> {}: {}",
                                r.message.seq,
                                r.message.sender_name,
                                message_json(&r.message, "")["target"],
                                text
                            )
                        });
                    } else if let Some(ev) = push_as::<PeerEvent>(&push) {
                        ctx.emit(json!({"event": "peer", "change": format!("{:?}", ev.change).to_lowercase(), "peer": peer_json(&ev.peer)}), || {
                            format!("peer {} {:?} ({})", ev.peer.display_name, ev.change, ev.peer.status.as_str())
                        });
                    }
                }
                if conn.closed().flatten() == Some(CloseCode::MemberRemoved) {
                    bail!("removed from the mesh");
                }
            }
            Err(e) if !e.is_transient() => return Err(e.into()),
            Err(e) => tracing::warn!(error = %e, "reconnecting"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn doctor(ctx: &Ctx) -> Result<()> {
    let mut checks: Vec<(String, bool, String)> = Vec::new();
    let profile = ctx.profile();
    match &profile {
        Ok(p) => checks.push(("profile".into(), true, format!("{} at {}", p.name, p.path(&ctx.home).display()))),
        Err(e) => checks.push(("profile".into(), false, format!("{e}; fix: plexus mesh create or plexus join"))),
    }
    if let Ok(p) = &profile {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p.path(&ctx.home)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            let ok = mode & 0o077 == 0;
            checks.push((
                "key file mode".into(),
                ok,
                if ok {
                    format!("{mode:o}")
                } else {
                    format!("{mode:o} is readable by others; fix: chmod 600 {}", p.path(&ctx.home).display())
                },
            ));
        }
        checks.push((
            "mesh key".into(),
            p.mesh_key.is_some(),
            if p.mesh_key.is_some() {
                "present".into()
            } else {
                "not yet granted; fix: stay online (plexus inbox --follow) while a member holding it is online".into()
            },
        ));
        let started = now_ms();
        match connect(p, SessionMode::Control, None, session_profile(p, Status::Idle, &[])).await {
            Ok((conn, w)) => {
                let rtt = now_ms().saturating_sub(started);
                checks.push((
                    "broker".into(),
                    true,
                    format!("{} reachable, node {}, protocol v{}", conn.url, w.node_id, plexus_proto::PROTOCOL_VERSION),
                ));
                let skew = (w.server_time_ms as i64 - (started + rtt / 2) as i64).unsigned_abs();
                checks.push((
                    "clock skew".into(),
                    skew < 30_000,
                    if skew < 30_000 {
                        format!("{skew} ms")
                    } else {
                        format!("{skew} ms; fix: sync your clock (hello is rejected past the broker's window)")
                    },
                ));
                conn.close().await;
            }
            Err(e) => checks.push((
                "broker".into(),
                false,
                format!("{e}; fix: check the URL in {} and that the broker runs", p.path(&ctx.home).display()),
            )),
        }
    }
    if let Ok(paths) = crate::install::Paths::from_env() {
        checks.extend(crate::install::checks(&paths));
    }
    let all_ok = checks.iter().all(|c| c.1);
    let rows: Vec<Value> = checks.iter().map(|(n, ok, d)| json!({"check": n, "ok": ok, "detail": d})).collect();
    ctx.emit(json!({"ok": all_ok, "checks": rows}), || {
        checks
            .iter()
            .map(|(n, ok, d)| format!("{} {:<14} {}", if *ok { "ok  " } else { "FAIL" }, n, d))
            .collect::<Vec<_>>()
            .join("\n")
    });
    if !all_ok {
        bail!("some checks failed");
    }
    Ok(())
}
