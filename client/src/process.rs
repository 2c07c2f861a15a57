//! Who our ancestor processes are, portably: `/proc` where there is one (Linux), `ps` (POSIX:
//! macOS, the BSDs) otherwise. An agent's hooks and its `plexus mcp` server find each other
//! through the agent process they share, identified by pid and start time (so a reused pid is
//! not mistaken for it).
//!
//! `PLEXUS_PROC_ROOT` names the proc file system (default `/proc`); pointing it elsewhere makes
//! the `ps` path the one taken, which is how the test suite exercises it on Linux.

use std::process::Command;

fn proc_root() -> String {
    std::env::var("PLEXUS_PROC_ROOT").unwrap_or_else(|_| "/proc".into())
}

/// `(parent pid, start time)` of `pid`. The start time is an opaque number, stable for the
/// life of the process.
pub fn stat(pid: u32) -> Option<(u32, u64)> {
    from_proc(pid).or_else(|| from_ps(pid))
}

fn from_proc(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("{}/{pid}/stat", proc_root())).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields 3 (state) onwards; the parent pid is field 4, the start time field 22 (proc(5)).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

fn from_ps(pid: u32) -> Option<(u32, u64)> {
    let out = Command::new("ps").args(["-o", "ppid=,lstart=", "-p", &pid.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    let (ppid, started) = line.split_once(char::is_whitespace)?;
    Some((ppid.trim().parse().ok()?, fnv1a(started.trim().as_bytes())))
}

/// A stable number for a start-time string (`ps` prints it as text).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// This process's ancestors, nearest first, as `(pid, start time)`, up to `depth` (stopping
/// before init).
pub fn ancestors(depth: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    for _ in 0..depth {
        let Some((ppid, _)) = stat(pid) else { break };
        if ppid <= 1 {
            break;
        }
        let Some((_, start)) = stat(ppid) else { break };
        out.push((ppid, start));
        pid = ppid;
    }
    out
}

/// The parent process (the agent that spawned us) and its start time.
pub fn parent() -> Option<(u32, u64)> {
    ancestors(1).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_agrees_with_proc_on_the_parent() {
        let me = std::process::id();
        let via_ps = from_ps(me).expect("ps answers");
        if let Some(via_proc) = from_proc(me) {
            assert_eq!(via_proc.0, via_ps.0, "parent pid differs between /proc and ps");
        }
        #[cfg(unix)]
        assert_eq!(via_ps.0, std::os::unix::process::parent_id());
        // The start time is stable.
        assert_eq!(from_ps(me).map(|s| s.1), Some(via_ps.1));
    }
}
