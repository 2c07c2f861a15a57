//! Who may open a connection: [`Admission`] counts this node's connections, in total and per
//! remote address, and the ones still waiting for their hello per address; a socket over a
//! limit is refused before the WebSocket upgrade. Each admitted socket holds a [`Slot`] that
//! gives its place back when dropped, and a drain waits for the last one
//! ([`Admission::all_closed`]).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

/// Connection limits of one node (from `http.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections on this node.
    pub max_connections: usize,
    /// Connections from one remote address.
    pub max_per_address: usize,
    /// Connections from one remote address that have not said hello yet.
    pub max_pending_per_address: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, (usize, usize)>,
}

/// The node's connection counts.
#[derive(Default)]
pub struct Admission {
    counts: Mutex<Counts>,
    /// Woken when the last connection closes (a drain waits for it).
    emptied: tokio::sync::Notify,
}

/// Why a socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node is at `http.max_connections`.
    #[error("this node is at its connection limit")]
    NodeFull,
    /// The address is at `http.max_connections_per_address`.
    #[error("too many connections from this address")]
    AddressFull,
    /// The address is at `http.max_pending_hellos_per_address`.
    #[error("too many connections from this address are waiting to say hello")]
    TooManyPending,
}

impl Refusal {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NodeFull => "node_full",
            Refusal::AddressFull => "address_full",
            Refusal::TooManyPending => "pending_hellos",
        }
    }
}

impl Admission {
    /// Admit a socket from `addr` (unknown addresses count only against the node limit).
    pub fn admit(self: &Arc<Self>, addr: Option<IpAddr>, limits: Limits) -> Result<Slot, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.total >= limits.max_connections {
            return Err(Refusal::NodeFull);
        }
        if let Some(ip) = addr {
            let (open, pending) = c.per_address.get(&ip).copied().unwrap_or((0, 0));
            if open >= limits.max_per_address {
                return Err(Refusal::AddressFull);
            }
            if pending >= limits.max_pending_per_address {
                return Err(Refusal::TooManyPending);
            }
            c.per_address.insert(ip, (open + 1, pending + 1));
        }
        c.total += 1;
        Ok(Slot { admission: self.clone(), addr, pending: AtomicBool::new(true) })
    }

    /// Connections open on this node.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            // Registered before the check, so a close between the two is not missed.
            let emptied = self.emptied.notified();
            if self.open() == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// One admitted socket's place; given back on drop.
pub struct Slot {
    admission: Arc<Admission>,
    addr: Option<IpAddr>,
    pending: AtomicBool,
}

impl Slot {
    /// The hello succeeded: the socket no longer counts as pending.
    pub fn authenticated(&self) {
        if self.pending.swap(false, Ordering::SeqCst) {
            if let Some(ip) = self.addr {
                let mut c = self.admission.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(e) = c.per_address.get_mut(&ip) {
                    e.1 = e.1.saturating_sub(1);
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let was_pending = self.pending.load(Ordering::SeqCst);
        let mut c = self.admission.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if c.total == 0 {
            self.admission.emptied.notify_waiters();
        }
        if let Some(ip) = self.addr {
            let gone = match c.per_address.get_mut(&ip) {
                Some(e) => {
                    e.0 = e.0.saturating_sub(1);
                    if was_pending {
                        e.1 = e.1.saturating_sub(1);
                    }
                    e.0 == 0
                }
                None => false,
            };
            if gone {
                c.per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_connections: 4, max_per_address: 3, max_pending_per_address: 2 };

    #[test]
    fn limits_count_and_give_back() {
        let a = Arc::new(Admission::default());
        let ip: IpAddr = [10, 0, 0, 1].into();
        let s1 = a.admit(Some(ip), LIMITS).unwrap();
        let s2 = a.admit(Some(ip), LIMITS).unwrap();
        assert_eq!(a.admit(Some(ip), LIMITS).err(), Some(Refusal::TooManyPending));
        s1.authenticated();
        let s3 = a.admit(Some(ip), LIMITS).unwrap();
        s2.authenticated();
        s3.authenticated();
        assert_eq!(a.admit(Some(ip), LIMITS).err(), Some(Refusal::AddressFull));
        let other = a.admit(Some([10, 0, 0, 2].into()), LIMITS).unwrap();
        assert_eq!(a.admit(Some([10, 0, 0, 3].into()), LIMITS).err(), Some(Refusal::NodeFull));
        drop((s1, other));
        assert_eq!(a.open(), 2);
        let again = a.admit(Some(ip), LIMITS).unwrap();
        drop((s2, s3, again));
        assert_eq!(a.open(), 0);
        assert!(a.counts.lock().unwrap().per_address.is_empty());
    }

    #[tokio::test]
    async fn a_drain_wakes_when_the_last_connection_closes() {
        let a = Arc::new(Admission::default());
        let (s1, s2) = (a.admit(None, LIMITS).unwrap(), a.admit(None, LIMITS).unwrap());
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.all_closed().await }
        });
        tokio::task::yield_now().await;
        drop(s1);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one connection is still open");
        drop(s2);
        waiting.await.unwrap();
        a.all_closed().await;
    }
}
