//! `Upgrade: h2c` (RFC 7540 §3.2) against the real binary, with a raw-socket client: the 101,
//! then the upgraded request answered on HTTP/2 stream 1 and the client's own streams from 3;
//! the requests that are served over HTTP/1.1 instead (a body, a malformed or missing
//! `HTTP2-Settings`, `--no-h2`, TLS and redirect listeners); pipelining before the upgrade; and a
//! client that does not speak HTTP/2 after the 101.
//!
//! Responses are read with httparse (HTTP/1.1) and the frame reader of `common/h2frames.rs`
//! (HTTP/2), not with the server's code. Timeouts are failure bounds only.

mod common;
#[path = "common/h2frames.rs"]
mod h2frames;
#[path = "common/tls.rs"]
mod tls_common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{closed_by_server, eventually, RawResponse, ResponseReader, Server};
use h2frames::*;

const PLAINTEXT: &[u8] = b"Hello, World!";
/// What curl 8 sends: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE 10 MiB, ENABLE_PUSH 0.
const CURL_SETTINGS: &str = "AAMAAABkAAQAoAAAAAIAAAAA";
/// HPACK static table (RFC 7541 Appendix A): `:status 200` is index 8, `:status 404` index 13;
/// an indexed field is 0x80 | index.
const STATUS_200: u8 = 0x88;
const STATUS_204: u8 = 0x89;
const STATUS_404: u8 = 0x8d;
const LIMIT: Duration = Duration::from_secs(10);

/// A request asking to upgrade, as curl sends it (header fields in curl's order), with `extra`
/// fields before the empty line.
fn upgrade_request(method: &str, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\
         Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
         HTTP2-Settings: {CURL_SETTINGS}\r\n{extra}\r\n"
    )
}

fn assert_switching(res: &RawResponse) {
    assert_eq!(res.status, 101, "not switched: {res:?}");
    assert_eq!(res.header("connection"), Some("Upgrade"));
    assert_eq!(res.header("upgrade"), Some("h2c"));
    assert!(res.body.is_empty());
}

/// Reads the 101 off `stream` (after the HTTP/1.1 responses `reader` may still hold or get) and
/// returns the connection as HTTP/2, nothing of it sent yet.
fn switched(mut stream: TcpStream, mut reader: ResponseReader) -> Conn {
    let res = reader.read(&mut stream, false).expect("the 101");
    assert_switching(&res);
    Conn::upgraded(stream, reader.buf)
}

/// Sends `request` on a fresh connection and expects the 101.
fn upgrade(server: &Server, request: &str) -> Conn {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    switched(stream, ResponseReader::new())
}

/// The client's connection preface (RFC 9113 §3.4): the preface and an empty SETTINGS, then the
/// server's SETTINGS, acknowledged. Returns every frame read on the way.
fn start_h2(conn: &mut Conn) -> Vec<Frame> {
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    conn.send(&hello);
    let mut seen = Vec::new();
    let end = conn.read_until(LIMIT, &mut seen, |f| f.ty == SETTINGS && !f.has(ACK));
    assert!(matches!(end, Next::Frame(_)), "no SETTINGS: {end:?}");
    conn.send(&settings_ack());
    seen
}

/// A response read off an HTTP/2 connection.
struct H2Response {
    /// The first byte of the HEADERS block (`STATUS_200`, `STATUS_404`).
    status: u8,
    /// END_STREAM was on the HEADERS frame (no DATA).
    headers_only: bool,
    body: Vec<u8>,
}

/// The response on `stream`, up to its END_STREAM; frames read on the way go to `seen`.
fn response_on(conn: &mut Conn, stream: u32, seen: &mut Vec<Frame>) -> H2Response {
    let mut body = Vec::new();
    let end = conn.read_until(LIMIT, seen, |f| {
        if f.ty == DATA && f.stream == stream {
            body.extend_from_slice(f.data());
        }
        f.ty == GOAWAY
            || (f.ty == RST_STREAM && f.stream == stream)
            || (f.stream == stream && f.has(END_STREAM) && matches!(f.ty, DATA | HEADERS))
    });
    let Next::Frame(last) = end else {
        panic!("no response on stream {stream}: {end:?}");
    };
    assert!(
        matches!(last.ty, DATA | HEADERS),
        "stream {stream} ended with frame type {}",
        last.ty
    );
    let head = seen
        .iter()
        .find(|f| f.ty == HEADERS && f.stream == stream)
        .expect("HEADERS");
    H2Response {
        status: head.payload[0],
        headers_only: head.has(END_STREAM),
        body,
    }
}

/// A GET on `stream` from the client's side.
fn get_on(conn: &mut Conn, stream: u32, path: &str) {
    conn.send(&headers(
        stream,
        END_STREAM | END_HEADERS,
        &request_block("GET", path, &[]),
    ));
}

