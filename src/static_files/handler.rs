//! [`StaticFiles`]: the handler that serves a directory, tying together path resolution, the
//! per-shard file cache, conditional requests, ranges, content codings and directory answers.
//!
//! Order of decisions for a file (RFC 9110): pick the representation first (a precompressed
//! sibling, an on-the-fly coding, or the file itself; never a coding for a range request), then
//! evaluate the preconditions against *that* representation's validators (§13.2.2), then ranges
//! (§14, only for the identity representation), then build the answer.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION, VARY, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, StatusCode};

use super::cache::{CachedFile, FileCache, FileCacheLimits, Lookup};
use super::compress::{self, CacheKey, CompressedCache, FileId, Level};
use super::conditional::{evaluate, if_range_allows, Precondition};
use super::mime;
use super::negotiate::{choose_encoding, Encoding};
use super::range::{
    content_range, parse_range, unsatisfied_content_range, MultipartPlan, Piece, Resolved,
};
use super::resolve::{relative_path, FollowSymlinks, PathFlags, RelativePath, ResolveOptions};
use crate::context::Ctx;
use crate::handler::Handler;
use crate::response::{escape_html, IntoResponse};
use crate::service::{response, Body, Chunk, Request, Response};
use crate::shard::LocalBoxFuture;

static BYTES: HeaderValue = HeaderValue::from_static("bytes");
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding");
static GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
static TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// How one mount serves its directory.
#[derive(Debug, Clone)]
pub struct StaticConfig {
    /// The directory served.
    pub root: PathBuf,
    /// The URL prefix it is served under (`/` for the site's root).
    pub prefix: String,
    /// The file served for a directory (`index.html`); `None`: none.
    pub index: Option<String>,
    /// An HTML listing for directories without an index (off by default).
    pub listing: bool,
    /// A file (relative to the root) served with 200 for paths that name nothing, as a
    /// single-page app wants (off by default).
    pub spa_fallback: Option<String>,
    pub allow_dotfiles: bool,
    pub follow_symlinks: FollowSymlinks,
    /// `Cache-Control` by file-name pattern, first match wins (`*.woff2`, `assets/**`).
    pub cache_control: Vec<(String, HeaderValue)>,
    /// `Cache-Control` when no pattern matches. Default `no-cache`: caches may keep the file
    /// but must revalidate (a 304 when unchanged), so a deploy is seen at once.
    pub default_cache_control: Option<HeaderValue>,
    /// More ranges than this in one request (after coalescing): the whole file instead.
    pub max_ranges: usize,
    /// Compress text types on the fly (gzip, brotli, zstd) when the client accepts it.
    pub compress: bool,
    pub compress_min_len: u64,
    /// Bytes of compressed output kept per shard.
    pub compressed_cache_bytes: usize,
    pub file_cache: FileCacheLimits,
}

impl StaticConfig {
    /// Serves `root` at `/` with the defaults.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StaticConfig {
            root: root.into(),
            prefix: "/".to_owned(),
            index: Some("index.html".to_owned()),
            listing: false,
            spa_fallback: None,
            allow_dotfiles: false,
            follow_symlinks: FollowSymlinks::default(),
            cache_control: Vec::new(),
            default_cache_control: Some(HeaderValue::from_static("no-cache")),
            max_ranges: 32,
            compress: true,
            compress_min_len: compress::DEFAULT_MIN_LEN,
            compressed_cache_bytes: compress::DEFAULT_MAX_BYTES,
            file_cache: FileCacheLimits::default(),
        }
    }
}

/// A static root could not be served.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("cannot serve {root}: {source}")]
    Root {
        root: String,
        source: std::io::Error,
    },
    #[error("invalid cache-control pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// Serves one directory; build one per shard (it holds that shard's caches).
pub struct StaticFiles {
    config: StaticConfig,
    /// Canonical root, computed once.
    root: PathBuf,
    cache_control: Vec<(globset::GlobMatcher, HeaderValue)>,
    files: RefCell<FileCache>,
    compressed: RefCell<CompressedCache>,
    /// Encodings to look for as precompressed siblings.
    siblings: Vec<Encoding>,
}

