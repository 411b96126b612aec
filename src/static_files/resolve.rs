//! From a request path to a file under the mount's root, without ever leaving the root.
//!
//! Owns two steps and the one status they map to:
//! - [`relative_path`]: pure, no I/O. Strips the mount's URL prefix and checks every segment
//!   (no NUL, no encoded slash, no backslash, no `..`, no dotfiles unless allowed), giving a
//!   normalised [`RelativePath`] or a [`Rejected`].
//! - [`open_under`]: the file system part. Resolves the path under a canonical root with a
//!   [`FollowSymlinks`] policy and returns what it found ([`Found`]): a regular file or a
//!   directory, never a device, FIFO or socket.
//! - [`ResolveError::status`]: every rejection and every miss is the same 404, so no answer
//!   tells a client whether something exists outside the root or behind a refused name.
//!
//! It does not open the file for reading, pick an index file, redirect `dir` to `dir/`, or
//! cache anything (the handler does, per shard).

use std::borrow::Cow;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use http::StatusCode;

use crate::http1::Target;

/// What the HTTP layer found while decoding the path once (see [`Target::path`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathFlags {
    /// The raw path had `%2F` (any case).
    pub has_encoded_slash: bool,
    /// The raw path had `%00`.
    pub has_encoded_nul: bool,
}

impl PathFlags {
    pub fn of(target: &Target) -> PathFlags {
        PathFlags {
            has_encoded_slash: target.has_encoded_slash(),
            has_encoded_nul: target.has_encoded_nul(),
        }
    }
}

/// Per-mount choices for [`relative_path`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Serve names starting with `.` (`.well-known/`, `.htaccess`, `.git/`). Off by default:
    /// a deployed tree often holds `.git`, `.env` or editor files nobody meant to publish.
    pub allow_dotfiles: bool,
}

/// Why a request path was refused before touching the file system. All map to 404
/// ([`ResolveError::status`]); the variant is for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("path is not under the mount's prefix")]
    OutsidePrefix,
    #[error("path contains a NUL byte (literal or %00)")]
    Nul,
    #[error("path contains an encoded slash (%2F)")]
    EncodedSlash,
    #[error("path contains a backslash (literal or %5C)")]
    Backslash,
    #[error("path contains a `..` segment")]
    DotDot,
    #[error("path names a dotfile or dot-directory")]
    Dotfile,
    #[error("path contains a `%` that is not %2F, %00 or %25 (not from Target::path)")]
    StrayPercent,
}

/// A path relative to the mount's root: segments joined by `/`, none empty, `.`, `..`, or
/// containing NUL or `\`; no leading or trailing `/`. Empty for the root itself.
///
/// Borrows the request path when it is already in this form (the common case: no allocation),
/// owns a rebuilt copy otherwise (`//`, `/./`, or `%25` to decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelativePath<'a> {
    path: Cow<'a, str>,
    trailing_slash: bool,
    allow_dotfiles: bool,
}

impl<'a> RelativePath<'a> {
    /// The relative path, e.g. `css/site.css`; `""` for the root. Never starts with `/`, so
    /// joining it to the root can never replace the root.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The request named the mount's root (`/prefix` or `/prefix/`).
    pub fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    /// The request path ended with `/` (or `/.`): it names a directory. The handler redirects a
    /// directory requested without it (so relative links in its index resolve, as nginx does),
    /// and [`open_under`] refuses a file requested with it (POSIX: `file/` is `ENOTDIR`).
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    pub fn into_owned(self) -> RelativePath<'static> {
        RelativePath {
            path: Cow::Owned(self.path.into_owned()),
            trailing_slash: self.trailing_slash,
            allow_dotfiles: self.allow_dotfiles,
        }
    }
}

