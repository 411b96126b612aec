//! The protocol matrix: every route, middleware and static-file behaviour of the real binary is
//! the same over HTTP/1.1 and HTTP/2, plain (h2c by prior knowledge) and over TLS (ALPN). Each
//! case of a table is sent with four reqwest clients and the four answers are compared: status,
//! body bytes and every header except those that differ by design (date, x-request-id,
//! server-timing, strict-transport-security, connection, keep-alive), each of which is checked on
//! its own. Clients: reqwest (blocking, no content decoding, no redirects); compressed bodies are
//! decoded here with flate2, brotli and zstd.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::codings::{gunzip, unbrotli, unzstd};
use common::files::{pattern, text, TempDir};
use common::{eventually, Server};
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::redirect::Policy;
use reqwest::{Method, Version};

// ---------------------------------------------------------------------------------------------
// Harness: a temporary root, the four protocols and their clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    H1,
    H2c,
    H1Tls,
    H2Tls,
}

const PROTOS: [Proto; 4] = [Proto::H1, Proto::H2c, Proto::H1Tls, Proto::H2Tls];

impl Proto {
    fn tls(self) -> bool {
        matches!(self, Proto::H1Tls | Proto::H2Tls)
    }
    fn version(self) -> Version {
        match self {
            Proto::H1 | Proto::H1Tls => Version::HTTP_11,
            Proto::H2c | Proto::H2Tls => Version::HTTP_2,
        }
    }
    /// The access log's `protocol` field.
    fn log_name(self) -> &'static str {
        match self.version() {
            Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        }
    }
}

/// A server with a plain and a TLS listener (dev certificate), and one client per protocol.
struct Matrix {
    server: Server,
    /// The Strict-Transport-Security every TLS answer carries.
    hsts: String,
    /// `--timing`: every answer carries Server-Timing (its value differs by design).
    timing: bool,
    _dir: TempDir,
    clients: Vec<(Proto, Client, String)>,
}

impl Matrix {
    /// `percore serve --tls-listen 127.0.0.1:0 --dev-cert-out PEM` plus `extra`.
    fn start(extra: &[&str]) -> Matrix {
        let dir = TempDir::new("cert");
        let pem_path = dir.file("dev.pem");
        let mut flags = vec!["--tls-listen", "127.0.0.1:0", "--dev-cert-out", &pem_path];
        flags.extend_from_slice(extra);
        let server = Server::start(&flags);
        let tls = server.tls_addr();
        let pem = std::fs::read(&pem_path).expect("--dev-cert-out written");
        let clients = PROTOS
            .iter()
            .map(|&p| {
                let base = if p.tls() {
                    format!("https://localhost:{}", tls.port())
                } else {
                    format!("http://{}", server.addr)
                };
                (p, client(p, &pem, tls), base)
            })
            .collect();
        let hsts = match extra.iter().position(|f| *f == "--hsts-max-age") {
            Some(i) => format!("max-age={}", extra[i + 1]),
            None => "max-age=31536000".to_owned(),
        };
        Matrix {
            server,
            hsts,
            timing: extra.contains(&"--timing"),
            _dir: dir,
            clients,
        }
    }

    /// Sends `case` with every client; the four answers in [`PROTOS`] order.
    fn run(&self, case: &Case) -> Vec<(Proto, Resp)> {
        self.clients
            .iter()
            .map(|(p, c, base)| (*p, send(c, base, *p, case)))
            .collect()
    }
}

fn client(p: Proto, pem: &[u8], tls: SocketAddr) -> Client {
    let mut b = Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10));
    b = match p {
        Proto::H1 => b.http1_only(),
        Proto::H2c => b.http2_prior_knowledge(),
        Proto::H1Tls | Proto::H2Tls => {
            let b = b
                .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("PEM"))
                .tls_built_in_root_certs(false)
                .resolve("localhost", tls);
            if p == Proto::H1Tls {
                b.http1_only()
            } else {
                b
            }
        }
    };
    b.build().expect("reqwest client")
}

/// One answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header value"))
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

