//! Malformed and smuggling-prone requests, sent on raw sockets: each gets its status code, a real
//! response, and a closed connection. The unit tests in `src/http1/` cover every rule; these check
//! the rules reach the wire.

mod common;

use std::io::Write;

use common::{closed_by_server, ResponseReader, Server};

fn assert_rejected(server: &Server, request: &[u8], status: u16) {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let res = ResponseReader::new()
        .read(&mut s, false)
        .unwrap_or_else(|e| panic!("no response to {:?}: {e}", String::from_utf8_lossy(request)));
    assert_eq!(
        res.status,
        status,
        "request {:?}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(res.header("connection"), Some("close"));
    assert!(closed_by_server(&mut s), "connection left open");
}

#[test]
fn smuggling_attempts_are_rejected_and_closed() {
    let server = Server::start(&[]);
    let cases: &[(&[u8], u16)] = &[
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Space : a\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
        (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        assert_rejected(&server, request, *status);
    }
}

#[test]
fn version_target_and_encoding_errors() {
    let server = Server::start(&[]);
    assert_rejected(&server, b"GET /plaintext HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    assert_rejected(&server, b"GET /plaintext HTTP/1.1 \r\nHost: x\r\n\r\n", 400);
    assert_rejected(&server, b"GET /a%zzb HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    assert_rejected(&server, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400);
    assert_rejected(
        &server,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        400,
    );
}

#[test]
fn limits_give_414_431_and_413() {
    let server = Server::start(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert_rejected(&server, long_target.as_bytes(), 414);

    let mut many = String::from("GET /plaintext HTTP/1.1\r\nHost: x\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_rejected(&server, many.as_bytes(), 431);

    let big = format!(
        "GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    assert_rejected(&server, big.as_bytes(), 431);

    assert_rejected(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
        413,
    );
}

#[test]
fn a_client_that_sends_the_whole_oversized_body_before_reading_still_gets_the_413() {
    // What nginx does as a reverse proxy: it writes the declared body to the end, then reads the
    // answer; a reset while it writes becomes a 502 for its client. The 413 is sent at once, and
    // the body is read and thrown away until the client is done.
    let server = Server::start(&["--max-body", "64KiB"]);
    let mut s = server.connect();
    // A server that neither reads nor closes must fail the test, not hang it.
    s.set_write_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let body = vec![b'x'; 4 * 1024 * 1024];
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body)
        .expect("the server read the whole body before closing");
    let res = ResponseReader::new()
        .read(&mut s, false)
        .expect("the 413 arrives after the body was sent");
    assert_eq!(res.status, 413);
    assert_eq!(res.header("connection"), Some("close"));
    assert!(closed_by_server(&mut s), "connection left open");
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = Server::start(&["--max-body", "1KiB"]);
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'z'; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_rejected(&server, &req, 413);
}

#[test]
fn garbage_does_not_disturb_other_connections() {
    let server = Server::start_with(&["--shards", "1"], &[], |_| {});
    for junk in [
        &b"\0\0\0\0\r\n\r\n"[..],
        b"\xff\xfe\r\n\r\n",
        b"GET\r\n\r\n",
        b"\r\n\r\n\r\n\r\n\r\n\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(junk).unwrap();
        let _ = closed_by_server(&mut s);
    }
    let res = common::roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(res.status, 200);
}
