//! Wall-clock time for the parts whose decisions depend on it (status freshness and TTLs,
//! reminder due times), behind a seam so their unit tests run on tokio's paused clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now, in milliseconds since the epoch.
    fn now_ms(&self) -> u64 {
        millis(self.now())
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that follows tokio's (pausable) time from a fixed start: with
/// `tokio::time::pause()`, `advance` moves it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starting now (on tokio's clock).
    pub fn new() -> TokioClock {
        TokioClock { base: SystemTime::now(), start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.base + tokio::time::Instant::now().duration_since(self.start)
    }
}

/// How long until `t` on `clock` (zero when it has passed).
pub fn until(clock: &dyn Clock, t: SystemTime) -> Duration {
    t.duration_since(clock.now()).unwrap_or_default()
}

/// Milliseconds since the epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `SystemTime` from milliseconds since the epoch.
pub fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Now on the system clock, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    millis(SystemTime::now())
}
