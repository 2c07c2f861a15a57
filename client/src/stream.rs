//! An agent session's activity stream on the agent's machine: the local spool hooks append to
//! (fast, never blocking on the network) and the flush that seals spooled entries with the mesh
//! key and publishes them with `stream_append`.
//!
//! The spool is `stream/<profile>/<session>.jsonl` beside a `.state` file, both under an
//! exclusive file lock while changed, so concurrent hooks and the `plexus mcp` flusher never
//! interleave. Entries stay in the spool until the broker has stored them: a broker outage
//! loses nothing, it only delays. The spool is bounded ([`MAX_SPOOL_BYTES`]); entries that do
//! not fit are counted and the count is published as a `dropped` entry once there is room.
//!
//! Sequences are `max(last + 1, now in µs)`, so they keep increasing even if the spool's state
//! is lost, and the broker stores a resent sequence once.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, Write},
    path::{Path, PathBuf},
};

use plexus_proto::room::{EntryBody, EntryIn, EntryKind, StreamAppend};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{connection::ClientError, profile::Profile, Connection};

/// Most bytes the local spool holds before new entries are counted as dropped.
pub const MAX_SPOOL_BYTES: u64 = 64 * 1024 * 1024;

/// Most entries per `stream_append`.
const BATCH: usize = 128;

/// One spooled entry (plaintext, on the agent's own machine).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spooled {
    /// Sequence.
    pub seq: u64,
    /// Kind.
    pub kind: EntryKind,
    /// When.
    pub at_ms: u64,
    /// Body.
    pub body: EntryBody,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    last_seq: u64,
    sent: u64,
    dropped: u64,
    /// Transcript files read so far, by path: bytes consumed.
    #[serde(default)]
    transcripts: std::collections::BTreeMap<String, u64>,
}

/// One session's spool.
pub struct Spool {
    path: PathBuf,
    state_path: PathBuf,
    limit: u64,
}

