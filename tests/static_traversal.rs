//! Path traversal against the real binary (issue #5): a canary file beside the served root, and
//! symbolic links inside the root pointing at it and at the root's parent, must never be served,
//! whatever the encoding of the request; and the answers for an existing target outside the root
//! must equal those for a missing one, so nothing reveals what exists outside.
//!
//! Requests are written raw on a socket (a client library would normalise `..` away) and read
//! with httparse; the secret is searched for in every byte the server sends.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::time::Duration;

use common::files::TempDir;
use common::{stable_headers, ResponseReader, Server};

/// The secret in the canary; also its name's marker, so a listing of the parent shows up too.
const SECRET: &str = "CANARY-7f3a9c2e-do-not-serve";
/// A file beside the canary that no request names: seen in an answer only if the parent
/// directory was listed.
const OUTSIDE_MARKER: &str = "zz-outside-only-8e1d";

/// `D/` with `D/root/` (served), `D/canary.txt` (the secret), `D/secretdir/`, and in the root a
/// normal file, a subdirectory, and links: to the canary, to `D`, and dangling twins of both.
struct Layout {
    dir: TempDir,
}

impl Layout {
    fn new() -> Layout {
        let tmp = TempDir::new("traversal");
        let dir = tmp.path();
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(dir.join("secretdir")).unwrap();
        std::fs::write(dir.join("canary.txt"), SECRET).unwrap();
        std::fs::write(dir.join("secretdir/canary.txt"), SECRET).unwrap();
        std::fs::write(dir.join(OUTSIDE_MARKER), SECRET).unwrap();
        std::fs::write(root.join("index.html"), "public index").unwrap();
        std::fs::write(root.join("public.txt"), "public file").unwrap();
        std::fs::write(root.join("a/b/inner.txt"), "inner file").unwrap();
        // Links to what exists outside, and twins to what does not.
        symlink("../canary.txt", root.join("link-to-canary")).unwrap();
        symlink("../nothere.txt", root.join("link-to-nothere")).unwrap();
        symlink("..", root.join("link-to-parent")).unwrap();
        symlink("../nodir", root.join("link-to-nodir")).unwrap();
        symlink(dir.join("canary.txt"), root.join("abs-link-to-canary")).unwrap();
        symlink(dir.join("nothere.txt"), root.join("abs-link-to-nothere")).unwrap();
        symlink("../../../canary.txt", root.join("a/b/deep-link")).unwrap();
        symlink("../../../nothere.txt", root.join("a/b/deep-nothere")).unwrap();
        // A link that stays inside: followed by default.
        symlink("a/b/inner.txt", root.join("link-inside")).unwrap();
        std::fs::create_dir_all(dir.join("site")).unwrap();
        Layout { dir: tmp }
    }

    fn root(&self) -> String {
        self.dir.file("root")
    }
}

/// What came back for one raw request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Status, header fields that do not vary per request (no Date, no X-Request-Id), body.
    Response(u16, Vec<(String, String)>, Vec<u8>),
    /// The server closed the connection without a response (a failure: it must answer).
    Closed,
}

/// Sends `request_line` (as written: nothing normalised) with `Host` and `Connection: close` on a
/// fresh connection; returns the answer and every byte received, response and anything after.
fn send(server: &Server, request_line: &str) -> (Answer, Vec<u8>) {
    let request = format!("{request_line}\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = ResponseReader::new();
    let answer = match reader.read(&mut stream, request_line.starts_with("HEAD ")) {
        Ok(res) => Answer::Response(res.status, stable_headers(&res), res.body),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Answer::Closed,
        Err(e) => panic!("{request_line:?}: {e}"),
    };
    // Everything the server sent, the response and anything after it.
    let mut all = reader.buf;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_end(&mut all);
    if let Answer::Response(status, headers, body) = &answer {
        let mut head = format!("{status}\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\n"));
        }
        all.extend_from_slice(head.as_bytes());
        all.extend_from_slice(body);
    }
    (answer, all)
}

