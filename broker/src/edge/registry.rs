//! The op table. Each line declares one op: who may call it, its request type (which names it,
//! through [`Op::NAME`], and fixes its reply, through [`Op::Reply`]) and its handler. The
//! table is the only place an op is routed, counted and listed; `docs/protocol.md`'s op tables
//! are checked against [`OPS`] by a test. A handler whose reply is not its op's `Reply` does
//! not compile.
//!
//! Handler shapes, by access:
//! - `anonymous` — `async fn(&Broker, Body)`: no hello needed.
//! - `hello` / `admin` — `async fn(&Broker, &Authed, Body)`; `admin` also needs the admin or
//!   owner role.
//! - `coord` — `async fn(&Coord, &Caller, Body)`: a coordination rule in `crate::coord`.
//! - `connection` — `async fn(&Broker, &ConnHandle, &Authed, Body)`: needs the connection
//!   itself (a lock waiter gives its place back when its connection closes).
//!
//! `hello` and `send` are listed but served by the connection's loop
//! ([`super::dispatch::run`]): a hello binds the connection, and sends keep their order.

use std::sync::Arc;

use plexus_proto::{coord as c, ops, room as r, Op, Request};

use super::{
    dispatch::{body, respond, Authed},
    ops as h,
};
use crate::{actors::ConnHandle, app::Broker, coord, error::OpError, rooms};

/// Who may call an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Before a hello.
    Anonymous,
    /// Any connection that said hello.
    Hello,
    /// A hello of a member with the admin or owner role.
    Admin,
}

/// What [`route`] did with a request.
pub(super) enum Routed {
    /// A handler is serving it.
    Serving,
    /// Not an op this table serves (hello, send, or unknown).
    NotHere(Request),
}

macro_rules! registry {
    (
        served_by_dispatch: [$($special:ty : $special_access:ident),* $(,)?],
        $($access:ident $op:ty => $handler:path),* $(,)?
    ) => {
        /// Every op: its wire name and who may call it.
        pub const OPS: &[(&str, Access)] = &[
            $((<$special as Op>::NAME, Access::$special_access),)*
            $((<$op as Op>::NAME, access!($access)),)*
        ];

        /// Start serving `req` if this table serves its op.
        pub(super) fn route(
            broker: &Arc<Broker>,
            conn: &ConnHandle,
            authed: Option<&Arc<Authed>>,
            req: Request,
        ) -> Routed {
            $(
                if req.op == <$op as Op>::NAME {
                    serve!($access, $op, $handler, broker, conn, authed, req);
                    return Routed::Serving;
                }
            )*
            Routed::NotHere(req)
        }
    };
}

macro_rules! access {
    (anonymous) => {
        Access::Anonymous
    };
    (admin) => {
        Access::Admin
    };
    ($other:ident) => {
        Access::Hello
    };
}

macro_rules! serve {
    (anonymous, $op:ty, $handler:path, $broker:ident, $conn:ident, $authed:ident, $req:ident) => {{
        let (broker, conn) = ($broker.clone(), $conn.clone());
        tokio::spawn(async move {
            let result: Result<<$op as Op>::Reply, OpError> =
                async { $handler(&broker, body::<$op>(&$req)?).await }.await;
            respond(&conn, $req.id, <$op as Op>::NAME, result);
        });
    }};
    ($access:ident, $op:ty, $handler:path, $broker:ident, $conn:ident, $authed:ident, $req:ident) => {{
        let Some(a) = $authed else {
            respond::<()>($conn, $req.id, <$op as Op>::NAME, Err(OpError::NotAuthenticated));
            return Routed::Serving;
        };
        if access!($access) == Access::Admin && a.who.role < plexus_proto::types::Role::Admin {
            respond::<()>($conn, $req.id, <$op as Op>::NAME, Err(OpError::Forbidden("needs the admin or owner role")));
            return Routed::Serving;
        }
        let (broker, conn, a) = ($broker.clone(), $conn.clone(), a.clone());
        tokio::spawn(async move {
            let result: Result<<$op as Op>::Reply, OpError> =
                async { call!($access, $handler, broker, conn, a, body::<$op>(&$req)?) }.await;
            respond(&conn, $req.id, <$op as Op>::NAME, result);
        });
    }};
}

