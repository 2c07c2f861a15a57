//! The status engine: which report of a session's status wins. Pure, no I/O.
//!
//! Sources rank `hook > manual > jsonl`:
//! - a report that changes the status wins, and its source becomes the recorded one;
//! - a report of the same status from an equal or higher source takes over the attribution;
//! - a report of the same status from a lower source is ignored while the recorded source is
//!   fresh (reported within the freshness window), and takes over once it is stale.
//!
//! The reference engine also "bumped the timestamp" on an ignored lower-ranked report; that
//! let a stream of low-ranked reports keep a hook attribution fresh forever, so here only the
//! recorded source refreshes its own freshness.
//!
//! `working` that nobody re-reports within the working TTL reverts to `idle` on the sweep, so a
//! lost "stop" hook cannot hold `next` messages forever.

use std::time::Duration;

use plexus_proto::types::{Status, StatusSource};

/// Timing rules of the engine.
#[derive(Debug, Clone, Copy)]
pub struct StatusRules {
    /// How long a report stays authoritative against lower-ranked sources.
    pub freshness: Duration,
    /// How long `working` lasts without a fresh report.
    pub working_ttl: Duration,
}

/// One session's status as the engine tracks it. Times are ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusState {
    /// Current status.
    pub status: Status,
    /// Source of the current attribution.
    pub source: StatusSource,
    /// Last report by `source`.
    pub reported_at_ms: u64,
    /// When `status` last changed.
    pub changed_at_ms: u64,
}

impl StatusState {
    /// A new session's state.
    pub fn new(status: Status, source: StatusSource, now_ms: u64) -> StatusState {
        StatusState { status, source, reported_at_ms: now_ms, changed_at_ms: now_ms }
    }

    fn fresh(&self, rules: &StatusRules, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.reported_at_ms) < rules.freshness.as_millis() as u64
    }

    /// Apply a report; returns true when the status itself changed.
    pub fn report(&mut self, status: Status, source: StatusSource, rules: &StatusRules, now_ms: u64) -> bool {
        if status != self.status {
            *self = StatusState { status, source, reported_at_ms: now_ms, changed_at_ms: now_ms };
            return true;
        }
        if source >= self.source || !self.fresh(rules, now_ms) {
            self.source = source;
            self.reported_at_ms = now_ms;
        }
        false
    }

    /// Apply the TTL; returns true when `working` reverted to `idle`.
    pub fn sweep(&mut self, rules: &StatusRules, now_ms: u64) -> bool {
        if self.status == Status::Working
            && now_ms.saturating_sub(self.reported_at_ms) >= rules.working_ttl.as_millis() as u64
        {
            self.status = Status::Idle;
            self.changed_at_ms = now_ms;
            self.reported_at_ms = now_ms;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;
    use StatusSource::*;

    const RULES: StatusRules =
        StatusRules { freshness: Duration::from_secs(60), working_ttl: Duration::from_secs(600) };

    #[test]
    fn change_always_wins_and_takes_attribution() {
        let mut s = StatusState::new(Idle, Hook, 0);
        assert!(s.report(Working, Jsonl, &RULES, 1_000));
        assert_eq!((s.status, s.source), (Working, Jsonl));
    }

    #[test]
    fn same_status_higher_source_upgrades() {
        let mut s = StatusState::new(Working, Jsonl, 0);
        assert!(!s.report(Working, Hook, &RULES, 1_000));
        assert_eq!(s.source, Hook);
        assert_eq!(s.reported_at_ms, 1_000);
    }

    #[test]
    fn same_status_lower_source_kept_while_fresh_then_downgrades() {
        let mut s = StatusState::new(Working, Hook, 0);
        assert!(!s.report(Working, Jsonl, &RULES, 30_000));
        assert_eq!(s.source, Hook);
        // The ignored report must not refresh the hook's freshness.
        assert_eq!(s.reported_at_ms, 0);
        assert!(!s.report(Working, Jsonl, &RULES, 61_000));
        assert_eq!(s.source, Jsonl);
        assert_eq!(s.reported_at_ms, 61_000);
    }

    #[test]
    fn working_reverts_to_idle_after_ttl() {
        let mut s = StatusState::new(Working, Hook, 0);
        assert!(!s.sweep(&RULES, 599_999));
        assert!(s.sweep(&RULES, 600_000));
        assert_eq!(s.status, Idle);
        let mut d = StatusState::new(Dnd, Manual, 0);
        assert!(!d.sweep(&RULES, 10_000_000), "dnd is never swept");
    }

    #[test]
    fn re_reporting_working_keeps_it_alive() {
        let mut s = StatusState::new(Working, Hook, 0);
        s.report(Working, Hook, &RULES, 500_000);
        assert!(!s.sweep(&RULES, 700_000));
    }
}