/// Request lines that try to reach `D/canary.txt` (as `{T}`, replaced by `canary.txt` or by the
/// missing `nothere.txt`) from the root `D/root/`.
const ATTACKS: &[&str] = &[
    // Plain and dot-segment forms.
    "GET /../{T} HTTP/1.1",
    "GET /./../{T} HTTP/1.1",
    "GET /a/../../{T} HTTP/1.1",
    "GET /a/b/../../../{T} HTTP/1.1",
    "GET /a/./b/./../../../{T} HTTP/1.1",
    "GET /../../../../../../{T} HTTP/1.1",
    "GET /public.txt/../../{T} HTTP/1.1",
    "GET /..//{T} HTTP/1.1",
    "GET /../root/../{T} HTTP/1.1",
    "GET /.. HTTP/1.1",
    "GET /../ HTTP/1.1",
    "GET /../secretdir/{T} HTTP/1.1",
    // Percent-encoded dots and slashes, both cases.
    "GET /%2e%2e/{T} HTTP/1.1",
    "GET /%2E%2E/{T} HTTP/1.1",
    "GET /.%2e/{T} HTTP/1.1",
    "GET /%2e./{T} HTTP/1.1",
    "GET /..%2f{T} HTTP/1.1",
    "GET /..%2F{T} HTTP/1.1",
    "GET /%2e%2e%2f{T} HTTP/1.1",
    "GET /%2E%2E%2F{T} HTTP/1.1",
    "GET /%2e%2e%2F{T} HTTP/1.1",
    "GET /a%2f..%2f..%2f{T} HTTP/1.1",
    "GET /%2f..%2f{T} HTTP/1.1",
    "GET /%2F%2E%2E%2F{T} HTTP/1.1",
    "GET /a/%2e%2e/%2e%2e/{T} HTTP/1.1",
    // Backslashes, raw and encoded.
    "GET /..\\{T} HTTP/1.1",
    "GET /..%5c{T} HTTP/1.1",
    "GET /..%5C{T} HTTP/1.1",
    "GET /%2e%2e%5c{T} HTTP/1.1",
    "GET /a\\..\\..\\{T} HTTP/1.1",
    // Double encoding.
    "GET /%252e%252e/{T} HTTP/1.1",
    "GET /%252e%252e%252f{T} HTTP/1.1",
    "GET /..%252f{T} HTTP/1.1",
    "GET /%%32%65%%32%65/{T} HTTP/1.1",
    "GET /%u002e%u002e/{T} HTTP/1.1",
    // Overlong UTF-8 and look-alike Unicode dots and slashes.
    "GET /%c0%ae%c0%ae/{T} HTTP/1.1",
    "GET /%C0%AE%C0%AE/{T} HTTP/1.1",
    "GET /%e0%80%ae%e0%80%ae/{T} HTTP/1.1",
    "GET /%f0%80%80%ae%f0%80%80%ae/{T} HTTP/1.1",
    "GET /..%c0%af{T} HTTP/1.1",
    "GET /..%c1%9c{T} HTTP/1.1",
    "GET /%e2%80%a4%e2%80%a4/{T} HTTP/1.1",
    "GET /%ef%bc%8e%ef%bc%8e/{T} HTTP/1.1",
    "GET /..%ef%bc%8f{T} HTTP/1.1",
    "GET /..%e2%88%95{T} HTTP/1.1",
    // NUL bytes and other separators.
    "GET /..%00/{T} HTTP/1.1",
    "GET /%00/../{T} HTTP/1.1",
    "GET /../{T}%00.html HTTP/1.1",
    "GET /..;/{T} HTTP/1.1",
    "GET /....//{T} HTTP/1.1",
    "GET /.../{T} HTTP/1.1",
    "GET /..%20/{T} HTTP/1.1",
    "GET /..%09/{T} HTTP/1.1",
    "GET /..?/../{T} HTTP/1.1",
    "GET /..#/../{T} HTTP/1.1",
    // Empty segments, absolute and other request-target forms.
    "GET //{T} HTTP/1.1",
    "GET //../{T} HTTP/1.1",
    "GET ///..///{T} HTTP/1.1",
    "GET http://x/../{T} HTTP/1.1",
    "GET http://x/%2e%2e/{T} HTTP/1.1",
    "GET http://x/..%2f{T} HTTP/1.1",
    "GET http://x/a/../../{T} HTTP/1.1",
    "GET http://../{T} HTTP/1.1",
    "GET ../{T} HTTP/1.1",
    "GET {T} HTTP/1.1",
    "GET x/../../{T} HTTP/1.1",
    "HEAD /../{T} HTTP/1.1",
    "GET /../{T} HTTP/1.0",
    // Through the symbolic links in the root.
    "GET /link-to-parent/{T} HTTP/1.1",
    "GET /link-to-parent/./{T} HTTP/1.1",
    "GET /link-to-parent/secretdir/{T} HTTP/1.1",
    "GET /link-to-parent/link-to-parent/../{T} HTTP/1.1",
    "GET /%6cink-to-parent/{T} HTTP/1.1",
];

