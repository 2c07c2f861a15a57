//! The local delivery cursor of one session, persisted next to the profile. A message is
//! recorded here before it is acknowledged to the broker, so a crash between the two can only
//! cause a re-delivery that this cursor then suppresses: nothing is surfaced twice.
//!
//! The cursor never invents a read position. Its watermark is only ever one the broker
//! reported (everything addressed at or below it is acknowledged there); above it, it keeps
//! the sequences surfaced here whose acknowledgement the broker has not confirmed yet. Once
//! the broker confirms an ack it never delivers that sequence again, so the set stays small
//! (the in-flight acks) without ever being pruned by raising the watermark past a message
//! nobody read — a `low` message waiting in the inbox stays below every watermark until
//! someone reads it.
//!
//! Surfacing is bracketed: a sequence is marked *in flight* (persisted) before it is shown and
//! recorded after. A process killed in between cannot know whether the user saw it, so the
//! next run shows it again marked as a repeat ([`LocalCursor::interrupted`]) rather than
//! either losing it or showing it twice unannounced: surfacing is exactly-once by sequence.

use std::{
    collections::{BTreeSet, VecDeque},
    io::Write,
    path::PathBuf,
};

use plexus_proto::{limits, types::Cursor};
use serde::{Deserialize, Serialize};

/// Recently confirmed sequences remembered for duplicate suppression (a confirmed ack is never
/// delivered again by the broker; this only guards against a delivery already in flight).
const RECENT: usize = 4096;

/// A persisted cursor.
#[derive(Debug, Clone)]
pub struct LocalCursor {
    path: PathBuf,
    watermark: u64,
    /// Surfaced here, acknowledgement not yet confirmed by the broker.
    pending: BTreeSet<u64>,
    /// Being surfaced by this process right now.
    in_flight: BTreeSet<u64>,
    /// Were being surfaced when a previous process stopped: maybe shown, maybe not.
    interrupted: BTreeSet<u64>,
    /// Confirmed lately (not persisted: the broker has these).
    recent: VecDeque<u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct OnDisk {
    watermark: u64,
    acked: Vec<u64>,
    #[serde(default)]
    surfacing: Vec<u64>,
}

impl LocalCursor {
    /// Load from `path` (empty when missing or unreadable).
    pub fn load(path: PathBuf) -> LocalCursor {
        let disk: OnDisk = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        LocalCursor {
            path,
            watermark: disk.watermark,
            pending: disk.acked.into_iter().filter(|s| *s > disk.watermark).collect(),
            in_flight: BTreeSet::new(),
            interrupted: disk.surfacing.into_iter().filter(|s| *s > disk.watermark).collect(),
            recent: VecDeque::new(),
        }
    }

    /// Whether `seq` was already surfaced (or is being surfaced by this process).
    pub fn seen(&self, seq: u64) -> bool {
        seq <= self.watermark
            || self.pending.contains(&seq)
            || self.in_flight.contains(&seq)
            || self.recent.contains(&seq)
    }

    /// Whether this process is surfacing `seq` right now (not acknowledged yet).
    pub fn in_flight(&self, seq: u64) -> bool {
        self.in_flight.contains(&seq)
    }

    /// Whether surfacing `seq` was interrupted before (it may have been shown already).
    pub fn interrupted(&self, seq: u64) -> bool {
        self.interrupted.contains(&seq)
    }

    /// Mark `seq` as being surfaced, and persist that before it is shown.
    pub fn begin(&mut self, seq: u64) -> std::io::Result<()> {
        self.interrupted.remove(&seq);
        self.in_flight.insert(seq);
        self.save()
    }

    /// `seq` was not surfaced after all (the consumer could not show it): forget the mark.
    pub fn abandon(&mut self, seq: u64) -> std::io::Result<()> {
        if self.in_flight.remove(&seq) {
            self.save()?;
        }
        Ok(())
    }

    /// Record `seq` as surfaced (ending its in-flight mark) and persist.
    pub fn record(&mut self, seq: u64) -> std::io::Result<()> {
        self.record_all(&[seq])
    }

    /// Record several sequences as surfaced and persist once.
    pub fn record_all(&mut self, seqs: &[u64]) -> std::io::Result<()> {
        for &seq in seqs {
            self.in_flight.remove(&seq);
            self.interrupted.remove(&seq);
            if !self.seen(seq) {
                self.pending.insert(seq);
            }
        }
        self.save()
    }