impl StaticFiles {
    pub fn new(config: StaticConfig) -> Result<StaticFiles, StaticError> {
        let root =
            super::resolve::canonical_root(&config.root).map_err(|source| StaticError::Root {
                root: config.root.display().to_string(),
                source,
            })?;
        let mut cache_control = Vec::with_capacity(config.cache_control.len());
        for (pattern, value) in &config.cache_control {
            let glob = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| StaticError::Pattern {
                    pattern: pattern.clone(),
                    reason: e.kind().to_string(),
                })?;
            cache_control.push((glob.compile_matcher(), value.clone()));
        }
        Ok(StaticFiles {
            files: RefCell::new(FileCache::new(config.file_cache)),
            compressed: RefCell::new(CompressedCache::new(config.compressed_cache_bytes)),
            siblings: vec![Encoding::Brotli, Encoding::Zstd, Encoding::Gzip],
            root,
            cache_control,
            config,
        })
    }

    /// The answer for `req`.
    pub fn serve(&self, req: &Request) -> Response {
        let method = req.method();
        let target = req.target();
        let opts = ResolveOptions {
            allow_dotfiles: self.config.allow_dotfiles,
        };
        let rel = match relative_path(
            target.path(),
            &self.config.prefix,
            PathFlags::of(target),
            opts,
        ) {
            Ok(rel) => rel,
            Err(_) => return not_found(),
        };
        let now = Instant::now();
        let lookup = self.lookup(&rel, now);
        match lookup {
            Lookup::File(_) | Lookup::Dir(_) if !is_get_or_head(method) => method_not_allowed(),
            Lookup::File(file) => {
                if rel.has_trailing_slash() {
                    return not_found();
                }
                self.serve_file(req, rel.as_str(), &file)
            }
            Lookup::Dir(dir) => {
                if !rel.has_trailing_slash() && !rel.is_root() {
                    return redirect_with_slash(req);
                }
                if let Some(index) = &self.config.index {
                    let index_rel = join_rel(rel.as_str(), index);
                    if let Some(Lookup::File(file)) = self.lookup_str(&index_rel, now) {
                        return self.serve_file(req, &index_rel, &file);
                    }
                }
                if self.config.listing {
                    return self.listing(req, &dir);
                }
                not_found()
            }
            Lookup::Missing => match &self.config.spa_fallback {
                Some(fallback) if is_get_or_head(method) => match self.lookup_str(fallback, now) {
                    Some(Lookup::File(file)) => self.serve_file(req, fallback, &file),
                    _ => not_found(),
                },
                _ => not_found(),
            },
        }
    }

    fn lookup(&self, rel: &RelativePath<'_>, now: Instant) -> Lookup {
        self.files.borrow_mut().lookup(
            &self.root,
            rel,
            self.config.follow_symlinks,
            &self.siblings,
            now,
        )
    }

    /// Looks up a path the server built itself (an index or the fallback), through the same checks.
    fn lookup_str(&self, rel: &str, now: Instant) -> Option<Lookup> {
        let path = format!("/{}", rel.trim_start_matches('/'));
        let opts = ResolveOptions {
            allow_dotfiles: self.config.allow_dotfiles,
        };
        let rel = relative_path(&path, "/", PathFlags::default(), opts).ok()?;
        Some(self.lookup(&rel, now))
    }

    fn cache_control_for(&self, rel: &str) -> Option<&HeaderValue> {
        let name = rel.trim_start_matches('/');
        self.cache_control
            .iter()
            .find(|(glob, _)| glob.is_match(name))
            .map(|(_, value)| value)
            .or(self.config.default_cache_control.as_ref())
    }

    fn serve_file(&self, req: &Request, rel: &str, file: &Rc<CachedFile>) -> Response {
        let headers = req.headers();
        let range_header = if *req.method() == Method::GET {
            headers.get("range")
        } else {
            None
        };
        let compressible = mime::is_compressible(file.content_type.as_bytes());
        let varies = compressible || !file.siblings.is_empty();

        // 1. The representation. A range request gets the file itself: byte offsets and
        // validators then stay the file's (RFC 9110 §14.1.2).
        let (encoding, repr): (Encoding, Repr) = if range_header.is_some() {
            (Encoding::Identity, Repr::File(file.clone()))
        } else {
            self.representation(req, file, compressible)
        };
        let validators = match &repr {
            Repr::File(f) => f.validators.clone(),
            Repr::Compressed(_) => match file.validators.with_etag_suffix(etag_suffix(encoding)) {
                Some(v) => v,
                None => file.validators.clone(),
            },
        };

        let mut res = response(Body::Empty);
        {
            let h = res.headers_mut();
            h.insert(ETAG, validators.etag_header().clone());
            if let Some(cc) = self.cache_control_for(rel) {
                h.insert(CACHE_CONTROL, cc.clone());
            }
            if varies {
                h.insert(VARY, ACCEPT_ENCODING.clone());
            }
        }

        // 2. Preconditions, against the chosen representation (RFC 9110 §13.2.2).
        let precondition = evaluate(
            req.method(),
            headers.get_all("if-match"),
            headers.get("if-unmodified-since"),
            headers.get_all("if-none-match"),
            headers.get("if-modified-since"),
            &validators,
        );
        if precondition == Precondition::NotModified {
            // RFC 9110 §15.4.5: a 304 carries the fields that update a cache's stored response
            // (ETag, Cache-Control, Vary; Date from the connection) and no other representation
            // metadata. With an ETag there, Last-Modified would only repeat what the cache has.
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            return res;
        }
        res.headers_mut().insert(
            LAST_MODIFIED,
            validators.last_modified_header_at(std::time::SystemTime::now()),
        );
        if precondition == Precondition::PreconditionFailed {
            *res.status_mut() = StatusCode::PRECONDITION_FAILED;
            return res;
        }

        {
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, file.content_type.clone());
            h.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
            h.insert(ACCEPT_RANGES, BYTES.clone());
            if let Some(ce) = encoding.content_encoding() {
                h.insert(CONTENT_ENCODING, ce);
            }
        }

        let repr_file = match repr {
            Repr::Compressed(bytes) => {
                *res.body_mut() = Body::Full(bytes);
                return res;
            }
            Repr::File(f) => f,
        };

        // 3. Ranges (RFC 9110 §14.2), when If-Range allows them (§13.1.5).
        let ranges = match range_header {
            Some(value) if if_range_allows(headers.get("if-range"), &validators) => {
                match parse_range(value) {
                    Ok(spec) => spec.resolve(repr_file.len, self.config.max_ranges),
                    Err(_) => Resolved::Full,
                }
            }
            _ => Resolved::Full,
        };
        match ranges {
            Resolved::Full => match body_of(&repr_file, 0..repr_file.len) {
                Ok(body) => *res.body_mut() = body,
                Err(_) => return not_found(),
            },
            Resolved::Unsatisfiable => {
                *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                res.headers_mut()
                    .insert(CONTENT_RANGE, unsatisfied_content_range(repr_file.len));
            }
            Resolved::Partial(ranges) => {
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Some(one) = ranges.single() {
                    res.headers_mut()
                        .insert(CONTENT_RANGE, content_range(one, repr_file.len));
                    match body_of(&repr_file, one.clone()) {
                        Ok(body) => *res.body_mut() = body,
                        Err(_) => return not_found(),
                    }
                } else {
                    let plan = MultipartPlan::new(
                        ranges.as_slice(),
                        repr_file.len,
                        &repr_file.content_type,
                    );
                    res.headers_mut()
                        .insert(CONTENT_TYPE, plan.content_type().clone());
                    match multipart_body(&repr_file, plan.into_pieces()) {
                        Ok(body) => *res.body_mut() = body,
                        Err(_) => return not_found(),
                    }
                }
            }
        }
        res
    }

    /// Which representation to send: a precompressed sibling or an on-the-fly coding the client
    /// accepts, or the file.
    fn representation(
        &self,
        req: &Request,
        file: &Rc<CachedFile>,
        compressible: bool,
    ) -> (Encoding, Repr) {
        let accept = req.headers().get_all("accept-encoding");
        // Files not held in memory are compressed too, up to what the compressed cache keeps
        // (read once per version of the file; larger ones would be compressed per request).
        let on_the_fly = self.config.compress
            && compress::should_compress(
                compressible,
                file.len,
                self.config.compress_min_len,
                false,
                false,
            )
            && (file.bytes.is_some()
                || file.len <= self.compressed.borrow().max_entry_bytes() as u64);
        // The candidates, on the stack: every coding when compressing on the fly (siblings are
        // among them), else the siblings found on disk, plus identity.
        const ALL: [Encoding; 4] = [
            Encoding::Brotli,
            Encoding::Zstd,
            Encoding::Gzip,
            Encoding::Identity,
        ];
        let mut found = [Encoding::Identity; 4];
        let available: &[Encoding] = if on_the_fly {
            &ALL
        } else if file.siblings.is_empty() {
            return (Encoding::Identity, Repr::File(file.clone()));
        } else {
            // At most one sibling per coding, so at most three before identity.
            let n = file.siblings.len().min(3);
            for (slot, (encoding, _)) in found.iter_mut().zip(&file.siblings[..n]) {
                *slot = *encoding;
            }
            &found[..=n]
        };
        let chosen = choose_encoding(accept, available).unwrap_or(Encoding::Identity);
        if chosen == Encoding::Identity {
            return (Encoding::Identity, Repr::File(file.clone()));
        }
        if let Some((_, sibling)) = file.siblings.iter().find(|(e, _)| *e == chosen) {
            return (chosen, Repr::File(sibling.clone()));
        }
        let key = CacheKey {
            // Inode and nanosecond mtime: no allocation per lookup, and a file rewritten within
            // the second (the validators' resolution) still gets a fresh compressed copy.
            file: FileId::Inode {
                dev: file.dev,
                ino: file.ino,
            },
            size: file.len,
            mtime: file.modified,
            encoding: chosen,
        };
        if let Some(bytes) = self.compressed.borrow_mut().get(&key) {
            return (chosen, Repr::Compressed(bytes));
        }
        let read;
        let original: &[u8] = match &file.bytes {
            Some(bytes) => bytes,
            None => match read_whole(file) {
                Ok(bytes) => {
                    read = bytes;
                    &read
                }
                Err(_) => return (Encoding::Identity, Repr::File(file.clone())),
            },
        };
        match compress::compress(original, chosen, Level::DEFAULT) {
            Ok(bytes) => {
                self.compressed.borrow_mut().insert(key, bytes.clone());
                (chosen, Repr::Compressed(bytes))
            }
            Err(_) => (Encoding::Identity, Repr::File(file.clone())),
        }
    }

    /// An HTML list of a directory's entries (names escaped, sizes, dates), dotfiles hidden
    /// unless allowed.
    fn listing(&self, req: &Request, dir: &std::path::Path) -> Response {
        let Ok(read) = std::fs::read_dir(dir) else {
            return not_found();
        };
        let mut rows: Vec<(String, bool, u64, Option<std::time::SystemTime>)> = read
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                if name.starts_with('.') && !self.config.allow_dotfiles {
                    return None;
                }
                let meta = entry.metadata().ok()?;
                Some((name, meta.is_dir(), meta.len(), meta.modified().ok()))
            })
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut title = String::new();
        escape_html(req.path(), &mut title);
        let mut html = String::with_capacity(256 + rows.len() * 128);
        let _ = write!(
            html,
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
        );
        if req.path() != "/" {
            html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
        }
        for (name, is_dir, len, modified) in rows {
            let slash = if is_dir { "/" } else { "" };
            let href = percent_encode_segment(&name);
            let size = if is_dir {
                "-".to_owned()
            } else {
                len.to_string()
            };
            let date = modified.map(httpdate::fmt_http_date).unwrap_or_default();
            let _ = write!(html, "<tr><td><a href=\"{href}{slash}\">");
            escape_html(&name, &mut html);
            let _ = writeln!(html, "{slash}</a></td><td>{size}</td><td>{date}</td></tr>");
        }
        html.push_str("</table>\n</body></html>\n");
        let mut res = response(html);
        res.headers_mut().insert(CONTENT_TYPE, TEXT_HTML.clone());
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        res
    }
}