macro_rules! call {
    (coord, $handler:path, $broker:ident, $conn:ident, $a:ident, $body:expr) => {
        $handler(&$broker.coord, &$a.who, $body).await
    };
    (connection, $handler:path, $broker:ident, $conn:ident, $a:ident, $body:expr) => {
        $handler(&$broker, &$conn, &$a, $body).await
    };
    ($access:ident, $handler:path, $broker:ident, $conn:ident, $a:ident, $body:expr) => {
        $handler(&$broker, &$a, $body).await
    };
}

registry! {
    served_by_dispatch: [ops::Hello: Anonymous, ops::Send: Hello],

    anonymous ops::MeshCreate => h::mesh_create,
    anonymous ops::InviteClaim => h::invite_claim,
    anonymous ops::LinkOffer => h::link_offer,
    anonymous ops::LinkFetch => h::link_fetch,
    hello ops::Ack => h::ack,
    hello ops::Inbox => h::inbox,
    hello ops::Peers => h::peers,
    hello ops::Members => h::members,
    hello ops::SetStatus => h::set_status,
    hello ops::SetProfile => h::set_profile,
    hello ops::MessageStatus => h::message_status,
    admin ops::InviteCreate => h::invite_create,
    admin ops::InviteList => h::invite_list,
    admin ops::InviteRevoke => h::invite_revoke,
    admin ops::MemberRemove => h::member_remove,
    hello ops::MeshLeave => h::mesh_leave,
    hello ops::KeyGrant => h::key_grant,
    hello ops::KeyReject => h::key_reject,
    hello plexus_proto::keys::KeyRotate => h::key_rotate,
    hello plexus_proto::keys::MeshKeys => h::mesh_keys,
    hello ops::GroupJoin => h::group_join,
    hello ops::GroupLeave => h::group_leave,
    hello ops::GroupList => h::group_list,
    hello ops::LinkLookup => h::link_lookup,
    hello ops::LinkAnswer => h::link_answer,

    coord c::StateGet => coord::state::state_get,
    coord c::StateSet => coord::state::state_set,
    coord c::StateDelete => coord::state::state_delete,
    coord c::StateList => coord::state::state_list,
    connection c::LockAcquire => h::lock_acquire,
    coord c::LockRenew => coord::locks::renew,
    coord c::LockRelease => coord::locks::release,
    coord c::LockList => coord::locks::list,
    coord c::TaskCreate => coord::tasks::task_create,
    coord c::TaskGet => coord::tasks::task_get,
    coord c::TaskList => coord::tasks::task_list,
    coord c::TaskUpdate => coord::tasks::task_update,
    coord c::ThreadOpen => coord::threads::thread_open,
    coord c::ThreadReply => coord::threads::thread_reply,
    coord c::ThreadResolve => coord::threads::thread_resolve,
    coord c::ThreadGet => coord::threads::thread_get,
    coord c::ThreadList => coord::threads::thread_list,
    coord c::Remember => coord::memory::remember,
    coord c::Recall => coord::memory::recall,
    coord c::Forget => coord::memory::forget,
    coord c::Search => coord::memory::search,
    coord c::RemindCreate => coord::reminders::remind_create,
    coord c::RemindList => coord::reminders::remind_list,
    coord c::RemindCancel => coord::reminders::remind_cancel,

    hello r::StreamAppend => rooms::stream_append,
    hello r::StreamRead => rooms::stream_read,
    connection r::RoomAttach => rooms::room_attach,
    connection r::RoomDetach => rooms::room_detach,
    hello r::RoomTyping => rooms::room_typing,
    hello r::WheelOp => rooms::wheel,
    hello r::DriveGrant => rooms::drive_grant,
    hello r::SessionPrompt => rooms::session_prompt,
    hello r::ApprovalRequest => rooms::approval_request,
    hello r::ApprovalDecide => rooms::approval_decide,
    hello r::ApprovalWait => rooms::approval_wait,
    hello r::ApprovalList => rooms::approval_list,
    hello r::LockCheck => rooms::lock_check,
    admin r::MeshSettingSet => rooms::mesh_setting_set,
    admin plexus_proto::audit::AuditList => h::audit_list,
    hello plexus_proto::controls::PeerControl => h::peer_control,
    hello plexus_proto::controls::Subscribe => h::subscribe,
    hello plexus_proto::controls::ControlsGet => h::controls,
    admin plexus_proto::webhook::WebhookCreate => super::webhooks::webhook_create,
    admin plexus_proto::webhook::WebhookList => super::webhooks::webhook_list,
    admin plexus_proto::webhook::WebhookDelete => super::webhooks::webhook_delete,
    admin plexus_proto::webhook::WebhookSubscribe => super::webhooks::webhook_subscribe,
    admin plexus_proto::webhook::WebhookAttempts => super::webhooks::webhook_attempts,
    admin plexus_proto::webhook::WebhookSubscriptions => super::webhooks::webhook_subscriptions,
    admin plexus_proto::webhook::WebhookUnsubscribe => super::webhooks::webhook_unsubscribe,
}

