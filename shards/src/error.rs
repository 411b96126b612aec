//! Errors from starting and running the shards. Each variant says which address or shard failed
//! and displays as one line; the OS error is part of that line (callers print `{}` and are done).

use std::{io, net::SocketAddr};

use crate::{driver::RingFlags, ShardId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not be created, bound or put in listening state.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// `DriverChoice::IoUring` was demanded and the kernel refused io_uring (`EPERM`/`ENOSYS`).
    #[error("shard {shard}: io_uring is not available: {source}")]
    UringRefused { shard: ShardId, source: io::Error },
    /// A fixed set of io_uring flags was refused (`EINVAL`).
    #[error("shard {shard}: io_uring refused the setup flags [{flags}]: {source}")]
    UringFlags {
        shard: ShardId,
        flags: RingFlags,
        source: io::Error,
    },
    /// Building a runtime failed for another reason (out of memory, out of file descriptors).
    #[error("shard {shard}: cannot build the {driver} runtime: {source}")]
    Runtime {
        shard: ShardId,
        driver: &'static str,
        source: io::Error,
    },
    /// A listener could not be handed to the shard's runtime.
    #[error("shard {shard}: cannot register listener {addr}: {source}")]
    Register {
        shard: ShardId,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot spawn the thread of shard {shard}: {source}")]
    Spawn { shard: ShardId, source: io::Error },
    /// The shard's thread panicked (in `shard_main` or in the runtime).
    #[error("shard {shard} panicked: {message}")]
    Panicked { shard: ShardId, message: String },
    /// A shard thread ended before reporting whether its runtime was built.
    #[error("shard {shard} ended during start-up")]
    StartupLost { shard: ShardId },
    #[error("cannot spawn the thread that joins the shards: {0}")]
    Supervisor(io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("cannot read the file descriptor limit: {0}")]
    Rlimit(io::Error),
}