/// Marks the entity tag of an on-the-fly coding (`"…-br"`): each representation has its own
/// (RFC 9110 §8.8.3), so a cache never pairs a 304 with the wrong coding.
fn etag_suffix(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Brotli => "-br",
        Encoding::Zstd => "-zstd",
        Encoding::Gzip => "-gzip",
        Encoding::Identity => "",
    }
}

/// What is sent for a file: the file (or a sibling) itself, or a compressed copy in memory.
enum Repr {
    File(Rc<CachedFile>),
    Compressed(Bytes),
}

/// The whole file, read from its descriptor (for compressing a file not held in memory). A
/// length other than the cached one means it changed meanwhile: an error, so identity is sent.
fn read_whole(file: &CachedFile) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let fd = file.open()?;
    let mut buf = vec![0u8; usize::try_from(file.len).unwrap_or(usize::MAX)];
    fd.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// The body for `range` of `file`: a slice of the bytes in memory, or a range of the opened file.
fn body_of(file: &CachedFile, range: std::ops::Range<u64>) -> std::io::Result<Body> {
    if let Some(bytes) = &file.bytes {
        return Ok(Body::Full(
            bytes.slice(range.start as usize..range.end as usize),
        ));
    }
    let opened = file.open()?;
    Ok(Body::Chunks(vec![Chunk::File {
        file: opened,
        offset: range.start,
        len: range.end - range.start,
    }]))
}

