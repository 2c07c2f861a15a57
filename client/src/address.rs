//! Who a message is for, and sealing it for them. A recipient is written the way people write
//! it — a member's name (or id prefix, or `me`), `@group`, `*`, `session:<id>` — or is the
//! sender of a message being replied to; it resolves to a wire [`Target`] and the key its body
//! is sealed with.

use plexus_proto::{
    ops,
    types::{MemberInfo, Priority, Target},
};
use uuid::Uuid;

use crate::{
    connection::{ClientError, Connection},
    profile::Profile,
    seal::{seal_for, SealTo},
};

/// The member `who` names: `me`, a display name (case-insensitive), or an id (or its prefix).
pub fn find_member<'a>(members: &'a [MemberInfo], who: &str, me: Uuid) -> Result<&'a MemberInfo, ClientError> {
    if who == "me" {
        return members
            .iter()
            .find(|m| m.member_id == me)
            .ok_or_else(|| ClientError::Address("you are not a member".into()));
    }
    if let Some(m) = members.iter().find(|m| m.display_name.eq_ignore_ascii_case(who)) {
        return Ok(m);
    }
    let by_id: Vec<&MemberInfo> = members.iter().filter(|m| m.member_id.to_string().starts_with(who)).collect();
    match by_id.len() {
        1 => Ok(by_id[0]),
        0 => Err(ClientError::Address(format!("no member named {who:?} (plexus members lists them)"))),
        _ => Err(ClientError::Address(format!("{who:?} matches several members; use more of the id"))),
    }
}

/// The session that sent a message being replied to: its id and x25519 key.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// The message replied to.
    pub message: Uuid,
    /// Its sending session.
    pub session: Uuid,
    /// That session's x25519 key.
    pub session_pubkey: Vec<u8>,
}

/// A resolved recipient.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// A member (all its sessions), sealed to its member key.
    Member(MemberInfo),
    /// A group, sealed with the mesh key.
    Group(String),
    /// Everyone, sealed with the mesh key.
    All,
    /// One present session, sealed to its session key.
    Session {
        /// Session id.
        id: Uuid,
        /// Its x25519 key.
        pubkey: Vec<u8>,
    },
    /// Exactly the session that sent a message.
    Reply(ReplyTo),
}

impl Recipient {
    /// How it reads to people.
    pub fn describe(&self) -> String {
        match self {
            Recipient::Member(m) => m.display_name.clone(),
            Recipient::Group(g) => format!("@{g}"),
            Recipient::All => "*".into(),
            Recipient::Session { id, .. } => format!("session:{}", &id.to_string()[..8]),
            Recipient::Reply(r) => format!("the sender of {}", r.message),
        }
    }
}

/// Resolve `to` over `conn` (member and peer lists are asked for only when needed).
pub async fn resolve(conn: &Connection, profile: &Profile, to: &str) -> Result<Recipient, ClientError> {
    if to == "*" {
        return Ok(Recipient::All);
    }
    if let Some(group) = to.strip_prefix('@') {
        return Ok(Recipient::Group(group.to_owned()));
    }
    if let Some(sid) = to.strip_prefix("session:") {
        let peers = conn.call(&ops::Peers {}).await?;
        let peer = peers
            .peers
            .into_iter()
            .find(|x| x.session_id.to_string().starts_with(sid))
            .ok_or_else(|| ClientError::Address(format!("no present session {sid}")))?;
        return Ok(Recipient::Session { id: peer.session_id, pubkey: peer.session_pubkey });
    }
    let list = conn.call(&ops::Members {}).await?;
    Ok(Recipient::Member(find_member(&list.members, to, profile.member_id)?.clone()))
}

/// Find the sender of message `original` among the unread messages, for a reply.
pub async fn reply_to_from_inbox(conn: &Connection, original: Uuid) -> Result<ReplyTo, ClientError> {
    let inbox = conn.call(&ops::Inbox { limit: plexus_proto::limits::MAX_INBOX_LIMIT }).await?;
    inbox
        .messages
        .iter()
        .find(|m| m.id == original)
        .map(|m| ReplyTo { message: original, session: m.sender_session, session_pubkey: m.sender_pubkey.clone() })
        .ok_or_else(|| {
            ClientError::Address(format!("message {original} is not in your inbox; reply with a member name instead"))
        })
}

