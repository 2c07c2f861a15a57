//! Messages and presence: send, the inbox (once, or followed live), acknowledgements, status,
//! per-recipient delivery state and the live tail of the mesh.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use anyhow::{bail, Result};
use plexus_client::{session::open_text, ClientError, Event, Incoming, Outcome, Surface};
use plexus_proto::{ops, types::SessionMode, CloseCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    cli::{InboxArgs, SendArgs, StatusCmd},
    ctx::{parse_priority, parse_source, parse_status, session_profile, Ctx},
    render,
};

pub(crate) async fn send(ctx: &Ctx, args: SendArgs) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let priority = parse_priority(&args.priority)?;
    let id = args.id.unwrap_or_else(Uuid::new_v4);
    let to = session.recipient(Some(&args.target), args.reply_to).await?;
    let mut p = session.profile().await;
    let sent = plexus_client::address::send_text(&conn, &ctx.home, &mut p, &to, &args.text, priority, id).await?;
    session.close().await;
    ctx.emit(json!({"id": id, "seq": sent.seq, "duplicate": sent.duplicate, "to": to.describe()}), || {
        format!(
            "sent {id} to {} (seq {}){}",
            to.describe(),
            sent.seq,
            if sent.duplicate { ", already stored" } else { "" }
        )
    });
    Ok(())
}

/// How surfaced messages are shown.
enum Show {
    /// One line each, as they come (text, or JSON lines while following).
    Stream { json: bool },
    /// Collected, for one JSON document at the end.
    Collect(Mutex<Vec<Value>>),
}

/// Shows each surfaced message; with `stop_after`, the session ends after that many.
struct Printer {
    show: Show,
    printed: AtomicUsize,
    stop_after: Option<usize>,
}

impl Surface for Printer {
    async fn surface(&self, i: &Incoming) -> Outcome {
        match &self.show {
            Show::Collect(all) => {
                all.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(render::message_json(&i.message, &i.text, i.repeat));
            }
            Show::Stream { json } => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let written = if *json {
                    writeln!(out, "{}", render::message_json(&i.message, &i.text, i.repeat))
                } else {
                    writeln!(out, "{}", render::message_line(&i.message, &i.text, i.repeat))
                };
                // Shown only once it reached the pipe; a closed pipe means nobody reads.
                if written.and_then(|()| out.flush()).is_err() {
                    return Outcome::Stop;
                }
            }
        }
        self.printed.fetch_add(1, Ordering::SeqCst);
        Outcome::Surfaced
    }

    fn alive(&self) -> bool {
        self.stop_after.is_none_or(|n| self.printed.load(Ordering::SeqCst) < n)
    }
}

pub(crate) async fn inbox(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    if args.follow {
        return follow(ctx, args).await;
    }
    let (session, _) = ctx.control().await?;
    // JSON is one document: collected, then printed once.
    let show = if ctx.json { Show::Collect(Mutex::default()) } else { Show::Stream { json: false } };
    let printer = Printer { show, printed: AtomicUsize::new(0), stop_after: None };
    let (shown, more) = session.inbox(args.limit, &printer).await?;
    session.close().await;
    match printer.show {
        Show::Collect(all) => {
            let messages = all.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            println!("{}", json!({"messages": messages, "more": more}));
        }
        Show::Stream { .. } if shown == 0 => println!("no unread messages"),
        Show::Stream { .. } if more => println!("(more unread: run plexus inbox again)"),
        Show::Stream { .. } => {}
    }
    Ok(())
}

/// Stay connected as this profile's session, printing pushed messages; reconnect with backoff
/// and resume from the local cursor.
async fn follow(ctx: &Ctx, args: InboxArgs) -> Result<()> {
    let p = ctx.profile()?;
    let status = parse_status(&args.status)?;
    let sp = session_profile(&p, status, &args.groups);
    let session = ctx.session(p, SessionMode::Session, sp);
    let printer = Arc::new(Printer {
        show: Show::Stream { json: ctx.json },
        printed: AtomicUsize::new(0),
        stop_after: args.count,
    });
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let json = ctx.json;
    let reporter = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            report(json, ev);
        }
    });
    let result = session.run(printer, tx).await;
    reporter.abort();
    session.close().await;
    match result {
        Ok(()) => Ok(()),
        Err(ClientError::Closed(Some(code))) => bail!("the broker closed this session: {code:?}"),
        Err(e) => Err(e.into()),
    }
}

