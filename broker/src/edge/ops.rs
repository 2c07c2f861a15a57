//! The handlers of the ops that are not coordination rules: meshes, invites, membership, keys,
//! groups, presence and delivery. Each takes its decoded body and returns its typed reply;
//! [`super::registry`] routes to them and checks access.

use std::time::Duration;

use plexus_crypto as crypto;
use plexus_proto::{
    keys::KeyEpoch,
    ops::{self, Done},
    push::KeyRequest,
    signing,
    types::{Cursor, DeliveryState, Role, Sealing, SessionMode, Target},
    Request, PROTOCOL_VERSION,
};

use super::dispatch::{body, Authed};
use crate::{
    actors::{
        presence_session::{SessionMsg, SessionSpec},
        ConnHandle,
    },
    app::Broker,
    cluster::{MeshEvent, SessionCommand},
    coord::Caller,
    error::OpError,
    store::{self, audit, log::NewMessage, meshes, now_ms, StoreError},
};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn tokens_equal(a: &str, b: &str) -> bool {
    // Length leaks nothing useful (the token is random); compare contents in constant time.
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `mesh_create`.
pub async fn mesh_create(broker: &Broker, b: ops::MeshCreate) -> Result<ops::MeshCreated, OpError> {
    let required = &broker.cfg.meshes.operator_token;
    if !required.is_empty() && !b.operator_token.as_deref().is_some_and(|t| tokens_equal(t, required)) {
        return Err(OpError::OperatorToken);
    }
    let signed = signing::mesh_create_bytes(b.mesh_id, &b.name, b.owner_member_id, &b.owner_pubkey);
    crypto::verify(&b.owner_pubkey, &signed, &b.signature).map_err(|_| OpError::BadSignature("mesh_create"))?;
    let commitment = match (b.key_commitment, b.key_commitment_signature) {
        (Some(commitment), Some(signature)) => {
            let signed = signing::key_commitment_bytes(b.mesh_id, &commitment);
            crypto::verify(&b.owner_pubkey, &signed, &signature)
                .map_err(|_| OpError::BadSignature("key_commitment"))?;
            Some(meshes::KeyCommitment { commitment, signature })
        }
        _ => None,
    };
    match meshes::create_mesh(
        &broker.pool,
        b.mesh_id,
        &b.name,
        b.owner_member_id,
        &b.owner_pubkey,
        &b.owner_display_name,
        commitment.as_ref(),
    )
    .await?
    {
        meshes::CreateMesh::Created => {
            tracing::info!(mesh_id = %b.mesh_id, "mesh created");
            Ok(ops::MeshCreated { mesh_id: b.mesh_id, member_id: b.owner_member_id })
        }
        meshes::CreateMesh::Exists => Err(OpError::AlreadyExists("mesh")),
    }
}

/// `invite_claim`.
pub async fn invite_claim(broker: &Broker, b: ops::InviteClaim) -> Result<ops::InviteClaimed, OpError> {
    let signed = signing::claim_bytes(&b.code, b.member_id, &b.member_pubkey, &b.claim_pubkey);
    crypto::verify(&b.member_pubkey, &signed, &b.signature).map_err(|_| OpError::BadSignature("invite_claim"))?;
    let claimed =
        meshes::claim_invite(&broker.pool, &b.code, b.member_id, &b.member_pubkey, &b.claim_pubkey, &b.display_name)
            .await?
            .map_err(|refusal| match refusal {
                meshes::ClaimRefusal::NotFound => OpError::NotFound("invite"),
                meshes::ClaimRefusal::Expired => OpError::InviteExpired,
                meshes::ClaimRefusal::Revoked => OpError::InviteRevoked,
                meshes::ClaimRefusal::Exhausted => OpError::InviteExhausted,
                meshes::ClaimRefusal::AlreadyMember => OpError::AlreadyExists("member"),
                meshes::ClaimRefusal::NameTaken(free) => OpError::NameTaken(free),
            })?;
    tracing::info!(mesh_id = %claimed.mesh_id, member_id = %b.member_id, "invite claimed");
    broker.fanout.publish(
        claimed.mesh_id,
        MeshEvent::KeyRequest(KeyRequest {
            member_id: b.member_id,
            display_name: b.display_name.clone(),
            member_pubkey: b.member_pubkey.clone(),
            claim_pubkey: b.claim_pubkey.clone(),
        }),
    );
    Ok(ops::InviteClaimed {
        mesh_id: claimed.mesh_id,
        mesh_name: claimed.mesh_name,
        member_id: b.member_id,
        role: claimed.role,
        issuer_pubkey: claimed.issuer_pubkey,
        invite_signature: claimed.signature,
        expires_at_ms: claimed.expires_at_ms,
        max_uses: claimed.max_uses,
    })
}

/// `hello`: verify the member's signature, freshness and nonce, record the session, and start
/// its presence (session mode) or watch.
pub async fn hello(broker: &Broker, conn: &ConnHandle, req: &Request) -> Result<(Authed, ops::Welcome), OpError> {
    let b: ops::Hello = body(req)?;
    let intro = meshes::mesh_intro(&broker.pool, b.mesh_id).await?.ok_or(OpError::NotFound("mesh"))?;
    let member = meshes::member(&broker.pool, b.mesh_id, b.member_id).await?.ok_or(OpError::NotMember)?;
    if member.removed {
        return Err(OpError::NotMember);
    }
    let signed = signing::hello_bytes(
        PROTOCOL_VERSION,
        b.mesh_id,
        b.member_id,
        b.session_id,
        &b.session_pubkey,
        b.timestamp_ms,
        &b.nonce,
    );
    crypto::verify(&member.pubkey, &signed, &b.signature).map_err(|_| OpError::BadSignature("hello"))?;
    let now = now_ms();
    let skew_ms = now.abs_diff(b.timestamp_ms);
    if skew_ms > broker.cfg.auth.max_clock_skew_secs * 1000 {
        return Err(OpError::StaleTimestamp { skew_ms });
    }
    if !meshes::record_nonce(&broker.pool, &b.nonce).await? {
        return Err(OpError::ReplayedNonce);
    }
    // A session is shown under its member's name: a name is an identity, not a label to pick.
    let display_name = member.display_name.clone();
    // Groups named at hello are joined; membership is the member's and durable.
    meshes::join_groups(&broker.pool, b.mesh_id, b.member_id, &b.profile.groups).await?;
    let member_groups = meshes::member_groups(&broker.pool, b.mesh_id, b.member_id).await?;
    let groups: Vec<String> = member_groups.iter().map(|g| g.name.clone()).collect();
    let mut profile = b.profile.clone();
    profile.display_name = None;
    profile.groups = member_groups;
    let head = intro.head.max(0) as u64;
    // Nothing above the head exists yet: acknowledging it would silence messages to come.
    let client_cursor = meshes::ClientCursor {
        watermark: b.cursor.as_ref().map(|c| c.watermark.min(head)),
        acked: b.cursor.as_ref().map(|c| c.acked.iter().copied().filter(|s| *s <= head).collect()).unwrap_or_default(),
    };
    let stored = meshes::upsert_session(
        &broker.pool,
        b.mesh_id,
        b.session_id,
        b.member_id,
        &b.session_pubkey,
        &display_name,
        &groups,
        b.profile.visible,
        &client_cursor,
    )
    .await?
    .ok_or(OpError::Forbidden("that session id belongs to another member"))?;
    let watermark = stored.cursor.contiguous();
    let holds_mesh_key = member.role == Role::Owner || member.sealed_mesh_key.is_some();
    let conn_id = broker.conn_id();
    let session = match b.mode {
        SessionMode::Session => Some(
            broker
                .attach_session(SessionSpec {
                    mesh_id: b.mesh_id,
                    session_id: b.session_id,
                    member_id: b.member_id,
                    member_pubkey: member.pubkey.clone(),
                    holds_mesh_key,
                    member_name: member.display_name.clone(),
                    session_pubkey: b.session_pubkey.clone(),
                    profile,
                    cursor: stored.cursor,
                    created_seq: stored.created_seq.max(0) as u64,
                    connected_at_ms: now,
                    conn: conn.clone(),
                })
                .await?,
        ),
        SessionMode::Watch => {
            broker.watch(b.mesh_id, conn_id, b.member_id, conn.clone()).await?;
            None
        }
        SessionMode::Control => None,
    };
    let authed = Authed {
        who: Caller {
            mesh_id: b.mesh_id,
            member_id: b.member_id,
            session_id: b.session_id,
            name: display_name.clone(),
            role: member.role,
            session_pubkey: b.session_pubkey.clone(),
            member_pubkey: member.pubkey.clone(),
        },
        holds_mesh_key,
        mode: b.mode,
        session,
        conn_id,
        rooms: std::sync::Mutex::default(),
    };
    let (key_commitment, key_commitment_signature) = match intro.commitment {
        Some(c) => (Some(c.commitment), Some(c.signature)),
        None => (None, None),
    };
    let welcome = ops::Welcome {
        mesh_name: intro.name,
        role: member.role,
        display_name,
        head_seq: head,
        cursor: Cursor { watermark, acked: Vec::new() },
        sealed_mesh_key: member.sealed_mesh_key,
        node_id: broker.node_id.clone(),
        server_time_ms: now_ms(),
        key_commitment,
        key_commitment_signature,
        owner_pubkey: intro.owner_pubkey,
        key_epoch: intro.key.epoch,
        key_rotation_due: intro.key.rotation_due,
    };
    Ok((authed, welcome))
}

/// Targets a connection has already checked, so a stream of sends to one peer costs no
/// lookup per message. Only existence is cached: a message to a member removed meanwhile is
/// stored but addressed to nobody, which is harmless.
#[derive(Default)]
pub struct KnownTargets(std::collections::HashSet<Target>);

/// Resolve and check a `send` before it is enqueued.
pub async fn prepare_send(
    broker: &Broker,
    a: &Authed,
    known: &mut KnownTargets,
    req: &Request,
) -> Result<NewMessage, OpError> {
    let b: ops::Send = body(req)?;
    // Checked before anything is stored: a refused send leaves no trace.
    broker.limits.check_send(a.who.mesh_id, a.who.member_id, a.who.session_id).await?;
    if b.subtype.as_deref() == Some(crate::rooms::PROMPT_SUBTYPE) {
        return Err(OpError::InvalidValue(
            "subtype",
            "`prompt` messages come only from session_prompt, with the wheel".into(),
        ));
    }
    let mut target = b.target.clone();
    if let Some(original) = b.reply_to {
        let orig = store::log::message_by_id(&broker.pool, a.who.mesh_id, original)
            .await?
            .ok_or(OpError::NotFound("message replied to"))?;
        if b.sealing != Sealing::BoxSession {
            return Err(OpError::Invalid("a reply is sealed to the original sender's session (box_session)"));
        }
        target = Target::Session(orig.sender_session);
    } else if !known.0.contains(&target) {
        match &target {
            Target::Session(id) => {
                meshes::session_member(&broker.pool, a.who.mesh_id, *id).await?.ok_or(OpError::NotFound("session"))?;
            }
            Target::Member(id) => {
                let m = meshes::member(&broker.pool, a.who.mesh_id, *id).await?.ok_or(OpError::NotFound("member"))?;
                if m.removed {
                    return Err(OpError::NotFound("member"));
                }
            }
            Target::Group(g) => {
                if !meshes::group_has_members(&broker.pool, a.who.mesh_id, g).await? {
                    return Err(OpError::InvalidValue("target", format!("nobody is in @{g} (plexus group join {g})")));
                }
            }
            Target::All => {}
        }
        if known.0.len() < 10_000 {
            known.0.insert(target.clone());
        }
    }
    Ok(NewMessage {
        mesh_id: a.who.mesh_id,
        id: b.id,
        target,
        priority: b.priority,
        reply_to: b.reply_to,
        subtype: b.subtype,
        sender_member: a.who.member_id,
        sender_session: a.who.session_id,
        sender_name: a.who.name.clone(),
        sender_pubkey: a.who.session_pubkey.clone(),
        sender_member_pubkey: a.who.member_pubkey.clone(),
        key_epoch: (b.sealing == Sealing::MeshKey).then(|| crypto::mesh_key_epoch(&b.nonce)),
        sealing: b.sealing,
        nonce: b.nonce,
        ciphertext: b.ciphertext,
    })
}

/// `ack`: record acknowledged (or read) sequences for the session. Answers once they are
/// saved: a confirmed acknowledgement is never delivered again.
pub async fn ack(broker: &Broker, a: &Authed, b: ops::Ack) -> Result<ops::Acked, OpError> {
    let saved = |_| OpError::Internal("could not record ack");
    let (cursor, seqs) = if let Some(session) = &a.session {
        // The session knows what it was handed, so nothing else is looked up.
        let Ok(ractor::rpc::CallResult::Success(taken)) =
            session.call(|r| SessionMsg::Acked(b.seqs, r), Some(CALL_TIMEOUT)).await
        else {
            return Err(OpError::Internal("session stopped"));
        };
        broker.cursors.save(a.who.mesh_id, a.who.session_id, taken.save).await.map_err(saved)?;
        (taken.cursor, taken.seqs)
    } else {
        // A control connection acks for the session wherever it is present, and saves the
        // acknowledgements itself. A sequence above the head does not exist yet: acknowledging
        // it would silence the message that later gets it.
        let (_, head) = meshes::mesh_head(&broker.pool, a.who.mesh_id).await?.ok_or(OpError::NotFound("mesh"))?;
        let mut seqs = b.seqs;
        seqs.retain(|s| *s <= head.max(0) as u64);
        let claim = store::cursors::StoredCursor::acks(&seqs);
        broker.cursors.save(a.who.mesh_id, a.who.session_id, claim).await.map_err(saved)?;
        broker.fanout.publish(
            a.who.mesh_id,
            MeshEvent::SessionCommand {
                session_id: a.who.session_id,
                member_id: a.who.member_id,
                command: SessionCommand::Acked(seqs.clone()),
            },
        );
        let who = meshes::session_addressee(&broker.pool, a.who.mesh_id, a.who.session_id)
            .await?
            .ok_or(OpError::NotFound("session"))?;
        (Cursor { watermark: who.cursor.contiguous(), acked: Vec::new() }, seqs)
    };
    if b.read && !seqs.is_empty() {
        broker.cursors.read(a.who.mesh_id, a.who.session_id, seqs).await.map_err(saved)?;
    }
    Ok(ops::Acked { cursor })
}

/// `inbox`: unacknowledged messages addressed to the session, held ones included.
pub async fn inbox(broker: &Broker, a: &Authed, b: ops::Inbox) -> Result<ops::InboxItems, OpError> {
    let who = meshes::session_addressee(&broker.pool, a.who.mesh_id, a.who.session_id)
        .await?
        .ok_or(OpError::NotFound("session"))?;
    let mut messages = store::log::unacked_for(&broker.pool, &who, who.cursor.contiguous(), b.limit + 1).await?;
    let more = messages.len() > b.limit as usize;
    // What the member blocked is never shown (its present sessions count it as handled).
    let client = broker.pool.get().await.map_err(StoreError::from)?;
    let blocked = store::controls::get(&client, a.who.mesh_id, a.who.member_id).await?.blocked;
    messages.retain(|m| !blocked.contains(&m.sender_member));
    messages.truncate(b.limit as usize);
    Ok(ops::InboxItems { messages, more })
}

/// `peers`: present sessions (hidden ones only to their own member).
pub async fn peers(broker: &Broker, a: &Authed, _: ops::Peers) -> Result<ops::PeerList, OpError> {
    let peers = broker
        .presence
        .list(a.who.mesh_id)
        .await
        .into_iter()
        .filter(|p| p.profile.visible || p.member_id == a.who.member_id)
        .collect();
    Ok(ops::PeerList { peers })
}

/// `members`: every member of the mesh.
pub async fn members(broker: &Broker, a: &Authed, _: ops::Members) -> Result<ops::MemberList, OpError> {
    let members = meshes::members(&broker.pool, a.who.mesh_id)
        .await?
        .iter()
        .map(super::super::store::meshes::MemberRow::info)
        .collect();
    Ok(ops::MemberList { members })
}

/// A control connection's change to its session reaches the session where it is present;
/// when it is present nowhere there is nothing to change, and the caller is told.
async fn require_present(broker: &Broker, a: &Authed) -> Result<(), OpError> {
    if broker.presence.list(a.who.mesh_id).await.iter().any(|p| p.session_id == a.who.session_id) {
        Ok(())
    } else {
        Err(OpError::NotFound("present session (start `plexus inbox --follow` or an agent with `plexus mcp` first)"))
    }
}

/// `set_status`: report a status, to this session or, from a control connection, to the
/// present session of the same id.
pub async fn set_status(broker: &Broker, a: &Authed, b: ops::SetStatus) -> Result<ops::StatusNow, OpError> {
    if let Some(session) = &a.session {
        return match session.call(|r| SessionMsg::SetStatus(b.status, b.source, r), Some(CALL_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success((status, source))) => Ok(ops::StatusNow { status, source }),
            _ => Err(OpError::Internal("session stopped")),
        };
    }
    require_present(broker, a).await?;
    broker.fanout.publish(
        a.who.mesh_id,
        MeshEvent::SessionCommand {
            session_id: a.who.session_id,
            member_id: a.who.member_id,
            command: SessionCommand::SetStatus(b.status, b.source),
        },
    );
    Ok(ops::StatusNow { status: b.status, source: b.source })
}

/// `set_profile`: summary, visibility, pull-only and the member's groups.
pub async fn set_profile(broker: &Broker, a: &Authed, mut b: ops::SetProfile) -> Result<Done, OpError> {
    if let Some(groups) = b.groups.take() {
        // Groups are the member's: the list replaces its membership, for all its sessions.
        set_member_groups(broker, a, groups).await?;
    }
    if b.summary.is_none() && b.visible.is_none() && b.pull_only.is_none() {
        return Ok(Done {});
    }
    if let Some(visible) = b.visible {
        meshes::update_session_visibility(&broker.pool, a.who.mesh_id, a.who.session_id, visible).await?;
    }
    if let Some(session) = &a.session {
        return match session.call(|r| SessionMsg::SetProfile(b, r), Some(CALL_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success(())) => Ok(Done {}),
            _ => Err(OpError::Internal("session stopped")),
        };
    }
    require_present(broker, a).await?;
    broker.fanout.publish(
        a.who.mesh_id,
        MeshEvent::SessionCommand {
            session_id: a.who.session_id,
            member_id: a.who.member_id,
            command: SessionCommand::SetProfile(b),
        },
    );
    Ok(Done {})
}

async fn publish_groups(broker: &Broker, a: &Authed) -> Result<ops::MemberGroups, OpError> {
    let groups = meshes::member_groups(&broker.pool, a.who.mesh_id, a.who.member_id).await?;
    broker
        .fanout
        .publish(a.who.mesh_id, MeshEvent::MemberGroups { member_id: a.who.member_id, groups: groups.clone() });
    Ok(ops::MemberGroups { groups })
}

async fn set_member_groups(
    broker: &Broker,
    a: &Authed,
    groups: Vec<plexus_proto::types::GroupRole>,
) -> Result<ops::MemberGroups, OpError> {
    meshes::set_groups(&broker.pool, a.who.mesh_id, a.who.member_id, &groups).await?;
    publish_groups(broker, a).await
}

/// `group_join`: the member joins a group.
pub async fn group_join(broker: &Broker, a: &Authed, b: ops::GroupJoin) -> Result<ops::MemberGroups, OpError> {
    let group = plexus_proto::types::GroupRole { name: b.name, role: b.role };
    meshes::join_groups(&broker.pool, a.who.mesh_id, a.who.member_id, &[group]).await?;
    publish_groups(broker, a).await
}

/// `group_leave`: the member leaves a group.
pub async fn group_leave(broker: &Broker, a: &Authed, b: ops::GroupLeave) -> Result<ops::MemberGroups, OpError> {
    if !meshes::leave_group(&broker.pool, a.who.mesh_id, a.who.member_id, &b.name).await? {
        return Err(OpError::NotFound("group membership"));
    }
    publish_groups(broker, a).await
}

/// `group_list`: the mesh's groups and their members.
pub async fn group_list(broker: &Broker, a: &Authed, _: ops::GroupList) -> Result<ops::Groups, OpError> {
    Ok(ops::Groups { groups: meshes::list_groups(&broker.pool, a.who.mesh_id).await? })
}

/// `message_status`: who got a message the caller's member sent, and how far.
pub async fn message_status(broker: &Broker, a: &Authed, b: ops::MessageStatus) -> Result<ops::MessageState, OpError> {
    let msg =
        store::log::message_by_id(&broker.pool, a.who.mesh_id, b.id).await?.ok_or(OpError::NotFound("message"))?;
    // Only the sending member may see who got it; to anyone else it does not exist.
    if msg.sender_member != a.who.member_id {
        return Err(OpError::NotFound("message"));
    }
    // A session whose agent is gone stops counting after a grace: it will never read the
    // message, and a member's next session gets what was addressed to the member.
    let present: std::collections::HashSet<uuid::Uuid> =
        broker.presence.list(a.who.mesh_id).await.into_iter().map(|p| p.session_id).collect();
    // "Pushed" is a present session's, kept in memory: one that left gets the message again.
    let pushed = broker.presence.pushed_marks(a.who.mesh_id).await;
    let recent = now_ms().saturating_sub(broker.cfg.delivery.dead_session_grace_secs * 1000);
    let mut recipients: Vec<ops::RecipientState> = store::log::recipients(&broker.pool, a.who.mesh_id, &msg)
        .await?
        .into_iter()
        .filter(|r| r.state != DeliveryState::Queued || present.contains(&r.session_id) || r.last_seen_ms >= recent)
        .map(|r| {
            let is_pushed =
                present.contains(&r.session_id) && pushed.get(&r.session_id).is_some_and(|m| m.pushed(msg.seq));
            ops::RecipientState {
                session_id: r.session_id,
                member_id: r.member_id,
                display_name: r.display_name,
                state: if r.state == DeliveryState::Queued && is_pushed { DeliveryState::Pushed } else { r.state },
            }
        })
        .collect();
    if let Target::Member(member_id) = msg.target {
        if recipients.is_empty() {
            // Nobody of the member is around: the member's next session will get it.
            let name = meshes::member(&broker.pool, a.who.mesh_id, member_id).await?.map(|m| m.display_name);
            recipients.push(ops::RecipientState {
                session_id: uuid::Uuid::nil(),
                member_id,
                display_name: name.unwrap_or_default(),
                state: DeliveryState::Queued,
            });
        }
    }
    Ok(ops::MessageState { seq: msg.seq, target: msg.target, priority: msg.priority, recipients })
}

/// `invite_create`: a signed invite (admins; only the owner invites admins).
pub async fn invite_create(broker: &Broker, a: &Authed, b: ops::InviteCreate) -> Result<ops::InviteInfo, OpError> {
    if b.role == Role::Admin && a.who.role != Role::Owner {
        return Err(OpError::Forbidden("only the owner can invite admins"));
    }
    if b.expires_at_ms <= now_ms() {
        return Err(OpError::Invalid("expires_at_ms is in the past"));
    }
    let signed = signing::invite_bytes(a.who.mesh_id, &b.code, b.role, b.max_uses, b.expires_at_ms);
    crypto::verify(&a.who.member_pubkey, &signed, &b.signature).map_err(|_| OpError::BadSignature("invite"))?;
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    if !meshes::create_invite(
        &tx,
        a.who.mesh_id,
        &b.code,
        b.role,
        b.max_uses,
        b.expires_at_ms,
        a.who.member_id,
        &b.signature,
        &b.groups,
    )
    .await?
    {
        return Err(OpError::AlreadyExists("invite code"));
    }
    let detail =
        serde_json::json!({ "role": b.role.as_str(), "max_uses": b.max_uses, "expires_at_ms": b.expires_at_ms });
    audit::append(&tx, a.who.mesh_id, actor(a), "invite.created", &meshes::invite_hint(&b.code), detail).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(ops::InviteInfo {
        code: b.code,
        role: b.role,
        max_uses: b.max_uses,
        uses: 0,
        expires_at_ms: b.expires_at_ms,
        revoked: false,
        issued_by: a.who.member_id,
        groups: b.groups,
    })
}

/// `invite_list`: the mesh's invites.
pub async fn invite_list(broker: &Broker, a: &Authed, _: ops::InviteList) -> Result<ops::Invites, OpError> {
    Ok(ops::Invites { invites: meshes::list_invites(&broker.pool, a.who.mesh_id).await? })
}

/// `invite_revoke`: stop an invite from being claimed.
pub async fn invite_revoke(broker: &Broker, a: &Authed, b: ops::InviteRevoke) -> Result<Done, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    if !meshes::revoke_invite(&tx, a.who.mesh_id, &b.code).await? {
        return Err(OpError::NotFound("invite"));
    }
    let hint = meshes::invite_hint(&b.code);
    audit::append(&tx, a.who.mesh_id, actor(a), "invite.revoked", &hint, serde_json::json!({})).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Done {})
}