/// The static name of a known op (a metrics label), or `"unknown"`.
pub(super) fn metric_label(name: &str) -> &'static str {
    OPS.iter().find(|(op, _)| *op == name).map_or("unknown", |(op, _)| op)
}

/// Whether `name` is an op at all (an unknown one gets `unknown_op`, a known one before hello
/// `not_authenticated`).
pub(super) fn is_op(name: &str) -> bool {
    OPS.iter().any(|(op, _)| *op == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_is_listed_once() {
        let mut names: Vec<&str> = OPS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "an op is listed twice");
        assert_eq!(metric_label("lock_acquire"), "lock_acquire");
        assert_eq!(metric_label("lock_acquire; DROP TABLE"), "unknown");
    }

    /// `(op, auth column)` of every row of the op tables in `docs/protocol.md`'s "Ops" section
    /// (the coordination table has no auth column: all need a hello).
    fn documented_ops() -> Vec<(String, Access)> {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
            .expect("docs/protocol.md");
        let ops = doc.split("\n## Ops\n").nth(1).expect("an Ops section");
        let ops = ops.split("\n## ").next().unwrap_or_default();
        let mut rows = Vec::new();
        let mut has_auth = false;
        for line in ops.lines() {
            if line.starts_with("| op |") {
                has_auth = line.starts_with("| op | auth |");
            }
            let Some(rest) = line.strip_prefix("| `") else { continue };
            let cells: Vec<&str> = rest.split(" | ").collect();
            let name = cells[0].trim_end_matches('`').to_owned();
            let access = match (has_auth, cells.get(1).copied()) {
                (true, Some("anonymous")) => Access::Anonymous,
                (true, Some("admin")) => Access::Admin,
                _ => Access::Hello,
            };
            rows.push((name, access));
        }
        rows
    }

    #[test]
    fn the_protocol_doc_lists_exactly_the_registered_ops_with_their_access() {
        let documented = documented_ops();
        for (name, access) in OPS {
            match documented.iter().find(|(d, _)| d == name) {
                None => panic!("op {name} is registered but not in docs/protocol.md's op tables"),
                Some((_, doc_access)) => assert_eq!(doc_access, access, "docs/protocol.md gives {name} other access"),
            }
        }
        for (name, _) in &documented {
            assert!(OPS.iter().any(|(op, _)| op == name), "docs/protocol.md documents {name}, which is not an op");
        }
        assert_eq!(documented.len(), OPS.len(), "an op is documented twice");
    }
}