/// `request` is answered over HTTP/1.1 with `status` (no 101), and the connection goes on as
/// HTTP/1.1.
fn assert_served_over_http11(server: &Server, request: &str, status: u16) {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = ResponseReader::new();
    let res = reader.read(&mut stream, false).expect("a response");
    assert_eq!(res.status, status, "{request:?}: {res:?}");
    stream
        .write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let next = reader.read(&mut stream, false).expect("a second response");
    assert_eq!(next.status, 200, "{request:?}: then {next:?}");
    assert_eq!(next.body, PLAINTEXT);
}

// ---------------------------------------------------------------------------------------------
// The upgrade

#[test]
fn upgraded_get_is_answered_on_stream_1_and_stream_3_follows() {
    let server = Server::start(&[]);
    let mut conn = upgrade(&server, &upgrade_request("GET", "/plaintext", ""));
    let mut seen = start_h2(&mut conn);

    let one = response_on(&mut conn, 1, &mut seen);
    assert_eq!(one.status, STATUS_200);
    assert_eq!(one.body, PLAINTEXT);

    get_on(&mut conn, 3, "/json");
    let three = response_on(&mut conn, 3, &mut seen);
    assert_eq!(three.status, STATUS_200);
    assert!(three.body.starts_with(b"{"), "{:?}", three.body);

    // A PING round trip as a barrier: every frame the server sent before it has been read.
    conn.send(&ping(0, *b"barrier!"));
    conn.read_until(LIMIT, &mut seen, |f| f.ty == PING && f.has(ACK));
    // One ACK, for the client's SETTINGS frame: the HTTP2-Settings of the request are taken as
    // acknowledged by the 101 (RFC 7540 §3.2.1) and get none of their own.
    let acks = seen
        .iter()
        .filter(|f| f.ty == SETTINGS && f.has(ACK))
        .count();
    assert_eq!(acks, 1);
    assert!(!seen.iter().any(|f| f.ty == GOAWAY || f.ty == RST_STREAM));
}

#[test]
fn upgraded_head_has_no_body() {
    let server = Server::start(&[]);
    let mut conn = upgrade(&server, &upgrade_request("HEAD", "/plaintext", ""));
    let mut seen = start_h2(&mut conn);
    let one = response_on(&mut conn, 1, &mut seen);
    assert_eq!(one.status, STATUS_200);
    assert!(one.headers_only);
    assert!(one.body.is_empty());
}

#[test]
fn upgraded_request_for_a_missing_path_gets_404() {
    let server = Server::start(&[]);
    let mut conn = upgrade(&server, &upgrade_request("GET", "/no/such/path", ""));
    let mut seen = start_h2(&mut conn);
    assert_eq!(response_on(&mut conn, 1, &mut seen).status, STATUS_404);
    // The connection goes on.
    get_on(&mut conn, 3, "/plaintext");
    assert_eq!(response_on(&mut conn, 3, &mut seen).body, PLAINTEXT);
}

/// How a client with a body to send upgrades (RFC 7540 §3.2; `nghttp -u -d`): `OPTIONS *` first,
/// then the request on a stream of its own.
#[test]
fn options_asterisk_upgrade_then_a_post_with_a_body_on_stream_3() {
    let server = Server::start(&[]);
    let mut conn = upgrade(&server, &upgrade_request("OPTIONS", "*", ""));
    let mut seen = start_h2(&mut conn);
    // Answered as over HTTP/1.1 (a server-wide OPTIONS: 204 with `Allow`), on stream 1.
    assert_eq!(response_on(&mut conn, 1, &mut seen).status, STATUS_204);
    let block = request_block("POST", "/echo", &[("content-length", "5")]);
    conn.send(&headers(3, END_HEADERS, &block));
    conn.send(&data(3, END_STREAM, b"hello"));
    let three = response_on(&mut conn, 3, &mut seen);
    assert_eq!(three.status, STATUS_200);
    assert_eq!(three.body, b"hello");
}

#[test]
fn a_client_may_send_the_preface_right_behind_the_request() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    let mut bytes = upgrade_request("GET", "/plaintext", "").into_bytes();
    bytes.extend_from_slice(PREFACE);
    bytes.extend(settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]));
    stream.write_all(&bytes).unwrap();
    let mut conn = switched(stream, ResponseReader::new());
    let mut seen = Vec::new();
    let one = response_on(&mut conn, 1, &mut seen);
    assert_eq!(one.body, PLAINTEXT);
}

#[test]
fn pipelined_request_is_answered_over_http11_before_the_101() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    let mut bytes = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    bytes.extend_from_slice(upgrade_request("GET", "/json", "").as_bytes());
    stream.write_all(&bytes).unwrap();
    let mut reader = ResponseReader::new();
    let first = reader.read(&mut stream, false).expect("the first response");
    assert_eq!(first.status, 200);
    assert_eq!(first.body, PLAINTEXT);
    let mut conn = switched(stream, reader);
    let mut seen = start_h2(&mut conn);
    let one = response_on(&mut conn, 1, &mut seen);
    assert_eq!(one.status, STATUS_200);
    assert!(one.body.starts_with(b"{"), "{:?}", one.body);
}