/// `member_remove`: remove another member (never the owner; admins only by the owner).
pub async fn member_remove(broker: &Broker, a: &Authed, b: ops::MemberRemove) -> Result<Done, OpError> {
    let target = meshes::member(&broker.pool, a.who.mesh_id, b.member_id).await?.ok_or(OpError::NotFound("member"))?;
    if target.role == Role::Owner {
        return Err(OpError::Forbidden("the owner cannot be removed"));
    }
    if target.role == Role::Admin && a.who.role != Role::Owner {
        return Err(OpError::Forbidden("only the owner can remove an admin"));
    }
    remove_member(broker, a, b.member_id).await
}

/// `mesh_leave`: the caller's member removes itself (the owner cannot: a mesh always has one).
pub async fn mesh_leave(broker: &Broker, a: &Authed, _: ops::MeshLeave) -> Result<Done, OpError> {
    if a.who.role == Role::Owner {
        return Err(OpError::Forbidden("the owner cannot leave its mesh"));
    }
    remove_member(broker, a, a.who.member_id).await
}

/// Remove a member; its sessions close with `MemberRemoved` wherever they are connected.
async fn remove_member(broker: &Broker, a: &Authed, member_id: uuid::Uuid) -> Result<Done, OpError> {
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    if !meshes::remove_member(&tx, a.who.mesh_id, member_id).await? {
        return Err(OpError::NotFound("member"));
    }
    let action = if member_id == a.who.member_id { "member.left" } else { "member.removed" };
    audit::append(&tx, a.who.mesh_id, actor(a), action, &member_id.to_string(), serde_json::json!({})).await?;
    // The member held the mesh key: nothing new may be sealed with it until a key holder
    // rotates (the log writer refuses such sends until then).
    let key = store::keys::mark_rotation_due(&tx, a.who.mesh_id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(mesh_id = %a.who.mesh_id, %member_id, by = %a.who.member_id, "member removed");
    broker.fanout.publish(a.who.mesh_id, MeshEvent::MemberRemoved { member_id });
    broker
        .fanout
        .publish(a.who.mesh_id, MeshEvent::KeyEpoch(KeyEpoch { epoch: key.epoch, rotation_due: key.rotation_due }));
    Ok(Done {})
}

/// `key_rotate`: a holder of the current mesh key hands a new one, for the next epoch, to
/// every current member. The signature binds it to the rotating member; the broker checks it
/// so a rotation in the log is always attributable, and every member checks it again.
pub async fn key_rotate(broker: &Broker, a: &Authed, b: plexus_proto::keys::KeyRotate) -> Result<Done, OpError> {
    let signed = signing::key_rotation_bytes(a.who.mesh_id, b.epoch, &b.commitment);
    crypto::verify(&a.who.member_pubkey, &signed, &b.signature).map_err(|_| OpError::BadSignature("signature"))?;
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    match store::keys::rotate(&tx, a.who.mesh_id, a.who.member_id, &b).await? {
        store::keys::Rotated::Done => {}
        store::keys::Rotated::WrongEpoch(current) => {
            return Err(OpError::Conflict(format!("the mesh key is at epoch {current}; rotate to {}", current + 1)));
        }
        store::keys::Rotated::MembersChanged => {
            return Err(OpError::Conflict(
                "the members changed: seal the new key to exactly the current members".into(),
            ));
        }
        store::keys::Rotated::NotHolder => {
            return Err(OpError::Forbidden("only a holder of the current mesh key can rotate it"))
        }
    }
    let details = serde_json::json!({ "members": b.sealed.len() });
    audit::append(&tx, a.who.mesh_id, actor(a), "key.rotated", &b.epoch.to_string(), details).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(mesh_id = %a.who.mesh_id, epoch = b.epoch, by = %a.who.member_id, "mesh key rotated");
    broker.fanout.publish(a.who.mesh_id, MeshEvent::KeyEpoch(KeyEpoch { epoch: b.epoch, rotation_due: false }));
    Ok(Done {})
}

/// `mesh_keys`: the caller's member's rotated keys and the mesh's key state.
pub async fn mesh_keys(
    broker: &Broker,
    a: &Authed,
    _: plexus_proto::keys::MeshKeys,
) -> Result<plexus_proto::keys::MeshKeyList, OpError> {
    Ok(store::keys::member_keys(&broker.pool, a.who.mesh_id, a.who.member_id).await?)
}

/// `peer_control`: block or mute a member (or lift it); applied at once on every node.
pub async fn peer_control(
    broker: &Broker,
    a: &Authed,
    b: plexus_proto::controls::PeerControl,
) -> Result<plexus_proto::controls::Controls, OpError> {
    if b.member_id == a.who.member_id {
        return Err(OpError::Invalid("member_id is yourself"));
    }
    meshes::member(&broker.pool, a.who.mesh_id, b.member_id).await?.ok_or(OpError::NotFound("member"))?;
    let client = broker.pool.get().await.map_err(StoreError::from)?;
    store::controls::set(&client, a.who.mesh_id, a.who.member_id, b.member_id, b.kind, b.on).await?;
    publish_controls(broker, &client, a).await
}

/// `subscribe`: which event kinds are pushed to the caller's member.
pub async fn subscribe(
    broker: &Broker,
    a: &Authed,
    b: plexus_proto::controls::Subscribe,
) -> Result<plexus_proto::controls::Controls, OpError> {
    let client = broker.pool.get().await.map_err(StoreError::from)?;
    store::controls::subscribe(&client, a.who.mesh_id, a.who.member_id, b.kinds.as_deref()).await?;
    publish_controls(broker, &client, a).await
}

/// `controls`: the caller's member's controls.
pub async fn controls(
    broker: &Broker,
    a: &Authed,
    _: plexus_proto::controls::ControlsGet,
) -> Result<plexus_proto::controls::Controls, OpError> {
    let client = broker.pool.get().await.map_err(StoreError::from)?;
    Ok(store::controls::get(&client, a.who.mesh_id, a.who.member_id).await?)
}

async fn publish_controls(
    broker: &Broker,
    client: &deadpool_postgres::Client,
    a: &Authed,
) -> Result<plexus_proto::controls::Controls, OpError> {
    let controls = store::controls::get(client, a.who.mesh_id, a.who.member_id).await?;
    let event = MeshEvent::MemberControls { member_id: a.who.member_id, controls: controls.clone() };
    broker.fanout.publish(a.who.mesh_id, event);
    Ok(controls)
}

/// The caller as the actor of an audited action.
pub fn actor(a: &Authed) -> audit::Actor<'_> {
    audit::Actor { member: Some(a.who.member_id), name: &a.who.name }
}