/// What a follower says about things other than messages (to stderr, or as JSON lines).
fn report(json: bool, ev: Event) {
    match ev {
        Event::Connected(w) if !json => {
            eprintln!("following {} as {} (node {})", w.mesh_name, w.display_name, w.node_id);
        }
        Event::Digest(d) => {
            if json {
                println!("{}", json!({"digest": {"low_unread": d.low_unread, "senders": d.senders}}));
            } else {
                println!(
                    "({} low-priority message(s) waiting from {}; run `plexus inbox`)",
                    d.low_unread,
                    d.senders.join(", ")
                );
            }
        }
        Event::Peer(ev) if !json => {
            eprintln!("* {} {:?} ({})", ev.peer.display_name, ev.change, ev.peer.status.as_str());
        }
        Event::KeyStored => {
            if json {
                println!("{}", json!({"mesh_key": "received"}));
            } else {
                eprintln!("received the mesh key: group and broadcast messages open now");
            }
        }
        Event::KeyRefused { granted_by } => eprintln!(
            "refused a mesh key from {}: it is not the key the owner committed to",
            granted_by.map(|g| g.to_string()).unwrap_or_else(|| "an unknown member".into())
        ),
        Event::KeyGranted { to } if !json => eprintln!("handed the mesh key to {to}"),
        Event::Disconnected { code, retry_in } => {
            tracing::warn!(?code, delay_ms = retry_in.as_millis() as u64, "connection lost; resuming");
        }
        _ => {}
    }
}

pub(crate) async fn ack(ctx: &Ctx, seqs: Vec<u64>) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let mut cursor = plexus_client::cursor::LocalCursor::load(session.profile().await.cursor_path(&ctx.home));
    cursor.record_all(&seqs)?;
    let acked = conn.call(&ops::Ack { seqs: seqs.clone(), read: true }).await?;
    cursor.confirm(&seqs, acked.cursor.watermark);
    cursor.save()?;
    session.close().await;
    ctx.emit(json!({"acked": seqs, "watermark": acked.cursor.watermark}), || {
        format!("acknowledged {} message(s)", seqs.len())
    });
    Ok(())
}

pub(crate) async fn status(ctx: &Ctx, cmd: StatusCmd) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let me = session.profile().await.session_id;
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
            match peers.peers.iter().find(|x| x.session_id == me) {
                Some(me) => ctx.emit(json!({"present": true, "peer": render::peer_json(me)}), || {
                    format!("{} is {} ({:?})", me.display_name, me.status.as_str(), me.status_source)
                }),
                None => ctx.emit(json!({"present": false}), || {
                    "this session is not present (run `plexus inbox --follow` or an agent with `plexus mcp`)".into()
                }),
            }
        }
    }
    session.close().await;
    Ok(())
}

pub(crate) async fn message_status(ctx: &Ctx, id: Uuid) -> Result<()> {
    let (session, conn) = ctx.control().await?;
    let st = conn.call(&ops::MessageStatus { id }).await?;
    session.close().await;
    let rows: Vec<Value> = st.recipients.iter().map(render::recipient_json).collect();
    ctx.emit(json!({"id": id, "seq": st.seq, "priority": st.priority.as_str(), "target": render::target(&st.target), "recipients": rows}), || {
        let mut s = format!("message {id} (seq {}, {}, to {})", st.seq, st.priority.as_str(), render::target(&st.target));
        for r in &st.recipients {
            s.push_str(&format!("\n  {}", render::recipient_line(r)));
        }
        s
    });
    Ok(())
}

/// A watch connection surfaces no messages of its own.
struct Nothing;

impl Surface for Nothing {
    async fn surface(&self, _incoming: &Incoming) -> Outcome {
        Outcome::Left
    }
}

pub(crate) async fn watch(ctx: &Ctx) -> Result<()> {
    let p = ctx.profile()?;
    let sp = session_profile(&p, plexus_proto::types::Status::Idle, &[]);
    let session = ctx.session(p.clone(), SessionMode::Watch, sp);
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let json = ctx.json;
    let printer = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Connected(w) if !json => eprintln!("watching {} (node {})", w.mesh_name, w.node_id),
                Event::Routed(r) => {
                    let text = open_text(&p, &r.message);
                    if json {
                        println!(
                            "{}",
                            json!({"event": "message", "message": render::message_json(&r.message, &text, false)})
                        );
                    } else {
                        println!(
                            "message #{} {} -> {}: {text}",
                            r.message.seq,
                            r.message.sender_name,
                            render::target(&r.message.target)
                        );
                    }
                }
                Event::Peer(ev) => {
                    if json {
                        println!(
                            "{}",
                            json!({"event": "peer", "change": format!("{:?}", ev.change).to_lowercase(), "peer": render::peer_json(&ev.peer)})
                        );
                    } else {
                        println!("peer {} {:?} ({})", ev.peer.display_name, ev.change, ev.peer.status.as_str());
                    }
                }
                _ => {}
            }
        }
    });
    let result = session.run(Arc::new(Nothing), tx).await;
    printer.abort();
    match result {
        Err(ClientError::Closed(Some(CloseCode::MemberRemoved))) => bail!("removed from the mesh"),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(()),
    }
}
