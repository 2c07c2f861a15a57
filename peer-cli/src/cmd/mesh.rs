//! Meshes and who is in them: create, list, choose the default; invites; joining (with
//! progress while the mesh key is on its way); members, removal and groups; who is online.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use plexus_client::{address::find_member, profile::slug, Event, Incoming, Outcome, Profile, Surface};
use plexus_crypto::{self as crypto, hex};
use plexus_proto::{
    ops, signing,
    types::{Role, SessionMode, Status},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    cli::{GroupCmd, InviteCmd, JoinArgs, KeyCmd, MeshCmd},
    ctx::{now_ms, parse_duration, session_profile, Ctx},
    render,
};

fn new_profile(
    name: &str,
    brokers: Vec<String>,
    ca_file: Option<String>,
    ids: (Uuid, Uuid),
    display_name: String,
    member: &crypto::SigningKey,
) -> Result<Profile> {
    let session = crypto::BoxKeypair::generate()?;
    Ok(Profile {
        name: slug(name),
        brokers,
        ca_file,
        mesh_id: ids.0,
        mesh_name: name.to_owned(),
        member_id: ids.1,
        display_name,
        member_secret: hex(member.secret_bytes()),
        session_id: Uuid::new_v4(),
        session_secret: hex(session.secret_bytes()),
        mesh_key: None,
        key_epoch: 0,
        retired_mesh_keys: Default::default(),
        claim_secret: None,
        key_commitment: None,
    })
}

pub(crate) async fn mesh(ctx: &Ctx, cmd: MeshCmd) -> Result<()> {
    match cmd {
        MeshCmd::Create { name, broker, display_name, operator_token, ca_file } => {
            create(ctx, name, broker, display_name, operator_token, ca_file).await
        }
        MeshCmd::List => list(ctx),
        MeshCmd::Use { name } => {
            let p = Profile::load(&ctx.home, Some(&name))?;
            p.set_default(&ctx.home)?;
            ctx.emit(json!({"default": p.name}), || format!("{} ({}) is now the default mesh", p.name, p.mesh_name));
            Ok(())
        }
        MeshCmd::Leave { yes } => leave(ctx, yes).await,
    }
}

async fn leave(ctx: &Ctx, yes: bool) -> Result<()> {
    let profile = ctx.profile()?;
    if !yes {
        bail!("leaving {} cannot be undone (coming back takes a new invite); run again with --yes", profile.mesh_name);
    }
    let (session, conn) = ctx.control().await?;
    match conn.call(&ops::MeshLeave {}).await {
        // Our own removal may close this connection before the reply arrives.
        Ok(_) | Err(plexus_client::ClientError::Closed(Some(plexus_proto::CloseCode::MemberRemoved))) => {}
        Err(e) => return Err(e.into()),
    }
    session.close().await;
    profile.remove(&ctx.home)?;
    ctx.emit(json!({"left": profile.mesh_id, "profile": profile.name}), || {
        format!("left {}; this machine no longer has its profile", profile.mesh_name)
    });
    Ok(())
}

async fn create(
    ctx: &Ctx,
    name: String,
    brokers: Vec<String>,
    display_name: String,
    operator_token: Option<String>,
    ca_file: Option<String>,
) -> Result<()> {
    let member = crypto::SigningKey::generate()?;
    let (mesh_id, member_id) = (Uuid::new_v4(), Uuid::new_v4());
    let mut profile = new_profile(&name, brokers, ca_file, (mesh_id, member_id), display_name.clone(), &member)?;
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
    let tls = plexus_client::TlsOptions { ca_file: profile.ca_file.clone() };
    let (conn, _) = plexus_client::connection::open_any(&profile.brokers, 0, &tls).await?;
    conn.call(&body).await?;
    conn.close().await;
    profile.save(&ctx.home)?;
    ctx.emit(json!({"mesh_id": mesh_id, "member_id": member_id, "profile": profile.name}), || {
        format!("created mesh {name} ({mesh_id}); you are its owner.\nnext: plexus invite create")
    });
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let default = std::fs::read_to_string(ctx.home.join("default")).unwrap_or_default();
    let profiles: Vec<Profile> =
        Profile::list(&ctx.home)?.iter().filter_map(|n| Profile::load(&ctx.home, Some(n)).ok()).collect();
    let rows: Vec<Value> = profiles
        .iter()
        .map(|p| json!({"profile": p.name, "mesh": p.mesh_name, "mesh_id": p.mesh_id, "brokers": p.brokers, "has_mesh_key": p.mesh_key.is_some(), "default": p.name == default.trim()}))
        .collect();
    ctx.emit(json!({"meshes": rows}), || {
        let rows: Vec<Vec<String>> = profiles
            .iter()
            .map(|p| {
                let mark = if p.name == default.trim() { "*" } else { "" };
                vec![format!("{}{mark}", p.name), p.mesh_name.clone(), p.brokers.join(","), p.display_name.clone()]
            })
            .collect();
        if rows.is_empty() {
            "no meshes here yet (plexus mesh create, or plexus join)".into()
        } else {
            render::table(&["PROFILE", "MESH", "BROKERS", "YOU"], &rows)
        }
    });
    Ok(())
}

