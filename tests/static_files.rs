//! Static file serving (`--root`), against the real binary: every rule of the static-files issue
//! (#5) is one test here, except path traversal (`tests/static_traversal.rs`). Each test writes
//! its own root in a fresh temporary directory and starts its own server on it.
//!
//! Clients: reqwest (blocking, no content decoding: compressed bodies are decoded here with
//! flate2, brotli and zstd), raw sockets read with httparse (exact bytes, exact heads), and curl
//! as a second, independent decoder of the codings.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::codings::{gunzip, unbrotli, unzstd};
use common::files::{pattern, text, TempDir};
use common::{client, stable_headers, RawResponse, ResponseReader, Server};

// ---------------------------------------------------------------------------------------------
// Harness

/// `percore serve --shards 2 --root ROOT` plus `extra`.
fn serve(root: &TempDir, extra: &[&str]) -> Server {
    let mut flags = vec!["--root", root.path_str()];
    flags.extend_from_slice(extra);
    Server::start_with(&["--shards", "2"], &flags, |_| {})
}

/// One request on a fresh connection (`Connection: close`): the response, and whatever the
/// server sent after it before closing (must be nothing).
fn exchange(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (RawResponse, Vec<u8>) {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).expect("send request");
    let mut reader = ResponseReader::new();
    let res = reader
        .read(&mut stream, method == "HEAD")
        .unwrap_or_else(|e| panic!("{method} {target}: no response: {e}"));
    let mut rest = std::mem::take(&mut reader.buf);
    stream
        .read_to_end(&mut rest)
        .expect("server closes after Connection: close");
    (res, rest)
}

/// A request on a fresh connection; asserts nothing follows the response.
fn request(server: &Server, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let (res, rest) = exchange(server, method, target, headers);
    assert!(
        rest.is_empty(),
        "{method} {target}: {} bytes after the response",
        rest.len()
    );
    res
}

fn get(server: &Server, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    request(server, "GET", target, headers)
}

fn header<'a>(res: &'a RawResponse, name: &str) -> &'a str {
    res.header(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", res.headers))
}

/// Decodes a whole body of one content coding.
type Decoder = fn(&[u8]) -> Vec<u8>;

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
struct Part {
    content_type: String,
    content_range: String,
    body: Vec<u8>,
}

