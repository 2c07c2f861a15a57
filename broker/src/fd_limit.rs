//! The open-file limit and how many connections it allows. Every connection holds two
//! descriptors (its socket and the duplicate [`crate::edge::socket::SocketKiller`] keeps to
//! reset it), so a node whose limit is below twice `http.max_connections` would start failing
//! `accept` with "too many open files" long before admission refuses anyone. At start the
//! broker raises its soft limit to the hard one and lowers `http.max_connections` to what the
//! limit allows, so an excess connection gets a typed 503 and the node stays healthy.

/// Descriptors kept for everything that is not a connection: Postgres and Redis connections,
/// log files, the listeners, TLS material.
pub const RESERVED: u64 = 512;

/// Descriptors each connection holds.
pub const PER_CONNECTION: u64 = 2;

/// Raise the soft open-file limit to the hard one; the soft limit in force afterwards, or
/// `None` where it cannot be read.
pub fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
        }
        // rlim_t is u64 on Linux but not on every unix.
        #[allow(clippy::unnecessary_cast)]
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// How many connections `open_files` descriptors allow.
pub fn connection_capacity(open_files: u64) -> usize {
    (open_files.saturating_sub(RESERVED) / PER_CONNECTION).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_needs_two_descriptors_beyond_the_reserve() {
        assert_eq!(connection_capacity(20_000), 9_744);
        assert_eq!(connection_capacity(1_112), 300);
        assert_eq!(connection_capacity(100), 1, "a tiny limit still admits someone");
    }
}
