//! The per-shard file cache: what a request path resolved to (a file, a directory, nothing), the
//! file's metadata, validators and content type, its precompressed siblings, and for small files
//! the bytes themselves.
//!
//! A fresh hit costs one hash lookup and no system call. An entry older than [`REVALIDATE`] is
//! resolved again (a `realpath` and a `stat`): a changed file is reloaded, so an edit is served
//! within a second, and a deleted one stops being served. Bounded: at most `max_entries` paths
//! and `max_bytes` of file contents per shard; past either bound the oldest-checked half goes.
//! Larger files are sent with `sendfile` from a descriptor the cache keeps open (up to
//! `max_open_files` per shard; beyond that one `open` per request). A replaced file is seen at
//! the next revalidation, and its old descriptor goes with the old entry.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;

use super::conditional::Validators;
use super::mime;
use super::negotiate::Encoding;
use super::resolve::{open_under, FileKind, FollowSymlinks, RelativePath};

/// How long a cached answer is trusted without looking at the disk again.
pub const REVALIDATE: Duration = Duration::from_secs(1);

/// A regular file as served.
#[derive(Debug)]
pub struct CachedFile {
    /// Canonical path, opened per request for large files.
    pub path: PathBuf,
    pub len: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    mtime_ns: i128,
    /// The modification time at full resolution (the validators keep whole seconds).
    pub(crate) modified: std::time::SystemTime,
    pub validators: Validators,
    pub content_type: HeaderValue,
    /// The whole file when it is small: served from memory.
    pub bytes: Option<Bytes>,
    /// An open descriptor for a larger file, while the cache may hold one (see
    /// `FileCacheLimits::max_open_files`): saves an `open` per request.
    pub fd: Option<Rc<std::fs::File>>,
    /// Precompressed siblings (`.br`, `.zst`, `.gz`) found beside it.
    pub siblings: Vec<(Encoding, Rc<CachedFile>)>,
}

fn mtime_ns(meta: &Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

impl CachedFile {
    /// Whether `meta` still describes the file this entry was loaded from.
    fn unchanged(&self, meta: &Metadata) -> bool {
        self.len == meta.len()
            && self.ino == meta.ino()
            && self.dev == meta.dev()
            && self.mtime_ns == mtime_ns(meta)
    }

    /// The file, open for sending: the cached descriptor, or a fresh one (no symlink in the last
    /// component: it was resolved already).
    pub fn open(&self) -> io::Result<Rc<std::fs::File>> {
        if let Some(fd) = &self.fd {
            return Ok(fd.clone());
        }
        open_nofollow(&self.path).map(Rc::new)
    }

    fn load(
        path: PathBuf,
        meta: &Metadata,
        small_max: u64,
        keep_fd: bool,
    ) -> io::Result<CachedFile> {
        let bytes = if meta.len() <= small_max {
            let mut buf = Vec::with_capacity(meta.len() as usize);
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)?;
            file.read_to_end(&mut buf)?;
            if buf.len() as u64 != meta.len() {
                // Changed while we read it: the next revalidation loads it again.
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "file changed while read",
                ));
            }
            Some(Bytes::from(buf))
        } else {
            None
        };
        let fd = if bytes.is_none() && keep_fd {
            Some(Rc::new(open_nofollow(&path)?))
        } else {
            None
        };
        Ok(CachedFile {
            content_type: mime::content_type(&path),
            path,
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: mtime_ns(meta),
            modified: meta.modified()?,
            validators: Validators::from_metadata(meta),
            bytes,
            fd,
            siblings: Vec::new(),
        })
    }
}

fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// What a path is, as far as serving goes.
#[derive(Debug, Clone)]
pub enum Lookup {
    File(Rc<CachedFile>),
    Dir(PathBuf),
    /// Missing, refused, or not servable: all answered 404 alike.
    Missing,
}

struct Entry {
    lookup: Lookup,
    checked: Instant,
}

