//! Files on disk for the tests that serve, configure or log to them: a temporary directory removed
//! on drop, and deterministic bodies whose every byte a test can predict (so a wrong offset, a
//! stale cache or a bad decoder shows up as a byte mismatch, not as a flaky test).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system temp dir, unique per test and per process, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `percore-<test binary>-<tag>-<pid>-<n>`: the PID keeps binaries running side by side apart,
    /// the counter keeps the tests of one binary (run in parallel) apart, and the binary's name
    /// and the tag say which test left a directory behind if one is killed. A directory of the
    /// same name left by an earlier run (same PID, reused) is emptied first.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "percore-{}-{tag}-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory as a `&str`, for command-line flags (`--root`).
    pub fn path_str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp dir")
    }

    /// The full path of `rel` in the directory (which need not exist yet), for flags that name
    /// a file the server writes (`--dev-cert-out`, `--access-log`).
    pub fn file(&self, rel: &str) -> String {
        self.0
            .join(rel)
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }

    /// Writes `contents` to `rel`, creating its parent directories; returns the full path as a
    /// `String` (usable as a flag, and as a path for `std::fs`).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&path, contents).expect("write temp file");
        path.to_str().expect("utf-8 temp path").to_owned()
    }

    /// Creates the directory `rel` (and its parents).
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.0.join(rel)).expect("create dir");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` deterministic bytes (xorshift) that differ at every offset worth checking and that no
/// compressor shrinks: a Range, a resumed download or a flow-controlled body that lands at the
/// wrong offset compares unequal.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// About `len` bytes of compressible ASCII text (words drawn by `pattern`): what the server
/// compresses on the fly and a decoder must give back exactly.
pub fn text(len: usize) -> Vec<u8> {
    let words = [
        "alpha ", "beta ", "gamma ", "delta ", "static ", "file ", "server\n",
    ];
    let seeds = pattern(len, 7);
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[seeds[i] as usize % words.len()].as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}