fn multipart_body(file: &CachedFile, pieces: Vec<Piece>) -> std::io::Result<Body> {
    let opened = match &file.bytes {
        Some(_) => None,
        None => Some(file.open()?),
    };
    let chunks = pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Bytes(b) => Chunk::Bytes(b),
            Piece::File(range) => match (&file.bytes, &opened) {
                (Some(bytes), _) => {
                    Chunk::Bytes(bytes.slice(range.start as usize..range.end as usize))
                }
                (None, Some(opened)) => Chunk::File {
                    file: opened.clone(),
                    offset: range.start,
                    len: range.end - range.start,
                },
                (None, None) => Chunk::Bytes(Bytes::new()),
            },
        })
        .collect();
    Ok(Body::Chunks(chunks))
}

fn is_get_or_head(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

fn not_found() -> Response {
    crate::error::Error::not_found("Not Found").into_response()
}

fn method_not_allowed() -> Response {
    let mut res = crate::error::Error::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        .into_response();
    res.headers_mut().insert(ALLOW, GET_HEAD.clone());
    res
}

/// 308 to the path with a slash (RFC 9110 §15.4.9 keeps the method), as the client spelled it.
fn redirect_with_slash(req: &Request) -> Response {
    let mut location = String::with_capacity(req.target().raw_path().len() + 16);
    location.push_str(req.target().raw_path());
    location.push('/');
    if location.starts_with("//") {
        return not_found();
    }
    if let Some(q) = req.query_str() {
        location.push('?');
        location.push_str(q);
    }
    let mut res = StatusCode::PERMANENT_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(LOCATION, value);
    }
    res
}

fn join_rel(dir: &str, name: &str) -> String {
    let mut joined = String::with_capacity(dir.len() + name.len() + 1);
    joined.push_str(dir.trim_end_matches('/'));
    if !joined.is_empty() {
        joined.push('/');
    }
    joined.push_str(name);
    joined
}

/// A file name as one URL path segment (RFC 3986 §3.3): unreserved bytes as they are, the rest
/// percent-encoded, so names with spaces, `#`, `?` or `%` link to themselves.
fn percent_encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `StaticFiles` as a route handler or an app's fallback.
impl<S> Handler<S> for Rc<StaticFiles> {
    fn call(&self, req: Request, _cx: Ctx<S>) -> LocalBoxFuture<'static, Response> {
        let res = self.serve(&req);
        Box::pin(std::future::ready(res))
    }
}