/// Cut `text` to at most `max` bytes (on a character boundary) with a marker saying how much
/// was cut; whether it was cut.
pub fn truncate(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max.saturating_sub(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}\n[… truncated: {} of {} bytes not shown]", &text[..end], text.len() - end, text.len()), true)
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Spool {
    /// The spool of `session_id` under `home` for profile `profile`.
    pub fn open(home: &Path, profile: &str, session_id: Uuid) -> Spool {
        let dir = home.join("stream").join(profile);
        Spool {
            path: dir.join(format!("{session_id}.jsonl")),
            state_path: dir.join(format!("{session_id}.state")),
            limit: MAX_SPOOL_BYTES,
        }
    }

    fn locked(&self) -> Result<(File, State), ClientError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.create(true).read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&self.path)?;
        file.lock()?;
        let state = std::fs::read_to_string(&self.state_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok((file, state))
    }

    fn save(&self, state: &State) -> Result<(), ClientError> {
        let tmp = self.state_path.with_extension("state.tmp");
        std::fs::write(&tmp, serde_json::to_vec(state).map_err(|e| ClientError::Io(e.to_string()))?)?;
        std::fs::rename(tmp, &self.state_path)?;
        Ok(())
    }

    /// Append entries (in order). Returns how many did not fit and were counted as dropped.
    pub fn push(&self, entries: Vec<(EntryKind, EntryBody)>) -> Result<u64, ClientError> {
        let (mut file, mut state) = self.locked()?;
        let size = file.metadata()?.len();
        let mut dropped_now = 0;
        let mut out = Vec::new();
        let at_ms = now_us() / 1000;
        let next = |state: &mut State| {
            state.last_seq = (state.last_seq + 1).max(now_us());
            state.last_seq
        };
        if state.dropped > 0 && size < self.limit {
            let text =
                format!("{} entries were dropped: the local queue was full while the broker was away", state.dropped);
            let line = Spooled {
                seq: next(&mut state),
                kind: EntryKind::Dropped,
                at_ms,
                body: EntryBody { text: Some(text), ..EntryBody::default() },
            };
            out.extend(serde_json::to_vec(&line).map_err(|e| ClientError::Io(e.to_string()))?);
            out.push(b'\n');
            state.dropped = 0;
        }
        for (kind, body) in entries {
            if size + out.len() as u64 >= self.limit {
                state.dropped += 1;
                dropped_now += 1;
                continue;
            }
            let line = Spooled { seq: next(&mut state), kind, at_ms, body };
            out.extend(serde_json::to_vec(&line).map_err(|e| ClientError::Io(e.to_string()))?);
            out.push(b'\n');
        }
        file.write_all(&out)?;
        self.save(&state)?;
        Ok(dropped_now)
    }

    /// Entries not yet stored by the broker (at most `max`).
    pub fn pending(&self, max: usize) -> Result<Vec<Spooled>, ClientError> {
        let (mut file, state) = self.locked()?;
        file.rewind()?;
        let mut out = Vec::new();
        for line in BufReader::new(&file).lines() {
            let line = line?;
            // A line cut short by a crash mid-write is skipped, not fatal.
            if let Ok(e) = serde_json::from_str::<Spooled>(&line) {
                if e.seq > state.sent {
                    out.push(e);
                    if out.len() >= max {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The broker stored everything up to `seq`; the spool empties once all is sent.
    pub fn mark_sent(&self, seq: u64) -> Result<(), ClientError> {
        let (file, mut state) = self.locked()?;
        state.sent = state.sent.max(seq);
        if state.sent >= state.last_seq {
            file.set_len(0)?;
        }
        self.save(&state)
    }

    /// New complete lines of a transcript file since the last call (for the same path).
    pub fn transcript_lines(&self, transcript: &Path) -> Result<Vec<String>, ClientError> {
        let key = transcript.to_string_lossy().into_owned();
        let (_guard, mut state) = self.locked()?;
        let offset = state.transcripts.get(&key).copied().unwrap_or(0);
        let Ok(mut f) = File::open(transcript) else { return Ok(Vec::new()) };
        let len = f.metadata()?.len();
        if len < offset {
            // Rewritten from scratch: start over.
            state.transcripts.insert(key.clone(), 0);
        }
        let start = state.transcripts.get(&key).copied().unwrap_or(0);
        f.seek(std::io::SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut buf)?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines = String::from_utf8_lossy(&buf[..complete]).lines().map(str::to_owned).collect();
        state.transcripts.insert(key, start + complete as u64);
        self.save(&state)?;
        Ok(lines)
    }
}

/// Seal and publish everything pending in the spool; how many entries the broker stored.
pub async fn flush(
    conn: &Connection,
    profile: &Profile,
    session_id: Uuid,
    spool: &Spool,
) -> Result<usize, ClientError> {
    let Some(ring) = profile.keyring() else {
        return Err(ClientError::Keys("no mesh key yet: stream entries wait in the spool".into()));
    };
    let mut stored = 0;
    loop {
        let pending = spool.pending(BATCH)?;
        let Some(last) = pending.last().map(|e| e.seq) else { return Ok(stored) };
        let mut entries = Vec::with_capacity(pending.len());
        for e in pending {
            let json = serde_json::to_vec(&e.body).map_err(|e| ClientError::Io(e.to_string()))?;
            let (nonce, ciphertext) = ring.seal(&json)?;
            entries.push(EntryIn { seq: e.seq, kind: e.kind, at_ms: e.at_ms, nonce: nonce.to_vec(), ciphertext });
        }
        let reply = conn.call(&StreamAppend { session_id, entries }).await?;
        stored += reply.stored as usize;
        spool.mark_sent(last)?;
    }
}

/// Open a stream entry's body with the mesh key.
pub fn open_entry(profile: &Profile, nonce: &[u8], ciphertext: &[u8]) -> Option<EntryBody> {
    let plain = profile.keyring()?.open(nonce, ciphertext).ok()?;
    serde_json::from_slice(&plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_marks_what_was_cut_and_keeps_utf8_whole() {
        let (t, cut) = truncate("short", 100);
        assert_eq!((t.as_str(), cut), ("short", false));
        let long = "é".repeat(10_000);
        let (t, cut) = truncate(&long, 1000);
        assert!(cut);
        assert!(t.len() <= 1000 + 80, "{}", t.len());
        assert!(t.contains("truncated"));
    }

    #[test]
    fn a_full_spool_counts_what_it_drops_and_says_so_once_there_is_room() {
        let dir = std::env::temp_dir().join(format!("plexus-spool-{}", Uuid::new_v4()));
        let mut spool = Spool::open(&dir, "p", Uuid::new_v4());
        spool.limit = 400;
        let body = |t: &str| EntryBody { text: Some(t.into()), ..EntryBody::default() };
        let mut dropped = 0;
        for i in 0..10 {
            dropped += spool.push(vec![(EntryKind::Prompt, body(&format!("prompt number {i}")))]).expect("push");
        }
        assert!(dropped > 0, "nothing was dropped at a 400-byte bound");
        let kept = spool.pending(100).expect("pending");
        assert_eq!(kept.len() as u64 + dropped, 10);
        spool.mark_sent(kept.last().expect("kept some").seq).expect("sent");
        spool.push(vec![(EntryKind::Prompt, body("after"))]).expect("push");
        let next = spool.pending(100).expect("pending");
        assert_eq!(next[0].kind, EntryKind::Dropped);
        assert!(next[0]
            .body
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with(&format!("{dropped} entries were dropped"))));
        assert_eq!(next[1].body.text.as_deref(), Some("after"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_spool_keeps_order_until_sent_then_empties() {
        let dir = std::env::temp_dir().join(format!("plexus-spool-{}", Uuid::new_v4()));
        let spool = Spool::open(&dir, "p", Uuid::new_v4());
        let body = |t: &str| EntryBody { text: Some(t.into()), ..EntryBody::default() };
        spool.push(vec![(EntryKind::Prompt, body("a")), (EntryKind::Assistant, body("b"))]).expect("push");
        spool.push(vec![(EntryKind::Status, body("c"))]).expect("push");
        let p = spool.pending(10).expect("pending");
        assert_eq!(p.iter().map(|e| e.body.text.clone().unwrap_or_default()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert!(p.windows(2).all(|w| w[0].seq < w[1].seq));
        spool.mark_sent(p[1].seq).expect("sent");
        assert_eq!(spool.pending(10).expect("pending").len(), 1);
        spool.mark_sent(p[2].seq).expect("sent");
        assert!(spool.pending(10).expect("pending").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