fn invite_code() -> String {
    // Crockford-style alphabet without look-alikes; 10 characters ≈ 50 bits.
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..10).map(|_| ALPHABET[crypto::random_below(ALPHABET.len() as u32) as usize] as char).collect()
}

pub(crate) async fn invite(ctx: &Ctx, cmd: InviteCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let p = session.profile().await;
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
            let groups: Vec<String> = groups.iter().map(|g| g.trim_start_matches('@').to_owned()).collect();
            let info = conn
                .call(&ops::InviteCreate {
                    code: code.clone(),
                    role,
                    max_uses: uses,
                    expires_at_ms,
                    signature: member.sign(&signed).to_vec(),
                    groups: groups.clone(),
                })
                .await?;
            let brokers = p.brokers.join(",");
            let join = format!("plexus join {code} --broker {brokers} --name <your-name>");
            ctx.emit(json!({"code": info.code, "role": role.as_str(), "max_uses": uses, "expires_at_ms": expires_at_ms, "groups": groups, "join": join}), || {
                format!("invite {code} ({}, {uses} use(s), expires in {expires_in})\njoin with: {join}", role.as_str())
            });
        }
        InviteCmd::List => {
            let list = conn.call(&ops::InviteList {}).await?;
            let rows: Vec<Value> = list.invites.iter().map(|i| json!({"code": i.code, "role": i.role.as_str(), "uses": i.uses, "max_uses": i.max_uses, "expires_at_ms": i.expires_at_ms, "revoked": i.revoked, "groups": i.groups})).collect();
            ctx.emit(json!({"invites": rows}), || {
                let rows: Vec<Vec<String>> = list
                    .invites
                    .iter()
                    .map(|i| {
                        let state = if i.revoked {
                            "revoked".to_owned()
                        } else if i.expires_at_ms <= now_ms() {
                            "expired".to_owned()
                        } else {
                            format!("expires in {}", render::human(i.expires_at_ms - now_ms()))
                        };
                        vec![
                            i.code.clone(),
                            i.role.as_str().into(),
                            format!("{}/{}", i.uses, i.max_uses),
                            state,
                            i.groups.join(","),
                        ]
                    })
                    .collect();
                render::table(&["CODE", "ROLE", "USED", "STATE", "GROUPS"], &rows)
            });
        }
        InviteCmd::Revoke { code } => {
            conn.call(&ops::InviteRevoke { code: code.clone() }).await?;
            ctx.emit(json!({"revoked": code}), || format!("revoked {code}"));
        }
    }
    session.close().await;
    Ok(())
}

/// A joiner's session surfaces nothing while it waits for the key.
struct Waiting;

impl Surface for Waiting {
    async fn surface(&self, _incoming: &Incoming) -> Outcome {
        Outcome::Left
    }
}

