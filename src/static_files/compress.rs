//! On-the-fly compression of text responses and the per-shard cache of compressed bodies.
//!
//! Owns: choosing whether a body is worth compressing ([`should_compress`]), compressing a whole
//! body in memory with one content coding ([`compress`]), and a byte-bounded LRU of the results
//! keyed by file version and coding ([`CompressedCache`]). Sans-IO: it never opens a file, reads a
//! clock or touches a socket; the caller passes the bytes, the file's identity, size and mtime.
//! It does not negotiate `Accept-Encoding` (negotiate.rs) nor write `Content-Encoding`/`Vary`.
//!
//! Measured on this machine (2 cores, busy with other builds), release, 64 KiB prefixes of a real
//! HTML page (qemu-img.html) and a minified JS file (rustdoc's search.js), MB/s of input and
//! compressed/original size:
//!
//! | coding                  | HTML             | JS              |
//! |-------------------------|------------------|-----------------|
//! | gzip 5, zlib-rs         | 220 MB/s, 0.163  | 115 MB/s, 0.226 |
//! | gzip 5, miniz_oxide     |  88 MB/s, 0.162  |  70 MB/s, 0.225 |
//! | gzip 1, zlib-rs         | 670 MB/s, 0.236  | 600 MB/s, 0.322 |
//! | brotli q4, window 17    | 139 MB/s, 0.156  |  88 MB/s, 0.237 |
//! | brotli q5, window 17    |  83 MB/s, 0.145  |  58 MB/s, 0.218 |
//! | zstd 3                  | 670 MB/s, 0.167  | 320-470 MB/s, 0.245 |
//!
//! zlib-rs is about twice as fast as miniz_oxide at every level for the same ratio, so flate2
//! uses it. `benches/compress.rs` re-measures the defaults on generated HTML/JS-like text, which
//! is less repetitive than real pages (random numbers): at load 6 on 2 cores it gave gzip 5
//! 50 MB/s (0.183), brotli 4 61 MB/s (0.204), zstd 3 277 MB/s (0.202).

use std::collections::HashMap;
use std::io::{self, Write};
use std::mem::size_of;
use std::path::Path;
use std::rc::Rc;
use std::time::SystemTime;

use bytes::Bytes;

use super::negotiate::Encoding;

/// The effort to spend per coding. Values are clamped to each codec's range by [`Level::new`],
/// so no level can make a codec fail or panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    gzip: u8,
    brotli: u8,
    zstd: i8,
}

impl Level {
    /// On-the-fly defaults: each result is cached, but the first request for a file pays for
    /// it on the shard's only thread, so these stay near 100 MB/s or above (see the module doc).
    /// gzip 5 is within 2% of gzip 6's size at ~1.5x its speed with zlib-rs; brotli 4 is the
    /// last quality above ~90 MB/s (q5 is 7% smaller but ~40% slower); zstd 3 is zstd's own
    /// default and faster than gzip 1.
    pub const DEFAULT: Level = Level::new(5, 4, 3);
    /// The cheapest settings, for a shard under CPU pressure (nginx's `gzip_comp_level 1`).
    pub const FASTEST: Level = Level::new(1, 1, 1);

    /// gzip 1..=9, brotli 0..=11, zstd 1..=19 (levels 20-22 need windows over RFC 9659's 8 MiB).
    pub const fn new(gzip: u32, brotli: u32, zstd: i32) -> Level {
        let gzip = if gzip < 1 {
            1
        } else if gzip > 9 {
            9
        } else {
            gzip
        };
        let brotli = if brotli > 11 { 11 } else { brotli };
        let zstd = if zstd < 1 {
            1
        } else if zstd > 19 {
            19
        } else {
            zstd
        };
        // The casts cannot truncate: every value was clamped into its codec's range above.
        Level {
            gzip: gzip as u8,
            brotli: brotli as u8,
            zstd: zstd as i8,
        }
    }

    pub const fn gzip(self) -> u32 {
        self.gzip as u32
    }

    pub const fn brotli(self) -> u32 {
        self.brotli as u32
    }

    pub const fn zstd(self) -> i32 {
        self.zstd as i32
    }
}

impl Default for Level {
    fn default() -> Level {
        Level::DEFAULT
    }
}

