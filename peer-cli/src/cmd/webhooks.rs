//! `plexus webhook`: webhooks in and out (admins): register, list, remove, and read an outbound
//! subscription's delivery log. A secret is shown once.

use anyhow::{bail, Result};
use plexus_client::address::{resolve, Recipient};
use plexus_proto::{
    types::Target,
    webhook::{
        WebhookAttempts, WebhookCreate, WebhookDelete, WebhookList, WebhookSubscribe, WebhookSubscriptions,
        WebhookUnsubscribe,
    },
};
use serde_json::json;

use crate::{
    cli::WebhookCmd,
    ctx::{now_ms, parse_priority, Ctx},
    render,
};

/// `plexus webhook …`.
pub(crate) async fn webhook(ctx: &Ctx, cmd: WebhookCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let p = session.profile().await;
    match cmd {
        WebhookCmd::Add { name, to, priority } => {
            let target = match resolve(&conn, &p, &to).await? {
                Recipient::Member(m) => Target::Member(m.member_id),
                Recipient::Group(g) => Target::Group(g),
                Recipient::All => Target::All,
                Recipient::Session { id, .. } => Target::Session(id),
                Recipient::Reply(_) => bail!("a webhook's target is a member, a session, @group or *"),
            };
            let created = conn.call(&WebhookCreate { name, target, priority: parse_priority(&priority)? }).await?;
            session.close().await;
            let base = p.brokers.first().map(|b| plexus_client::connection::ws_url(b)).unwrap_or_default();
            let http = base.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
            let url = format!("{}{}", http.trim_end_matches("/ws").trim_end_matches('/'), created.path);
            ctx.emit(json!({"id": created.id, "secret": created.secret, "path": created.path, "url": url}), || {
                format!(
                    "webhook {}\nPOST {url}\nsecret (shown once): {}\nsign: x-plexus-timestamp: <unix seconds>, \
                     x-plexus-signature: sha256=<hex HMAC-SHA256(secret, \"<timestamp>.\" + body)>",
                    created.id, created.secret
                )
            });
        }
        WebhookCmd::List => {
            let hooks = conn.call(&WebhookList {}).await?.hooks;
            let subs = conn.call(&WebhookSubscriptions {}).await?.subscriptions;
            session.close().await;
            ctx.emit(json!({ "webhooks": hooks, "subscriptions": subs }), || {
                let mut lines: Vec<String> = hooks
                    .iter()
                    .map(|h| format!("in   {}  {}  → {:?} ({})", h.id, h.name, h.target, h.priority.as_str()))
                    .collect();
                lines.extend(subs.iter().map(|s| {
                    let state = if s.disabled {
                        " DISABLED".to_owned()
                    } else if s.failures > 0 {
                        format!(" failing ({})", s.failures)
                    } else {
                        String::new()
                    };
                    format!("out  {}  {}  [{}] through #{}{state}", s.id, s.url, s.kinds.join(","), s.cursor_seq)
                }));
                if lines.is_empty() {
                    "no webhooks".into()
                } else {
                    lines.join("\n")
                }
            });
        }
        WebhookCmd::Subscribe { url, kinds } => {
            let sub = conn.call(&WebhookSubscribe { url: url.clone(), kinds }).await?;
            session.close().await;
            ctx.emit(json!({ "id": sub.id, "secret": sub.secret }), || {
                format!("subscription {}\nPOSTs to {url}\nsecret (shown once): {}", sub.id, sub.secret)
            });
        }
        WebhookCmd::Log { id, limit } => {
            let log = conn.call(&WebhookAttempts { id, limit: Some(limit) }).await?.attempts;
            session.close().await;
            ctx.emit(json!({ "attempts": log }), || {
                log.iter()
                    .map(|a| {
                        let outcome = match (&a.status, &a.error) {
                            (Some(s), _) => format!("HTTP {s}"),
                            (None, Some(e)) => e.clone(),
                            (None, None) => "no answer".into(),
                        };
                        let ago = render::human(now_ms().saturating_sub(a.at_ms));
                        format!("{ago} ago  event {}  try {}  {outcome}  ({})", a.seq, a.attempt, a.node)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        WebhookCmd::Unsubscribe { id } => {
            conn.call(&WebhookUnsubscribe { id }).await?;
            session.close().await;
            ctx.emit(json!({ "removed": id }), || format!("removed subscription {id}"));
        }
        WebhookCmd::Remove { id } => {
            conn.call(&WebhookDelete { id }).await?;
            session.close().await;
            ctx.emit(json!({ "removed": id }), || format!("removed webhook {id}"));
        }
    }
    Ok(())
}
