//! The process's open-file limit: raised to the hard limit at start (every client connection,
//! origin connection and event stream holds a descriptor), and the connection limit derived
//! from it when `[server] max_connections` is not set.

/// Descriptors kept for everything but client connections: the store's files, listeners,
/// `/metrics`, the CQL driver, logs.
const RESERVED_FDS: u64 = 256;

/// Connections allowed when the open-file limit allows more (each costs about 23 KB idle).
const DEFAULT_MAX_CONNECTIONS: u64 = 50_000;

/// Below this open-file limit a warning says to raise it.
const LOW_FD_LIMIT: u64 = 8_192;

/// Raises the soft open-file limit to the hard one; returns the limit in force.
pub fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1_024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let soft = limit.rlim_cur;
    if soft < LOW_FD_LIMIT {
        tracing::warn!(
            open_files = soft,
            "the open-file limit is low: each visitor's connection takes a descriptor; raise it (LimitNOFILE= in the systemd unit, ulimit -n)"
        );
    }
    soft
}

/// The connection limit for an open-file limit: two descriptors per proxied connection (the
/// client's and the origin's), after the reserve.
pub fn max_connections(open_files: u64) -> usize {
    let usable = open_files.saturating_sub(RESERVED_FDS) / 2;
    usable.clamp(16, DEFAULT_MAX_CONNECTIONS) as usize
}

#[cfg(test)]
mod tests {
    use super::max_connections;

    #[test]
    fn the_limit_leaves_room_for_origin_connections_and_the_store() {
        assert_eq!(max_connections(1_024), 384);
        assert_eq!(max_connections(1_048_576), 50_000);
        assert_eq!(max_connections(0), 16);
    }
}