/// A sealed body for `to`, ready to send: `(target, sealing, nonce, ciphertext)`.
pub fn seal(
    profile: &Profile,
    to: &Recipient,
    plaintext: &[u8],
) -> Result<(Target, plexus_proto::types::Sealing, Vec<u8>, Vec<u8>), ClientError> {
    let session = profile.session_key().map_err(ClientError::Keys)?;
    let mesh_key = || {
        profile
            .keyring()
            .ok_or_else(|| ClientError::Keys("no mesh key yet: a member holding it must be online once".into()))
    };
    let (target, (sealing, nonce, ciphertext)) = match to {
        Recipient::Member(m) => {
            (Target::Member(m.member_id), seal_for(SealTo::Member(&m.pubkey), &session, plaintext)?)
        }
        Recipient::Group(g) => (Target::Group(g.clone()), seal_for(SealTo::Mesh(&mesh_key()?), &session, plaintext)?),
        Recipient::All => (Target::All, seal_for(SealTo::Mesh(&mesh_key()?), &session, plaintext)?),
        Recipient::Session { id, pubkey } => {
            (Target::Session(*id), seal_for(SealTo::Session(pubkey), &session, plaintext)?)
        }
        Recipient::Reply(r) => {
            (Target::Session(r.session), seal_for(SealTo::Session(&r.session_pubkey), &session, plaintext)?)
        }
    };
    Ok((target, sealing, nonce, ciphertext))
}

/// Seal `text` for `to` and send it with id `id` (resending an id is a no-op). A group or
/// broadcast body refused as sealed with a stale mesh key is sealed again once this member's
/// keys are current (taking a rotated key, or rotating when a member left), then resent.
pub async fn send_text(
    conn: &Connection,
    home: &std::path::Path,
    profile: &mut Profile,
    to: &Recipient,
    text: &str,
    priority: Priority,
    id: Uuid,
) -> Result<ops::Sent, ClientError> {
    let reply_to = match to {
        Recipient::Reply(r) => Some(r.message),
        _ => None,
    };
    let mut tries = 0;
    loop {
        let (target, sealing, nonce, ciphertext) = seal(profile, to, text.as_bytes())?;
        let send = ops::Send { id, target, priority, reply_to, subtype: None, sealing, nonce, ciphertext };
        match conn.call(&send).await {
            Err(e) if e.code() == Some(plexus_proto::ErrorCode::StaleKey) && tries < 2 => {
                tries += 1;
                let (epoch, due) = crate::keys::catch_up(home, profile, conn).await?;
                if due || profile.keyring().map(|r| r.epoch()) != Some(epoch) {
                    return Err(ClientError::Keys(format!(
                        "the mesh key must be rotated (a member left) and this member does not hold the current \
                         key (epoch {epoch}); a member who does must send or run `plexus key rotate` first"
                    )));
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use plexus_proto::types::Role;

    use super::*;

    fn member(name: &str, id: u128) -> MemberInfo {
        MemberInfo {
            member_id: Uuid::from_u128(id),
            display_name: name.into(),
            role: Role::Member,
            pubkey: vec![],
            joined_at_ms: 0,
        }
    }

    #[test]
    fn names_ids_and_me_resolve() {
        let list = vec![member("Ana", 0xaaaa_0000), member("bo", 0xbbbb_0000)];
        let me = Uuid::from_u128(0xbbbb_0000);
        assert_eq!(find_member(&list, "ana", me).unwrap().display_name, "Ana");
        assert_eq!(find_member(&list, "me", me).unwrap().display_name, "bo");
        let prefix = &Uuid::from_u128(0xaaaa_0000).to_string()[..30];
        assert_eq!(find_member(&list, prefix, me).unwrap().display_name, "Ana");
        assert!(find_member(&list, "cy", me).is_err());
        assert!(find_member(&list, "0000", me).is_err(), "an ambiguous prefix is refused");
    }
}