/// Checks a request path and makes it relative to the mount.
///
/// - `path`: [`Target::path`], percent-decoded once, with `%2F`, `%00` and `%25` still encoded
///   (`%5C` is already `\`). Valid UTF-8, so overlong or invalid UTF-8 sequences (`%C0%AE`)
///   never reach here: the HTTP layer answers them with 400.
/// - `prefix`: the mount's URL prefix (`/static`, `/static/` or `/`; trailing `/` ignored).
///   The path must be the prefix itself or continue it with `/` (`/staticx` is not under
///   `/static`).
///
/// Rules, in order:
/// - NUL (literal, or `%00`) is refused: no file name can hold it and C APIs would cut the
///   name there (RFC 3986 §7.3: check decoded data for such delimiters).
/// - An encoded slash is refused: `a%2Fb` is one segment to the router but two to the file
///   system (RFC 3986 §2.2: reserved characters encoded are not equivalent to their
///   unencoded form); Apache's `AllowEncodedSlashes Off` answers such paths with 404 too.
/// - A backslash is refused: a separator on Windows, so such names only appear in attacks and
///   would be ambiguous if the tree were ever copied to or shared with a Windows host.
/// - Empty and `.` segments collapse (`//a/./b` is `a/b`): RFC 3986 §5.2.4 removes `.`, and
///   empty segments mean nothing to a POSIX file system.
/// - Any `..` is refused rather than resolved. Browsers and curl remove dot segments before
///   sending (RFC 3986 §5.2.4, WHATWG URL), so a `..` that reaches us was crafted. Resolving
///   `a/../b` to `b` would be safe on its own, but gives one file many URLs: rules that a proxy,
///   cache or router in front applied to the URL as sent no longer hold for the file served.
/// - A segment starting with `.` is refused unless `allow_dotfiles`.
/// - `%25` becomes `%` in the file name, after every check above, so `%252e%252e` is the
///   literal name `%2e%2e` and never `..`.
///
/// Colons, trailing dots and spaces, and look-alike Unicode dots (`U+2024`, `U+FF0E`) are
/// ordinary characters in Linux file names, so they pass as literal names.
pub fn relative_path<'a>(
    path: &'a str,
    prefix: &str,
    flags: PathFlags,
    opts: ResolveOptions,
) -> Result<RelativePath<'a>, Rejected> {
    if flags.has_encoded_nul {
        return Err(Rejected::Nul);
    }
    if flags.has_encoded_slash {
        return Err(Rejected::EncodedSlash);
    }
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix).ok_or(Rejected::OutsidePrefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(Rejected::OutsidePrefix);
    }

    // One pass over the bytes for what can hide inside a segment. The flags above cover `%2F`
    // and `%00`; checking the text too keeps this safe if a caller passes wrong flags.
    let bytes = rest.as_bytes();
    let mut has_escape = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(Rejected::Nul),
            b'\\' => return Err(Rejected::Backslash),
            b'%' => match bytes.get(i + 1..i + 3) {
                Some(b"2F" | b"2f") => return Err(Rejected::EncodedSlash),
                Some(b"00") => return Err(Rejected::Nul),
                Some(b"25") => has_escape = true,
                _ => return Err(Rejected::StrayPercent),
            },
            _ => {}
        }
    }

    // Segments after the leading `/` (`rest` is empty or starts with it).
    let body = rest.get(1..).unwrap_or("");
    let mut trailing_slash = false;
    // Already normal: no empty or `.` segment except a single trailing `/`.
    let mut normal = !has_escape;
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" | "." => {
                if last {
                    trailing_slash = !rest.is_empty();
                }
                // A lone trailing `/` can be sliced off; anything else needs a rebuild.
                if !(last && segment.is_empty()) {
                    normal = false;
                }
            }
            ".." => return Err(Rejected::DotDot),
            _ if segment.starts_with('.') && !opts.allow_dotfiles => return Err(Rejected::Dotfile),
            _ => {}
        }
    }

    let path = if normal {
        Cow::Borrowed(body.strip_suffix('/').unwrap_or(body))
    } else {
        let mut out = String::with_capacity(body.len());
        for segment in body.split('/').filter(|s| !matches!(*s, "" | ".")) {
            if !out.is_empty() {
                out.push('/');
            }
            // The scan above proved every `%` here starts `%25`.
            out.push_str(&segment.replace("%25", "%"));
        }
        Cow::Owned(out)
    };
    Ok(RelativePath {
        path,
        trailing_slash,
        allow_dotfiles: opts.allow_dotfiles,
    })
}

/// Which symbolic links [`open_under`] follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FollowSymlinks {
    /// None at all, in any component below the root (nginx `disable_symlinks on`).
    Never,
    /// Any link whose final target is inside the root (nginx `disable_symlinks if_not_owner`
    /// is the nearest; Apache's `SymLinksIfOwnerMatch` serves a similar need). The default:
    /// deploy tools link `current -> releases/N` inside the root, and a link to `/etc` is
    /// almost always a mistake or an attack.
    #[default]
    WithinRoot,
    /// Any link, wherever it leads: the operator trusts everything in the tree.
    Always,
}

/// What a path under the root names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
}

