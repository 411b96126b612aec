//! Which I/O driver a shard runs on, and building its monoio runtime: the io_uring setup-flag
//! ladder and the fall-back to epoll. It owns the decision and the log lines that explain it;
//! it does not own the runtime once built.
//!
//! Ladder (tried in the shard's own thread, since `SINGLE_ISSUER` binds the ring to the thread
//! that creates it):
//! 1. `SINGLE_ISSUER | DEFER_TASKRUN` (kernel ≥ 6.1)
//! 2. `COOP_TASKRUN` (≥ 5.19)
//! 3. no flags
//!
//! A rung is left only on `EINVAL` (the kernel does not know a flag). `EPERM` / `ENOSYS` mean
//! io_uring itself is refused (Docker's default seccomp profile, `kernel.io_uring_disabled`, a
//! kernel built without it): then epoll under `DriverChoice::Auto`, an error under `IoUring`.
//! Anything else (`ENOMEM`, `EMFILE`) is an error: stepping down would hide a real problem.
//! Why the flags matter: `/work/shared/anchors/URING_FLAGS.md` (without COOP/DEFER_TASKRUN the
//! server spins on the socket lock in task_work, ~1.8× CPU per request on keep-alive).
//!
//! monoio's own `FusionDriver` is not used: its probe swallows the reason and never tries our
//! flags. `TASKRUN_FLAG` is not on the ladder because monoio never reads `IORING_SQ_TASKRUN`.

use std::{fmt, io, str::FromStr};

use monoio::{time::TimeDriver, FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::{Error, ShardId};

/// The runtime a shard blocks on: io_uring or epoll, both with timers.
pub(crate) type ShardRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// Which driver to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring, or epoll if the kernel refuses io_uring (`EPERM`/`ENOSYS`).
    #[default]
    Auto,
    /// io_uring or an error.
    IoUring,
    /// epoll only (monoio's legacy driver).
    Epoll,
}

impl FromStr for DriverChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DriverChoice::Auto),
            "io_uring" | "iouring" | "uring" => Ok(DriverChoice::IoUring),
            "epoll" | "legacy" => Ok(DriverChoice::Epoll),
            other => Err(format!(
                "unknown driver {other:?} (expected auto, io_uring or epoll)"
            )),
        }
    }
}

/// A set of io_uring setup flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingFlags {
    pub single_issuer: bool,
    pub defer_taskrun: bool,
    pub coop_taskrun: bool,
    pub taskrun_flag: bool,
}

impl RingFlags {
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: the first rung.
    pub const SINGLE_DEFER: RingFlags = RingFlags {
        single_issuer: true,
        defer_taskrun: true,
        coop_taskrun: false,
        taskrun_flag: false,
    };
    /// `COOP_TASKRUN`: the second rung.
    pub const COOP: RingFlags = RingFlags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: true,
        taskrun_flag: false,
    };
    /// No flags: monoio's default ring.
    pub const NONE: RingFlags = RingFlags {
        single_issuer: false,
        defer_taskrun: false,
        coop_taskrun: false,
        taskrun_flag: false,
    };

    fn builder(self) -> io_uring::Builder {
        let mut b = io_uring::IoUring::builder();
        if self.single_issuer {
            b.setup_single_issuer();
        }
        if self.defer_taskrun {
            b.setup_defer_taskrun();
        }
        if self.coop_taskrun {
            b.setup_coop_taskrun();
        }
        if self.taskrun_flag {
            b.setup_taskrun_flag();
        }
        b
    }
}

impl fmt::Display for RingFlags {
    /// `single_issuer,defer_taskrun`, or `no flags`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.single_issuer, "single_issuer"),
            (self.defer_taskrun, "defer_taskrun"),
            (self.coop_taskrun, "coop_taskrun"),
            (self.taskrun_flag, "taskrun_flag"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(name)?;
            first = false;
        }
        if first {
            f.write_str("no flags")?;
        }
        Ok(())
    }
}

impl FromStr for RingFlags {
    type Err = String;

    /// A comma-separated list: `single[_issuer]`, `defer[_taskrun]`, `coop[_taskrun]`,
    /// `taskrun[_flag]`; or `none`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut flags = RingFlags::NONE;
        let s = s.trim().to_ascii_lowercase();
        if s == "none" || s.is_empty() {
            return Ok(flags);
        }
        for part in s.split(',').map(str::trim) {
            match part {
                "single" | "single_issuer" => flags.single_issuer = true,
                "defer" | "defer_taskrun" => flags.defer_taskrun = true,
                "coop" | "coop_taskrun" => flags.coop_taskrun = true,
                "taskrun" | "taskrun_flag" => flags.taskrun_flag = true,
                other => {
                    return Err(format!(
                        "unknown io_uring flag {other:?} (expected single, defer, coop, taskrun_flag or none)"
                    ))
                }
            }
        }
        Ok(flags)
    }
}

/// Which io_uring setup flags to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UringFlags {
    /// The ladder: `single_issuer,defer_taskrun` → `coop_taskrun` → none.
    #[default]
    Auto,
    /// Exactly these flags (for experiments); the kernel refusing them (`EINVAL`) is an error.
    Fixed(RingFlags),
}

impl FromStr for UringFlags {
    type Err = String;