/// Compresses a whole body with one content coding. `Identity` returns a copy of `data`; callers
/// that serve identity should send the file itself instead of calling this.
pub fn compress(data: &[u8], encoding: Encoding, level: Level) -> io::Result<Bytes> {
    let mut out = match encoding {
        Encoding::Gzip => gzip(data, level.gzip())?,
        Encoding::Brotli => brotli(data, level.brotli())?,
        Encoding::Zstd => zstd::bulk::compress(data, level.zstd())?,
        Encoding::Identity => return Ok(Bytes::copy_from_slice(data)),
    };
    // `Bytes::from(Vec)` keeps the Vec's spare capacity alive; the cache counts `len()`, so
    // trimming here is what keeps its byte bound honest.
    out.shrink_to_fit();
    Ok(Bytes::from(out))
}

/// Text compresses to a fifth to a third of its size (see the module doc); starting there
/// saves most of the reallocations without reserving the whole input.
fn initial_capacity(len: usize) -> usize {
    len / 3 + 64
}

fn gzip(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(initial_capacity(data.len())),
        flate2::Compression::new(level),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

fn brotli(data: &[u8], quality: u32) -> io::Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        // `Level::new` clamped it to 0..=11.
        quality: quality as i32,
        lgwin: brotli_window_bits(data.len()),
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(initial_capacity(data.len()));
    brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
    Ok(out)
}

/// The smallest brotli window that holds the whole body (RFC 7932 §9.1: the window is
/// `(1 << WBITS) - 16` bytes, WBITS 10..=24), capped at the encoder's default of 22 (4 MiB).
/// A window no larger than the body gives the same output (measured: 10213 bytes at 17 and 22
/// bits for 64 KiB), compresses 15-20% faster (smaller hash tables to clear) and tells the
/// client's decoder to allocate less.
fn brotli_window_bits(len: usize) -> i32 {
    let mut bits = 10;
    while bits < 22 && (1usize << bits) - 16 < len {
        bits += 1;
    }
    bits
}

/// Bodies shorter than this are sent as they are. nginx's `gzip_min_length` defaults to 20
/// bytes, but a body under ~1 KiB already fits, with its head, in one TCP segment (MSS 1460):
/// compressing it saves no packet and no round trip, costs a compression (or a cache entry whose
/// fixed overhead rivals the body), and gzip's 18 bytes of framing eat much of the gain.
pub const DEFAULT_MIN_LEN: u64 = 1024;

/// Whether to compress a response body on the fly.
///
/// - `content_type_is_compressible`: text and other formats that are not compressed already
///   (images, video and archives are; compressing them again only costs CPU).
/// - `len`: the body's length in bytes; below `min_len` (see [`DEFAULT_MIN_LEN`]) it is not worth it.
/// - `is_range_request`: ranges are served from the identity representation, so the offsets
///   address the file's bytes and the validators stay the file's (RFC 9110 §14.1.2: a range
///   applies to the selected representation; a coded body would be a different one with its
///   own strong `ETag`, §8.8.3).
/// - `already_encoded`: the body already carries a `Content-Encoding` (e.g. a precompressed
///   `.br`/`.gz` sibling); coding it twice gains nothing (RFC 9110 §8.4).
pub fn should_compress(
    content_type_is_compressible: bool,
    len: u64,
    min_len: u64,
    is_range_request: bool,
    already_encoded: bool,
) -> bool {
    content_type_is_compressible && len >= min_len && !is_range_request && !already_encoded
}

/// Which file a compressed body came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileId {
    /// `st_dev` and `st_ino`: no allocation and no hashing of a path, and a file renamed over
    /// another gets a new identity. Preferred.
    Inode { dev: u64, ino: u64 },
    /// The resolved path, shared with the caller's file cache (an `Rc` clone per lookup).
    Path(Rc<Path>),
}

/// One file version in one coding. A file rewritten in place changes size or mtime, so its old
/// entries are never looked up again and age out of the LRU.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub file: FileId,
    pub size: u64,
    pub mtime: SystemTime,
    pub encoding: Encoding,
}

impl CacheKey {
    /// Heap bytes the key owns beyond its own struct (counted against the bound).
    fn heap_bytes(&self) -> usize {
        match &self.file {
            FileId::Inode { .. } => 0,
            FileId::Path(path) => path.as_os_str().len(),
        }
    }
}

