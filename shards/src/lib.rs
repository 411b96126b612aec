//! `shards`: a thread-per-core runtime. N threads, each with its own monoio runtime (io_uring
//! when the kernel allows it, epoll otherwise), its own `SO_REUSEPORT` listeners, a mesh of
//! bounded channels to every other shard, and a graceful shutdown signal.
//!
//! It knows cores, sockets and messages, and nothing about HTTP: the caller's `shard_main` gets a
//! [`Shard`] and decides what a connection or a message means.
//!
//! Modules, one job each: `builder` (threads, start/stop, signals), `driver` (io_uring flag
//! ladder, epoll fall-back), `listener` (binding), `accept` (accept loops, connection limit),
//! `mesh` (messages between shards), `shutdown` (the trigger and each shard's view of it),
//! `shard` (the per-shard context), `limits` (RLIMIT_NOFILE), `notify` (local wake-ups).
//!
//! Additions to the agreed API (nothing agreed was renamed or removed):
//! - `RingFlags` (re-exported): the flag set inside `UringFlags::Fixed` and `DriverKind::IoUring`.
//! - `Running::drivers()`: the driver of every shard, as reported at start-up.
//! - `Mesh::send_async` (waits for inbox space), `Inbox::try_recv`, `MeshError::into_msg`,
//!   `MeshError::NoReply` (a call whose target dropped the `Reply`), `mesh::INBOX_CAPACITY`.
//! - `Error` variants beyond `Bind` (see `error.rs`).
//!
//! Behaviour worth knowing:
//! - `start` returns only after every shard has built its runtime, so a refused io_uring under
//!   `DriverChoice::IoUring` is an error from `start`, not from `join`.
//! - Dropping `Running` without `join` triggers shutdown and detaches the threads.
//! - A panicking connection handler unwinds through its shard's runtime and ends that shard;
//!   `join` reports it as `Error::Panicked`.
//! - `Error`'s `source` fields are part of the one-line `Display` (as agreed: "cannot listen on
//!   ADDR: Permission denied (os error 13)"), so a printer that also walks `source()` (anyhow's
//!   `{:#}`) repeats the OS error. Print with `{}`.
//! - monoio frees a task that no waker refers to: a handler parked on `std::future::pending()`
//!   ends at once. A connection is "held" only while its task awaits I/O, a timer or a channel.

mod accept;
mod builder;
mod driver;
mod error;
mod fd;
mod limits;
mod listener;
pub mod mesh;
mod notify;
mod shard;
mod shutdown;

pub use builder::{run, start, Config, Running};
pub use driver::{DriverChoice, DriverKind, RingFlags, UringFlags};
pub use error::Error;
pub use fd::sock_fd;
pub use limits::raise_nofile_limit;
pub use mesh::{Envelope, Inbox, Mesh, MeshError, Reply};
pub use shard::Shard;
pub use shutdown::Shutdown;

/// A shard's index, `0..shards`.
pub type ShardId = usize;