/// Links whose target exists outside the root, each with its dangling twin.
const LINK_PAIRS: &[(&str, &str)] = &[
    (
        "GET /link-to-canary HTTP/1.1",
        "GET /link-to-nothere HTTP/1.1",
    ),
    (
        "GET /link-to-canary/ HTTP/1.1",
        "GET /link-to-nothere/ HTTP/1.1",
    ),
    (
        "HEAD /link-to-canary HTTP/1.1",
        "HEAD /link-to-nothere HTTP/1.1",
    ),
    (
        "GET /abs-link-to-canary HTTP/1.1",
        "GET /abs-link-to-nothere HTTP/1.1",
    ),
    (
        "GET /a/b/deep-link HTTP/1.1",
        "GET /a/b/deep-nothere HTTP/1.1",
    ),
    (
        "GET /link-to-parent HTTP/1.1",
        "GET /link-to-nodir HTTP/1.1",
    ),
    (
        "GET /link-to-parent/ HTTP/1.1",
        "GET /link-to-nodir/ HTTP/1.1",
    ),
    (
        "GET /link-to-parent/secretdir HTTP/1.1",
        "GET /link-to-parent/nodir HTTP/1.1",
    ),
    (
        "GET /link-to-parent/secretdir/ HTTP/1.1",
        "GET /link-to-parent/nodir/ HTTP/1.1",
    ),
    (
        "GET /link-to-parent?x=1 HTTP/1.1",
        "GET /link-to-nodir?x=1 HTTP/1.1",
    ),
    ("GET /../secretdir HTTP/1.1", "GET /../nodir HTTP/1.1"),
    (
        "GET /%2e%2e/secretdir/ HTTP/1.1",
        "GET /%2e%2e/nodir/ HTTP/1.1",
    ),
];

/// Checks one answer: a 4xx (or a 308 to a path inside the root), and no secret anywhere.
fn assert_refused(request_line: &str, answer: &Answer, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains(SECRET) && !text.contains(OUTSIDE_MARKER),
        "{request_line:?} leaked the canary: {text}"
    );
    match answer {
        Answer::Closed => panic!("{request_line:?}: closed without a response"),
        Answer::Response(status, _, _) if (400..500).contains(status) => {}
        Answer::Response(308, headers, _) => {
            let location = headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{request_line:?}: 308 without Location"));
            assert!(
                location.starts_with('/')
                    && !location.starts_with("//")
                    && !location
                        .split('/')
                        .any(|s| s == ".." || s.eq_ignore_ascii_case("%2e%2e")),
                "{request_line:?}: 308 to {location:?} leaves the root"
            );
        }
        Answer::Response(status, _, _) => {
            panic!("{request_line:?}: status {status}, expected a 4xx: {text}")
        }
    }
}

/// Every attack, for the canary and for its missing twin: refused, and refused alike. `prefix`
/// is the URL prefix the root is mounted at (`""` for `--root`).
fn run_matrix(server: &Server, prefix: &str) -> usize {
    let mount = |line: &str| {
        line.replacen(" /", &format!(" {prefix}/"), 1).replacen(
            "http://x/",
            &format!("http://x{prefix}/"),
            1,
        )
    };
    let mut sent = 0;
    let mut pairs: Vec<(String, String)> = ATTACKS
        .iter()
        .map(|a| {
            (
                mount(&a.replace("{T}", "canary.txt")),
                mount(&a.replace("{T}", "nothere.txt")),
            )
        })
        .collect();
    pairs.extend(LINK_PAIRS.iter().map(|(a, b)| (mount(a), mount(b))));
    for (existing, missing) in &pairs {
        let (answer, bytes) = send(server, existing);
        assert_refused(existing, &answer, &bytes);
        let (twin, twin_bytes) = send(server, missing);
        assert_refused(missing, &twin, &twin_bytes);
        assert_eq!(
            answer, twin,
            "{existing:?} and {missing:?} answer differently: existence outside the root shows"
        );
        sent += 2;
    }
    sent
}