/// Default bound on the compressed bytes one shard keeps.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;

/// An entry may take at most this fraction (1/N) of the bound: one huge body must not flush the
/// many small text files that make up most of the traffic.
pub const MAX_ENTRY_FRACTION: usize = 8;

/// What one entry costs besides its body and its key's heap bytes: its list node, its map slot
/// (key + index + hashbrown's control byte) and the `Bytes` allocation's header. Counting it
/// keeps the bound true when the cache is full of small bodies.
pub const ENTRY_OVERHEAD: usize =
    size_of::<Node>() + size_of::<(CacheKey, usize)>() + 1 + 4 * size_of::<usize>();

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node {
    key: CacheKey,
    value: Bytes,
    charge: usize,
    prev: usize,
    next: usize,
}

/// A shard's compressed bodies: LRU, bounded by bytes (bodies + keys + [`ENTRY_OVERHEAD`]).
/// O(1) `get`/`insert`: a hash map to slab indices and a doubly linked list threaded through
/// the slab (head = most recently used). Not shared between shards; wrap it in a `RefCell`.
#[derive(Debug)]
pub struct CompressedCache {
    map: HashMap<CacheKey, usize>,
    nodes: slab::Slab<Node>,
    head: usize,
    tail: usize,
    bytes_used: usize,
    max_bytes: usize,
    max_entry_bytes: usize,
}

impl Default for CompressedCache {
    fn default() -> CompressedCache {
        CompressedCache::new(DEFAULT_MAX_BYTES)
    }
}

impl CompressedCache {
    /// A cache of at most `max_bytes`, whose entries may take up to `max_bytes /`
    /// [`MAX_ENTRY_FRACTION`] each.
    pub fn new(max_bytes: usize) -> CompressedCache {
        CompressedCache::with_max_entry(max_bytes, max_bytes / MAX_ENTRY_FRACTION)
    }

    /// A cache of at most `max_bytes` whose entries may take up to `max_entry_bytes` each
    /// (counted as [`CompressedCache::bytes_used`] counts them). `max_bytes == 0` caches nothing.
    pub fn with_max_entry(max_bytes: usize, max_entry_bytes: usize) -> CompressedCache {
        CompressedCache {
            map: HashMap::new(),
            nodes: slab::Slab::new(),
            head: NIL,
            tail: NIL,
            bytes_used: 0,
            max_bytes,
            max_entry_bytes: max_entry_bytes.min(max_bytes),
        }
    }

    /// The body cached for `key`, made the most recently used. A `Bytes` clone: no copy.
    pub fn get(&mut self, key: &CacheKey) -> Option<Bytes> {
        let index = *self.map.get(key)?;
        self.move_to_front(index);
        Some(self.nodes[index].value.clone())
    }

    /// Caches `value` under `key` (replacing any body cached for it), evicting the least
    /// recently used entries until it fits. Returns whether it was cached: an entry whose
    /// charge (body + key + [`ENTRY_OVERHEAD`]) exceeds the per-entry limit is not, and a body
    /// previously cached under `key` is then dropped too.
    pub fn insert(&mut self, key: CacheKey, value: Bytes) -> bool {
        let charge = value
            .len()
            .saturating_add(key.heap_bytes())
            .saturating_add(ENTRY_OVERHEAD);
        if let Some(index) = self.map.get(&key).copied() {
            self.remove_index(index);
        }
        if charge > self.max_entry_bytes {
            return false;
        }
        while self.bytes_used + charge > self.max_bytes && self.tail != NIL {
            self.remove_index(self.tail);
        }
        let index = self.nodes.insert(Node {
            key: key.clone(),
            value,
            charge,
            prev: NIL,
            next: self.head,
        });
        if self.head != NIL {
            self.nodes[self.head].prev = index;
        } else {
            self.tail = index;
        }
        self.head = index;
        self.map.insert(key, index);
        self.bytes_used += charge;
        true
    }

