//! How things read: one renderer per kind of thing, as JSON (`--json`, MCP structured
//! content) and as a line of text (people, agents). Peer content is always data here, never
//! markup.

use plexus_crypto as crypto;
use plexus_proto::{
    coord::{self as c, HitKind, StateEntry, Task, Thread},
    ops,
    push::Message,
    types::{MemberInfo, PeerInfo, Sealing, Target},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ctx::now_ms;

/// `1h 05m`, `42s`, `3d 2h`: a duration for people.
pub(crate) fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Rows as an aligned table with a header line (for a terminal).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(crate) fn target(t: &Target) -> String {
    match t {
        Target::Session(_) => "session".into(),
        Target::Member(_) => "member".into(),
        Target::Group(g) => format!("@{g}"),
        Target::All => "*".into(),
    }
}

pub(crate) fn message_json(m: &Message, text: &str, repeat: bool) -> Value {
    json!({
        "seq": m.seq, "id": m.id, "from": m.sender_name, "from_member": m.sender_member,
        "from_session": m.sender_session, "fingerprint": crypto::fingerprint(&m.sender_member_pubkey),
        "priority": m.priority.as_str(), "subtype": m.subtype, "reply_to": m.reply_to,
        "target": target(&m.target), "text": text, "sent_at_ms": m.sent_at_ms, "repeat": repeat,
        // Coordination events (broker-written, unsealed) carry their object too.
        "event": (m.sealing == Sealing::Plain)
            .then(|| serde_json::from_slice::<Value>(&m.ciphertext).ok())
            .flatten(),
    })
}

pub(crate) fn message_line(m: &Message, text: &str, repeat: bool) -> String {
    let again = if repeat { " (shown again: it may have been shown before an interruption)" } else { "" };
    format!(
        "[{}] #{} {} ({}): {}{again}",
        m.priority.as_str(),
        m.seq,
        m.sender_name,
        crypto::fingerprint(&m.sender_member_pubkey),
        text
    )
}

pub(crate) fn peer_json(p: &PeerInfo) -> Value {
    json!({
        "session_id": p.session_id, "member_id": p.member_id, "name": p.display_name,
        "status": p.status.as_str(), "source": format!("{:?}", p.status_source).to_lowercase(),
        "status_since_ms": p.status_since_ms,
        "summary": p.profile.summary, "groups": p.profile.groups.iter().map(|g| &g.name).collect::<Vec<_>>(),
        "host": p.profile.host, "cwd": p.profile.cwd, "agent": p.profile.agent_kind,
        "pull_only": p.profile.pull_only,
    })
}

pub(crate) fn peer_row(p: &PeerInfo) -> Vec<String> {
    let groups: Vec<String> = p.profile.groups.iter().map(|g| format!("@{}", g.name)).collect();
    vec![
        p.display_name.clone(),
        p.status.as_str().into(),
        human(now_ms().saturating_sub(p.status_since_ms)),
        p.session_id.to_string()[..8].to_owned(),
        p.profile.agent_kind.clone().unwrap_or_default(),
        groups.join(","),
        p.profile.summary.clone().unwrap_or_default(),
    ]
}

pub(crate) const PEER_HEADERS: &[&str] = &["NAME", "STATUS", "FOR", "SESSION", "AGENT", "GROUPS", "SUMMARY"];

pub(crate) fn member_json(m: &MemberInfo) -> Value {
    json!({"member_id": m.member_id, "name": m.display_name, "role": m.role.as_str(), "fingerprint": crypto::fingerprint(&m.pubkey), "joined_at_ms": m.joined_at_ms})
}

pub(crate) fn member_row(m: &MemberInfo) -> Vec<String> {
    vec![
        m.display_name.clone(),
        m.role.as_str().into(),
        crypto::fingerprint(&m.pubkey),
        human(now_ms().saturating_sub(m.joined_at_ms)) + " ago",
    ]
}

pub(crate) const MEMBER_HEADERS: &[&str] = &["NAME", "ROLE", "KEY", "JOINED"];

pub(crate) fn recipient_json(r: &ops::RecipientState) -> Value {
    let session = if r.session_id.is_nil() { Value::Null } else { json!(r.session_id) };
    json!({"session_id": session, "member_id": r.member_id, "name": r.display_name, "state": format!("{:?}", r.state).to_lowercase()})
}

pub(crate) fn recipient_line(r: &ops::RecipientState) -> String {
    let session =
        if r.session_id.is_nil() { "(next session)".to_owned() } else { r.session_id.to_string()[..8].to_owned() };
    format!("{:<16} {:<14} {}", r.display_name, session, format!("{:?}", r.state).to_lowercase())
}

pub(crate) fn state_line(e: &StateEntry) -> String {
    format!("{} = {}  (v{}, by {})", e.key, e.value, e.version, e.updated_by_name)
}

pub(crate) fn lock_line(l: &c::LockInfo) -> String {
    let reason = l.reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default();
    let left = human(l.expires_at_ms.saturating_sub(now_ms()));
    format!("{:<5} {:<9} {} @{} (expires in {left}){reason}", l.token, l.mode.as_str(), l.pattern, l.holder_name)
}

pub(crate) fn reminder_line(r: &c::Reminder) -> String {
    let when = match (&r.schedule, r.next_fire_at_ms) {
        (c::Schedule::Cron { expr, tz }, Some(next)) => {
            format!("cron {expr} ({tz}), next in {}", human(next.saturating_sub(now_ms())))
        }
        (_, Some(next)) => format!("in {}", human(next.saturating_sub(now_ms()))),
        (_, None) if r.cancelled => "cancelled".into(),
        (_, None) => format!("done (fired {}×)", r.fire_count),
    };
    format!("#{:<4} {} — {} (by {})", r.number, r.label.as_deref().unwrap_or("(sealed)"), when, r.creator_name)
}

pub(crate) fn task_line(t: &Task) -> String {
    let who = t.assignee_name.as_deref().map(|n| format!(" @{n}")).unwrap_or_default();
    let deps = if t.depends_on.is_empty() {
        String::new()
    } else {
        format!(" (after {})", t.depends_on.iter().map(|d| format!("#{d}")).collect::<Vec<_>>().join(", "))
    };
    format!("#{:<4} {:<11} {}{}{}", t.number, t.status.as_str(), t.title, who, deps)
}

pub(crate) fn thread_line(t: &Thread, names: &dyn Fn(&Uuid) -> String) -> String {
    let state = if t.resolved {
        "resolved".to_owned()
    } else if t.waiting_on.is_empty() {
        "open".to_owned()
    } else {
        format!("waiting on {}", t.waiting_on.iter().map(names).collect::<Vec<_>>().join(", "))
    };
    format!("#{:<4} {} — {} ({} posts, by {})", t.number, t.topic, state, t.posts, t.author_name)
}

pub(crate) fn hit_line(h: &c::SearchHit) -> String {
    let kind = match h.kind {
        HitKind::Memory => "memory",
        HitKind::Task => "task",
        HitKind::Thread => "thread",
    };
    format!("{kind:<6} #{:<4} {} — {}", h.number, h.title, h.snippet)
}

pub(crate) fn memory_line(m: &c::Memory) -> String {
    let tags = if m.tags.is_empty() { String::new() } else { format!(" [{}]", m.tags.join(", ")) };
    format!("#{:<4} {}{}  (by {})", m.number, m.body, tags, m.author_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(human(4_000), "4s");
        assert_eq!(human(65_000), "1m 05s");
        assert_eq!(human(3_900_000), "1h 05m");
        assert_eq!(human(2 * 86_400_000 + 3_600_000), "2d 1h");
    }

    #[test]
    fn tables_align_under_their_headers() {
        let t = table(
            &["NAME", "STATUS"],
            &[vec!["ana".into(), "idle".into()], vec!["bartholomew".into(), "working".into()]],
        );
        assert_eq!(t, "NAME         STATUS\nana          idle\nbartholomew  working");
    }
}
