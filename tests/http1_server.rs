//! HTTP/1.1 behaviour of the real server, seen by independent clients: reqwest, and raw sockets
//! read with httparse.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use common::{client, closed_by_server, roundtrip, ResponseReader, Server};

#[test]
fn serves_plaintext_json_and_health_to_reqwest() {
    let server = Server::start(&[]);
    let c = client();

    let res = c.get(server.url("/plaintext")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["server"], "percore");
    assert!(res.headers().contains_key("date"));
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.text().unwrap(), "Hello, World!");

    let res = c.get(server.url("/json")).send().unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(v, serde_json::json!({"message": "Hello, World!"}));

    let res = c.get(server.url("/healthz")).send().unwrap();
    let v: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(v["status"], "ok");

    let res = c.get(server.url("/nope")).send().unwrap();
    assert_eq!(res.status(), 404);
}

#[test]
fn serves_the_bundled_site_at_root() {
    let server = Server::start(&[]);
    let res = client().get(server.url("/")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().unwrap().contains("<h1>percore</h1>"));
}

#[test]
fn head_has_length_but_no_body() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut r = ResponseReader::new();
    let head = r.read(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    // If HEAD had carried a body, it would be parsed as the start of this response and fail.
    let get = r.read(&mut s, false).unwrap();
    assert_eq!(get.body_str(), "Hello, World!");
}

#[test]
fn method_not_allowed_lists_allow() {
    let server = Server::start(&[]);
    let res = client().delete(server.url("/plaintext")).send().unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD, OPTIONS");
}

#[test]
fn options_asterisk_answers_for_the_whole_server() {
    // RFC 9110 §9.3.7: `OPTIONS *` asks about the server, not a resource (proxies send it as a
    // ping). The built-in app's routes take GET (and so HEAD), POST and PUT.
    let server = Server::start(&[]);
    let res = roundtrip(&server, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(res.status, 204);
    assert_eq!(res.header("allow"), Some("GET, HEAD, POST, PUT, OPTIONS"));
    // Any other method with `*` is a malformed request.
    let res = roundtrip(&server, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(res.status, 400);
}

#[test]
fn echoes_a_content_length_body() {
    let server = Server::start(&[]);
    let body = vec![b'x'; 100_000];
    let res = client()
        .post(server.url("/echo"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().unwrap().as_ref(), &body[..]);
}

#[test]
fn echoes_a_chunked_body_from_reqwest() {
    let server = Server::start(&[]);
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    // A reader of unknown length makes reqwest send `Transfer-Encoding: chunked`.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(data.clone()));
    let res = client()
        .post(server.url("/echo"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().unwrap().as_ref(), &data[..]);
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let server = Server::start(&[]);
    let res = roundtrip(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.body_str(), "hello world");
}

#[test]
fn expect_100_continue_gets_interim_response() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut r = ResponseReader::new();
    let interim = r.read(&mut s, false).unwrap();
    assert_eq!(interim.status, 100);
    s.write_all(b"ping").unwrap();
    let res = r.read(&mut s, false).unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.body_str(), "ping");
}

#[test]
fn thousand_sequential_requests_on_one_keep_alive_connection() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    let mut r = ResponseReader::new();
    for i in 0..1000 {
        let path = if i % 2 == 0 { "/plaintext" } else { "/json" };
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let res = r.read(&mut s, false).unwrap();
        assert_eq!(res.status, 200, "request {i}");
        assert_eq!(res.header("connection"), None, "request {i} kept alive");
    }
}

#[test]
fn sixteen_pipelined_requests_in_one_write_answered_in_order() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    let mut batch = Vec::new();
    for i in 0..16 {
        let path = if i % 3 == 0 { "/json" } else { "/plaintext" };
        batch.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    s.write_all(&batch).unwrap();
    let mut r = ResponseReader::new();
    for i in 0..16 {
        let res = r.read(&mut s, false).unwrap();
        assert_eq!(res.status, 200);
        let want_json = i % 3 == 0;
        assert_eq!(
            res.body_str().starts_with('{'),
            want_json,
            "response {i} out of order"
        );
    }
}

#[test]
fn pipelined_batch_larger_than_the_per_read_cap_is_answered() {
    let server = Server::start(&["--pipeline-batch", "4"]);
    let mut s = server.connect();
    let mut batch = Vec::new();
    for _ in 0..50 {
        batch.extend_from_slice(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    s.write_all(&batch).unwrap();
    let mut r = ResponseReader::new();
    for _ in 0..50 {
        assert_eq!(r.read(&mut s, false).unwrap().status, 200);
    }
}

#[test]
fn five_hundred_concurrent_connections_spread_over_shards() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let handles: Vec<_> = (0..500)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let res = ResponseReader::new().read(&mut s, false).unwrap();
                assert_eq!(res.status, 200);
                let v: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
                v["shard"].as_u64().unwrap()
            })
        })
        .collect();
    let shards: HashSet<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        shards.len() >= 2,
        "all 500 connections landed on {shards:?}"
    );
}