/// Parses a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1.1) strictly: each part's
/// length comes from its own Content-Range, and the delimiter must follow it exactly.
fn parse_byteranges(content_type: &str, body: &[u8]) -> Vec<Part> {
    let (essence, params) = content_type
        .split_once(';')
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"));
    assert_eq!(essence.trim(), "multipart/byteranges");
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .expect("boundary parameter")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut pos = find(body, delimiter.as_bytes()).expect("first delimiter");
    assert!(
        body[..pos].iter().all(|b| *b == b'\r' || *b == b'\n'),
        "preamble before the first delimiter: {:?}",
        String::from_utf8_lossy(&body[..pos])
    );
    let mut parts = Vec::new();
    loop {
        pos += delimiter.len();
        if body[pos..].starts_with(b"--") {
            assert!(
                body[pos + 2..].iter().all(|b| *b == b'\r' || *b == b'\n'),
                "epilogue after the close delimiter"
            );
            return parts;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF after a delimiter");
        pos += 2;
        let head_end = pos + find(&body[pos..], b"\r\n\r\n").expect("end of part head");
        let head = std::str::from_utf8(&body[pos..head_end]).expect("ASCII part head");
        let mut content_type = String::new();
        let mut content_range = String::new();
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').expect("name: value");
            match name.to_ascii_lowercase().as_str() {
                "content-type" => content_type = value.trim().to_owned(),
                "content-range" => content_range = value.trim().to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .and_then(|(r, _)| r.split_once('-'))
            .expect("Content-Range: bytes a-b/len");
        let len = last.parse::<usize>().unwrap() - first.parse::<usize>().unwrap() + 1;
        pos = head_end + 4;
        let data = body[pos..pos + len].to_vec();
        pos += len;
        assert!(
            body[pos..].starts_with(format!("\r\n{delimiter}").as_bytes()),
            "a delimiter right after the part's {len} bytes"
        );
        pos += 2;
        parts.push(Part {
            content_type,
            content_range,
            body: data,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// GET and HEAD

#[test]
fn get_serves_the_file_bytes() {
    let root = TempDir::new("get");
    let contents = pattern(3000, 1);
    root.write("data.bin", &contents);
    let server = serve(&root, &[]);

    let res = client().get(server.url("/data.bin")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "3000");
    assert_eq!(res.bytes().unwrap().as_ref(), &contents[..]);

    let raw = get(&server, "/data.bin", &[]);
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, contents);
    // A query string does not change the file; a trailing slash names a directory, not it.
    let raw = get(&server, "/data.bin?v=123&x", &[]);
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, contents);
    assert_eq!(get(&server, "/data.bin/", &[]).status, 404);
}

#[test]
fn head_has_the_get_headers_and_content_length_without_a_body() {
    let root = TempDir::new("head");
    root.write("page.html", text(5000));
    root.write("data.bin", pattern(3000, 2));
    let server = serve(&root, &[]);

    for path in ["/page.html", "/data.bin"] {
        let got = get(&server, path, &[]);
        let (head, rest) = exchange(&server, "HEAD", path, &[]);
        assert_eq!(head.status, 200);
        assert!(
            rest.is_empty(),
            "HEAD {path} sent {} body bytes",
            rest.len()
        );
        assert_eq!(stable_headers(&head), stable_headers(&got), "{path}");
        assert_eq!(header(&head, "content-length"), got.body.len().to_string());
    }
    // The same for a representation compressed on the fly.
    let ae = [("Accept-Encoding", "gzip")];
    let got = get(&server, "/page.html", &ae);
    let (head, rest) = exchange(&server, "HEAD", "/page.html", &ae);
    assert_eq!(header(&got, "content-encoding"), "gzip");
    assert!(rest.is_empty(), "HEAD sent {} body bytes", rest.len());
    assert_eq!(stable_headers(&head), stable_headers(&got));
}

// ---------------------------------------------------------------------------------------------
// Content types

#[test]
fn content_type_follows_the_extension_with_charset_for_text_and_nosniff() {
    let root = TempDir::new("ctype");
    let cases = [
        ("a.html", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.xml", "application/xml; charset=utf-8"),
        ("A.PNG", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.pdf", "application/pdf"),
        ("no-extension", "application/octet-stream"),
        ("a.unknownext", "application/octet-stream"),
    ];
    for (name, _) in cases {
        root.write(name, b"x");
    }
    let server = serve(&root, &[]);
    for (name, expected) in cases {
        let res = get(&server, &format!("/{name}"), &[]);
        assert_eq!(res.status, 200, "{name}");
        assert_eq!(header(&res, "content-type"), expected, "{name}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Directories

#[test]
fn index_html_is_served_for_the_root_and_for_a_directory_with_a_slash() {
    let root = TempDir::new("index");
    root.write("index.html", "<h1>home</h1>");
    root.write("docs/index.html", "<h1>docs</h1>");
    let server = serve(&root, &[]);

    let res = get(&server, "/", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"<h1>home</h1>");
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");

    let res = get(&server, "/docs/", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"<h1>docs</h1>");
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
}

#[test]
fn directory_without_slash_redirects_308_to_slash_keeping_the_query() {
    let root = TempDir::new("redir");
    root.write("docs/index.html", "docs");
    root.write("docs/deeper/index.html", "deeper");
    root.write("my docs/index.html", "mine");
    let server = serve(&root, &[]);

    for (target, location) in [
        ("/docs", "/docs/"),
        ("/docs?lang=en&x=1", "/docs/?lang=en&x=1"),
        ("/docs/deeper?q", "/docs/deeper/?q"),
        ("/my%20docs?a=%2F", "/my%20docs/?a=%2F"),
    ] {
        let res = get(&server, target, &[]);
        assert_eq!(res.status, 308, "{target}");
        assert_eq!(header(&res, "location"), location, "{target}");
    }
    // reqwest follows it to the index, method and all.
    let res = client().get(server.url("/docs?lang=en")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.url().as_str(), server.url("/docs/?lang=en"));
    assert_eq!(res.text().unwrap(), "docs");
}

// ---------------------------------------------------------------------------------------------
// Validators and conditional requests

#[test]
fn etag_and_last_modified_are_present() {
    let root = TempDir::new("validators");
    let path = root.write("a.txt", "hello");
    let server = serve(&root, &[]);

    let res = get(&server, "/a.txt", &[]);
    assert_eq!(res.status, 200);
    let etag = header(&res, "etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong entity tag: {etag}"
    );
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let last_modified = httpdate::parse_http_date(header(&res, "last-modified"))
        .expect("an HTTP-date in Last-Modified");
    let diff = match modified.duration_since(last_modified) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        diff < Duration::from_secs(1),
        "Last-Modified is the file's mtime"
    );
}

#[test]
fn if_none_match_exact_list_star_and_weak_give_304_without_a_body() {
    let root = TempDir::new("inm");
    root.write("a.txt", "hello");
    let server = serve(&root, &[]);
    let etag = header(&get(&server, "/a.txt", &[]), "etag").to_owned();

    for value in [
        etag.clone(),
        format!("\"nope\", {etag}"),
        format!("\"nope\",{etag} , \"other\""),
        "*".to_owned(),
        format!("W/{etag}"),
    ] {
        for method in ["GET", "HEAD"] {
            let (res, rest) = exchange(&server, method, "/a.txt", &[("If-None-Match", &value)]);
            assert_eq!(res.status, 304, "{method} If-None-Match: {value}");
            assert!(rest.is_empty(), "304 with a body for {value}");
            assert_eq!(header(&res, "etag"), etag);
        }
    }
    // A tag that does not match still gets the file.
    let res = get(
        &server,
        "/a.txt",
        &[("If-None-Match", "\"nope\", W/\"other\"")],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
}

#[test]
fn a_304_carries_the_cache_update_fields_and_no_other_metadata() {
    // RFC 9110 §15.4.5: ETag, Cache-Control, Vary and Date, which update the stored response;
    // no Last-Modified beside an ETag, no Content-Type or Content-Length of a body not sent.
    let root = TempDir::new("304-fields");
    root.write("big.txt", text(20 * 1024));
    let server = serve(&root, &[]);
    let fresh = get(&server, "/big.txt", &[]);
    let etag = header(&fresh, "etag").to_owned();
    assert!(fresh.header("last-modified").is_some());

    let (res, _) = exchange(&server, "GET", "/big.txt", &[("If-None-Match", &etag)]);
    assert_eq!(res.status, 304);
    assert_eq!(header(&res, "etag"), etag);
    assert_eq!(
        header(&res, "cache-control"),
        header(&fresh, "cache-control")
    );
    assert_eq!(header(&res, "vary"), header(&fresh, "vary"));
    assert!(res.header("date").is_some());
    for absent in [
        "last-modified",
        "content-type",
        "content-length",
        "accept-ranges",
    ] {
        assert!(res.header(absent).is_none(), "{absent} on a 304");
    }
}

#[test]
fn if_none_match_compares_the_entity_tag_of_the_coded_representation() {
    let root = TempDir::new("inm-coded");
    root.write("big.txt", text(20 * 1024));
    let server = serve(&root, &[]);
    let ae = ("Accept-Encoding", "gzip");
    let identity_tag = header(&get(&server, "/big.txt", &[]), "etag").to_owned();
    let gzip_tag = header(&get(&server, "/big.txt", &[ae]), "etag").to_owned();
    assert_ne!(identity_tag, gzip_tag);

    let res = get(&server, "/big.txt", &[ae, ("If-None-Match", &gzip_tag)]);
    assert_eq!(res.status, 304);
    assert_eq!(header(&res, "etag"), gzip_tag);
    // The identity tag does not validate the gzip representation, nor the other way round.
    let res = get(&server, "/big.txt", &[ae, ("If-None-Match", &identity_tag)]);
    assert_eq!(res.status, 200);
    assert_eq!(header(&res, "content-encoding"), "gzip");
    let res = get(&server, "/big.txt", &[("If-None-Match", &gzip_tag)]);
    assert_eq!(res.status, 200);
    assert!(res.header("content-encoding").is_none());
}

#[test]
fn if_modified_since_last_modified_gives_304() {
    let root = TempDir::new("ims");
    root.write("a.txt", "hello");
    let server = serve(&root, &[]);
    let last_modified = header(&get(&server, "/a.txt", &[]), "last-modified").to_owned();

    let (res, rest) = exchange(
        &server,
        "GET",
        "/a.txt",
        &[("If-Modified-Since", &last_modified)],
    );
    assert_eq!(res.status, 304);
    assert!(rest.is_empty(), "304 with a body");
    // A later date too; an earlier one gets the file.
    let res = get(
        &server,
        "/a.txt",
        &[("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
    );
    assert_eq!(res.status, 304);
    let res = get(
        &server,
        "/a.txt",
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
}

#[test]
fn if_match_mismatch_gives_412() {
    let root = TempDir::new("im");
    root.write("a.txt", "hello");
    let server = serve(&root, &[]);
    let etag = header(&get(&server, "/a.txt", &[]), "etag").to_owned();

    let res = get(&server, "/a.txt", &[("If-Match", "\"not-the-tag\"")]);
    assert_eq!(res.status, 412);
    assert!(!res.body.windows(5).any(|w| w == b"hello"));
    // The current tag (or `*`) passes.
    for value in [etag.as_str(), "*"] {
        let res = get(&server, "/a.txt", &[("If-Match", value)]);
        assert_eq!(res.status, 200, "If-Match: {value}");
        assert_eq!(res.body, b"hello");
    }
}

#[test]
fn if_unmodified_since_in_the_past_gives_412() {
    let root = TempDir::new("ius");
    root.write("a.txt", "hello");
    let server = serve(&root, &[]);

    let res = get(
        &server,
        "/a.txt",
        &[("If-Unmodified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    );
    assert_eq!(res.status, 412);
    let res = get(
        &server,
        "/a.txt",
        &[("If-Unmodified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
}

// ---------------------------------------------------------------------------------------------
// Ranges

#[test]
fn single_ranges_give_206_with_the_bytes_and_content_range() {
    let root = TempDir::new("range");
    let contents = pattern(10_000, 3);
    root.write("data.bin", &contents);
    let server = serve(&root, &[]);

    for (spec, first, last) in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=9000-", 9000, 9999),
        ("bytes=-500", 9500, 9999),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=-20000", 0, 9999),
    ] {
        let res = get(&server, "/data.bin", &[("Range", spec)]);
        assert_eq!(res.status, 206, "{spec}");
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {first}-{last}/10000"),
            "{spec}"
        );
        assert_eq!(res.body, &contents[first..=last], "{spec}");
        assert_eq!(header(&res, "content-type"), "application/octet-stream");
    }
    // An independent client agrees.
    let res = client()
        .get(server.url("/data.bin"))
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().unwrap().as_ref(), &contents[9990..]);
}

#[test]
fn several_ranges_give_multipart_byteranges_with_the_right_parts() {
    let root = TempDir::new("multi");
    let contents = text(20_000);
    root.write("big.txt", &contents);
    let server = serve(&root, &[]);

    let res = get(
        &server,
        "/big.txt",
        &[
            ("Range", "bytes=0-9, 1000-1099 ,-50"),
            ("Accept-Encoding", "gzip"),
        ],
    );
    assert_eq!(res.status, 206);
    assert!(res.header("content-range").is_none());
    assert!(res.header("content-encoding").is_none());
    let parts = parse_byteranges(header(&res, "content-type"), &res.body);
    let expected = [(0, 9), (1000, 1099), (19_950, 19_999)];
    assert_eq!(parts.len(), expected.len(), "{parts:?}");
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(part.content_type, "text/plain; charset=utf-8");
        assert_eq!(part.content_range, format!("bytes {first}-{last}/20000"));
        assert_eq!(part.body, &contents[first..=last]);
    }
}

#[test]
fn unsatisfiable_range_gives_416_with_content_range_star() {
    let root = TempDir::new("416");
    root.write("data.bin", pattern(1000, 4));
    let server = serve(&root, &[]);

    for spec in ["bytes=1000-", "bytes=5000-6000", "bytes=1000-1000,2000-"] {
        let res = get(&server, "/data.bin", &[("Range", spec)]);
        assert_eq!(res.status, 416, "{spec}");
        assert_eq!(header(&res, "content-range"), "bytes */1000", "{spec}");
    }
}

#[test]
fn malformed_range_is_ignored_and_gets_the_whole_file() {
    let root = TempDir::new("badrange");
    let contents = pattern(1000, 8);
    root.write("data.bin", &contents);
    let server = serve(&root, &[]);

    for spec in [
        "bytes=abc",
        "bytes=5-2",
        "items=0-9",
        "bytes=--1",
        "bytes=0-9;x",
    ] {
        let res = get(&server, "/data.bin", &[("Range", spec)]);
        assert_eq!(res.status, 200, "{spec}");
        assert!(res.header("content-range").is_none(), "{spec}");
        assert_eq!(res.body, contents, "{spec}");
    }
}

#[test]
fn if_range_with_the_current_etag_gives_206_and_with_an_old_one_200() {
    let root = TempDir::new("ifrange");
    let contents = pattern(5000, 5);
    root.write("data.bin", &contents);
    let server = serve(&root, &[]);
    let etag = header(&get(&server, "/data.bin", &[]), "etag").to_owned();

    let res = get(
        &server,
        "/data.bin",
        &[("Range", "bytes=10-19"), ("If-Range", &etag)],
    );
    assert_eq!(res.status, 206);
    assert_eq!(header(&res, "content-range"), "bytes 10-19/5000");
    assert_eq!(res.body, &contents[10..20]);

    for old in ["\"an-old-tag\"", &format!("W/{etag}")] {
        let res = get(
            &server,
            "/data.bin",
            &[("Range", "bytes=10-19"), ("If-Range", old)],
        );
        assert_eq!(res.status, 200, "If-Range: {old}");
        assert!(res.header("content-range").is_none());
        assert_eq!(res.body, contents, "If-Range: {old}");
    }
}

#[test]
fn more_ranges_than_max_ranges_get_the_whole_file() {
    let root = TempDir::new("maxranges");
    let contents = pattern(10_000, 6);
    root.write("data.bin", &contents);
    let server = serve(&root, &["--max-ranges", "2"]);

    let res = get(
        &server,
        "/data.bin",
        &[("Range", "bytes=0-9,1000-1009,5000-5009")],
    );
    assert_eq!(res.status, 200);
    assert!(res.header("content-range").is_none());
    assert_eq!(res.body, contents);

    // Two ranges are still served.
    let res = get(&server, "/data.bin", &[("Range", "bytes=0-9,1000-1009")]);
    assert_eq!(res.status, 206);
    assert_eq!(
        parse_byteranges(header(&res, "content-type"), &res.body).len(),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Content codings

#[test]
fn precompressed_sibling_is_served_with_content_encoding_and_vary() {
    let root = TempDir::new("sibling");
    let plain = b"console.log('plain');\n".to_vec();
    let br = b"pretend-brotli-bytes\x00\x01\x02".to_vec();
    let gz = b"pretend-gzip-bytes\xff\xfe".to_vec();
    root.write("app.js", &plain);
    root.write("app.js.br", &br);
    root.write("app.js.gz", &gz);
    let server = serve(&root, &[]);

    for (accept, encoding, body) in [
        ("br", Some("br"), &br),
        ("gzip", Some("gzip"), &gz),
        ("gzip, br", Some("br"), &br),
        ("br;q=0.5, gzip", Some("gzip"), &gz),
        ("zstd", None, &plain),
        ("identity", None, &plain),
    ] {
        let res = get(&server, "/app.js", &[("Accept-Encoding", accept)]);
        assert_eq!(res.status, 200, "{accept}");
        assert_eq!(res.header("content-encoding"), encoding, "{accept}");
        assert_eq!(&res.body, body, "{accept}");
        assert_eq!(header(&res, "content-length"), body.len().to_string());
        assert_eq!(
            header(&res, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert!(
            header(&res, "vary")
                .to_ascii_lowercase()
                .contains("accept-encoding"),
            "{accept}"
        );
    }
    let res = get(&server, "/app.js", &[]);
    assert_eq!(res.body, plain);
    assert!(res.header("content-encoding").is_none());
    assert!(header(&res, "vary")
        .to_ascii_lowercase()
        .contains("accept-encoding"));
}

/// `curl --compressed` with only `encoding` offered: the decoded body (curl's own decoder).
fn curl_decoded(url: &str, encoding: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-D", "/dev/stderr", "--compressed", "-H"])
        .arg(format!("Accept-Encoding: {encoding}"))
        .arg(url)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {:?}", out);
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.stdout,
    )
}

fn curl_supports(feature: &str) -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                l.starts_with("Features:")
                    && l.split_whitespace()
                        .any(|f| f.eq_ignore_ascii_case(feature))
            })
        })
        .unwrap_or(false)
}

#[test]
fn text_is_compressed_on_the_fly_with_gzip_br_and_zstd() {
    let root = TempDir::new("onthefly");
    let contents = text(20 * 1024);
    root.write("big.txt", &contents);
    let server = serve(&root, &[]);
    let identity_etag = header(&get(&server, "/big.txt", &[]), "etag").to_owned();

    let decoders: [(&str, Decoder); 3] = [("gzip", gunzip), ("br", unbrotli), ("zstd", unzstd)];
    for (encoding, decode) in decoders {
        let res = client()
            .get(server.url("/big.txt"))
            .header("Accept-Encoding", encoding)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{encoding}");
        let h = res.headers().clone();
        assert_eq!(h["content-encoding"], encoding);
        assert!(h["vary"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding"));
        assert_eq!(h["content-type"], "text/plain; charset=utf-8");
        assert_ne!(
            h["etag"],
            identity_etag.as_str(),
            "{encoding}: own entity tag"
        );
        let body = res.bytes().unwrap();
        assert!(
            body.len() < contents.len() / 2,
            "{encoding}: {} bytes",
            body.len()
        );
        assert_eq!(h["content-length"], body.len().to_string());
        assert!(
            decode(&body) == contents,
            "{encoding} body decodes to the file"
        );

        if curl_supports(if encoding == "gzip" { "libz" } else { encoding }) {
            let (head, decoded) = curl_decoded(&server.url("/big.txt"), encoding);
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-encoding: {encoding}")),
                "{head}"
            );
            assert!(decoded == contents, "curl decodes {encoding} to the file");
        }
    }
}

#[test]
fn range_requests_are_not_compressed() {
    let root = TempDir::new("norange");
    let contents = text(20 * 1024);
    root.write("big.txt", &contents);
    let server = serve(&root, &[]);

    let res = get(
        &server,
        "/big.txt",
        &[
            ("Range", "bytes=100-4099"),
            ("Accept-Encoding", "gzip, br, zstd"),
        ],
    );
    assert_eq!(res.status, 206);
    assert!(res.header("content-encoding").is_none());
    assert_eq!(header(&res, "content-range"), "bytes 100-4099/20480");
    assert_eq!(res.body, &contents[100..4100]);
}

#[test]
fn images_are_not_compressed() {
    let root = TempDir::new("noimage");
    // Compressible bytes under an image name: only the type may stop the compression.
    let contents = text(20 * 1024);
    root.write("photo.png", &contents);
    root.write("photo.jpg", &contents);
    let server = serve(&root, &[]);

    for path in ["/photo.png", "/photo.jpg"] {
        let res = get(&server, path, &[("Accept-Encoding", "gzip, br, zstd")]);
        assert_eq!(res.status, 200);
        assert!(res.header("content-encoding").is_none(), "{path}");
        assert_eq!(res.body, contents, "{path}");
    }
}

#[test]
fn nothing_is_compressed_without_accept_encoding() {
    let root = TempDir::new("noae");
    let contents = text(20 * 1024);
    root.write("big.txt", &contents);
    let server = serve(&root, &[]);

    let res = get(&server, "/big.txt", &[]);
    assert_eq!(res.status, 200);
    assert!(res.header("content-encoding").is_none());
    assert_eq!(res.body, contents);
    let res = client().get(server.url("/big.txt")).send().unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.bytes().unwrap().as_ref(), &contents[..]);
}

// ---------------------------------------------------------------------------------------------
// Names

#[test]
fn names_with_spaces_and_unicode_are_served_percent_encoded() {
    let root = TempDir::new("names");
    let cases = [
        ("hello world.txt", "/hello%20world.txt"),
        ("café ünï.txt", "/caf%C3%A9%20%C3%BCn%C3%AF.txt"),
        ("日本語.txt", "/%E6%97%A5%E6%9C%AC%E8%AA%9E.txt"),
        ("100%.txt", "/100%25.txt"),
        ("a+b.txt", "/a+b.txt"),
        (
            "dir with space/inner é.txt",
            "/dir%20with%20space/inner%20%c3%a9.txt",
        ),
    ];
    for (name, _) in cases {
        root.write(name, format!("contents of {name}"));
    }
    let server = serve(&root, &[]);
    for (name, target) in cases {
        let res = get(&server, target, &[]);
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(res.body_str(), format!("contents of {name}"), "{target}");
    }
    // reqwest encodes the names itself.
    let res = client().get(server.url("/café ünï.txt")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().unwrap(), "contents of café ünï.txt");
}

// ---------------------------------------------------------------------------------------------
// Changes on disk

/// Asks on fresh connections (so both shards answer) until `done` holds for `rounds` answers in
/// a row, or `deadline` passes.
fn poll_fresh(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    deadline: Instant,
    done: impl Fn(&RawResponse) -> bool,
) -> bool {
    let mut in_a_row = 0;
    while Instant::now() < deadline {
        if done(&get(server, path, headers)) {
            in_a_row += 1;
            if in_a_row >= 8 {
                return true;
            }
        } else {
            in_a_row = 0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_changed_file_is_served_fresh_within_a_second() {
    let root = TempDir::new("changed");
    let path = root.write("live.txt", "version one");
    root.write("live.css", text(4000));
    let server = serve(&root, &[]);
    // Both shards have it cached.
    for _ in 0..8 {
        assert_eq!(get(&server, "/live.txt", &[]).body, b"version one");
        get(&server, "/live.css", &[("Accept-Encoding", "gzip")]);
    }

    std::fs::write(&path, "the second version").unwrap();
    let new_css = text(5000);
    std::fs::write(root.path().join("live.css"), &new_css).unwrap();
    let written = Instant::now();
    assert!(
        poll_fresh(
            &server,
            "/live.txt",
            &[],
            written + Duration::from_millis(1500),
            |r| { r.body == b"the second version" }
        ),
        "the new contents were not served within 1.5 s"
    );
    // Compressed copies are not stale either.
    assert!(
        poll_fresh(
            &server,
            "/live.css",
            &[("Accept-Encoding", "gzip")],
            written + Duration::from_millis(1500),
            |r| r.header("content-encoding") == Some("gzip") && gunzip(&r.body) == new_css
        ),
        "the new contents were not served gzipped within 1.5 s"
    );
    let res = get(&server, "/live.css", &[("Accept-Encoding", "gzip")]);
    let etag = header(&res, "etag").to_owned();
    let res = get(&server, "/live.css", &[]);
    assert_eq!(res.body, new_css);
    assert_ne!(header(&res, "etag"), etag);
}

#[test]
fn a_deleted_file_is_404_within_a_second() {
    let root = TempDir::new("deleted");
    let path = root.write("gone.txt", "here for now");
    let big = root.write("gone.bin", pattern(400_000, 9));
    let server = serve(&root, &[]);
    for _ in 0..8 {
        assert_eq!(get(&server, "/gone.txt", &[]).status, 200);
        assert_eq!(get(&server, "/gone.bin", &[]).status, 200);
    }

    std::fs::remove_file(path).unwrap();
    std::fs::remove_file(big).unwrap();
    let deleted = Instant::now();
    for target in ["/gone.txt", "/gone.bin"] {
        assert!(
            poll_fresh(
                &server,
                target,
                &[],
                deleted + Duration::from_millis(1500),
                |r| { r.status == 404 }
            ),
            "{target} still served 1.5 s after its deletion"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What is refused

#[test]
fn dotfiles_are_404_unless_dotfiles_is_set() {
    let root = TempDir::new("dot");
    root.write(".env", "SECRET=1");
    root.write(".well-known/security.txt", "Contact: x");
    root.write("dir/.hidden.txt", "hidden");
    let targets = [
        "/.env",
        "/.well-known/security.txt",
        "/dir/.hidden.txt",
        "/%2eenv",
    ];

    let server = serve(&root, &[]);
    for target in targets {
        let res = get(&server, target, &[]);
        assert_eq!(res.status, 404, "{target}");
        assert!(!res.body_str().contains("SECRET"));
    }
    drop(server);

    let server = serve(&root, &["--dotfiles"]);
    for (target, body) in [
        ("/.env", "SECRET=1"),
        ("/.well-known/security.txt", "Contact: x"),
        ("/dir/.hidden.txt", "hidden"),
    ] {
        let res = get(&server, target, &[]);
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(res.body_str(), body);
    }
}

#[test]
fn post_to_a_file_gives_405_with_allow_get_head() {
    let root = TempDir::new("post");
    root.write("a.txt", "hello");
    root.write("docs/index.html", "docs");
    let server = serve(&root, &[]);

    for (method, target) in [
        ("POST", "/a.txt"),
        ("PUT", "/a.txt"),
        ("DELETE", "/a.txt"),
        ("POST", "/docs/"),
    ] {
        let res = request(&server, method, target, &[]);
        assert_eq!(res.status, 405, "{method} {target}");
        assert_eq!(header(&res, "allow"), "GET, HEAD", "{method} {target}");
    }
    let res = client()
        .post(server.url("/a.txt"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

// ---------------------------------------------------------------------------------------------
// Optional answers

#[test]
fn listing_shows_entries_with_names_escaped() {
    let root = TempDir::new("listing");
    // `/` cannot be in a file name; this one holds every other character HTML must escape.
    let name = "<b>x&y\"z'<i>.txt";
    root.write(&format!("files/{name}"), "tricky");
    root.write("files/plain.txt", "plain");
    root.mkdir("files/sub");
    root.write("<i>odd&dir<i>/f.txt", "f");
    let server = serve(&root, &["--listing"]);

    // The directory's own name, in the title and heading, is escaped too.
    let res = get(&server, "/%3Ci%3Eodd%26dir%3Ci%3E/", &[]);
    assert_eq!(res.status, 200);
    assert!(!res.body_str().contains("<i>"), "{}", res.body_str());
    assert!(res.body_str().contains("&lt;i&gt;odd&amp;dir&lt;i&gt;"));

    let res = get(&server, "/files/", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    let html = res.body_str();
    assert!(!html.contains("<b>"), "raw markup from a file name: {html}");
    assert!(
        html.contains("&lt;b&gt;x&amp;y&quot;z&#39;&lt;i&gt;.txt")
            || html.contains("&lt;b&gt;x&amp;y&#34;z&#39;&lt;i&gt;.txt")
            || html.contains("&lt;b&gt;x&amp;y&quot;z&#x27;&lt;i&gt;.txt"),
        "the name escaped: {html}"
    );
    assert!(html.contains("plain.txt"));
    assert!(html.contains("sub/"));
    // The link in the listing leads to the file.
    let href = html
        .split("href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .find(|h| h.to_ascii_lowercase().contains("%3cb%3e"))
        .expect("a link to the tricky name");
    let res = get(&server, &format!("/files/{href}"), &[]);
    assert_eq!(res.status, 200, "{href}");
    assert_eq!(res.body, b"tricky");
}

#[test]
fn listing_is_off_by_default_and_hides_dotfiles() {
    let root = TempDir::new("listing-off");
    root.write("files/plain.txt", "plain");
    root.write("files/.secret-name", "x");
    let server = serve(&root, &[]);
    assert_eq!(get(&server, "/files/", &[]).status, 404);
    drop(server);

    let server = serve(&root, &["--listing"]);
    let res = get(&server, "/files/", &[]);
    assert_eq!(res.status, 200);
    assert!(res.body_str().contains("plain.txt"));
    assert!(!res.body_str().contains(".secret-name"));
}

#[test]
fn spa_fallback_serves_the_file_for_unknown_paths() {
    let root = TempDir::new("spa");
    root.write("index.html", "<div id=app></div>");
    root.write("assets/app.js", "boot()");
    let server = serve(&root, &["--spa-fallback", "index.html"]);

    for target in ["/some/client/route", "/unknown", "/users/42?tab=2"] {
        let res = get(&server, target, &[]);
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(res.body, b"<div id=app></div>", "{target}");
        assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
    }
    // Real files are still themselves, and refused paths are not rescued by the fallback.
    assert_eq!(get(&server, "/assets/app.js", &[]).body, b"boot()");
    assert_eq!(get(&server, "/../etc/passwd", &[]).status, 404);
    assert_eq!(get(&server, "/.env", &[]).status, 404);

    // Without the flag an unknown path is 404.
    drop(server);
    let server = serve(&root, &[]);
    assert_eq!(get(&server, "/some/client/route", &[]).status, 404);
}

#[test]
fn cache_control_pattern_applies_to_css_only_and_no_cache_elsewhere() {
    let root = TempDir::new("cachecontrol");
    root.write("site.css", "body{}");
    root.write("app.js", "x()");
    root.write("index.html", "home");
    let server = serve(&root, &["--cache-control", "*.css=max-age=60"]);

    assert_eq!(
        header(&get(&server, "/site.css", &[]), "cache-control"),
        "max-age=60"
    );
    for target in ["/app.js", "/index.html", "/"] {
        assert_eq!(
            header(&get(&server, target, &[]), "cache-control"),
            "no-cache",
            "{target}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// A full GET (reqwest and raw), HEAD, single ranges at the edges and in the middle, and a
/// multipart request: all byte-exact against `contents`.
fn assert_intact_over_get_and_ranges(server: &Server, target: &str, contents: &[u8]) {
    let len = contents.len();
    let res = client().get(server.url(target)).send().unwrap();
    assert_eq!(res.status(), 200);
    let body = res.bytes().unwrap();
    assert!(
        body.as_ref() == contents,
        "{target}: reqwest GET body differs"
    );
    let res = get(server, target, &[]);
    assert!(res.body == contents, "{target}: raw GET body differs");
    let (head, rest) = exchange(server, "HEAD", target, &[]);
    assert_eq!(header(&head, "content-length"), len.to_string());
    assert!(rest.is_empty());

    let mid = len / 2 + 7;
    for (first, last) in [
        (0, 99),
        (mid, mid + 65_535.min(len - mid - 1)),
        (len - 1, len - 1),
        (1, len - 2),
    ] {
        let res = get(
            server,
            target,
            &[("Range", &format!("bytes={first}-{last}"))],
        );
        assert_eq!(res.status, 206);
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {first}-{last}/{len}")
        );
        assert!(
            res.body == contents[first..=last],
            "{target}: {first}-{last}"
        );
    }
    let res = get(server, target, &[("Range", "bytes=-4097")]);
    assert!(res.body == contents[len - 4097..], "{target}: suffix");

    // Several answers back to back on one keep-alive connection (pipelined).
    let mut stream = server.connect();
    let pipelined = format!(
        "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {target} HTTP/1.1\r\nHost: x\r\nRange: bytes=1-{}\r\n\r\n\
         HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {target} HTTP/1.1\r\nHost: x\r\n\r\n",
        len - 2
    );
    stream.write_all(pipelined.as_bytes()).unwrap();
    let mut reader = ResponseReader::new();
    let first = reader.read(&mut stream, false).unwrap();
    assert!(
        first.status == 200 && first.body == contents,
        "{target}: pipelined 1"
    );
    let second = reader.read(&mut stream, false).unwrap();
    assert!(
        second.status == 206 && second.body == contents[1..len - 1],
        "{target}: pipelined 2"
    );
    let third = reader.read(&mut stream, true).unwrap();
    assert_eq!(third.status, 200);
    let fourth = reader.read(&mut stream, false).unwrap();
    assert!(
        fourth.status == 200 && fourth.body == contents,
        "{target}: pipelined 4"
    );
    assert!(reader.buf.is_empty());

    let spec = format!("bytes=0-9,{}-{},{}-", mid, mid + 1000, len - 300);
    let res = get(server, target, &[("Range", &spec)]);
    assert_eq!(res.status, 206);
    let parts = parse_byteranges(header(&res, "content-type"), &res.body);
    let expected = [(0, 9), (mid, mid + 1000), (len - 300, len - 1)];
    assert_eq!(parts.len(), 3);
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(part.content_range, format!("bytes {first}-{last}/{len}"));
        assert!(
            part.body == contents[first..=last],
            "{target}: part {first}-{last}"
        );
    }
}

#[test]
fn a_1_mib_file_arrives_intact_over_get_and_ranges() {
    let root = TempDir::new("large");
    let contents = pattern(1 << 20, 10);
    root.write("large.bin", &contents);
    let server = serve(&root, &[]);
    assert_intact_over_get_and_ranges(&server, "/large.bin", &contents);
}

#[test]
fn files_arrive_intact_from_the_file_descriptor_path_with_small_file_max_4kib() {
    let root = TempDir::new("fdpath");
    let large = pattern(1 << 20, 11);
    let medium = pattern(10_000, 12);
    let texty = text(50_000);
    root.write("large.bin", &large);
    root.write("medium.bin", &medium);
    root.write("texty.txt", &texty);
    let server = serve(&root, &["--small-file-max", "4KiB"]);
    assert_intact_over_get_and_ranges(&server, "/large.bin", &large);
    assert_intact_over_get_and_ranges(&server, "/medium.bin", &medium);
    // A text file past the in-memory limit still reaches a client that offers codings whole
    // (compressed or not).
    let res = get(&server, "/texty.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(res.status, 200);
    let body = match res.header("content-encoding") {
        Some("gzip") => gunzip(&res.body),
        None => res.body.clone(),
        Some(other) => panic!("unexpected coding {other}"),
    };
    assert!(body == texty);
}

#[test]
fn an_empty_file_is_served_with_content_length_0() {
    let root = TempDir::new("empty");
    root.write("empty.txt", "");
    let server = serve(&root, &[]);

    let res = get(&server, "/empty.txt", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(res.status, 200);
    assert_eq!(header(&res, "content-length"), "0");
    assert!(res.body.is_empty());
    assert!(res.header("content-encoding").is_none());
    assert!(res.header("etag").is_some());
    let (head, rest) = exchange(&server, "HEAD", "/empty.txt", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(header(&head, "content-length"), "0");
    assert!(rest.is_empty());
    let res = client().get(server.url("/empty.txt")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().unwrap().is_empty());
    // No byte position exists in an empty file (RFC 9110 §14.1.1).
    let res = get(&server, "/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(res.status, 416);
    assert_eq!(header(&res, "content-range"), "bytes */0");
}

/// RFC 9110 §8.8.2.1: a file whose mtime is ahead of the server's clock is stated as modified at
/// the response's Date, never later.
#[test]
fn a_future_mtime_is_never_sent_later_than_date() {
    let root = TempDir::new("future-mtime");
    let path = root.write("future.txt", b"from the future\n");
    let future = std::time::SystemTime::now() + Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(future)
        .unwrap();
    let server = serve(&root, &[]);
    let res = get(&server, "/future.txt", &[]);
    assert_eq!(res.status, 200);
    let date = httpdate::parse_http_date(header(&res, "date")).unwrap();
    let last_modified = httpdate::parse_http_date(header(&res, "last-modified")).unwrap();
    assert!(
        last_modified <= date,
        "Last-Modified {last_modified:?} after Date {date:?}"
    );
    assert!(last_modified + Duration::from_secs(3600) < future);
}
