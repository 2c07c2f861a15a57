//! Send rate limits: per session and per member, each a GCRA (generic cell rate algorithm:
//! a rate and a burst, one timestamp of state). A session is connected to one node at a time,
//! so its limit is kept here; a member's sessions may be on several nodes, so its limit is
//! kept in the cluster's [`RateStore`] (Redis: one budget for all nodes). To keep a Redis
//! round trip off most sends, a node reserves a few of a member's tokens at a time and spends
//! them locally; a refusal is always decided by the shared budget, with its exact retry time.

use std::{collections::HashMap, sync::Mutex};

use uuid::Uuid;

use crate::config::LimitsConfig;

/// A rate with a burst, as GCRA sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcra {
    /// Milliseconds per token.
    pub interval_ms: f64,
    /// How far ahead of now the theoretical arrival time may run (burst × interval).
    pub tolerance_ms: f64,
}

impl Gcra {
    /// `per_sec` tokens a second, up to `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Gcra {
        let interval_ms = 1000.0 / per_sec.max(0.001);
        Gcra { interval_ms, tolerance_ms: interval_ms * f64::from(burst.max(1)) }
    }

    /// Take `cost` tokens at `now` given the stored theoretical arrival time: the new one, or
    /// how long until the request would fit.
    pub fn take(&self, tat: Option<f64>, now: f64, cost: u32) -> Result<f64, u64> {
        let tat = tat.map_or(now, |t| t.max(now));
        let new_tat = tat + self.interval_ms * f64::from(cost);
        let allow_at = new_tat - self.tolerance_ms;
        if now < allow_at {
            return Err((allow_at - now).ceil().max(1.0) as u64);
        }
        Ok(new_tat)
    }
}

/// Where the cluster keeps shared budgets.
#[async_trait::async_trait]
pub trait RateStore: Send + Sync {
    /// Take `cost` tokens of `key`'s budget, or say when they would fit (ms). A store that
    /// cannot be reached lets the request through (a limiter must not take the mesh down).
    async fn take(&self, key: &str, rate: Gcra, cost: u32) -> Result<(), u64>;
}

/// One node's budgets (single-node mode).
#[derive(Default)]
pub struct MemoryRateStore {
    tats: Mutex<HashMap<String, f64>>,
}

#[async_trait::async_trait]
impl RateStore for MemoryRateStore {
    async fn take(&self, key: &str, rate: Gcra, cost: u32) -> Result<(), u64> {
        let now = crate::clock::now_ms() as f64;
        let mut tats = self.tats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = rate.take(tats.get(key).copied(), now, cost)?;
        tats.insert(key.to_owned(), tat);
        Ok(())
    }
}

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which budget: `session` or `member`.
    pub scope: &'static str,
    /// When it would fit.
    pub retry_after_ms: u64,
}

impl From<Limited> for crate::error::OpError {
    fn from(l: Limited) -> crate::error::OpError {
        crate::metrics::rate_limited().with_label_values(&[l.scope]).inc();
        crate::error::OpError::RateLimited { scope: l.scope, retry_after_ms: l.retry_after_ms }
    }
}

/// The send limits of this node.
pub struct SendLimits {
    session: Gcra,
    member: Gcra,
    reserve: u32,
    store: Box<dyn RateStore>,
    sessions: Mutex<HashMap<Uuid, f64>>,
    /// Member tokens this node reserved and has not spent.
    credits: Mutex<HashMap<Uuid, u32>>,
}

impl SendLimits {
    /// From the configuration, over `store`.
    pub fn new(cfg: &LimitsConfig, store: Box<dyn RateStore>) -> SendLimits {
        SendLimits {
            session: Gcra::new(cfg.session_sends_per_sec, cfg.session_burst),
            member: Gcra::new(cfg.member_sends_per_sec, cfg.member_burst),
            reserve: (cfg.member_burst / 16).clamp(1, 64),
            store,
            sessions: Mutex::default(),
            credits: Mutex::default(),
        }
    }

    /// May this session of this member send one more message now?
    pub async fn check_send(&self, mesh_id: Uuid, member_id: Uuid, session_id: Uuid) -> Result<(), Limited> {
        let now = crate::clock::now_ms() as f64;
        {
            let sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Check without taking: a send the member budget refuses must not cost the session.
            self.session
                .take(sessions.get(&session_id).copied(), now, 1)
                .map_err(|ms| Limited { scope: "session", retry_after_ms: ms })?;
        }
        self.take_member(mesh_id, member_id).await?;
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(tat) = self.session.take(sessions.get(&session_id).copied(), now, 1) {
            sessions.insert(session_id, tat);
        }
        if sessions.len() > 100_000 {
            // Sessions long idle hold no state worth keeping (their TAT is in the past).
            sessions.retain(|_, tat| *tat > now);
        }
        Ok(())
    }

    async fn take_member(&self, mesh_id: Uuid, member_id: Uuid) -> Result<(), Limited> {
        {
            let mut credits = self.credits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = credits.get_mut(&member_id).filter(|c| **c > 0) {
                *c -= 1;
                return Ok(());
            }
        }
        let key = format!("rate:{mesh_id}:member:{member_id}");
        if self.reserve > 1 && self.store.take(&key, self.member, self.reserve).await.is_ok() {
            self.credits.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(member_id, self.reserve - 1);
            return Ok(());
        }
        self.store.take(&key, self.member, 1).await.map_err(|ms| Limited { scope: "member", retry_after_ms: ms })
    }

    /// The session left: forget its state.
    pub fn forget_session(&self, session_id: Uuid) {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let g = Gcra::new(10.0, 5);
        let mut tat = None;
        for i in 0..5 {
            tat = Some(g.take(tat, 0.0, 1).unwrap_or_else(|ms| panic!("token {i} refused, retry in {ms}")));
        }
        let retry = g.take(tat, 0.0, 1).expect_err("the sixth at once");
        assert_eq!(retry, 100, "one token every 100 ms");
        assert!(g.take(tat, 100.0, 1).is_ok());
        // A cost larger than the burst never fits.
        assert!(g.take(None, 0.0, 6).is_err());
    }

    #[tokio::test]
    async fn a_member_budget_is_shared_by_its_sessions_and_refusals_cost_nothing() {
        let cfg = LimitsConfig {
            session_sends_per_sec: 1000.0,
            session_burst: 1000,
            member_sends_per_sec: 0.001,
            member_burst: 20,
        };
        let limits = SendLimits::new(&cfg, Box::<MemoryRateStore>::default());
        let (mesh, member) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut ok = 0;
        for i in 0..40 {
            let session = if i % 2 == 0 { a } else { b };
            if limits.check_send(mesh, member, session).await.is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 20, "two sessions share the member's burst of 20");
        let refused = limits.check_send(mesh, member, a).await.expect_err("over");
        assert_eq!(refused.scope, "member");
        assert!(refused.retry_after_ms > 0);
        // Another member is not affected.
        assert!(limits.check_send(mesh, Uuid::new_v4(), Uuid::new_v4()).await.is_ok());
    }
}