    /// `auto`, or what `RingFlags` parses (`single,defer`, `coop`, `none`).
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(UringFlags::Auto);
        }
        s.parse().map(UringFlags::Fixed)
    }
}

/// What a shard actually runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    IoUring(RingFlags),
    Epoll,
}

impl fmt::Display for DriverKind {
    /// `io_uring (single_issuer,defer_taskrun)` or `epoll`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverKind::IoUring(flags) => write!(f, "io_uring ({flags})"),
            DriverKind::Epoll => f.write_str("epoll"),
        }
    }
}

/// How one attempt at creating a ring failed, by what the ladder does next.
enum RingFailure {
    /// `EINVAL`: these flags are unknown to the kernel.
    FlagsRefused(io::Error),
    /// `EPERM`/`ENOSYS`: io_uring is not available at all.
    UringRefused(io::Error),
    Other(io::Error),
}

fn classify(e: io::Error) -> RingFailure {
    match e.raw_os_error() {
        Some(libc::EINVAL) => RingFailure::FlagsRefused(e),
        Some(libc::EPERM) | Some(libc::ENOSYS) => RingFailure::UringRefused(e),
        _ => RingFailure::Other(e),
    }
}

fn try_uring(flags: RingFlags, entries: u32) -> Result<ShardRuntime, RingFailure> {
    RuntimeBuilder::<IoUringDriver>::new()
        .enable_timer()
        .with_entries(entries)
        .uring_builder(flags.builder())
        .build()
        .map(FusionRuntime::from)
        .map_err(classify)
}

fn build_epoll(shard: ShardId, entries: u32) -> Result<ShardRuntime, Error> {
    RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .with_entries(entries)
        .build()
        .map(FusionRuntime::from)
        .map_err(|source| Error::Runtime {
            shard,
            driver: "epoll",
            source,
        })
}

/// Builds this thread's runtime following `choice` and `flags`, logging the outcome (info) and
/// every step down with its reason (warn). Must run in the shard's thread.
pub(crate) fn build_runtime(
    shard: ShardId,
    choice: DriverChoice,
    flags: UringFlags,
    entries: u32,
) -> Result<(ShardRuntime, DriverKind), Error> {
    if choice == DriverChoice::Epoll {
        let rt = build_epoll(shard, entries)?;
        tracing::info!(shard, driver = %DriverKind::Epoll, "shard runtime built (epoll requested)");
        return Ok((rt, DriverKind::Epoll));
    }
    let ladder: &[RingFlags] = match &flags {
        UringFlags::Auto => &[RingFlags::SINGLE_DEFER, RingFlags::COOP, RingFlags::NONE],
        UringFlags::Fixed(f) => std::slice::from_ref(f),
    };
    let mut refused = None;
    for (i, &rung) in ladder.iter().enumerate() {
        match try_uring(rung, entries) {
            Ok(rt) => {
                let kind = DriverKind::IoUring(rung);
                tracing::info!(shard, driver = %kind, "shard runtime built");
                return Ok((rt, kind));
            }
            Err(RingFailure::FlagsRefused(e)) => match ladder.get(i + 1) {
                Some(next) => {
                    tracing::warn!(
                        shard,
                        "io_uring refused flags [{rung}] ({e}); trying [{next}]"
                    );
                }
                None => {
                    return Err(Error::UringFlags {
                        shard,
                        flags: rung,
                        source: e,
                    })
                }
            },
            Err(RingFailure::UringRefused(e)) => {
                refused = Some(e);
                break;
            }
            Err(RingFailure::Other(source)) => {
                return Err(Error::Runtime {
                    shard,
                    driver: "io_uring",
                    source,
                })
            }
        }
    }
    let reason = refused.expect("the ladder either returned or broke out on UringRefused");
    if choice == DriverChoice::IoUring {
        return Err(Error::UringRefused {
            shard,
            source: reason,
        });
    }
    tracing::warn!(shard, "io_uring refused ({reason}); falling back to epoll");
    let rt = build_epoll(shard, entries)?;
    tracing::info!(shard, driver = %DriverKind::Epoll, "shard runtime built");
    Ok((rt, DriverKind::Epoll))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flag_sets() {
        assert_eq!("auto".parse(), Ok(UringFlags::Auto));
        assert_eq!(
            "single,defer".parse(),
            Ok(UringFlags::Fixed(RingFlags::SINGLE_DEFER))
        );
        assert_eq!("coop".parse(), Ok(UringFlags::Fixed(RingFlags::COOP)));
        assert_eq!("none".parse(), Ok(UringFlags::Fixed(RingFlags::NONE)));
        assert!("single,bogus".parse::<UringFlags>().is_err());
    }

    #[test]
    fn displays_driver_kinds() {
        assert_eq!(
            DriverKind::IoUring(RingFlags::SINGLE_DEFER).to_string(),
            "io_uring (single_issuer,defer_taskrun)"
        );
        assert_eq!(
            DriverKind::IoUring(RingFlags::NONE).to_string(),
            "io_uring (no flags)"
        );
        assert_eq!(DriverKind::Epoll.to_string(), "epoll");
    }

    #[test]
    fn parses_driver_choice() {
        assert_eq!("epoll".parse(), Ok(DriverChoice::Epoll));
        assert_eq!("io_uring".parse(), Ok(DriverChoice::IoUring));
        assert!("kqueue".parse::<DriverChoice>().is_err());
    }
}