pub(crate) async fn join(ctx: &Ctx, args: JoinArgs) -> Result<()> {
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
    let tls = plexus_client::TlsOptions { ca_file: args.ca_file.clone() };
    let (conn, _) = plexus_client::connection::open_any(&args.broker, 0, &tls).await?;
    let claimed = conn.call(&body).await?;
    conn.close().await;
    // The capability must be signed by the issuer the broker names.
    let cap = signing::invite_bytes(claimed.mesh_id, &args.code, claimed.role, claimed.max_uses, claimed.expires_at_ms);
    crypto::verify(&claimed.issuer_pubkey, &cap, &claimed.invite_signature)
        .context("the invite's signature does not verify")?;
    let mut p =
        new_profile(&claimed.mesh_name, args.broker, args.ca_file, (claimed.mesh_id, member_id), args.name, &member)?;
    if Profile::list(&ctx.home)?.contains(&p.name) {
        p.name = format!("{}-{}", p.name, &member_id.simple().to_string()[..6]);
    }
    p.claim_secret = Some(hex(claim.secret_bytes()));
    p.save(&ctx.home)?;
    let (name, role, profile_name) = (p.display_name.clone(), claimed.role, p.name.clone());

    // Wait for a member holding the mesh key to seal it to our claim key, saying so.
    let sp = session_profile(&p, Status::Idle, &[]);
    let session = ctx.session(p, SessionMode::Session, sp);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let running = {
        let session = session.clone();
        tokio::spawn(async move { session.run(std::sync::Arc::new(Waiting), events_tx).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let started = tokio::time::Instant::now();
    let mut got = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    if !ctx.json {
        eprintln!("joined {}; waiting for a member who holds the mesh key to hand it over…", claimed.mesh_name);
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::KeyStored) => { got = true; break; }
                Some(Event::KeyRefused { granted_by }) => {
                    eprintln!("refused a mesh key from {} that is not the one the owner committed to; still waiting", granted_by.map(|g| g.to_string()).unwrap_or_else(|| "an unknown member".into()));
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {
                if !ctx.json {
                    eprintln!("  still waiting for the mesh key ({}s; a member holding it must be online)", started.elapsed().as_secs());
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    running.abort();
    session.close().await;
    ctx.emit(json!({"mesh_id": claimed.mesh_id, "member_id": member_id, "role": role.as_str(), "profile": profile_name, "mesh_key": got}), || {
        let key = if got {
            "mesh key received"
        } else {
            "the mesh key arrives when a member holding it is online; `plexus inbox --follow` takes it then (direct messages work already)"
        };
        format!("joined {} as {name} ({}); {key}", claimed.mesh_name, role.as_str())
    });
    Ok(())
}

pub(crate) async fn peers(ctx: &Ctx) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let list = conn.call(&ops::Peers {}).await?;
    session.close().await;
    ctx.emit(json!({"peers": list.peers.iter().map(render::peer_json).collect::<Vec<_>>()}), || {
        if list.peers.is_empty() {
            return "no one is online".into();
        }
        let rows: Vec<Vec<String>> = list.peers.iter().map(render::peer_row).collect();
        if ctx.tty() {
            render::table(render::PEER_HEADERS, &rows)
        } else {
            rows.iter().map(|r| r.join("  ")).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

pub(crate) async fn members(ctx: &Ctx) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let list = conn.call(&ops::Members {}).await?;
    session.close().await;
    ctx.emit(json!({"members": list.members.iter().map(render::member_json).collect::<Vec<_>>()}), || {
        let rows: Vec<Vec<String>> = list.members.iter().map(render::member_row).collect();
        if ctx.tty() {
            render::table(render::MEMBER_HEADERS, &rows)
        } else {
            rows.iter().map(|r| r.join("  ")).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

pub(crate) async fn member_remove(ctx: &Ctx, who: &str) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let list = conn.call(&ops::Members {}).await?;
    let me = session.profile().await.member_id;
    let m = find_member(&list.members, who, me)?;
    conn.call(&ops::MemberRemove { member_id: m.member_id }).await?;
    // The removed member held the mesh key: rotate now, before anyone seals more with it.
    let mut p = session.profile().await;
    let rotated = plexus_client::keys::catch_up(&ctx.home, &mut p, &conn).await;
    session.close().await;
    let (epoch, due) = rotated?;
    ctx.emit(json!({"removed": m.member_id, "key_epoch": epoch, "rotation_due": due}), || {
        if due {
            format!("removed {}; the mesh key must be rotated by a member holding it", m.display_name)
        } else {
            format!("removed {}; the mesh key is now at epoch {epoch}", m.display_name)
        }
    });
    Ok(())
}

pub(crate) async fn key(ctx: &Ctx, cmd: KeyCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let mut p = session.profile().await;
    let result = match cmd {
        KeyCmd::Status => {
            plexus_client::keys::refresh(&ctx.home, &mut p, &conn).await.map(|l| (l.epoch, l.rotation_due))
        }
        KeyCmd::Rotate => {
            async {
                // A lost race (someone rotated, joined or left meanwhile) is worth another look.
                for _ in 0..5 {
                    if let Some(epoch) = plexus_client::keys::rotate(&ctx.home, &mut p, &conn).await? {
                        return Ok((epoch, false));
                    }
                }
                Err(plexus_client::ClientError::Keys("the members kept changing; try again".into()))
            }
            .await
        }
    };
    session.close().await;
    let (epoch, due) = result?;
    let mine = p.keyring().map(|r| r.epoch());
    let held = p.retired_mesh_keys.len() + usize::from(p.mesh_key.is_some());
    ctx.emit(json!({"epoch": epoch, "rotation_due": due, "my_epoch": mine, "keys_held": held}), || {
        let mine = mine.map_or("none".to_owned(), |e| e.to_string());
        let due = if due { "; a rotation is due (a member left)" } else { "" };
        format!("mesh key epoch {epoch}; yours: {mine}; {held} key(s) held for history{due}")
    });
    Ok(())
}

pub(crate) async fn group(ctx: &Ctx, cmd: GroupCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
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
                let rows: Vec<Vec<String>> = list
                    .groups
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
                        vec![format!("@{}", g.name), who.join(", ")]
                    })
                    .collect();
                render::table(&["GROUP", "MEMBERS"], &rows)
            });
        }
    }
    session.close().await;
    Ok(())
}

pub(crate) async fn link(ctx: &Ctx, typed: &str, yes: bool) -> Result<()> {
    use plexus_proto::link;
    let code = link::normalize(typed);
    link::check_code(&code).map_err(|e| anyhow!("{e}"))?;
    let shown = link::display(&code);
    let p = ctx.profile()?;
    let (session, conn) = ctx.control().await?;
    let pending = conn.call(&ops::LinkLookup { code: code.clone() }).await?;
    // The code is derived from the device's key: a key the broker put in between would not
    // produce the code the person read off the device.
    let derived = link::code_from_digest(&crypto::hash32(&link::code_input(&pending.link_pubkey)));
    if derived != code {
        session.close().await;
        bail!("the key the broker returned for {shown} does not match the code: not linking");
    }
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            session.close().await;
            bail!("linking gives the device your member key; run again with --yes to approve {shown}");
        }
        eprint!(
            "Link the device showing {shown} to you ({} in {})? It will hold your member key. [y/N] ",
            p.display_name, p.mesh_name
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            session.close().await;
            bail!("not linked");
        }
    }
    let me = conn.call(&ops::Members {}).await?.members.into_iter().find(|m| m.member_id == p.member_id);
    let bundle = link::LinkBundle {
        v: 1,
        mesh_id: p.mesh_id,
        mesh_name: p.mesh_name.clone(),
        member_id: p.member_id,
        display_name: p.display_name.clone(),
        role: me.map_or(Role::Member, |m| m.role),
        member_secret: p.member_secret.clone(),
        mesh_key: p.mesh_key.clone(),
        key_epoch: p.key_epoch,
        retired_mesh_keys: p.retired_mesh_keys.clone(),
        key_commitment: p.key_commitment.clone(),
    };
    let plain = serde_json::to_vec(&bundle)?;
    let sealed = crypto::seal_anonymous(&pending.link_pubkey, &plain)?;
    conn.call(&ops::LinkAnswer { code, sealed }).await?;
    session.close().await;
    ctx.emit(json!({"linked": shown, "member": p.display_name, "mesh": p.mesh_name}), || {
        format!("linked {shown}: that device is now {} in {}", p.display_name, p.mesh_name)
    });
    Ok(())
}

fn controls_text(c: &plexus_proto::controls::Controls, all: &[plexus_proto::types::MemberInfo]) -> Value {
    let name =
        |id: &Uuid| all.iter().find(|m| m.member_id == *id).map_or_else(|| id.to_string(), |m| m.display_name.clone());
    json!({
        "blocked": c.blocked.iter().map(name).collect::<Vec<_>>(),
        "muted": c.muted.iter().map(name).collect::<Vec<_>>(),
        "kinds": c.kinds,
    })
}

fn show(ctx: &Ctx, v: &Value) {
    ctx.emit(v.clone(), || {
        let list = |k: &str| {
            let names: Vec<&str> = v[k].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if names.is_empty() {
                "nobody".to_owned()
            } else {
                names.join(", ")
            }
        };
        let kinds = match v["kinds"].as_array() {
            Some(k) => k.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
            None => "all".into(),
        };
        format!("blocked: {}\nmuted: {}\nevents pushed: {kinds}", list("blocked"), list("muted"))
    });
}

/// `plexus block|mute NAME [--off]`.
pub(crate) async fn control(ctx: &Ctx, who: &str, kind: plexus_proto::controls::ControlKind, on: bool) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let p = session.profile().await;
    let all = crate::ctx::members(&conn).await?;
    let m = find_member(&all, who, p.member_id)?;
    let c = conn.call(&plexus_proto::controls::PeerControl { member_id: m.member_id, kind, on }).await?;
    session.close().await;
    show(ctx, &controls_text(&c, &all));
    Ok(())
}

/// `plexus subscribe KINDS… | --all`.
pub(crate) async fn subscribe(ctx: &Ctx, kinds: Option<Vec<String>>) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let all = crate::ctx::members(&conn).await?;
    let c = conn.call(&plexus_proto::controls::Subscribe { kinds }).await?;
    session.close().await;
    show(ctx, &controls_text(&c, &all));
    Ok(())
}

/// `plexus controls`.
pub(crate) async fn show_controls(ctx: &Ctx) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let all = crate::ctx::members(&conn).await?;
    let c = conn.call(&plexus_proto::controls::ControlsGet {}).await?;
    session.close().await;
    show(ctx, &controls_text(&c, &all));
    Ok(())
}