fn send(c: &Client, base: &str, p: Proto, case: &Case) -> Resp {
    let url = format!("{base}{}", case.path);
    let mut req = c.request(Method::from_bytes(case.method.as_bytes()).unwrap(), &url);
    for (n, v) in &case.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    if let Some(body) = &case.body {
        req = match case.stream {
            true => req.body(reqwest::blocking::Body::new(std::io::Cursor::new(
                body.clone(),
            ))),
            false => req.body(body.clone()),
        };
    }
    let res = req
        .send()
        .unwrap_or_else(|e| panic!("[{} over {p:?}] {url}: {e:?}", case.name));
    assert_eq!(
        res.version(),
        p.version(),
        "[{} over {p:?}] version",
        case.name
    );
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().expect("body").to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------------
// Cases and the comparison

/// Header fields that differ by design between protocols or between requests; checked apart.
const DIFFER_BY_DESIGN: &[&str] = &[
    "date",
    "x-request-id",
    "server-timing",
    "strict-transport-security",
    "connection",
    "keep-alive",
];

/// Header fields that must be identical (present on all four or on none); every other field
/// outside [`DIFFER_BY_DESIGN`] is compared too, these are named so a missing one is reported.
const MUST_MATCH: &[&str] = &[
    "content-type",
    "content-length",
    "etag",
    "last-modified",
    "cache-control",
    "content-encoding",
    "vary",
    "content-range",
    "accept-ranges",
    "location",
    "allow",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-max-age",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
];

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    /// Body bytes compared across protocols (off for `/healthz`, whose shard may differ, and for
    /// multipart bodies, whose boundary may differ).
    same_body: bool,
    /// multipart/byteranges: compare the parsed parts instead of the bytes.
    multipart: bool,
    /// Send the body as a stream of unknown length (chunked over HTTP/1.1).
    stream: bool,
    /// Answered by the app (its middleware adds x-request-id, HSTS, Server-Timing); false for
    /// the connection layer's own refusals (413, 414, 431), which carry none of them.
    app: bool,
    /// Per-case expectations, run on each protocol's answer.
    check: Box<dyn Fn(&Resp)>,
}

impl Case {
    fn new(name: &'static str, method: &'static str, path: &str, status: u16) -> Case {
        Case {
            name,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            status,
            same_body: true,
            multipart: false,
            stream: false,
            app: true,
            check: Box::new(|_| {}),
        }
    }
    fn get(name: &'static str, path: &str, status: u16) -> Case {
        Case::new(name, "GET", path, status)
    }
    fn h(mut self, name: &str, value: &str) -> Case {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    fn body(mut self, body: Vec<u8>) -> Case {
        self.body = Some(body);
        self
    }
    fn check(mut self, f: impl Fn(&Resp) + 'static) -> Case {
        self.check = Box::new(f);
        self
    }
    /// Expects exactly `body`.
    fn expect_body(self, body: impl Into<Vec<u8>>) -> Case {
        let body = body.into();
        self.check(move |r| assert_eq!(r.body, body, "body"))
    }
}

/// Runs `case` over the four protocols and asserts they agree (and each meets the case).
fn assert_case(m: &Matrix, case: &Case) -> Vec<(Proto, Resp)> {
    let answers = m.run(case);
    let (_, first) = &answers[0];
    let mut ids = HashSet::new();
    for (p, r) in &answers {
        let at = format!("[{} over {p:?}]", case.name);
        let p = *p;
        assert_eq!(
            r.status, case.status,
            "{at} status; headers {:?}",
            r.headers
        );
        // Per-case expectations, with the case and protocol named on failure.
        let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.check)(r)));
        if let Err(e) = check {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{at} check failed: {msg}; headers {:?}", r.headers);
        }
        // Fields that differ by design.
        let hsts = r.header("strict-transport-security");
        let timing = r.header("server-timing");
        if case.app {
            let id = r
                .header("x-request-id")
                .unwrap_or_else(|| panic!("{at} no x-request-id"));
            assert!(ids.insert(id.to_owned()), "{at} x-request-id {id} repeated");
            let want_hsts = p.tls().then_some(m.hsts.as_str());
            assert_eq!(hsts, want_hsts, "{at} HSTS only over TLS");
            if m.timing {
                assert!(
                    timing.is_some_and(|t| t.starts_with("app;dur=")),
                    "{at} server-timing {timing:?}"
                );
            } else {
                assert_eq!(timing, None, "{at} server-timing without --timing");
            }
        } else {
            for name in ["x-request-id", "strict-transport-security", "server-timing"] {
                assert!(
                    r.header(name).is_none(),
                    "{at} {name} on a connection-layer answer"
                );
            }
        }
        if p.version() == Version::HTTP_2 {
            for name in ["connection", "keep-alive", "transfer-encoding"] {
                assert!(r.header(name).is_none(), "{at} {name} over HTTP/2");
            }
        }
        // No body for HEAD and 304; HEAD keeps the GET's Content-Length.
        if case.method == "HEAD" || r.status == 304 {
            assert!(r.body.is_empty(), "{at} {} bytes of body", r.body.len());
        }
        if case.method == "HEAD" && r.status != 304 {
            assert!(
                r.header("content-length").is_some(),
                "{at} HEAD content-length"
            );
        }
        // Framing: content-length, when sent, is the body's (not for HEAD and 304).
        if case.method != "HEAD" && r.status != 304 {
            if let Some(len) = r.header("content-length") {
                assert_eq!(len, r.body.len().to_string(), "{at} content-length");
            }
        }
        // The same as HTTP/1.1 plain.
        if p == Proto::H1 {
            continue;
        }
        for name in MUST_MATCH {
            if case.multipart && (*name == "content-type" || *name == "content-length") {
                continue;
            }
            assert_eq!(
                r.header(name),
                first.header(name),
                "{at} header {name} differs from H1"
            );
        }
        assert_eq!(
            comparable(r, case.multipart),
            comparable(first, case.multipart),
            "{at} header fields differ from H1"
        );
        if case.multipart {
            assert_eq!(
                parts(r),
                parts(first),
                "{at} multipart parts differ from H1"
            );
        } else if case.same_body {
            assert!(
                masked_body(r) == masked_body(first),
                "{at} body differs from H1: {} bytes {:?} vs {} bytes {:?}",
                r.body.len(),
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)]),
                first.body.len(),
                String::from_utf8_lossy(&first.body[..first.body.len().min(200)]),
            );
        }
    }
    answers
}