#[test]
fn traversal_encodings_never_serve_the_canary_and_never_reveal_existence() {
    let layout = Layout::new();
    let server = Server::start_with(&["--shards", "2"], &["--root", &layout.root()], |_| {});
    // The root itself is served, so a refusal below is not a dead server.
    let (answer, _) = send(&server, "GET /public.txt HTTP/1.1");
    assert!(matches!(answer, Answer::Response(200, _, ref b) if b == b"public file"));
    let (answer, _) = send(&server, "GET /a/b/inner.txt HTTP/1.1");
    assert!(matches!(answer, Answer::Response(200, _, ref b) if b == b"inner file"));

    let sent = run_matrix(&server, "");
    assert!(sent >= 50, "only {sent} requests");
}

#[test]
fn traversal_with_listing_and_dotfiles_on_never_reaches_outside_the_root() {
    let layout = Layout::new();
    let server = Server::start_with(
        &["--shards", "2"],
        &[
            "--root",
            &layout.root(),
            "--listing",
            "--dotfiles",
            "--index",
            "",
        ],
        |_| {},
    );
    // Listings work inside the root, so a listing of the parent would show up.
    let (answer, _) = send(&server, "GET /a/b/ HTTP/1.1");
    assert!(
        matches!(answer, Answer::Response(200, _, ref b) if String::from_utf8_lossy(b).contains("inner.txt"))
    );
    run_matrix(&server, "");
}

#[test]
fn refusals_look_like_any_missing_file() {
    let layout = Layout::new();
    let server = Server::start_with(&["--shards", "2"], &["--root", &layout.root()], |_| {});
    let (plain_missing, _) = send(&server, "GET /no-such-file.txt HTTP/1.1");
    assert!(matches!(plain_missing, Answer::Response(404, _, _)));
    // Traversals that reach the resolver (valid HTTP) are the same 404 as a missing file.
    for line in [
        "GET /../canary.txt HTTP/1.1",
        "GET /%2e%2e/canary.txt HTTP/1.1",
        "GET /..%2fcanary.txt HTTP/1.1",
        "GET /link-to-canary HTTP/1.1",
        "GET /link-to-parent/canary.txt HTTP/1.1",
        "GET /a/b/deep-link HTTP/1.1",
    ] {
        let (answer, _) = send(&server, line);
        assert_eq!(answer, plain_missing, "{line:?}");
    }
}

#[test]
fn traversal_under_a_mount_prefix_never_serves_the_canary() {
    let layout = Layout::new();
    let site = layout.dir.path().join("site");
    let mount = format!("/static={}", layout.root());
    let server = Server::start_with(
        &["--shards", "2"],
        &["--root", site.to_str().unwrap(), "--mount", &mount],
        |_| {},
    );
    let (answer, _) = send(&server, "GET /static/public.txt HTTP/1.1");
    assert!(matches!(answer, Answer::Response(200, _, ref b) if b == b"public file"));
    let sent = run_matrix(&server, "/static");
    assert!(sent >= 50, "only {sent} requests");
}

#[test]
fn symlinks_within_the_root_are_followed_unless_never() {
    let layout = Layout::new();
    let server = Server::start_with(&["--shards", "2"], &["--root", &layout.root()], |_| {});
    let (answer, _) = send(&server, "GET /link-inside HTTP/1.1");
    assert!(
        matches!(answer, Answer::Response(200, _, ref b) if b == b"inner file"),
        "{answer:?}"
    );
    drop(server);

    let server = Server::start_with(
        &["--shards", "2"],
        &["--root", &layout.root(), "--follow-symlinks", "never"],
        |_| {},
    );
    let (answer, _) = send(&server, "GET /link-inside HTTP/1.1");
    assert!(matches!(answer, Answer::Response(404, _, _)), "{answer:?}");
    run_matrix(&server, "");
}