/// `audit_list`: the mesh's audit log (admins).
pub async fn audit_list(
    broker: &Broker,
    a: &Authed,
    b: plexus_proto::audit::AuditList,
) -> Result<plexus_proto::audit::AuditEntries, OpError> {
    Ok(audit::list(&broker.pool, a.who.mesh_id, &b).await?)
}

/// `lock_acquire`: a waiter whose connection closed gives its place back.
pub async fn lock_acquire(
    broker: &Broker,
    conn: &ConnHandle,
    a: &Authed,
    b: plexus_proto::coord::LockAcquire,
) -> Result<plexus_proto::coord::LockInfo, OpError> {
    crate::coord::locks::acquire(&broker.coord, &a.who, b, || !conn.frames.is_closed()).await
}

/// `key_grant`: hand the mesh key, sealed to its claim key, to a member waiting for it.
pub async fn key_grant(broker: &Broker, a: &Authed, b: ops::KeyGrant) -> Result<Done, OpError> {
    let me = meshes::member(&broker.pool, a.who.mesh_id, a.who.member_id).await?.ok_or(OpError::NotMember)?;
    if me.role != Role::Owner && me.sealed_mesh_key.is_none() {
        return Err(OpError::Forbidden("only a member holding the mesh key can grant it"));
    }
    let mut client = broker.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    match meshes::grant_mesh_key(&tx, a.who.mesh_id, b.member_id, &b.sealed_mesh_key, a.who.member_id).await? {
        meshes::Granted::Stored => {
            if !store::keys::grant_epoch_keys(&tx, a.who.mesh_id, b.member_id, &b.epoch_keys).await? {
                return Err(OpError::Conflict(
                    "the mesh key was rotated: grant the current epoch's key in epoch_keys too".into(),
                ));
            }
            let subject = b.member_id.to_string();
            audit::append(&tx, a.who.mesh_id, actor(a), "key.granted", &subject, serde_json::json!({})).await?;
            tx.commit().await.map_err(StoreError::from)?;
            broker.fanout.publish(
                a.who.mesh_id,
                MeshEvent::KeyGranted {
                    member_id: b.member_id,
                    sealed_mesh_key: b.sealed_mesh_key,
                    granted_by: Some(a.who.member_id),
                },
            );
            Ok(Done {})
        }
        // Granting twice is harmless: the first grant wins.
        meshes::Granted::AlreadyHeld => Ok(Done {}),
        meshes::Granted::NoSuchMember => Err(OpError::NotFound("member waiting for the mesh key in this mesh")),
        meshes::Granted::Refused => {
            Err(OpError::Forbidden("that member refused a key you granted as not matching the owner's commitment"))
        }
    }
}

