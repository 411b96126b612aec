//! The file-descriptor limit: raising it, and deriving the per-shard connection limit from it.
//! Every connection costs one descriptor, so a limit below `RLIMIT_NOFILE` keeps `accept` from
//! hitting `EMFILE` in normal operation (the accept loop still copes if it does).

use std::io;

/// Descriptors kept out of the connection budget, for the process itself (std streams, log
/// files, files being served) ...
const RESERVE_FIXED: u64 = 64;
/// ... and per shard (its listeners come on top: ring or epoll fd, eventfd, timers, slack).
const RESERVE_PER_SHARD: u64 = 8;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit. A hard limit
/// of "unlimited" is read as the kernel's `fs.nr_open`, since that is what setrlimit accepts.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = get_nofile()?;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = nr_open().unwrap_or(1 << 20);
    }
    if lim.rlim_cur >= target {
        return Ok(lim.rlim_cur);
    }
    lim.rlim_cur = target;
    // SAFETY: `lim` is a valid, initialised rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(target)
}

fn get_nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `(soft limit - reserve) / shards`, at least 1.
pub(crate) fn derived_conn_limit(shards: usize, listeners: usize) -> io::Result<usize> {
    let soft = get_nofile()?.rlim_cur;
    let shards = shards.max(1) as u64;
    let reserve = RESERVE_FIXED + shards * (RESERVE_PER_SHARD + listeners as u64);
    let per_shard = soft.saturating_sub(reserve) / shards;
    Ok(usize::try_from(per_shard).unwrap_or(usize::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_sets_soft_limit_to_what_it_returns() {
        let before = get_nofile().expect("getrlimit");
        let now = raise_nofile_limit().expect("raise to the hard limit is always allowed");
        assert!(now >= before.rlim_cur);
        assert_eq!(get_nofile().expect("getrlimit").rlim_cur, now);
    }

    #[test]
    fn derived_limit_leaves_a_reserve() {
        let soft = get_nofile().expect("getrlimit").rlim_cur;
        let per_shard = derived_conn_limit(2, 1).expect("getrlimit") as u64;
        assert!(per_shard >= 1);
        assert!(per_shard * 2 < soft || soft < 100);
    }
}