#[test]
fn upgraded_request_is_logged_as_http2() {
    let dir = common::files::TempDir::new("h2c-upgrade-log");
    let log = dir.file("access.log");
    let server = Server::start(&["--access-log", &log]);
    let mut conn = upgrade(&server, &upgrade_request("GET", "/healthz", ""));
    let mut seen = start_h2(&mut conn);
    assert_eq!(response_on(&mut conn, 1, &mut seen).status, STATUS_200);
    let logged = eventually(LIMIT, || {
        std::fs::read_to_string(&log).is_ok_and(|text| {
            text.lines()
                .any(|l| l.contains("/healthz") && l.contains("HTTP/2.0"))
        })
    });
    assert!(logged, "{:?}", std::fs::read_to_string(&log));
}

#[test]
fn garbage_instead_of_the_preface_closes_the_connection() {
    let server = Server::start(&[]);
    let mut conn = upgrade(&server, &upgrade_request("GET", "/plaintext", ""));
    conn.send(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(closed_by_server(&mut conn.stream));
    // Others are still served.
    assert_served_over_http11(&server, "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n", 200);
    let mut conn = upgrade(&server, &upgrade_request("GET", "/plaintext", ""));
    let mut seen = start_h2(&mut conn);
    assert_eq!(response_on(&mut conn, 1, &mut seen).body, PLAINTEXT);
    assert!(!server.log_text().contains("panicked"));
}

// ---------------------------------------------------------------------------------------------
// Served over HTTP/1.1 instead

#[test]
fn a_request_with_a_body_is_not_upgraded() {
    let server = Server::start(&[]);
    let request = upgrade_request("POST", "/echo", "Content-Length: 5\r\n") + "hello";
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = ResponseReader::new();
    let res = reader.read(&mut stream, false).expect("a response");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"hello");
    stream
        .write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(reader.read(&mut stream, false).unwrap().body, PLAINTEXT);
}

#[test]
fn upgrade_needs_exactly_one_well_formed_http2_settings() {
    let server = Server::start(&[]);
    let settings = format!("HTTP2-Settings: {CURL_SETTINGS}\r\n");
    let curl = upgrade_request("GET", "/plaintext", "");
    let cases = [
        ("missing", curl.replace(&settings, "")),
        ("twice", curl.replace(&settings, &settings.repeat(2))),
        (
            "standard base64",
            curl.replace(CURL_SETTINGS, "AAMAAABkAAQAoAAAAAIA+/AA"),
        ),
        (
            "padding",
            curl.replace(CURL_SETTINGS, "AAMAAABkAAQAoAAAAAIAAA=="),
        ),
        (
            "not whole settings",
            curl.replace(CURL_SETTINGS, "AAMAAABkAAQ"),
        ),
    ];
    for (case, request) in cases {
        assert_ne!(request, curl, "{case}");
        assert_served_over_http11(&server, &request, 200);
    }
}

#[test]
fn upgrade_needs_connection_to_list_upgrade_and_http2_settings() {
    let server = Server::start(&[]);
    let curl = upgrade_request("GET", "/plaintext", "");
    let options = "Connection: Upgrade, HTTP2-Settings\r\n";
    for connection in [
        "Connection: Upgrade\r\n",
        "Connection: HTTP2-Settings\r\n",
        "",
    ] {
        let request = curl.replace(options, connection);
        assert_ne!(request, curl);
        assert_served_over_http11(&server, &request, 200);
    }
}

#[test]
fn no_h2_turns_the_upgrade_off() {
    let server = Server::start(&["--no-h2"]);
    assert_served_over_http11(&server, &upgrade_request("GET", "/plaintext", ""), 200);
}

#[test]
fn tls_listener_ignores_upgrade() {
    let server = Server::start(&["--tls-listen", "127.0.0.1:0"]);
    let config = tls_common::fresh_config(tls_common::BOTH);
    let mut conn = tls_common::tls_connect(server.tls_addr(), config).expect("handshake");
    assert_eq!(conn.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let request = upgrade_request("GET", "/plaintext", "");
    conn.tls.write_all(request.as_bytes()).unwrap();
    conn.tls.flush().unwrap();
    let res = ResponseReader::new()
        .read(&mut conn.tls, false)
        .expect("a response");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, PLAINTEXT);
    assert_eq!(conn.get("/plaintext").unwrap().status, 200);
}

#[test]
fn redirect_listener_ignores_upgrade() {
    let server = Server::start(&["--tls-listen", "127.0.0.1:0", "--redirect-https"]);
    let request = upgrade_request("GET", "/plaintext", "");
    let res = common::roundtrip(&server, request.as_bytes());
    assert_eq!(res.status, 308, "{res:?}");
}