/// `key_reject`: the caller's granted key failed the owner's commitment.
pub async fn key_reject(broker: &Broker, a: &Authed, _: ops::KeyReject) -> Result<Done, OpError> {
    let Some(granter) = meshes::refuse_mesh_key(&broker.pool, a.who.mesh_id, a.who.member_id).await? else {
        return Err(OpError::NotFound("granted mesh key"));
    };
    tracing::warn!(mesh_id = %a.who.mesh_id, member_id = %a.who.member_id, granter = ?granter, "a granted mesh key was refused as forged");
    let me = meshes::member(&broker.pool, a.who.mesh_id, a.who.member_id).await?.ok_or(OpError::NotMember)?;
    if let Some(claim_pubkey) = me.claim_pubkey {
        broker.fanout.publish(
            a.who.mesh_id,
            MeshEvent::KeyRequest(KeyRequest {
                member_id: me.id,
                display_name: me.display_name,
                member_pubkey: me.pubkey,
                claim_pubkey,
            }),
        );
    }
    Ok(Done {})
}

/// `link_offer`: a device asks to be linked. Its code must be the one derived from its key,
/// so no one can hold a code for a key that is not theirs.
pub async fn link_offer(broker: &Broker, b: ops::LinkOffer) -> Result<Done, OpError> {
    let digest = crypto::hash32(&plexus_proto::link::code_input(&b.link_pubkey));
    if plexus_proto::link::code_from_digest(&digest) != b.code {
        return Err(OpError::Invalid("the code is not the one derived from link_pubkey"));
    }
    match store::links::offer(&broker.pool, &b.code, &b.link_pubkey).await? {
        store::links::Offered::Stored => Ok(Done {}),
        store::links::Offered::Taken => Err(OpError::AlreadyExists("link code")),
        store::links::Offered::Full => Err(OpError::Internal("too many links are pending; try again in a few minutes")),
    }
}