    /// The broker confirmed these acks and reported its watermark: they need not be kept.
    pub fn confirm(&mut self, seqs: &[u64], watermark: u64) {
        for seq in seqs {
            if self.pending.remove(seq) {
                if self.recent.len() >= RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(*seq);
            }
        }
        self.advance(watermark);
    }

    /// Adopt the broker's watermark (everything at or below it is acknowledged there).
    pub fn advance(&mut self, watermark: u64) {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.pending.retain(|s| *s > watermark);
            self.interrupted.retain(|s| *s > watermark);
            self.recent.retain(|s| *s > watermark);
        }
    }

    /// The broker-confirmed watermark.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// As sent in a hello: the broker's watermark and the acks it may not have (the oldest
    /// first, up to the protocol limit; any beyond are acknowledged again when redelivered).
    pub fn to_wire(&self) -> Cursor {
        Cursor { watermark: self.watermark, acked: self.pending.iter().copied().take(limits::MAX_ACKS).collect() }
    }

    /// Write atomically (temp file + rename), mode 0600.
    pub fn save(&self) -> std::io::Result<()> {
        let disk = OnDisk {
            watermark: self.watermark,
            acked: self.pending.iter().copied().collect(),
            surfacing: self.in_flight.iter().chain(&self.interrupted).copied().collect(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = crate::profile::create_private(&tmp)?;
            f.write_all(&serde_json::to_vec(&disk).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cursor() -> (PathBuf, LocalCursor) {
        let dir = std::env::temp_dir().join(format!("plexus-cursor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        (dir, LocalCursor::load(path))
    }

    #[test]
    fn records_survive_reload_and_advance_prunes() {
        let (dir, mut c) = temp_cursor();
        c.record(5).unwrap();
        c.record(9).unwrap();
        let mut c = LocalCursor::load(dir.join("c.json"));
        assert!(c.seen(5) && c.seen(9) && !c.seen(7));
        c.advance(6);
        assert_eq!(c.to_wire(), Cursor { watermark: 6, acked: vec![9] });
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 10 §4: a follower surfaced thousands of messages while one `low` message waited
    /// unread below them (the broker's watermark stalls there). The cursor must not move its
    /// watermark past the unread one, however many acks pile up.
    #[test]
    fn an_unread_message_is_never_covered_by_the_watermark() {
        let (dir, mut c) = temp_cursor();
        let low = 3;
        let surfaced: Vec<u64> = (1..=6000).filter(|s| *s != low).collect();
        c.record_all(&surfaced).unwrap();
        assert!(!c.seen(low), "the unread message is shown as seen");
        assert!(c.to_wire().watermark < low);
        assert!(c.to_wire().acked.len() <= limits::MAX_ACKS);
        // The broker confirms the acks; its watermark stays below the unread message.
        c.confirm(&surfaced, low - 1);
        assert!(!c.seen(low));
        assert_eq!(c.to_wire(), Cursor { watermark: low - 1, acked: vec![] }, "confirmed acks are not kept");
        assert!(c.seen(4000), "a confirmed ack is still suppressed if delivered again at once");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 11 §10: a follower killed between showing a message and recording it must neither
    /// lose it nor show it twice unannounced.
    #[test]
    fn a_surface_interrupted_by_a_crash_is_repeated_and_marked() {
        let (dir, mut c) = temp_cursor();
        c.begin(7).unwrap();
        assert!(c.seen(7), "in flight here: not shown again by this process");
        // The process dies here; the next one loads the cursor.
        let mut next = LocalCursor::load(dir.join("c.json"));
        assert!(!next.seen(7), "an interrupted message must be shown again");
        assert!(next.interrupted(7), "and marked as a possible repeat");
        next.begin(7).unwrap();
        next.record(7).unwrap();
        let again = LocalCursor::load(dir.join("c.json"));
        assert!(again.seen(7) && !again.interrupted(7));
        // A surface the consumer gave up on leaves no mark.
        let mut c = again;
        c.begin(9).unwrap();
        c.abandon(9).unwrap();
        assert!(!LocalCursor::load(dir.join("c.json")).interrupted(9));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
