//! `plexus audit`: read the mesh's audit log, and verify its hash chain here, on this machine
//! (trusting nothing the broker says about it but the rows themselves).

use anyhow::{bail, Result};
use plexus_client::{address::find_member, Connection};
use plexus_proto::audit::{entry_bytes, AuditEntry, AuditList};
use serde_json::json;

use crate::{
    cli::AuditCmd,
    ctx::{members, parse_duration, Ctx},
    render,
};

async fn page_all(conn: &Connection, mut q: AuditList) -> Result<(Vec<AuditEntry>, plexus_proto::audit::AuditEntries)> {
    let mut all = Vec::new();
    loop {
        let page = conn.call(&q).await?;
        let more = page.more;
        if let Some(last) = page.entries.last() {
            q.after = last.seq;
        }
        all.extend(page.entries.iter().cloned());
        if !more {
            return Ok((all, page));
        }
    }
}

/// Recompute the chain from the checkpoint; the first entry that breaks it, and why.
pub(crate) fn verify(mesh_id: uuid::Uuid, checkpoint: (u64, &[u8]), entries: &[AuditEntry]) -> Result<(), String> {
    let (mut seq, mut prev) = (checkpoint.0, checkpoint.1.to_vec());
    for e in entries {
        if e.seq != seq + 1 {
            return Err(format!("entry {} is missing (the next one is {})", seq + 1, e.seq));
        }
        let expected = plexus_crypto::hash32(&entry_bytes(mesh_id, &prev, e));
        if expected[..] != e.hash[..] {
            return Err(format!(
                "entry {} ({} by {}) was altered: its hash does not match",
                e.seq, e.action, e.actor_name
            ));
        }
        seq = e.seq;
        prev = e.hash.clone();
    }
    Ok(())
}

/// `plexus audit …`.
pub(crate) async fn audit(ctx: &Ctx, cmd: AuditCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let p = session.profile().await;
    match cmd {
        AuditCmd::List { since, actor } => {
            let since_ms = match since {
                Some(s) => Some(crate::ctx::now_ms().saturating_sub(parse_duration(&s)?.as_millis() as u64)),
                None => None,
            };
            let actor = match actor {
                Some(name) => Some(find_member(&members(&conn).await?, &name, p.member_id)?.member_id),
                None => None,
            };
            let (entries, _) = page_all(&conn, AuditList { after: 0, limit: 1000, since_ms, actor }).await?;
            session.close().await;
            ctx.emit(json!({ "entries": entries }), || {
                if entries.is_empty() {
                    return "no audit entries".into();
                }
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{:>5}  {}  {:<20} {:<12} {} {}",
                            e.seq,
                            render::human(e.at_ms),
                            e.action,
                            e.actor_name,
                            e.subject,
                            if e.detail == "{}" { "" } else { &e.detail }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        AuditCmd::Verify => {
            let (entries, last) =
                page_all(&conn, AuditList { after: 0, limit: 1000, since_ms: None, actor: None }).await?;
            session.close().await;
            let result = verify(p.mesh_id, (last.checkpoint_seq, &last.checkpoint_hash), &entries);
            let end = entries.last().map_or(last.checkpoint_seq, |e| e.seq);
            let result = result.and_then(|()| {
                if end == last.head_seq {
                    Ok(())
                } else {
                    Err(format!("the chain ends at {end} but its head says {}", last.head_seq))
                }
            });
            match result {
                Ok(()) => {
                    ctx.emit(
                        json!({"ok": true, "entries": entries.len(), "from": last.checkpoint_seq, "head": end}),
                        || {
                            format!(
                                "audit chain intact: {} entries (from {} to {end})",
                                entries.len(),
                                last.checkpoint_seq
                            )
                        },
                    );
                    Ok(())
                }
                Err(why) => {
                    ctx.emit(json!({"ok": false, "error": why}), || format!("audit chain broken: {why}"));
                    bail!(crate::ctx::Reported(why))
                }
            }
        }
    }
}