/// The body with the answer's own request id (which error pages quote) replaced by `<id>`.
fn masked_body(r: &Resp) -> Vec<u8> {
    let Some(id) = r.header("x-request-id").filter(|id| !id.is_empty()) else {
        return r.body.clone();
    };
    let (id, mut out, mut rest) = (id.as_bytes(), Vec::new(), &r.body[..]);
    while let Some(at) = rest.windows(id.len()).position(|w| w == id) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"<id>");
        rest = &rest[at + id.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Every header field outside [`DIFFER_BY_DESIGN`], by name (multi-valued fields joined).
fn comparable(r: &Resp, multipart: bool) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, v) in &r.headers {
        let n = n.as_str();
        if DIFFER_BY_DESIGN.contains(&n)
            || (multipart && (n == "content-type" || n == "content-length"))
        {
            continue;
        }
        out.entry(n.to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// The parts of a `multipart/byteranges` answer: (content-type, content-range, bytes) each,
/// delimited by the boundary its Content-Type names; each part's length from its Content-Range.
fn parts(r: &Resp) -> Vec<(String, String, Vec<u8>)> {
    let ct = r.header("content-type").expect("content-type");
    let (essence, params) = ct.split_once(';').expect("boundary parameter");
    assert_eq!(essence.trim(), "multipart/byteranges");
    let boundary = params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("boundary=")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let find = |hay: &[u8], n: &[u8]| hay.windows(n.len()).position(|w| w == n);
    let body = &r.body;
    let mut pos = find(body, delim.as_bytes()).expect("first delimiter");
    let mut out = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return out;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF after a delimiter");
        pos += 2;
        let end = pos + find(&body[pos..], b"\r\n\r\n").expect("end of part head");
        let head = std::str::from_utf8(&body[pos..end]).expect("ASCII part head");
        let (mut ctype, mut range) = (String::new(), String::new());
        for line in head.split("\r\n") {
            let (n, v) = line.split_once(':').expect("name: value");
            match n.to_ascii_lowercase().as_str() {
                "content-type" => ctype = v.trim().to_owned(),
                "content-range" => range = v.trim().to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        let (a, b) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .expect("bytes a-b/len");
        let len = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        pos = end + 4;
        out.push((ctype, range, body[pos..pos + len].to_vec()));
        pos += len;
        assert!(
            body[pos..].starts_with(format!("\r\n{delim}").as_bytes()),
            "delimiter after the part"
        );
        pos += 2;
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix

/// The static root every case below reads.
struct Site {
    root: TempDir,
    hello: Vec<u8>,
    big: Vec<u8>,
    data: Vec<u8>,
    large: Vec<u8>,
    js: Vec<u8>,
    js_br: Vec<u8>,
    index: Vec<u8>,
    dir_index: Vec<u8>,
}

fn site() -> Site {
    let root = TempDir::new("root");
    let s = Site {
        hello: b"hello, matrix\n".to_vec(),
        big: text(40_000),
        data: pattern(5000, 3),
        large: pattern(1 << 20, 5),
        js: b"console.log('plain');\n".to_vec(),
        js_br: b"pretend-brotli-bytes\x00\x01\x02".to_vec(),
        index: b"<!doctype html><title>root</title>\n".to_vec(),
        dir_index: b"<!doctype html><title>dir</title>\n".to_vec(),
        root,
    };
    s.root.write("hello.txt", &s.hello);
    s.root.write("big.txt", &s.big);
    s.root.write("data.bin", &s.data);
    s.root.write("large.bin", &s.large);
    s.root.write("with space.txt", "spaced\n");
    s.root.write("app.js", &s.js);
    s.root.write("app.js.br", &s.js_br);
    s.root.write("index.html", &s.index);
    s.root.write("dir/index.html", &s.dir_index);
    s
}

fn start_site(s: &Site) -> Matrix {
    Matrix::start(&[
        "--root",
        s.root.path_str(),
        "--cors-origin",
        "https://app.example",
    ])
}

/// The etag of `path` (all four protocols must agree on it, checked by the cases).
fn etag_of(m: &Matrix, path: &str) -> String {
    let r = m.run(&Case::get("etag probe", path, 200));
    r[0].1.header("etag").expect("etag").to_owned()
}

/// Routes, error pages, methods, CORS and the static files: one server, every case over four
/// protocols.
#[test]
fn routes_static_files_and_middleware_agree_over_every_protocol() {
    let s = site();
    let m = start_site(&s);
    let data_etag = etag_of(&m, "/data.bin");
    let data_modified = m.run(&Case::get("probe", "/data.bin", 200))[0]
        .1
        .header("last-modified")
        .expect("last-modified")
        .to_owned();
    let echo = pattern(100 * 1024, 11);
    let hello = s.hello.clone();
    let data = s.data.clone();
    let data2 = s.data.clone();
    let data3 = s.data.clone();
    let big = s.big.clone();
    let big_len = s.big.len().to_string();
    let js_br = s.js_br.clone();
    let js = s.js.clone();
    let large = s.large.clone();
    let large2 = s.large.clone();
    let data4 = s.data.clone();

    let cases = vec![
        // Routes.
        Case::get("GET /plaintext", "/plaintext", 200).check(|r| {
            assert_eq!(r.body, b"Hello, World!");
            assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        }),
        Case::get("GET /json", "/json", 200).check(|r| {
            assert_eq!(r.json(), serde_json::json!({"message": "Hello, World!"}));
            assert!(r
                .header("content-type")
                .unwrap()
                .starts_with("application/json"));
        }),
        Case {
            same_body: false,
            ..Case::get("GET /healthz", "/healthz", 200).check(|r| {
                let v = r.json();
                assert_eq!(v["status"], "ok");
                assert!(v["shard"].as_u64().is_some_and(|s| s < 2), "shard in {v}");
                assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
            })
        },
        Case::new("POST /echo 100 KiB", "POST", "/echo", 200)
            .body(echo.clone())
            .expect_body(echo.clone()),
        Case::new("PUT /echo", "PUT", "/echo", 200)
            .body(b"put body".to_vec())
            .expect_body("put body"),
        // Error pages.
        Case::get("404 Accept json", "/nowhere", 404)
            .h("accept", "application/json")
            .check(|r| {
                assert!(r
                    .header("content-type")
                    .unwrap()
                    .starts_with("application/json"));
                assert_eq!(r.json()["error"]["status"], 404);
            }),
        Case::get("404 Accept html", "/nowhere", 404)
            .h("accept", "text/html")
            .check(|r| {
                assert!(r.header("content-type").unwrap().starts_with("text/html"));
                assert!(String::from_utf8_lossy(&r.body).contains("404"));
            }),
        Case::new("405 DELETE /plaintext", "DELETE", "/plaintext", 405).check(|r| {
            let allow = r.header("allow").expect("allow");
            assert!(allow.contains("GET"), "allow {allow}");
        }),
        Case::new("405 POST static file", "POST", "/hello.txt", 405)
            .body(Vec::new())
            .check(|r| {
                let allow = r.header("allow").expect("allow");
                assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
            }),
        Case::new("OPTIONS /plaintext", "OPTIONS", "/plaintext", 204).check(|r| {
            let allow = r.header("allow").expect("allow");
            assert!(allow.contains("GET"), "allow {allow}");
            assert!(r.body.is_empty());
        }),
        Case {
            stream: true,
            ..Case::new("POST /echo chunked 100 KiB", "POST", "/echo", 200)
                .body(echo.clone())
                .expect_body(echo.clone())
        },
        Case::new("POST /echo empty", "POST", "/echo", 200)
            .body(Vec::new())
            .check(|r| assert!(r.body.is_empty())),
        Case::get("405 GET /echo", "/echo", 405).check(|r| {
            let allow = r.header("allow").expect("allow");
            assert!(allow.contains("POST") && allow.contains("PUT"), "{allow}");
        }),
        Case::new("405 PATCH /json", "PATCH", "/json", 405).body(b"{}".to_vec()),
        Case::new("HEAD /plaintext", "HEAD", "/plaintext", 200).check(|r| {
            assert!(r.body.is_empty(), "HEAD body");
            assert_eq!(r.header("content-length"), Some("13"));
        }),
        Case::new("HEAD 404", "HEAD", "/nowhere", 404)
            .h("accept", "application/json")
            .check(|r| assert!(r.body.is_empty(), "HEAD body")),
        Case::get("404 default Accept", "/nowhere", 404),
        Case::get("small text not compressed", "/plaintext", 200)
            .h("accept-encoding", "gzip, br, zstd")
            .check(|r| assert!(r.header("content-encoding").is_none())),
        // Static files.
        // Routes answer OPTIONS themselves; static files refuse it with their Allow.
        Case::new("OPTIONS static file", "OPTIONS", "/hello.txt", 405)
            .check(|r| assert_eq!(r.header("allow"), Some("GET, HEAD"))),
        Case::get("static file with query", "/hello.txt?v=2", 200).expect_body(s.hello.clone()),
        Case::get("1 MiB file", "/large.bin", 200).expect_body(s.large.clone()),
        Case::get("Range in 1 MiB file", "/large.bin", 206)
            .h("range", "bytes=500000-600000")
            .check(move |r| assert_eq!(r.body, &large[500000..=600000])),
        Case::get("Range suffix", "/data.bin", 206)
            .h("range", "bytes=-10")
            .check(move |r| assert_eq!(r.body, &data4[4990..])),
        Case::get("Range ignored when malformed", "/large.bin", 200)
            .h("range", "bytes=z-")
            .check(move |r| assert!(r.body == large2)),
        Case::get("Range with Accept-Encoding not coded", "/big.txt", 206)
            .h("range", "bytes=0-99")
            .h("accept-encoding", "gzip")
            .check(|r| assert!(r.header("content-encoding").is_none())),
        Case::new("HEAD gzip", "HEAD", "/big.txt", 200)
            .h("accept-encoding", "gzip")
            .check(|r| {
                assert!(r.body.is_empty(), "HEAD body");
                assert_eq!(r.header("content-encoding"), Some("gzip"));
            }),
        Case::new("HEAD dir without slash", "HEAD", "/dir", 308)
            .check(|r| assert_eq!(r.header("location"), Some("/dir/"))),
        Case::get("file with space", "/with%20space.txt", 200).expect_body("spaced\n"),
        Case::get("GET static file", "/hello.txt", 200).check(move |r| {
            assert_eq!(r.body, hello);
            assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
            assert_eq!(r.header("accept-ranges"), Some("bytes"));
            assert_eq!(r.header("cache-control"), Some("no-cache"));
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        }),
        Case::new("HEAD static file", "HEAD", "/big.txt", 200).check(move |r| {
            assert!(r.body.is_empty(), "HEAD body");
            assert_eq!(r.header("content-length"), Some(big_len.as_str()));
            assert!(r.header("content-encoding").is_none());
        }),
        Case::get("index.html at /", "/", 200).expect_body(s.index.clone()),
        Case::get("dir/ index.html", "/dir/", 200).expect_body(s.dir_index.clone()),
        Case::get("dir without slash", "/dir?x=1", 308).check(|r| {
            assert_eq!(r.header("location"), Some("/dir/?x=1"));
        }),
        Case::get("404 static file", "/missing.txt", 404),
        // Ranges.
        Case::get("Range single", "/data.bin", 206)
            .h("range", "bytes=10-19")
            .check(move |r| {
                assert_eq!(r.body, &data[10..20]);
                assert_eq!(r.header("content-range"), Some("bytes 10-19/5000"));
            }),
        Case {
            multipart: true,
            ..Case::get("Range multi", "/data.bin", 206)
                .h("range", "bytes=0-9,1000-1099")
                .check(move |r| {
                    let p = parts(r);
                    assert_eq!(p.len(), 2);
                    assert_eq!(p[0].1, "bytes 0-9/5000");
                    assert_eq!(p[0].2, &data2[0..10]);
                    assert_eq!(p[1].1, "bytes 1000-1099/5000");
                    assert_eq!(p[1].2, &data2[1000..1100]);
                })
        },
        Case::get("Range unsatisfiable", "/data.bin", 416)
            .h("range", "bytes=99999-")
            .check(|r| assert_eq!(r.header("content-range"), Some("bytes */5000"))),
        // Conditionals.
        Case::get("If-None-Match 304", "/data.bin", 304)
            .h("if-none-match", &data_etag)
            .check(|r| {
                assert!(r.body.is_empty(), "304 body");
                assert!(r.header("etag").is_some());
            }),
        Case::get("If-None-Match * 304", "/data.bin", 304)
            .h("if-none-match", "*")
            .check(|r| assert!(r.body.is_empty(), "304 body")),
        Case::get("If-Modified-Since 304", "/data.bin", 304)
            .h("if-modified-since", &data_modified)
            .check(|r| assert!(r.body.is_empty(), "304 body")),
        Case::new("HEAD If-None-Match 304", "HEAD", "/data.bin", 304)
            .h("if-none-match", &data_etag),
        Case::get("If-None-Match other 200", "/data.bin", 200)
            .h("if-none-match", "\"other\"")
            .expect_body(s.data.clone()),
        Case::get("If-Unmodified-Since past 412", "/data.bin", 412)
            .h("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT"),
        Case::get("If-Match 412", "/data.bin", 412).h("if-match", "\"nope\""),
        Case::get("If-Range current", "/data.bin", 206)
            .h("range", "bytes=0-4")
            .h("if-range", &data_etag)
            .check(move |r| assert_eq!(r.body, &data3[..5])),
        Case::get("If-Range stale", "/data.bin", 200)
            .h("range", "bytes=0-4")
            .h("if-range", "\"stale\"")
            .expect_body(s.data.clone()),
        // Content codings.
        Case::get("identity", "/big.txt", 200).expect_body(s.big.clone()),
        coded("gzip", &big, gunzip),
        coded("br", &big, unbrotli),
        coded("zstd", &big, unzstd),
        Case::get("precompressed .br", "/app.js", 200)
            .h("accept-encoding", "br")
            .check(move |r| {
                assert_eq!(r.body, js_br);
                assert_eq!(r.header("content-encoding"), Some("br"));
                assert!(r
                    .header("vary")
                    .unwrap()
                    .to_ascii_lowercase()
                    .contains("accept-encoding"));
            }),
        Case::get("precompressed not accepted", "/app.js", 200)
            .h("accept-encoding", "identity")
            .expect_body(js),
        // Traversal.
        Case::get("traversal ..%2f", "/..%2f..%2fetc/passwd", 404),
        Case::get(
            "traversal %2e%2e%2f",
            "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            404,
        ),
        Case::get("traversal in dir", "/dir/..%2f..%2f..%2fetc/passwd", 404),
        Case::get("traversal backslash", "/..%5c..%5cetc/passwd", 404),
        // CORS.
        Case::new("CORS preflight", "OPTIONS", "/json", 204)
            .h("origin", "https://app.example")
            .h("access-control-request-method", "POST")
            .check(|r| {
                assert_eq!(
                    r.header("access-control-allow-origin"),
                    Some("https://app.example")
                );
                assert!(r
                    .header("access-control-allow-methods")
                    .unwrap()
                    .contains("POST"));
                assert!(r.body.is_empty());
            }),
        Case::get("CORS simple", "/json", 200)
            .h("origin", "https://app.example")
            .check(|r| {
                assert_eq!(
                    r.header("access-control-allow-origin"),
                    Some("https://app.example")
                );
            }),
        Case::get("CORS other origin", "/json", 200)
            .h("origin", "https://evil.example")
            .check(|r| assert!(r.header("access-control-allow-origin").is_none())),
    ];
    for case in &cases {
        assert_case(&m, case);
    }
}

/// On-the-fly compression of `/big.txt` with `encoding` only.
fn coded(encoding: &'static str, plain: &[u8], decode: fn(&[u8]) -> Vec<u8>) -> Case {
    let plain = plain.to_vec();
    let name: &'static str = match encoding {
        "gzip" => "on-the-fly gzip",
        "br" => "on-the-fly br",
        _ => "on-the-fly zstd",
    };
    Case::get(name, "/big.txt", 200)
        .h("accept-encoding", encoding)
        .check(move |r| {
            assert_eq!(r.header("content-encoding"), Some(encoding));
            assert!(r.body.len() < plain.len(), "compressed");
            assert!(decode(&r.body) == plain, "decodes to the file");
            assert!(r
                .header("vary")
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding"));
        })
}

// ---------------------------------------------------------------------------------------------
// Rate limit and access log

/// `--rate-limit 5 --rate-limit-burst 5`: a fresh server per protocol (the bucket is per client
/// address, and all four clients are 127.0.0.1). The burst is allowed, then 429 with Retry-After;
/// the first answer and the first 429 agree across protocols.
#[test]
fn rate_limit_answers_429_alike_over_every_protocol() {
    let first = Case::get("rate-limited first", "/plaintext", 200)
        .check(|r| assert_eq!(r.header("ratelimit-limit"), Some("5")));
    let limited = Case::get("rate-limited 429", "/plaintext", 429).check(|r| {
        assert!(r.header("retry-after").is_some(), "retry-after");
        assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    });
    let mut firsts = Vec::new();
    let mut denials = Vec::new();
    for p in PROTOS {
        let m = Matrix::start(&["--rate-limit", "5", "--rate-limit-burst", "5"]);
        let (_, c, base) = m.clients.iter().find(|(q, _, _)| *q == p).unwrap();
        let mut allowed = 0;
        let denial = loop {
            let r = send(c, base, p, &first);
            if r.status == 429 {
                break r;
            }
            assert_eq!(r.status, 200, "[rate limit over {p:?}] {:?}", r.headers);
            if allowed == 0 {
                (first.check)(&r);
                firsts.push((p, r));
            }
            allowed += 1;
            assert!(
                allowed <= 8,
                "[rate limit over {p:?}] no 429 after {allowed}"
            );
        };
        // The burst (5), plus at most one token leased to the other shard or refilled.
        assert!(
            (5..=7).contains(&allowed),
            "[rate limit over {p:?}] {allowed} allowed"
        );
        (limited.check)(&denial);
        denials.push((p, denial));
    }
    for (case, answers) in [(&first, &firsts), (&limited, &denials)] {
        let (_, h1) = &answers[0];
        for (p, r) in &answers[1..] {
            assert_eq!(r.status, h1.status, "[{} over {p:?}] status", case.name);
            assert_eq!(r.body, h1.body, "[{} over {p:?}] body", case.name);
            for name in MUST_MATCH {
                assert_eq!(
                    r.header(name),
                    h1.header(name),
                    "[{} over {p:?}] header {name} differs from H1",
                    case.name
                );
            }
            assert_eq!(
                comparable(r, false),
                comparable(h1, false),
                "[{} over {p:?}] header fields differ from H1",
                case.name
            );
        }
    }
}

/// `--access-log FILE`: one JSON line per request, `protocol` naming the one it came over.
#[test]
fn access_log_names_the_protocol() {
    let dir = TempDir::new("log");
    let log = dir.file("access.log");
    let m = Matrix::start(&["--access-log", &log]);
    for (p, c, base) in &m.clients {
        let case =
            Case::get("access log", "/plaintext", 200).h("x-request-id", &format!("matrix-{p:?}"));
        let r = send(c, base, *p, &case);
        assert_eq!(r.status, 200, "[access log over {p:?}]");
        assert_eq!(
            r.header("x-request-id"),
            Some(format!("matrix-{p:?}").as_str())
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 4)
        }),
        "access log: {:?}; server log: {}",
        std::fs::read_to_string(&log),
        m.server.log_text()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 4, "one line per request: {text}");
    for p in PROTOS {
        let id = format!("matrix-{p:?}");
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("[access log over {p:?}] no line for {id}: {text}"));
        assert_eq!(
            line["protocol"],
            p.log_name(),
            "[access log over {p:?}] {line}"
        );
        assert_eq!(line["method"], "GET", "[access log over {p:?}] {line}");
        assert_eq!(line["path"], "/plaintext", "[access log over {p:?}] {line}");
        assert_eq!(line["status"], 200, "[access log over {p:?}] {line}");
        assert_eq!(line["bytes"], 13, "[access log over {p:?}] {line}");
    }
}

/// The optional static-file and middleware flags: a listing, the SPA fallback, a Cache-Control
/// pattern, a shorter HSTS max-age, timing, and a smaller body limit.
#[test]
fn optional_flags_agree_over_every_protocol() {
    let root = TempDir::new("flags");
    root.write("index.html", "<div id=app></div>");
    root.write("site.css", "body{}");
    root.write("app.js", "boot()");
    root.write("files/plain.txt", "plain");
    root.write("files/.hidden", "x");
    root.mkdir("files/sub");
    let m = Matrix::start(&[
        "--root",
        root.path_str(),
        "--listing",
        "--spa-fallback",
        "index.html",
        "--cache-control",
        "*.css=max-age=60",
        "--hsts-max-age",
        "600",
        "--timing",
        "--max-body",
        "64KiB",
    ]);
    let cases = vec![
        Case::get("listing", "/files/", 200).check(|r| {
            let html = String::from_utf8_lossy(&r.body);
            assert!(
                html.contains("plain.txt") && html.contains("sub/"),
                "{html}"
            );
            assert!(!html.contains(".hidden"), "{html}");
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        }),
        Case::get("listing dir without slash", "/files", 308)
            .check(|r| assert_eq!(r.header("location"), Some("/files/"))),
        Case::get("SPA fallback", "/some/client/route?tab=2", 200)
            .expect_body("<div id=app></div>"),
        Case::new("SPA fallback HEAD", "HEAD", "/users/42", 200)
            .check(|r| assert_eq!(r.header("content-length"), Some("18"))),
        Case::get("SPA keeps real files", "/app.js", 200).check(|r| {
            assert_eq!(r.body, b"boot()");
            assert_eq!(r.header("cache-control"), Some("no-cache"));
        }),
        Case::get("Cache-Control pattern", "/site.css", 200)
            .check(|r| assert_eq!(r.header("cache-control"), Some("max-age=60"))),
        Case::get("SPA no traversal", "/..%2f..%2fetc/passwd", 404),
        Case::get("SPA no dotfile", "/files/.hidden", 404),
        Case::get("plaintext with timing", "/plaintext", 200).expect_body("Hello, World!"),
        Case::new("POST /echo under --max-body", "POST", "/echo", 200)
            .body(pattern(60 * 1024, 2))
            .expect_body(pattern(60 * 1024, 2)),
        // Refused by the connection layer before the app: plain text, no middleware fields.
        Case {
            app: false,
            ..Case::new("POST /echo over --max-body", "POST", "/echo", 413)
                .body(pattern(100 * 1024, 2))
                .h("accept", "application/json")
                .expect_body("Payload Too Large\n")
        },
        // (A streamed body over the limit is left out: the server answers 413 mid-body, and
        // reqwest's blocking body pump then reports the closed channel instead of the answer.)
    ];
    for case in &cases {
        assert_case(&m, case);
    }
}

// ---------------------------------------------------------------------------------------------
// Request limits: where the protocols differ (see the ignore reasons)

/// Refusals by the connection layer, expected alike on all four (as HTTP/1.1 answers them).
fn refusal(name: &'static str, path: &str, status: u16, body: &'static str) -> Case {
    Case {
        app: false,
        ..Case::get(name, path, status).expect_body(body)
    }
}

#[test]
fn request_target_limit_agrees_over_every_protocol() {
    let m = Matrix::start(&[]);
    let path = format!("/{}", "a".repeat(9000));
    let query = format!("/plaintext?{}", "a".repeat(9000));
    assert_case(&m, &refusal("9000-byte path", &path, 414, "URI Too Long\n"));
    assert_case(
        &m,
        &refusal("9000-byte query", &query, 414, "URI Too Long\n"),
    );
}

#[test]
fn header_count_limit_agrees_over_every_protocol() {
    let m = Matrix::start(&[]);
    let mut case = refusal(
        "101 header fields",
        "/plaintext",
        431,
        "Request Header Fields Too Large\n",
    );
    for i in 0..101 {
        case = case.h(&format!("x-h{i}"), "v");
    }
    assert_case(&m, &case);
}

#[test]
fn header_bytes_limit_agrees_over_every_protocol() {
    let m = Matrix::start(&[]);
    let case = refusal(
        "70 KiB header",
        "/plaintext",
        431,
        "Request Header Fields Too Large\n",
    )
    .h("x-big", &"b".repeat(70 * 1024));
    assert_case(&m, &case);
}