#[test]
fn connection_close_from_client_is_honoured() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let res = ResponseReader::new().read(&mut s, false).unwrap();
    assert_eq!(res.header("connection"), Some("close"));
    assert!(closed_by_server(&mut s));
}

#[test]
fn http10_closes_unless_keep_alive_asked() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(b"GET /plaintext HTTP/1.0\r\n\r\n").unwrap();
    let res = ResponseReader::new().read(&mut s, false).unwrap();
    assert_eq!(res.status, 200);
    assert!(closed_by_server(&mut s));

    let mut s = server.connect();
    let mut r = ResponseReader::new();
    for _ in 0..3 {
        s.write_all(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let res = r.read(&mut s, false).unwrap();
        assert_eq!(res.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn connection_idle_for_seconds_is_parked_and_still_served() {
    let server = Server::start(&[]);
    let mut s = server.connect();
    let mut r = ResponseReader::new();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(r.read(&mut s, false).unwrap().status, 200);
    // Long enough for the sweep to park the connection (idle through a whole tick).
    std::thread::sleep(Duration::from_millis(3200));
    s.write_all(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let res = r.read(&mut s, false).unwrap();
    assert_eq!(res.status, 200);
    assert!(res.body_str().contains("Hello"));
    // A request arriving in pieces after the park is put back together.
    std::thread::sleep(Duration::from_millis(3200));
    s.write_all(b"GET /plain").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"text HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(r.read(&mut s, false).unwrap().body_str(), "Hello, World!");
}

/// A parked connection (idle through a whole tick) waits without a read buffer; the idle
/// timeout still ends that wait.
#[test]
fn parked_connection_is_closed_at_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "4"]);
    let mut s = server.idle_connection();
    let start = std::time::Instant::now();
    // Parked after about two ticks, well before the timeout's four to five seconds.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        closed_by_server(&mut s),
        "the parked connection was not closed"
    );
    let waited = start.elapsed();
    assert!(
        waited > Duration::from_secs(3) && waited < Duration::from_secs(7),
        "closed after {waited:?}"
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let mut s = server.idle_connection();
    let start = std::time::Instant::now();
    assert!(closed_by_server(&mut s));
    assert!(start.elapsed() < Duration::from_secs(4));
}

#[test]
fn slow_header_is_cut_off_while_others_are_served() {
    let server = Server::start_with(&["--shards", "1"], &["--header-timeout", "1"], |_| {});
    let mut slow = server.connect();
    let start = std::time::Instant::now();
    let request = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut_off = false;
    for byte in request.iter() {
        if slow.write_all(&[*byte]).is_err() {
            cut_off = true;
            break;
        }
        // Meanwhile another client is served promptly on the same shard.
        let fast = roundtrip(&server, b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(fast.status, 200);
        std::thread::sleep(Duration::from_millis(250));
        if start.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    assert!(cut_off, "slow client was not cut off");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "slow client was not cut off"
    );
}

#[test]
fn partial_head_gets_408_after_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "1"]);
    let mut s = server.connect();
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let res = ResponseReader::new().read(&mut s, false).unwrap();
    assert_eq!(res.status, 408);
    assert_eq!(res.header("connection"), Some("close"));
    assert!(closed_by_server(&mut s));
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_the_write_timeout() {
    let server = Server::start(&["--max-body", "32MiB", "--body-timeout", "1"]);
    let mut s = server.connect();
    let body = vec![b'w'; 32 << 20];
    write!(
        s,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    // Read nothing while the server's write stalls on full socket buffers.
    std::thread::sleep(Duration::from_secs(4));
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        match std::io::Read::read(&mut s, &mut chunk) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the stalled connection open: {e}"),
        }
    }
    assert!(
        received < body.len(),
        "the whole response arrived ({received} bytes): nothing was cut off"
    );
}