/// Settings of a [`FileCache`].
#[derive(Debug, Clone, Copy)]
pub struct FileCacheLimits {
    pub max_entries: usize,
    /// Bytes of small-file contents held.
    pub max_bytes: u64,
    /// Files up to this size are held in memory.
    pub small_file_max: u64,
    /// Descriptors of larger files kept open per shard (each entry's file is opened per request
    /// beyond it), so the cache cannot starve the connection limit of descriptors.
    pub max_open_files: usize,
}

impl Default for FileCacheLimits {
    fn default() -> Self {
        FileCacheLimits {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            // Above this, sendfile from a cached descriptor costs less CPU than copying the
            // bytes from memory (64 KiB file: 19.3 vs 23.9 µs per request, bench/static.sh).
            small_file_max: 16 << 10,
            max_open_files: 256,
        }
    }
}

/// One shard's cache for one mount.
pub struct FileCache {
    /// foldhash's quality variant with per-process random seeds instead of std's SipHash: a
    /// lookup per request, and the keys (request paths, missing ones included) are the client's,
    /// so the hash must stay seeded, not just fast.
    entries: HashMap<Box<str>, Entry, foldhash::quality::RandomState>,
    bytes_held: u64,
    open_files: usize,
    limits: FileCacheLimits,
}

impl FileCache {
    pub fn new(limits: FileCacheLimits) -> Self {
        FileCache {
            entries: HashMap::default(),
            bytes_held: 0,
            open_files: 0,
            limits,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of file contents held in memory.
    pub fn bytes_held(&self) -> u64 {
        self.bytes_held
    }

    /// What `rel` names under `root`, from the cache when checked within [`REVALIDATE`] of `now`.
    /// `siblings` lists the precompressed encodings to look for beside files.
    pub fn lookup(
        &mut self,
        root: &Path,
        rel: &RelativePath<'_>,
        follow: FollowSymlinks,
        siblings: &[Encoding],
        now: Instant,
    ) -> Lookup {
        if let Some(entry) = self.entries.get(rel.as_str()) {
            if now.saturating_duration_since(entry.checked) < REVALIDATE {
                return entry.lookup.clone();
            }
        }
        let fresh = self.resolve(root, rel, follow, siblings);
        self.store(rel.as_str(), fresh.clone(), now);
        fresh
    }

    fn resolve(
        &self,
        root: &Path,
        rel: &RelativePath<'_>,
        follow: FollowSymlinks,
        siblings: &[Encoding],
    ) -> Lookup {
        let found = match open_under(root, rel, follow) {
            Ok(found) => found,
            Err(_) => return Lookup::Missing,
        };
        match found.kind {
            FileKind::Dir => Lookup::Dir(found.path),
            FileKind::File => {
                // Unchanged since the last check: keep the loaded entry (and its bytes).
                if let Some(Entry {
                    lookup: Lookup::File(old),
                    ..
                }) = self.entries.get(rel.as_str())
                {
                    if old.path == found.path && old.unchanged(&found.metadata) {
                        return Lookup::File(old.clone());
                    }
                }
                let small_max = self.small_max();
                let keep_fd = self.open_files < self.limits.max_open_files;
                match CachedFile::load(found.path, &found.metadata, small_max, keep_fd) {
                    Ok(mut file) => {
                        file.siblings = load_siblings(&file, siblings, small_max, keep_fd);
                        Lookup::File(Rc::new(file))
                    }
                    Err(_) => Lookup::Missing,
                }
            }
        }
    }

    /// Small files are held only while the byte bound allows.
    fn small_max(&self) -> u64 {
        if self.bytes_held < self.limits.max_bytes {
            self.limits.small_file_max
        } else {
            0
        }
    }

    fn store(&mut self, key: &str, lookup: Lookup, now: Instant) {
        if self.entries.len() >= self.limits.max_entries && !self.entries.contains_key(key) {
            self.evict_oldest_half();
        }
        let added = held_bytes(&lookup);
        let added_fds = held_fds(&lookup);
        let old = self.entries.insert(
            key.into(),
            Entry {
                lookup,
                checked: now,
            },
        );
        let (removed, removed_fds) =
            old.map_or((0, 0), |e| (held_bytes(&e.lookup), held_fds(&e.lookup)));
        self.bytes_held = self.bytes_held.saturating_sub(removed) + added;
        self.open_files = self.open_files.saturating_sub(removed_fds) + added_fds;
        if self.bytes_held > self.limits.max_bytes {
            self.evict_oldest_half();
        }
    }

    /// Drops the half of the entries checked longest ago: a bound, not a precise LRU, paid
    /// only when the cache is full.
    fn evict_oldest_half(&mut self) {
        let mut times: Vec<Instant> = self.entries.values().map(|e| e.checked).collect();
        if times.is_empty() {
            return;
        }
        let mid = times.len() / 2;
        let (_, &mut cutoff, _) = times.select_nth_unstable(mid);
        self.entries.retain(|_, e| e.checked > cutoff);
        self.bytes_held = self.entries.values().map(|e| held_bytes(&e.lookup)).sum();
        self.open_files = self.entries.values().map(|e| held_fds(&e.lookup)).sum();
    }
}

fn held_fds(lookup: &Lookup) -> usize {
    match lookup {
        Lookup::File(f) => {
            usize::from(f.fd.is_some()) + f.siblings.iter().filter(|(_, s)| s.fd.is_some()).count()
        }
        _ => 0,
    }
}

fn held_bytes(lookup: &Lookup) -> u64 {
    match lookup {
        Lookup::File(f) => {
            f.bytes.as_ref().map_or(0, |b| b.len() as u64)
                + f.siblings
                    .iter()
                    .map(|(_, s)| s.bytes.as_ref().map_or(0, |b| b.len() as u64))
                    .sum::<u64>()
        }
        _ => 0,
    }
}

/// Precompressed siblings of `file` (`name.br` beside `name`), regular files only, no newer
/// check: like nginx's `gzip_static`, the build that wrote them is trusted to keep them current.
fn load_siblings(
    file: &CachedFile,
    wanted: &[Encoding],
    small_max: u64,
    keep_fd: bool,
) -> Vec<(Encoding, Rc<CachedFile>)> {
    let mut found = Vec::new();
    for &encoding in wanted {
        let suffix = encoding.file_suffix();
        if suffix.is_empty() {
            continue;
        }
        let mut name = file.path.clone().into_os_string();
        name.push(suffix);
        let path = PathBuf::from(name);
        // lstat: a sibling that is a symlink is not followed (it was not resolved under the root).
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if let Ok(mut sibling) = CachedFile::load(path, &meta, small_max, keep_fd) {
            // The sibling is served with the original's type and a validator of its own.
            sibling.content_type = file.content_type.clone();
            found.push((encoding, Rc::new(sibling)));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_files::resolve::{relative_path, PathFlags, ResolveOptions};

    struct TempRoot(PathBuf);
    impl TempRoot {
        fn new(name: &str) -> TempRoot {
            let dir = std::env::temp_dir().join(format!(
                "percore-cache-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempRoot(std::fs::canonicalize(&dir).unwrap())
        }
        fn write(&self, name: &str, bytes: &[u8]) {
            std::fs::write(self.0.join(name), bytes).unwrap();
        }
    }
    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn lookup(cache: &mut FileCache, root: &TempRoot, path: &str, now: Instant) -> Lookup {
        let rel =
            relative_path(path, "/", PathFlags::default(), ResolveOptions::default()).unwrap();
        cache.lookup(
            &root.0,
            &rel,
            FollowSymlinks::WithinRoot,
            &[Encoding::Gzip],
            now,
        )
    }

    fn file(lookup: Lookup) -> Rc<CachedFile> {
        match lookup {
            Lookup::File(f) => f,
            other => panic!("not a file: {other:?}"),
        }
    }

    #[test]
    fn a_fresh_entry_is_served_without_looking_at_the_disk() {
        let root = TempRoot::new("fresh");
        root.write("a.txt", b"hello");
        let mut cache = FileCache::new(FileCacheLimits::default());
        let t0 = Instant::now();
        let first = file(lookup(&mut cache, &root, "/a.txt", t0));
        assert_eq!(first.bytes.as_deref(), Some(&b"hello"[..]));
        std::fs::remove_file(root.0.join("a.txt")).unwrap();
        // Within the revalidation interval the cached answer stands...
        let again = file(lookup(
            &mut cache,
            &root,
            "/a.txt",
            t0 + Duration::from_millis(500),
        ));
        assert!(Rc::ptr_eq(&first, &again));
        // ...and after it the disk is asked again.
        assert!(matches!(
            lookup(&mut cache, &root, "/a.txt", t0 + REVALIDATE),
            Lookup::Missing
        ));
    }

    #[test]
    fn a_changed_file_is_reloaded_at_the_next_revalidation() {
        let root = TempRoot::new("changed");
        root.write("a.txt", b"one");
        let mut cache = FileCache::new(FileCacheLimits::default());
        let t0 = Instant::now();
        let first = file(lookup(&mut cache, &root, "/a.txt", t0));
        root.write("a.txt", b"two, longer");
        let second = file(lookup(&mut cache, &root, "/a.txt", t0 + REVALIDATE));
        assert_eq!(second.bytes.as_deref(), Some(&b"two, longer"[..]));
        assert_ne!(
            first.validators.etag_header(),
            second.validators.etag_header()
        );
    }

    #[test]
    fn an_unchanged_file_keeps_its_entry_across_revalidations() {
        let root = TempRoot::new("unchanged");
        root.write("a.txt", b"same");
        let mut cache = FileCache::new(FileCacheLimits::default());
        let t0 = Instant::now();
        let first = file(lookup(&mut cache, &root, "/a.txt", t0));
        let later = file(lookup(&mut cache, &root, "/a.txt", t0 + REVALIDATE * 3));
        assert!(Rc::ptr_eq(&first, &later), "reused, not reloaded");
    }

    #[test]
    fn large_files_are_not_held_in_memory_and_descriptors_are_capped() {
        let root = TempRoot::new("large");
        for name in ["a.bin", "b.bin", "c.bin"] {
            root.write(name, &[7u8; 100]);
        }
        let limits = FileCacheLimits {
            small_file_max: 10,
            max_open_files: 2,
            ..FileCacheLimits::default()
        };
        let mut cache = FileCache::new(limits);
        let now = Instant::now();
        let fds: Vec<bool> = ["/a.bin", "/b.bin", "/c.bin"]
            .iter()
            .map(|p| {
                let f = file(lookup(&mut cache, &root, p, now));
                assert!(f.bytes.is_none());
                f.fd.is_some()
            })
            .collect();
        assert_eq!(fds, [true, true, false]);
        // The third is opened per request instead.
        let c = file(lookup(&mut cache, &root, "/c.bin", now));
        assert_eq!(c.open().unwrap().metadata().unwrap().len(), 100);
    }

    #[test]
    fn the_entry_count_is_bounded() {
        let root = TempRoot::new("bounded");
        let limits = FileCacheLimits {
            max_entries: 8,
            ..FileCacheLimits::default()
        };
        let mut cache = FileCache::new(limits);
        let t0 = Instant::now();
        for i in 0..50u64 {
            let name = format!("f{i}.txt");
            root.write(&name, b"x");
            lookup(
                &mut cache,
                &root,
                &format!("/{name}"),
                t0 + Duration::from_millis(i),
            );
            assert!(cache.len() <= 8, "{} entries", cache.len());
        }
    }

    #[test]
    fn precompressed_siblings_are_found() {
        let root = TempRoot::new("siblings");
        root.write("app.js", b"console.log(1)");
        root.write("app.js.gz", b"not really gzip");
        let mut cache = FileCache::new(FileCacheLimits::default());
        let f = file(lookup(&mut cache, &root, "/app.js", Instant::now()));
        assert_eq!(f.siblings.len(), 1);
        assert_eq!(f.siblings[0].0, Encoding::Gzip);
        assert_eq!(f.siblings[0].1.content_type, f.content_type);
    }
}
