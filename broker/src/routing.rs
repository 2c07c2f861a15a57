//! Who a message is for, and whether it may be pushed now. Pure, no I/O.

use plexus_proto::{
    push::Message,
    types::{group_covers, Priority, Status, Target},
};
use uuid::Uuid;

/// What the router knows about a session when matching targets.
#[derive(Debug, Clone)]
pub struct Addressing {
    /// Session id.
    pub session_id: Uuid,
    /// Member id.
    pub member_id: Uuid,
    /// Groups (without `@`).
    pub groups: Vec<String>,
    /// Hidden sessions skip broadcasts.
    pub visible: bool,
}

impl Addressing {
    /// Whether `msg` is addressed to this session. A session never receives its own group or
    /// broadcast messages; a direct message to oneself is delivered.
    pub fn wants(&self, msg: &Message) -> bool {
        match &msg.target {
            Target::Session(id) => *id == self.session_id,
            Target::Member(id) => *id == self.member_id,
            Target::Group(g) => {
                msg.sender_session != self.session_id && self.groups.iter().any(|mine| group_covers(g, mine))
            }
            Target::All => self.visible && msg.sender_session != self.session_id,
        }
    }
}

/// What to do with an addressed message given the recipient's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Push it now.
    Push,
    /// Hold it until the recipient is idle, then push.
    Hold,
    /// Leave it in the inbox; announce it in a digest.
    Inbox,
}

/// Priority gating: `now` always pushes; `next` pushes only to idle sessions; `low` never pushes.
pub fn gate(priority: Priority, status: Status) -> Gate {
    match (priority, status) {
        (Priority::Now, _) => Gate::Push,
        (Priority::Next, Status::Idle) => Gate::Push,
        (Priority::Next, _) => Gate::Hold,
        (Priority::Low, _) => Gate::Inbox,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_proto::types::Sealing;

    fn msg(target: Target, sender_session: Uuid) -> Message {
        Message {
            seq: 1,
            id: Uuid::new_v4(),
            sender_member: Uuid::new_v4(),
            sender_session,
            sender_name: "a".into(),
            sender_pubkey: vec![],
            sender_member_pubkey: vec![],
            target,
            priority: Priority::Next,
            reply_to: None,
            subtype: None,
            sealing: Sealing::MeshKey,
            nonce: vec![],
            ciphertext: vec![],
            sent_at_ms: 0,
        }
    }

    fn me() -> Addressing {
        Addressing {
            session_id: Uuid::from_u128(1),
            member_id: Uuid::from_u128(2),
            groups: vec!["eng/backend".into(), "ops".into()],
            visible: true,
        }
    }

    #[test]
    fn targets_match() {
        let other = Uuid::from_u128(99);
        let a = me();
        assert!(a.wants(&msg(Target::Session(Uuid::from_u128(1)), other)));
        assert!(!a.wants(&msg(Target::Session(Uuid::from_u128(3)), other)));
        assert!(a.wants(&msg(Target::Member(Uuid::from_u128(2)), other)));
        assert!(a.wants(&msg(Target::Group("eng".into()), other)));
        assert!(a.wants(&msg(Target::Group("eng/backend".into()), other)));
        assert!(!a.wants(&msg(Target::Group("eng/frontend".into()), other)));
        assert!(!a.wants(&msg(Target::Group("en".into()), other)));
        assert!(a.wants(&msg(Target::All, other)));
    }

    #[test]
    fn own_multicast_is_not_echoed_and_hidden_skips_broadcast() {
        let a = me();
        assert!(!a.wants(&msg(Target::All, a.session_id)));
        assert!(!a.wants(&msg(Target::Group("ops".into()), a.session_id)));
        assert!(a.wants(&msg(Target::Session(a.session_id), a.session_id)));
        let hidden = Addressing { visible: false, ..me() };
        assert!(!hidden.wants(&msg(Target::All, Uuid::from_u128(99))));
        assert!(hidden.wants(&msg(Target::Member(hidden.member_id), Uuid::from_u128(99))));
    }

    #[test]
    fn priority_gating() {
        assert_eq!(gate(Priority::Now, Status::Dnd), Gate::Push);
        assert_eq!(gate(Priority::Now, Status::Working), Gate::Push);
        assert_eq!(gate(Priority::Next, Status::Idle), Gate::Push);
        assert_eq!(gate(Priority::Next, Status::Working), Gate::Hold);
        assert_eq!(gate(Priority::Next, Status::Dnd), Gate::Hold);
        assert_eq!(gate(Priority::Low, Status::Idle), Gate::Inbox);
    }
}