/// `link_lookup`: the key of a pending link, for a member about to answer it.
pub async fn link_lookup(broker: &Broker, _: &Authed, b: ops::LinkLookup) -> Result<ops::LinkPending, OpError> {
    let link_pubkey = store::links::lookup(&broker.pool, &b.code).await?.ok_or(OpError::NotFound("pending link"))?;
    Ok(ops::LinkPending { link_pubkey })
}

/// `link_answer`: a member leaves its identity, sealed to the device's key.
pub async fn link_answer(broker: &Broker, a: &Authed, b: ops::LinkAnswer) -> Result<Done, OpError> {
    if !store::links::answer(&broker.pool, &b.code, &b.sealed, a.who.mesh_id, a.who.member_id).await? {
        return Err(OpError::NotFound("pending link (it may have expired or been answered)"));
    }
    tracing::info!(mesh_id = %a.who.mesh_id, member_id = %a.who.member_id, "a device was linked");
    Ok(Done {})
}

/// `link_fetch`: the device takes its answer (once).
pub async fn link_fetch(broker: &Broker, b: ops::LinkFetch) -> Result<ops::LinkResult, OpError> {
    match store::links::fetch(&broker.pool, &b.code).await? {
        store::links::Fetched::Answered(sealed) => Ok(ops::LinkResult { sealed: Some(sealed) }),
        store::links::Fetched::Pending => Ok(ops::LinkResult { sealed: None }),
        store::links::Fetched::Gone => Err(OpError::NotFound("link (it expired, or was fetched already)")),
    }
}
