//! Cancelling every receive in flight on a shard's ring in one call, from outside the futures
//! that own them: `IORING_REGISTER_SYNC_CANCEL` with `IORING_ASYNC_CANCEL_OP | ALL` for
//! `IORING_OP_RECV` (Linux 6.6).
//!
//! Why: a read that a timeout or the idle sweep may have to interrupt must not simply be dropped
//! (on io_uring the kernel may already have filled its buffer; dropping it would lose those
//! bytes). monoio's answer is `CancelableAsyncReadRent`, which registers each operation in a
//! `Canceller`'s `HashSet` (SipHash) and removes it again: about 800 instructions per read,
//! 12 % of a keep-alive request under callgrind. Cancelling through the ring costs nothing until
//! it is used, and a cancelled read still completes through its own future, buffer and all (with
//! `ECANCELED`, or with the bytes it got first).
//!
//! Why every receive and not one socket's: the kernel finds requests to cancel by descriptor or
//! opcode by walking all of the ring's pending requests, so cancelling N sockets one by one costs
//! N walks (measured: parking 10,000 idle connections that way stalled the shard for seconds),
//! while one call for every receive costs one. The caller marks the connections it means first;
//! the others see `ECANCELED` without a mark and issue their read again.
//!
//! monoio does not expose its ring, so the ring's descriptor is found when the shard builds it:
//! under a process-wide lock, the io_uring descriptors in `/proc/self/fd` are listed before and
//! after the build, and the one new descriptor is this shard's ring. Anything unexpected (not
//! exactly one new descriptor, a kernel without the call) leaves the shard without a
//! `RingCanceller`.

use std::{
    collections::HashSet,
    fs, io,
    os::fd::RawFd,
    sync::{Mutex, MutexGuard},
};

/// `IORING_REGISTER_SYNC_CANCEL` (include/uapi/linux/io_uring.h).
const IORING_REGISTER_SYNC_CANCEL: libc::c_uint = 24;
/// Cancel every matching request, not only the first.
const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
/// Match requests by opcode (Linux 6.6).
const IORING_ASYNC_CANCEL_OP: u32 = 1 << 5;

/// `struct io_uring_sync_cancel_reg`.
#[repr(C)]
struct SyncCancelReg {
    addr: u64,
    fd: i32,
    flags: u32,
    timeout: KernelTimespec,
    opcode: u8,
    pad: [u8; 7],
    pad2: [u64; 3],
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// Cancels operations on the ring of the shard that found it. Only usable on that shard's thread
/// (`IORING_SETUP_SINGLE_ISSUER` rings refuse other threads with `EEXIST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCanceller {
    ring: RawFd,
}

impl RingCanceller {
    /// Cancels every receive in flight on this ring and returns how many there were. Each
    /// completes through its own future with `ECANCELED`; one the kernel had already finished
    /// completes with its result as usual.
    pub fn cancel_receives(&self) -> io::Result<usize> {
        self.submit_pending();
        let reg = SyncCancelReg {
            addr: 0,
            fd: -1,
            flags: IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_ALL,
            // -1/-1: wait for the cancellation however long it takes (a poll-armed receive is
            // removed at once).
            timeout: KernelTimespec {
                tv_sec: -1,
                tv_nsec: -1,
            },
            opcode: io_uring::opcode::Recv::CODE,
            pad: [0; 7],
            pad2: [0; 3],
        };
        // SAFETY: `reg` is a valid `io_uring_sync_cancel_reg` that outlives the call, and the
        // kernel only reads it; `ring` is an io_uring descriptor this process owns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.ring,
                IORING_REGISTER_SYNC_CANCEL,
                &reg as *const SyncCancelReg,
                1,
            )
        };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOENT) => Ok(0),
            _ => Err(err),
        }
    }
}

impl RingCanceller {
    /// Hands the kernel the operations monoio has queued but not yet submitted (it submits once
    /// per turn of its loop), so that a read issued earlier in this turn can be cancelled too.
    /// monoio publishes each queued entry's tail at once and reads the kernel's head before every
    /// submit of its own, so taking entries from under it is safe. Best effort: an error here
    /// leaves the entries for monoio's next submit.
    fn submit_pending(&self) {
        // SAFETY: io_uring_enter with no signal mask only reads the rings the kernel owns.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.ring,
                u32::MAX, // the kernel takes min(this, queued)
                0u32,
                0u32,
                std::ptr::null::<libc::c_void>(),
                0usize,
            )
        };
    }
}

/// Shuts down the read side of socket `fd`: a read waiting on it, io_uring or not, ends with
/// end-of-file. For a caller that tracks sockets by number and has no [`RingCanceller`]; the
/// caller must know `fd` is still the socket it means (not closed, its number not reused).
pub fn shutdown_read(fd: RawFd) -> io::Result<()> {
    // SAFETY: shutdown(2) takes a descriptor number and touches no memory of ours.
    if unsafe { libc::shutdown(fd, libc::SHUT_RD) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Serialises ring builds so that "the one new io_uring descriptor" is unambiguous.
static BUILDING: Mutex<()> = Mutex::new(());

/// Held around building a ring: lists the io_uring descriptors before, and names the new one
/// after.
pub(crate) struct RingWatch {
    before: Option<HashSet<RawFd>>,
    _lock: MutexGuard<'static, ()>,
}

impl RingWatch {
    pub(crate) fn start() -> Self {
        let lock = BUILDING.lock().unwrap_or_else(|poison| poison.into_inner());
        RingWatch {
            before: uring_fds().ok(),
            _lock: lock,
        }
    }

    /// The canceller for the ring built since `start`, if it is found and the kernel has the
    /// call. Must run on the thread that built the ring.
    pub(crate) fn finish(self) -> Option<RingCanceller> {
        let before = self.before?;
        let after = uring_fds().ok()?;
        let mut new = after.difference(&before);
        let ring = *new.next()?;
        if new.next().is_some() {
            return None;
        }
        let canceller = RingCanceller { ring };
        // The new ring has nothing in flight: a kernel with the call says so (ENOENT, mapped to
        // Ok(0)); an older one does not know the register opcode or the OP flag (EINVAL).
        match canceller.cancel_receives() {
            Ok(_) => Some(canceller),
            Err(e) => {
                tracing::debug!("io_uring sync cancel unavailable ({e})");
                None
            }
        }
    }
}

/// The io_uring descriptors this process has open.
fn uring_fds() -> io::Result<HashSet<RawFd>> {
    let mut fds = HashSet::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        // A descriptor closed since the listing began has no link: skip it.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if target.as_os_str() == "anon_inode:[io_uring]" {
            if let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                fds.insert(fd);
            }
        }
    }
    Ok(fds)
}
