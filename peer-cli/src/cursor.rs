//! The local delivery cursor of one session, persisted next to the profile. A message is
//! recorded here before it is acknowledged to the broker, so a crash between the two can only
//! cause a re-delivery that this cursor then suppresses: nothing is surfaced twice.

use std::{collections::BTreeSet, io::Write, path::PathBuf};

use plexus_proto::{limits, types::Cursor};
use serde::{Deserialize, Serialize};

/// A persisted cursor.
#[derive(Debug, Clone)]
pub struct LocalCursor {
    path: PathBuf,
    watermark: u64,
    acked: BTreeSet<u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct OnDisk {
    watermark: u64,
    acked: Vec<u64>,
}

impl LocalCursor {
    /// Load from `path` (empty when missing or unreadable).
    pub fn load(path: PathBuf) -> LocalCursor {
        let disk: OnDisk = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        LocalCursor {
            path,
            watermark: disk.watermark,
            acked: disk.acked.into_iter().filter(|s| *s > disk.watermark).collect(),
        }
    }

    /// Whether `seq` was already surfaced.
    pub fn seen(&self, seq: u64) -> bool {
        seq <= self.watermark || self.acked.contains(&seq)
    }

    /// Record `seq` as surfaced and persist.
    pub fn record(&mut self, seq: u64) -> std::io::Result<()> {
        if !self.seen(seq) {
            self.acked.insert(seq);
            while self.acked.len() > limits::MAX_ACKS {
                // Oldest first: the broker's watermark has almost surely passed them.
                if let Some(first) = self.acked.pop_first() {
                    self.watermark = self.watermark.max(first);
                }
            }
        }
        self.save()
    }

    /// Adopt the broker's watermark (everything at or below it is acknowledged there).
    pub fn advance(&mut self, watermark: u64) {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.acked.retain(|s| *s > watermark);
        }
    }

    /// As sent in a hello.
    pub fn to_wire(&self) -> Cursor {
        Cursor { watermark: self.watermark, acked: self.acked.iter().copied().collect() }
    }

    /// Write atomically (temp file + rename), mode 0600.
    pub fn save(&self) -> std::io::Result<()> {
        let disk = OnDisk { watermark: self.watermark, acked: self.acked.iter().copied().collect() };
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

    #[test]
    fn records_survive_reload_and_advance_prunes() {
        let dir = std::env::temp_dir().join(format!("plexus-cursor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let mut c = LocalCursor::load(path.clone());
        c.record(5).unwrap();
        c.record(9).unwrap();
        let mut c = LocalCursor::load(path);
        assert!(c.seen(5) && c.seen(9) && !c.seen(7));
        c.advance(6);
        assert_eq!(c.to_wire(), Cursor { watermark: 6, acked: vec![9] });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