    /// Number of cached bodies.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bytes charged against the bound: bodies, keys' heap bytes and [`ENTRY_OVERHEAD`] each.
    pub fn bytes_used(&self) -> usize {
        self.bytes_used
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The largest charge one entry may have. A body whose uncompressed length is above this
    /// may not be cacheable once compressed, so it would be compressed again on every request.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// Drops every entry (e.g. when the served directory changes).
    pub fn clear(&mut self) {
        self.map.clear();
        self.nodes.clear();
        self.head = NIL;
        self.tail = NIL;
        self.bytes_used = 0;
    }

    fn unlink(&mut self, index: usize) {
        let (prev, next) = (self.nodes[index].prev, self.nodes[index].next);
        if prev != NIL {
            self.nodes[prev].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn move_to_front(&mut self, index: usize) {
        if self.head == index {
            return;
        }
        self.unlink(index);
        let node = &mut self.nodes[index];
        node.prev = NIL;
        node.next = self.head;
        // `head` is not NIL: the list held `index` and another node (index was not the head).
        let old_head = self.head;
        self.nodes[old_head].prev = index;
        self.head = index;
    }

    fn remove_index(&mut self, index: usize) {
        self.unlink(index);
        let node = self.nodes.remove(index);
        self.map.remove(&node.key);
        self.bytes_used -= node.charge;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;
    use std::time::{Duration, UNIX_EPOCH};

    /// HTML/JS-like text: repetitive markup with varying identifiers and numbers.
    fn text(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 128);
        let mut i = 0u32;
        while out.len() < len {
            let line = match i % 4 {
                0 => format!("<div class=\"item item-{}\"><a href=\"/docs/page{}.html\">Section {}</a></div>\n", i % 17, i, i * 7),
                1 => format!("function handler{}(event) {{ return document.getElementById('n{}').value + {}; }}\n", i, i % 31, i * 13),
                2 => format!("  <p>The quick brown fox {} jumps over the lazy dog number {}.</p>\n", i % 5, i),
                _ => format!("var config_{} = {{ \"enabled\": {}, \"retries\": {}, \"name\": \"svc-{}\" }};\n", i, i.is_multiple_of(2), i % 9, i % 23),
            };
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// xorshift: incompressible bytes without an RNG dependency.
    fn random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn decode(encoding: Encoding, coded: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(coded)
                    .read_to_end(&mut out)
                    .expect("valid gzip");
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(coded, 4096)
                    .read_to_end(&mut out)
                    .expect("valid brotli");
            }
            Encoding::Zstd => {
                out = zstd::stream::decode_all(coded).expect("valid zstd");
            }
            Encoding::Identity => out.extend_from_slice(coded),
        }
        out
    }

    const CODINGS: [Encoding; 4] = [
        Encoding::Gzip,
        Encoding::Brotli,
        Encoding::Zstd,
        Encoding::Identity,
    ];

    fn round_trip(data: &[u8], level: Level) {
        for encoding in CODINGS {
            let coded = compress(data, encoding, level).expect("compresses");
            assert_eq!(decode(encoding, &coded), data, "{encoding:?} at {level:?}");
        }
    }

    #[test]
    fn round_trips_text_in_every_coding() {
        let data = text(100_000);
        round_trip(&data, Level::DEFAULT);
        round_trip(&data, Level::FASTEST);
    }

    #[test]
    fn round_trips_random_bytes_in_every_coding() {
        round_trip(&random(70_000, 0x9e37_79b9_7f4a_7c15), Level::DEFAULT);
    }

    #[test]
    fn round_trips_empty_input_in_every_coding() {
        round_trip(b"", Level::DEFAULT);
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            // A coded empty body is still a valid stream with its framing, never empty.
            assert!(!compress(b"", encoding, Level::DEFAULT)
                .expect("compresses")
                .is_empty());
        }
    }

    #[test]
    fn round_trips_at_extreme_levels() {
        let data = text(20_000);
        round_trip(&data, Level::new(0, 0, -100));
        round_trip(&data, Level::new(u32::MAX, u32::MAX, i32::MAX));
    }

    #[test]
    fn writes_each_codings_magic_bytes() {
        let data = text(4096);
        // RFC 1952 §2.3.1: ID1 ID2 CM=8 (deflate).
        let gz = compress(&data, Encoding::Gzip, Level::DEFAULT).expect("compresses");
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
        // RFC 8878 §3.1.1: the frame magic 0xFD2FB528, little-endian.
        let zst = compress(&data, Encoding::Zstd, Level::DEFAULT).expect("compresses");
        assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }

    #[test]
    fn text_compresses_well_in_every_coding() {
        let data = text(65_536);
        for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
            let coded = compress(&data, encoding, Level::DEFAULT).expect("compresses");
            assert!(
                coded.len() * 4 < data.len(),
                "{encoding:?}: {}",
                coded.len()
            );
        }
    }

    #[test]
    fn identity_returns_the_input() {
        let data = text(3000);
        assert_eq!(
            compress(&data, Encoding::Identity, Level::DEFAULT).expect("copies"),
            data
        );
    }

    #[test]
    fn level_is_clamped_to_each_codecs_range() {
        assert_eq!(Level::new(0, 0, 0), Level::new(1, 0, 1));
        let max = Level::new(99, 99, 99);
        assert_eq!((max.gzip(), max.brotli(), max.zstd()), (9, 11, 19));
        assert_eq!(Level::new(5, 4, -3).zstd(), 1);
        assert_eq!(Level::default(), Level::DEFAULT);
    }

    #[test]
    fn brotli_window_is_the_smallest_that_holds_the_body() {
        assert_eq!(brotli_window_bits(0), 10);
        assert_eq!(brotli_window_bits(1008), 10);
        assert_eq!(brotli_window_bits(1009), 11);
        assert_eq!(brotli_window_bits(65_536), 17);
        assert_eq!(brotli_window_bits(65_520), 16);
        assert_eq!(brotli_window_bits(usize::MAX), 22);
    }

    #[test]
    fn compresses_compressible_bodies_at_the_minimum_length() {
        assert!(should_compress(
            true,
            DEFAULT_MIN_LEN,
            DEFAULT_MIN_LEN,
            false,
            false
        ));
        assert!(should_compress(
            true,
            u64::MAX,
            DEFAULT_MIN_LEN,
            false,
            false
        ));
    }

    #[test]
    fn skips_bodies_shorter_than_the_minimum() {
        assert!(!should_compress(
            true,
            DEFAULT_MIN_LEN - 1,
            DEFAULT_MIN_LEN,
            false,
            false
        ));
        assert!(!should_compress(true, 0, DEFAULT_MIN_LEN, false, false));
        assert!(should_compress(true, 0, 0, false, false));
    }

    #[test]
    fn skips_incompressible_content_types() {
        assert!(!should_compress(
            false,
            1 << 20,
            DEFAULT_MIN_LEN,
            false,
            false
        ));
    }

    #[test]
    fn skips_range_requests() {
        assert!(!should_compress(
            true,
            1 << 20,
            DEFAULT_MIN_LEN,
            true,
            false
        ));
    }

    #[test]
    fn skips_bodies_already_encoded() {
        assert!(!should_compress(
            true,
            1 << 20,
            DEFAULT_MIN_LEN,
            false,
            true
        ));
    }

    fn key(ino: u64, encoding: Encoding) -> CacheKey {
        CacheKey {
            file: FileId::Inode { dev: 1, ino },
            size: 1000,
            mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            encoding,
        }
    }

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    /// A cache that holds exactly `n` bodies of `len` bytes under inode keys.
    fn cache_for(n: usize, len: usize) -> CompressedCache {
        let charge = len + ENTRY_OVERHEAD;
        CompressedCache::with_max_entry(n * charge, charge)
    }

    #[test]
    fn get_returns_what_insert_stored() {
        let mut cache = CompressedCache::default();
        assert!(cache.insert(key(1, Encoding::Gzip), Bytes::from_static(b"gz")));
        assert!(cache.insert(key(1, Encoding::Brotli), Bytes::from_static(b"br")));
        assert_eq!(
            cache.get(&key(1, Encoding::Gzip)).as_deref(),
            Some(&b"gz"[..])
        );
        assert_eq!(
            cache.get(&key(1, Encoding::Brotli)).as_deref(),
            Some(&b"br"[..])
        );
        assert_eq!(cache.get(&key(1, Encoding::Zstd)), None);
        assert_eq!(cache.get(&key(2, Encoding::Gzip)), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn key_includes_size_and_mtime() {
        let mut cache = CompressedCache::default();
        cache.insert(key(1, Encoding::Gzip), body(10));
        let mut resized = key(1, Encoding::Gzip);
        resized.size += 1;
        assert_eq!(cache.get(&resized), None);
        let mut touched = key(1, Encoding::Gzip);
        touched.mtime += Duration::from_nanos(1);
        assert_eq!(cache.get(&touched), None);
    }

    #[test]
    fn evicts_least_recently_inserted_first() {
        let mut cache = cache_for(3, 100);
        for ino in 1..=4 {
            assert!(cache.insert(key(ino, Encoding::Gzip), body(100)));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key(1, Encoding::Gzip)), None);
        for ino in 2..=4 {
            assert!(cache.get(&key(ino, Encoding::Gzip)).is_some());
        }
    }

    #[test]
    fn get_protects_an_entry_from_eviction() {
        let mut cache = cache_for(3, 100);
        for ino in 1..=3 {
            cache.insert(key(ino, Encoding::Gzip), body(100));
        }
        // Order, most recent first: 1, 3, 2.
        assert!(cache.get(&key(1, Encoding::Gzip)).is_some());
        cache.insert(key(4, Encoding::Gzip), body(100));
        assert_eq!(cache.get(&key(2, Encoding::Gzip)), None);
        cache.insert(key(5, Encoding::Gzip), body(100));
        assert_eq!(cache.get(&key(3, Encoding::Gzip)), None);
        for ino in [1, 4, 5] {
            assert!(cache.get(&key(ino, Encoding::Gzip)).is_some(), "{ino}");
        }
    }

    #[test]
    fn get_of_the_tail_then_eviction_keeps_the_list_consistent() {
        let mut cache = cache_for(2, 10);
        cache.insert(key(1, Encoding::Gzip), body(10));
        cache.insert(key(2, Encoding::Gzip), body(10));
        assert!(cache.get(&key(1, Encoding::Gzip)).is_some()); // the tail moves to the front
        assert!(cache.get(&key(1, Encoding::Gzip)).is_some()); // the head stays
        cache.insert(key(3, Encoding::Gzip), body(10));
        assert_eq!(cache.get(&key(2, Encoding::Gzip)), None);
        cache.insert(key(4, Encoding::Gzip), body(10));
        assert_eq!(cache.get(&key(1, Encoding::Gzip)), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn one_large_insert_evicts_as_many_as_needed() {
        let mut cache = CompressedCache::with_max_entry(4 * (100 + ENTRY_OVERHEAD), usize::MAX);
        for ino in 1..=4 {
            cache.insert(key(ino, Encoding::Gzip), body(100));
        }
        // A charge of two and a half old entries: 1, 2 and 3 go, 4 stays.
        let big = 5 * (100 + ENTRY_OVERHEAD) / 2 - ENTRY_OVERHEAD;
        assert!(cache.insert(key(9, Encoding::Gzip), body(big)));
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key(4, Encoding::Gzip)).is_some());
        assert!(cache.bytes_used() <= cache.max_bytes());
    }

    #[test]
    fn bytes_used_never_exceeds_the_bound() {
        let mut cache = CompressedCache::new(64 * 1024);
        for ino in 0..1000u64 {
            cache.insert(key(ino, Encoding::Zstd), body((ino as usize * 37) % 5000));
            assert!(cache.bytes_used() <= cache.max_bytes());
        }
        assert!(cache.len() > 1);
    }

    #[test]
    fn bytes_used_counts_body_key_and_overhead() {
        let mut cache = CompressedCache::default();
        cache.insert(key(1, Encoding::Gzip), body(500));
        assert_eq!(cache.bytes_used(), 500 + ENTRY_OVERHEAD);
        let path: Rc<Path> = Rc::from(Path::new("/srv/www/assets/app.min.js"));
        let path_key = CacheKey {
            file: FileId::Path(path),
            ..key(0, Encoding::Brotli)
        };
        cache.insert(path_key.clone(), body(300));
        let path_len = "/srv/www/assets/app.min.js".len();
        assert_eq!(
            cache.bytes_used(),
            500 + 300 + path_len + 2 * ENTRY_OVERHEAD
        );
        assert_eq!(cache.get(&path_key).map(|b| b.len()), Some(300));
    }

    #[test]
    fn tiny_bodies_are_bounded_by_their_overhead() {
        // With the overhead counted, a cache of N * (1 + overhead) bytes holds N one-byte bodies.
        let mut cache = cache_for(10, 1);
        for ino in 0..100 {
            cache.insert(key(ino, Encoding::Gzip), body(1));
        }
        assert_eq!(cache.len(), 10);
    }

    #[test]
    fn does_not_cache_entries_over_the_per_entry_limit() {
        let mut cache = CompressedCache::new(8 * 1024);
        assert_eq!(cache.max_entry_bytes(), 1024);
        let fits = 1024 - ENTRY_OVERHEAD;
        assert!(cache.insert(key(1, Encoding::Gzip), body(fits)));
        assert!(!cache.insert(key(2, Encoding::Gzip), body(fits + 1)));
        assert_eq!(cache.get(&key(2, Encoding::Gzip)), None);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes_used(), 1024);
    }

    #[test]
    fn default_bound_is_32_mib_with_entries_up_to_an_eighth() {
        let cache = CompressedCache::default();
        assert_eq!(cache.max_bytes(), 32 << 20);
        assert_eq!(cache.max_entry_bytes(), 4 << 20);
    }

    #[test]
    fn zero_bound_caches_nothing() {
        let mut cache = CompressedCache::new(0);
        assert!(!cache.insert(key(1, Encoding::Gzip), Bytes::new()));
        assert!(cache.is_empty());
    }

    #[test]
    fn insert_replaces_an_existing_key() {
        let mut cache = CompressedCache::default();
        cache.insert(key(1, Encoding::Gzip), body(100));
        cache.insert(key(1, Encoding::Gzip), body(40));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes_used(), 40 + ENTRY_OVERHEAD);
        assert_eq!(
            cache.get(&key(1, Encoding::Gzip)).map(|b| b.len()),
            Some(40)
        );
    }