/// A file or directory under the root.
#[derive(Debug)]
pub struct Found {
    /// The canonical path: absolute, no symlinks, no `.`/`..`.
    pub path: PathBuf,
    /// The metadata of `path` (of the link's target for a followed link).
    pub metadata: Metadata,
    pub kind: FileKind,
}

/// Why [`open_under`] refused something that exists. Carried inside an `io::Error` of kind
/// `NotFound`, so it maps to the same 404 as a missing file and logs say why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a symbolic link leads outside the root")]
    SymlinkOutsideRoot,
    #[error("a symbolic link is on the path and symlinks are not followed")]
    SymlinkNotFollowed,
    #[error("a symbolic link leads to a dotfile or dot-directory")]
    SymlinkToDotfile,
    #[error("not a regular file or a directory")]
    NotFileOrDir,
    #[error("a regular file was requested with a trailing slash")]
    FileWithTrailingSlash,
}

impl From<Refused> for io::Error {
    fn from(refused: Refused) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, refused)
    }
}

/// The canonical form of a mount's root, to compute once at start-up and pass to every
/// [`open_under`]: the containment checks compare canonical paths.
pub fn canonical_root(root: &Path) -> io::Result<PathBuf> {
    let root = fs::canonicalize(root)?;
    if !fs::metadata(&root)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "a static root must be a directory",
        ));
    }
    Ok(root)
}

/// Finds `rel` under `root` (canonical, see [`canonical_root`]) following symlinks as `follow`
/// allows.
///
/// How: `canonicalize` (`realpath`) the candidate, then compare with the root. The candidate is
/// `root/rel` with no `.`/`..` and a canonical root, so the canonical path equals it exactly
/// when no component is a symlink (the `Never` check), and lies under the root exactly when
/// every link on the way stays inside (the `WithinRoot` check; `Path::starts_with` compares
/// whole components, so `/srv/www2` is not under `/srv/www`). This costs a `readlink`/`lstat`
/// per component plus one `stat`; the handler caches results per shard.
///
/// Race: a local user who can rename or replace entries inside the root between this check and
/// the handler's `open` can swap a component for a link (nginx's `disable_symlinks` has the
/// same window without `O_PATH`). Closing it needs `openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS)` on a root directory fd, which means `rustix` or `unsafe` (this
/// crate forbids it) and Linux >= 5.6 with a fallback; and RESOLVE_BENEATH refuses absolute
/// links even when they point inside the root, which `WithinRoot` accepts. The handler should
/// still open `Found::path` with `O_NOFOLLOW` so at least its last component cannot be swapped.
///
/// With `WithinRoot` and dotfiles refused, a link is also refused when its target inside the
/// root is a dotfile or under a dot-directory (`x -> .git/config` would otherwise publish it).
/// With `Always` the target is the operator's choice and is not checked.
///
/// Hard links cannot be detected and are served: they are not a way out of the root that a
/// request can create.
pub fn open_under(
    root: &Path,
    rel: &RelativePath<'_>,
    follow: FollowSymlinks,
) -> io::Result<Found> {
    let candidate = if rel.is_root() {
        root.to_path_buf()
    } else {
        root.join(rel.as_str())
    };
    let path = fs::canonicalize(&candidate)?;
    if path != candidate {
        match follow {
            FollowSymlinks::Never => return Err(Refused::SymlinkNotFollowed.into()),
            FollowSymlinks::WithinRoot => {
                let inside = path
                    .strip_prefix(root)
                    .map_err(|_| Refused::SymlinkOutsideRoot)?;
                if !rel.allow_dotfiles && has_dot_component(inside) {
                    return Err(Refused::SymlinkToDotfile.into());
                }
            }
            FollowSymlinks::Always => {}
        }
    }
    let metadata = fs::metadata(&path)?;
    let kind = if metadata.is_file() {
        FileKind::File
    } else if metadata.is_dir() {
        FileKind::Dir
    } else {
        // A FIFO would block the shard's only thread on open; a device or socket is never
        // content.
        return Err(Refused::NotFileOrDir.into());
    };
    if kind == FileKind::File && rel.has_trailing_slash() {
        return Err(Refused::FileWithTrailingSlash.into());
    }
    Ok(Found {
        path,
        metadata,
        kind,
    })
}

fn has_dot_component(path: &Path) -> bool {
    path.components().any(|c| match c {
        Component::Normal(name) => name.as_encoded_bytes().first() == Some(&b'.'),
        _ => true,
    })
}

/// Anything that kept a request path from naming a file to serve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl ResolveError {
    /// The one status for a path that cannot be served. The only place this module's errors
    /// map to a status.
    ///
    /// Every rejection, every refusal and every "not there" is 404 (RFC 9110 §15.5.5 allows a
    /// 404 in place of a 403 to hide that a resource exists): a refused `..`, a link leading
    /// out, a permission error and a missing file must look the same, or the answers would map
    /// what exists outside the root. Only failures of the server itself differ: running out of
    /// descriptors or memory is 503 (§15.6.4, temporary), any other I/O error 500 (§15.6.1).
    /// Log the cause of those two, and of 404s at debug level if wanted.
    pub fn status(&self) -> StatusCode {
        let io = match self {
            ResolveError::Rejected(_) => return StatusCode::NOT_FOUND,
            ResolveError::Io(io) => io,
        };
        match io.raw_os_error() {
            Some(
                libc::ENOENT
                | libc::ENOTDIR
                | libc::EISDIR
                | libc::EACCES
                | libc::EPERM
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::EXDEV,
            ) => StatusCode::NOT_FOUND,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // Errors made here (`Refused`) or by std without an errno.
            None => match io.kind() {
                io::ErrorKind::NotFound
                | io::ErrorKind::PermissionDenied
                | io::ErrorKind::NotADirectory
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::InvalidFilename => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::Method;

    const DEFAULT: ResolveOptions = ResolveOptions {
        allow_dotfiles: false,
    };
    const DOTFILES: ResolveOptions = ResolveOptions {
        allow_dotfiles: true,
    };

    fn rel(path: &str) -> Result<String, Rejected> {
        relative_path(path, "/", PathFlags::default(), DEFAULT).map(|r| r.as_str().to_owned())
    }

    // ---- one test per rule ----

    #[test]
    fn strips_the_mount_prefix() {
        let r = relative_path(
            "/static/css/a.css",
            "/static",
            PathFlags::default(),
            DEFAULT,
        );
        assert_eq!(r.map(|r| r.as_str().to_owned()), Ok("css/a.css".into()));
        let r = relative_path(
            "/static/css/a.css",
            "/static/",
            PathFlags::default(),
            DEFAULT,
        );
        assert_eq!(r.map(|r| r.as_str().to_owned()), Ok("css/a.css".into()));
        let r = relative_path("/a.css", "", PathFlags::default(), DEFAULT);
        assert_eq!(r.map(|r| r.as_str().to_owned()), Ok("a.css".into()));
    }

    #[test]
    fn rejects_paths_outside_the_prefix() {
        for path in ["/staticx/a", "/stat", "/other/a", "static/a", "*", ""] {
            assert_eq!(
                relative_path(path, "/static", PathFlags::default(), DEFAULT),
                Err(Rejected::OutsidePrefix),
                "{path}"
            );
        }
        assert_eq!(
            relative_path("*", "/", PathFlags::default(), DEFAULT),
            Err(Rejected::OutsidePrefix)
        );
    }

    #[test]
    fn prefix_itself_is_the_root() {
        let r =
            relative_path("/static", "/static", PathFlags::default(), DEFAULT).expect("the root");
        assert!(r.is_root() && !r.has_trailing_slash());
        let r =
            relative_path("/static/", "/static", PathFlags::default(), DEFAULT).expect("the root");
        assert!(r.is_root() && r.has_trailing_slash());
        let r = relative_path("/", "/", PathFlags::default(), DEFAULT).expect("the root");
        assert!(r.is_root());
    }

    #[test]
    fn trailing_slash_is_recorded_and_stripped() {
        let r = relative_path("/dir/", "/", PathFlags::default(), DEFAULT).expect("dir");
        assert_eq!((r.as_str(), r.has_trailing_slash()), ("dir", true));
        let r = relative_path("/dir/.", "/", PathFlags::default(), DEFAULT).expect("dir");
        assert_eq!((r.as_str(), r.has_trailing_slash()), ("dir", true));
        let r = relative_path("/dir", "/", PathFlags::default(), DEFAULT).expect("dir");
        assert_eq!((r.as_str(), r.has_trailing_slash()), ("dir", false));
    }

    #[test]
    fn empty_and_dot_segments_collapse() {
        assert_eq!(rel("//a///b"), Ok("a/b".into()));
        assert_eq!(rel("/./a/./b/."), Ok("a/b".into()));
        assert_eq!(rel("/a//"), Ok("a".into()));
    }

    #[test]
    fn normal_paths_borrow_the_request_path() {
        let path = "/css/site.css";
        let r = relative_path(path, "/", PathFlags::default(), DEFAULT).expect("plain");
        assert!(matches!(r.path, Cow::Borrowed(_)));
        let r = relative_path("/dir/", "/", PathFlags::default(), DEFAULT).expect("plain");
        assert!(matches!(r.path, Cow::Borrowed("dir")));
    }

    #[test]
    fn rejects_dotdot_segments() {
        assert_eq!(rel("/a/../b"), Err(Rejected::DotDot));
        assert_eq!(rel("/.."), Err(Rejected::DotDot));
        assert_eq!(
            relative_path("/a/..", "/", PathFlags::default(), DOTFILES),
            Err(Rejected::DotDot)
        );
    }

    #[test]
    fn rejects_dotfiles_unless_allowed() {
        assert_eq!(rel("/.env"), Err(Rejected::Dotfile));
        assert_eq!(rel("/.git/config"), Err(Rejected::Dotfile));
        assert_eq!(rel("/a/.well-known/x"), Err(Rejected::Dotfile));
        let r = relative_path("/.well-known/x", "/", PathFlags::default(), DOTFILES);
        assert_eq!(r.map(|r| r.as_str().to_owned()), Ok(".well-known/x".into()));
        // Only the first byte counts: `a.b` and `a.` are ordinary names.
        assert_eq!(rel("/a.b/c."), Ok("a.b/c.".into()));
    }

    #[test]
    fn rejects_nul() {
        assert_eq!(rel("/a\0b"), Err(Rejected::Nul));
        assert_eq!(rel("/a%00b"), Err(Rejected::Nul));
        let flags = PathFlags {
            has_encoded_nul: true,
            ..PathFlags::default()
        };
        assert_eq!(relative_path("/a", "/", flags, DEFAULT), Err(Rejected::Nul));
    }

    #[test]
    fn rejects_encoded_slash() {
        assert_eq!(rel("/a%2Fb"), Err(Rejected::EncodedSlash));
        assert_eq!(rel("/a%2fb"), Err(Rejected::EncodedSlash));
        let flags = PathFlags {
            has_encoded_slash: true,
            ..PathFlags::default()
        };
        assert_eq!(
            relative_path("/a", "/", flags, DEFAULT),
            Err(Rejected::EncodedSlash)
        );
    }

    #[test]
    fn rejects_backslash() {
        assert_eq!(rel("/a\\b"), Err(Rejected::Backslash));
    }

    #[test]
    fn decodes_percent_25_after_the_checks() {
        assert_eq!(rel("/100%25.txt"), Ok("100%.txt".into()));
        assert_eq!(rel("/%252e%252e/x"), Ok("%2e%2e/x".into()));
    }

    #[test]
    fn rejects_a_stray_percent() {
        assert_eq!(rel("/a%41"), Err(Rejected::StrayPercent));
        assert_eq!(rel("/a%"), Err(Rejected::StrayPercent));
        assert_eq!(rel("/a%2"), Err(Rejected::StrayPercent));
    }

    #[test]
    fn relative_path_never_starts_with_a_slash() {
        for path in ["//etc/passwd", "///etc", "/./etc", "/static//etc"] {
            let r = rel(path).expect("harmless");
            assert!(!r.starts_with('/'), "{path} -> {r}");
        }
    }

    // ---- traversal attempts, as an attacker sends them: through the real target decoder ----

    enum Expect {
        /// Refused by our HTTP layer (400) before reaching us.
        BadTarget,
        Rejected(Rejected),
        /// Accepted as this harmless relative name (it stays under the root).
        Literal(&'static str),
    }

    fn attempt(raw: &str, prefix: &str, opts: ResolveOptions, expect: Expect) {
        let target = match Target::parse(Bytes::copy_from_slice(raw.as_bytes()), &Method::GET) {
            Ok(target) => target,
            Err(e) => {
                assert!(
                    matches!(expect, Expect::BadTarget),
                    "{raw}: target refused: {e:?}"
                );
                return;
            }
        };
        let got = relative_path(target.path(), prefix, PathFlags::of(&target), opts);
        match (expect, got) {
            (Expect::Rejected(want), Err(got)) => assert_eq!(got, want, "{raw}"),
            (Expect::Literal(want), Ok(got)) => {
                assert_eq!(got.as_str(), want, "{raw}");
                let p = Path::new(got.as_str());
                assert!(
                    p.components().all(|c| matches!(c, Component::Normal(_))),
                    "{raw}: {p:?} must be plain names only"
                );
            }
            (_, got) => panic!("{raw}: unexpected {got:?}"),
        }
    }

    macro_rules! traversal {
        ($($name:ident: $raw:expr, $prefix:expr, $opts:expr => $expect:expr;)*) => {$(
            #[test]
            fn $name() {
                attempt($raw, $prefix, $opts, $expect);
            }
        )*};
    }

    use Expect::{BadTarget, Literal};
    use Rejected::{Backslash, DotDot, Dotfile, EncodedSlash, Nul, OutsidePrefix};
    fn rejected(r: Rejected) -> Expect {
        Expect::Rejected(r)
    }

    traversal! {
        traversal_dotdot_at_start: "/../etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_dotdot_after_prefix:
            "/static/../etc/passwd", "/static", DEFAULT => rejected(DotDot);
        traversal_dotdot_climbing_past_a_directory:
            "/foo/../../etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_dot_then_dotdot: "/./../etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_trailing_dotdot: "/static/a/..", "/static", DEFAULT => rejected(DotDot);
        traversal_dotdot_with_encoded_slash:
            "/..%2Fetc%2Fpasswd", "/", DEFAULT => rejected(EncodedSlash);
        traversal_dotdot_with_lowercase_encoded_slash:
            "/..%2fetc", "/", DOTFILES => rejected(EncodedSlash);
        traversal_encoded_dots: "/%2e%2e/etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_mixed_case_encoded_dots: "/%2E%2e/etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_half_encoded_dots: "/.%2e/etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_encoded_dot_segment_then_dotdot:
            "/%2e/%2e%2e/etc", "/", DEFAULT => rejected(DotDot);
        traversal_encoded_dots_with_dotfiles_allowed:
            "/%2e%2e/etc/passwd", "/", DOTFILES => rejected(DotDot);
        traversal_four_dots_is_a_dotfile: "/....//etc/passwd", "/", DEFAULT => rejected(Dotfile);
        traversal_four_dots_is_a_plain_name_on_linux:
            "/....//etc/passwd", "/", DOTFILES => Literal("..../etc/passwd");
        traversal_dotdot_semicolon_is_a_dotfile:
            "/..;/etc/passwd", "/", DEFAULT => rejected(Dotfile);
        traversal_dotdot_semicolon_is_a_plain_name_on_linux:
            "/..;/etc/passwd", "/", DOTFILES => Literal("..;/etc/passwd");
        traversal_path_parameter_then_dotdot:
            "/foo;/../etc/passwd", "/", DEFAULT => rejected(DotDot);
        traversal_backslashes: "/..\\..\\etc\\passwd", "/", DEFAULT => rejected(Backslash);
        traversal_encoded_backslashes:
            "/..%5C..%5Cetc%5Cpasswd", "/", DOTFILES => rejected(Backslash);
        traversal_unc_path: "/%5C%5Cserver%5Cshare", "/", DEFAULT => rejected(Backslash);
        traversal_encoded_nul_truncation: "/index.html%00.png", "/", DEFAULT => rejected(Nul);
        traversal_dotdot_then_nul: "/..%00/etc", "/", DEFAULT => rejected(Nul);
        traversal_double_encoded_dots_are_a_literal_name:
            "/%252e%252e/etc/passwd", "/", DEFAULT => Literal("%2e%2e/etc/passwd");
        traversal_double_encoded_slash_is_one_segment:
            "/..%252F..%252Fetc", "/", DOTFILES => Literal("..%2F..%2Fetc");
        traversal_double_encoded_nul_is_a_literal_name:
            "/a%2500b", "/", DEFAULT => Literal("a%00b");
        // Overlong UTF-8 (`%C0%AE` = `.`, `%C0%AF` = `/`) is not valid UTF-8: Target refuses it.
        traversal_overlong_utf8_dots: "/%C0%AE%C0%AE/etc/passwd", "/", DEFAULT => BadTarget;
        traversal_overlong_utf8_slash: "/..%C0%AFetc", "/", DOTFILES => BadTarget;
        traversal_unicode_one_dot_leaders_are_plain_names:
            "/%E2%80%A4%E2%80%A4/etc", "/", DEFAULT => Literal("\u{2024}\u{2024}/etc");
        traversal_unicode_fullwidth_dots_are_plain_names:
            "/%EF%BC%8E%EF%BC%8E/etc", "/", DEFAULT => Literal("\u{ff0e}\u{ff0e}/etc");
        traversal_trailing_dot_is_a_plain_name:
            "/etc/passwd.", "/", DEFAULT => Literal("etc/passwd.");
        traversal_dotdot_with_trailing_space_is_a_plain_name:
            "/..%20/etc", "/", DOTFILES => Literal(".. /etc");
        traversal_double_slash_cannot_make_an_absolute_path:
            "//etc/passwd", "/", DEFAULT => Literal("etc/passwd");
        traversal_drive_letter_is_a_plain_name_on_linux:
            "/C:/Windows/win.ini", "/", DEFAULT => Literal("C:/Windows/win.ini");
        traversal_prefix_lookalike:
            "/staticx/../secret", "/static", DEFAULT => rejected(OutsidePrefix);
        traversal_git_directory: "/.git/config", "/", DEFAULT => rejected(Dotfile);
        traversal_absolute_form_target:
            "http://example.com/../etc/passwd", "/", DEFAULT => rejected(DotDot);
    }

    // ---- status ----

    #[test]
    fn every_rejection_and_miss_is_404() {
        for r in [
            Rejected::OutsidePrefix,
            Rejected::Nul,
            Rejected::EncodedSlash,
            Rejected::Backslash,
            Rejected::DotDot,
            Rejected::Dotfile,
            Rejected::StrayPercent,
        ] {
            assert_eq!(ResolveError::from(r).status(), StatusCode::NOT_FOUND);
        }
        for refused in [
            Refused::SymlinkOutsideRoot,
            Refused::SymlinkNotFollowed,
            Refused::SymlinkToDotfile,
            Refused::NotFileOrDir,
            Refused::FileWithTrailingSlash,
        ] {
            let e = ResolveError::from(io::Error::from(refused));
            assert_eq!(e.status(), StatusCode::NOT_FOUND);
        }
        for errno in [
            libc::ENOENT,
            libc::ENOTDIR,
            libc::EACCES,
            libc::ELOOP,
            libc::ENAMETOOLONG,
        ] {
            let e = ResolveError::from(io::Error::from_raw_os_error(errno));
            assert_eq!(e.status(), StatusCode::NOT_FOUND, "errno {errno}");
        }
    }

    #[test]
    fn server_failures_are_not_404() {
        let e = ResolveError::from(io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let e = ResolveError::from(io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    // ---- file system ----

    /// `base/` holds `canary.txt` (must never be served) beside `root/`.
    struct Tree {
        base: PathBuf,
        root: PathBuf,
    }

    impl Tree {
        fn new(name: &str) -> Tree {
            use std::os::unix::fs::symlink;
            let base =
                std::env::temp_dir().join(format!("percore-resolve-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&base);
            let root = base.join("root");
            fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
            fs::create_dir_all(root.join(".git")).expect("mkdir");
            fs::write(base.join("canary.txt"), "SECRET").expect("write");
            fs::write(root.join("index.html"), "<p>hi</p>").expect("write");
            fs::write(root.join("sub/file.txt"), "file").expect("write");
            fs::write(root.join(".git/config"), "[core]").expect("write");
            fs::write(root.join("100%.txt"), "percent").expect("write");
            // inside -> outside, relative and absolute
            symlink("../canary.txt", root.join("out")).expect("symlink");
            symlink(base.join("canary.txt"), root.join("abs_out")).expect("symlink");
            symlink("..", root.join("up")).expect("symlink");
            // inside -> inside, relative and absolute
            symlink("sub/file.txt", root.join("in")).expect("symlink");
            symlink(root.join("sub/file.txt"), root.join("abs_in")).expect("symlink");
            // a symlinked directory inside the root
            symlink("sub", root.join("linked_dir")).expect("symlink");
            symlink(".git/config", root.join("to_git")).expect("symlink");
            symlink("missing", root.join("dangling")).expect("symlink");
            let root = canonical_root(&root).expect("canonical root");
            Tree { base, root }
        }

        fn open(&self, path: &str, follow: FollowSymlinks) -> Result<Found, ResolveError> {
            self.open_with(path, follow, DEFAULT)
        }

        fn open_with(
            &self,
            path: &str,
            follow: FollowSymlinks,
            opts: ResolveOptions,
        ) -> Result<Found, ResolveError> {
            let rel = relative_path(path, "/", PathFlags::default(), opts)?;
            Ok(open_under(&self.root, &rel, follow)?)
        }

        fn status(&self, path: &str, follow: FollowSymlinks) -> StatusCode {
            match self.open(path, follow) {
                Ok(_) => StatusCode::OK,
                Err(e) => e.status(),
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    #[test]
    fn finds_files_and_directories_under_the_root() {
        let t = Tree::new("finds");
        let f = t
            .open("/index.html", FollowSymlinks::WithinRoot)
            .expect("file");
        assert_eq!(f.kind, FileKind::File);
        assert_eq!(f.path, t.root.join("index.html"));
        assert_eq!(f.metadata.len(), 9);
        let d = t.open("/sub/", FollowSymlinks::Never).expect("dir");
        assert_eq!(d.kind, FileKind::Dir);
        let r = t.open("/", FollowSymlinks::Never).expect("root");
        assert_eq!((r.kind, r.path), (FileKind::Dir, t.root.clone()));
        let p = t
            .open("/100%25.txt", FollowSymlinks::Never)
            .expect("percent name");
        assert_eq!(p.path, t.root.join("100%.txt"));
    }

    #[test]
    fn missing_file_is_404() {
        let t = Tree::new("missing");
        assert_eq!(
            t.status("/nope.html", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            t.status("/nope/x", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
        // A file used as a directory: ENOTDIR.
        assert_eq!(
            t.status("/index.html/x", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            t.status("/dangling", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
        // Double-encoded dots name a file that does not exist, not the parent.
        assert_eq!(
            t.status("/%2e%2e/canary.txt", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn file_with_trailing_slash_is_404() {
        let t = Tree::new("trailing");
        assert_eq!(
            t.status("/index.html/", FollowSymlinks::Always),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn within_root_refuses_links_leading_outside() {
        let t = Tree::new("outside");
        for path in ["/out", "/abs_out", "/up/canary.txt"] {
            let e = t.open(path, FollowSymlinks::WithinRoot).expect_err(path);
            assert_eq!(e.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // Outside and existing looks exactly like outside and missing.
        assert_eq!(
            t.status("/out", FollowSymlinks::WithinRoot),
            t.status("/nope", FollowSymlinks::WithinRoot)
        );
    }

    #[test]
    fn within_root_follows_links_staying_inside() {
        let t = Tree::new("inside");
        for path in ["/in", "/abs_in", "/linked_dir/file.txt"] {
            let f = t.open(path, FollowSymlinks::WithinRoot).expect(path);
            assert_eq!(f.path, t.root.join("sub/file.txt"), "{path}");
            assert_eq!(f.kind, FileKind::File);
        }
        let d = t
            .open("/linked_dir/", FollowSymlinks::WithinRoot)
            .expect("dir link");
        assert_eq!((d.kind, d.path), (FileKind::Dir, t.root.join("sub")));
    }

    #[test]
    fn within_root_refuses_links_to_dotfiles_unless_allowed() {
        let t = Tree::new("dotlink");
        assert_eq!(
            t.status("/to_git", FollowSymlinks::WithinRoot),
            StatusCode::NOT_FOUND
        );
        let f = t
            .open_with("/to_git", FollowSymlinks::WithinRoot, DOTFILES)
            .expect("dotfiles allowed");
        assert_eq!(f.path, t.root.join(".git/config"));
    }

    #[test]
    fn never_refuses_every_link() {
        let t = Tree::new("never");
        for path in [
            "/in",
            "/abs_in",
            "/linked_dir/file.txt",
            "/linked_dir/",
            "/out",
        ] {
            assert_eq!(
                t.status(path, FollowSymlinks::Never),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            t.status("/sub/file.txt", FollowSymlinks::Never),
            StatusCode::OK
        );
    }

    #[test]
    fn always_follows_links_anywhere() {
        let t = Tree::new("always");
        let f = t.open("/out", FollowSymlinks::Always).expect("followed");
        assert_eq!(
            f.path,
            t.base.canonicalize().expect("base").join("canary.txt")
        );
    }

    #[test]
    fn refuses_what_is_neither_file_nor_directory() {
        let t = Tree::new("socket");
        let _listener = std::os::unix::net::UnixListener::bind(t.root.join("sock")).expect("bind");
        let e = t
            .open("/sock", FollowSymlinks::Always)
            .expect_err("a socket");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn canonical_root_must_be_a_directory() {
        let t = Tree::new("rootfile");
        assert!(canonical_root(&t.root.join("index.html")).is_err());
        assert!(canonical_root(&t.root.join("nope")).is_err());
    }
}