    #[test]
    fn oversized_replacement_drops_the_old_entry() {
        let mut cache = CompressedCache::new(8 * 1024);
        cache.insert(key(1, Encoding::Gzip), body(10));
        assert!(!cache.insert(key(1, Encoding::Gzip), body(5000)));
        assert!(cache.is_empty());
        assert_eq!(cache.bytes_used(), 0);
    }

    #[test]
    fn clear_empties_the_cache() {
        let mut cache = CompressedCache::default();
        for ino in 0..10 {
            cache.insert(key(ino, Encoding::Gzip), body(10));
        }
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.bytes_used(), 0);
        assert_eq!(cache.get(&key(3, Encoding::Gzip)), None);
        assert!(cache.insert(key(3, Encoding::Gzip), body(10)));
        assert_eq!(cache.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            for encoding in CODINGS {
                let coded = compress(&data, encoding, Level::DEFAULT).expect("compresses");
                prop_assert_eq!(decode(encoding, &coded), data.clone());
            }
        }

        /// The LRU against a model (a Vec, most recent first): same contents, same order of
        /// eviction, and the bound always holds.
        #[test]
        fn lru_matches_a_model(ops in proptest::collection::vec((any::<bool>(), 0u64..12, 0usize..300), 0..200)) {
            let max = 4 * (150 + ENTRY_OVERHEAD);
            let mut cache = CompressedCache::with_max_entry(max, max / 2);
            let mut model: Vec<(u64, usize)> = Vec::new();
            for (is_get, ino, len) in ops {
                let k = key(ino, Encoding::Gzip);
                if is_get {
                    let got = cache.get(&k).map(|b| b.len());
                    let pos = model.iter().position(|&(i, _)| i == ino);
                    prop_assert_eq!(got, pos.map(|p| model[p].1));
                    if let Some(p) = pos {
                        let entry = model.remove(p);
                        model.insert(0, entry);
                    }
                } else {
                    model.retain(|&(i, _)| i != ino);
                    let charge = len + ENTRY_OVERHEAD;
                    let cached = cache.insert(k, body(len));
                    prop_assert_eq!(cached, charge <= max / 2);
                    if cached {
                        let mut used: usize = model.iter().map(|&(_, l)| l + ENTRY_OVERHEAD).sum();
                        while used + charge > max {
                            let (_, l) = model.pop().expect("bound exceeded with an empty model");
                            used -= l + ENTRY_OVERHEAD;
                        }
                        model.insert(0, (ino, len));
                    }
                }
                prop_assert_eq!(cache.len(), model.len());
                let used: usize = model.iter().map(|&(_, l)| l + ENTRY_OVERHEAD).sum();
                prop_assert_eq!(cache.bytes_used(), used);
                prop_assert!(cache.bytes_used() <= max);
            }
        }
    }
}
