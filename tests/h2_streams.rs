//! How HTTP/2 streams are answered, against an in-process server with routes built for it (h2c by
//! prior knowledge, h2's own client over tokio): a request whose handler answers on its first
//! poll is answered from the connection task, one whose handler waits continues in a task of its
//! own, bodies within h2's send buffer are handed to h2 at once and larger ones wait for flow
//! control, and none of that may let one stream disturb another or the connection's idle timeout
//! go off under a connection that is in use.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::app::AppServer;
use common::{read_body, run};
use h2::client::SendRequest;
use h2::Reason;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percore::{App, Ctx, Request};

/// Within h2's send buffer (64 KiB by default): handed to h2 whole, whatever the peer's window.
const MID: usize = 48 * 1024;
/// Over it: sent by a task as the windows open, one of the connection's send turns.
const BIG: usize = 1024 * 1024;

fn body_of(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn app(_: &percore::ShardHandle) -> App<()> {
    App::new()
        .get("/now", |_req: Request, _cx: Ctx<()>| async { "now" })
        .get("/later", |_req: Request, _cx: Ctx<()>| async {
            monoio::time::sleep(Duration::from_secs(1)).await;
            "later"
        })
        .get("/mid", |_req: Request, _cx: Ctx<()>| async {
            body_of(MID, 1)
        })
        .get("/mid-later", |_req: Request, _cx: Ctx<()>| async {
            monoio::time::sleep(Duration::from_millis(20)).await;
            body_of(MID, 2)
        })
        .get("/big", |_req: Request, _cx: Ctx<()>| async {
            body_of(BIG, 3)
        })
        // Waits for another shard's answer: woken from another thread.
        .get("/other-shard", |_req: Request, cx: Ctx<()>| async move {
            let other = (cx.shard_id() + 1) % cx.shard().count();
            match cx.shard().call(other, |_: &()| 7u32).await {
                Ok(n) => format!("shard answer {n}"),
                Err(err) => format!("mesh error: {err}"),
            }
        })
        .get("/hop-by-hop", |_req: Request, _cx: Ctx<()>| async {
            let mut headers = HeaderMap::new();
            for (name, value) in [
                ("connection", "close"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "h2c"),
                ("x-kept", "yes"),
            ] {
                headers.insert(name, HeaderValue::from_static(value));
            }
            (StatusCode::OK, headers, "fields")
        })
}

async fn connect(addr: SocketAddr, builder: h2::client::Builder) -> SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let (send, conn) = builder.handshake::<_, Bytes>(tcp).await.expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn get(path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(Method::GET)
        .uri(format!("http://localhost{path}"))
        .body(())
        .unwrap()
}

async fn fetch(send: &SendRequest<Bytes>, path: &str) -> (http::response::Parts, Vec<u8>) {
    let mut send = send.clone().ready().await.expect("ready");
    let (response, _) = send.send_request(get(path), true).expect("send");
    let (parts, body) = response.await.expect("response").into_parts();
    (parts, read_body(body).await.expect("body"))
}

#[test]
fn answers_at_once_and_after_waiting_share_a_connection() {
    let server = AppServer::start(1, app);
    run(Duration::from_secs(30), async {
        let send = connect(server.addr, h2::client::Builder::new()).await;
        let started = Instant::now();
        // A waiting stream first: the ones answered at once must not queue behind it.
        let later = tokio::spawn({
            let send = send.clone();
            async move { fetch(&send, "/later").await }
        });
        let mut now = Vec::new();
        for _ in 0..40 {
            let send = send.clone();
            now.push(tokio::spawn(async move { fetch(&send, "/now").await }));
        }
        for task in now {
            let (parts, body) = task.await.unwrap();
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, b"now");
            assert_eq!(
                parts.headers.get("content-length").unwrap().as_bytes(),
                b"3"
            );
        }
        assert!(
            !later.is_finished(),
            "streams answered at once waited for the one that sleeps 1 s: {:?}",
            started.elapsed()
        );
        let (parts, body) = later.await.unwrap();
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"later");
        assert!(started.elapsed() >= Duration::from_secs(1));
    });
}

#[test]
fn a_handler_woken_from_another_shard_answers() {
    let server = AppServer::start(2, app);
    run(Duration::from_secs(30), async {
        let send = connect(server.addr, h2::client::Builder::new()).await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let send = send.clone();
            tasks.push(tokio::spawn(
                async move { fetch(&send, "/other-shard").await },
            ));
        }
        for task in tasks {
            let (parts, body) = task.await.unwrap();
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, b"shard answer 7");
        }
    });
}

#[test]
fn head_requests_get_the_length_and_no_body_both_ways() {
    let server = AppServer::start(1, app);
    run(Duration::from_secs(30), async {
        let send = connect(server.addr, h2::client::Builder::new()).await;
        for path in ["/mid", "/mid-later", "/big"] {
            let mut ready = send.clone().ready().await.unwrap();
            let mut req = get(path);
            *req.method_mut() = Method::HEAD;
            let (response, _) = ready.send_request(req, true).unwrap();
            let (parts, body) = response.await.unwrap().into_parts();
            assert_eq!(parts.status, StatusCode::OK, "{path}");
            let len = if path == "/big" { BIG } else { MID };
            assert_eq!(
                parts.headers.get("content-length").unwrap().as_bytes(),
                len.to_string().as_bytes(),
                "{path}"
            );
            assert!(body.is_end_stream(), "{path}");
            assert!(read_body(body).await.unwrap().is_empty(), "{path}");
        }
    });
}

#[test]
fn bodies_queued_at_once_keep_to_a_small_client_window() {
    let server = AppServer::start(1, app);
    run(Duration::from_secs(30), async {
        // 1 KiB per stream, 16 KiB for the connection: every body here is many windows long, so
        // the server has to wait for WINDOW_UPDATEs (h2's client fails the stream with
        // FLOW_CONTROL_ERROR if it sends past a window).
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(1024)
            .initial_connection_window_size(16 * 1024);
        let send = connect(server.addr, builder).await;
        let mut tasks = Vec::new();
        for (i, path) in ["/mid", "/mid-later", "/big", "/mid", "/now"]
            .into_iter()
            .enumerate()
        {
            let send = send.clone();
            tasks.push(tokio::spawn(
                async move { (i, path, fetch(&send, path).await) },
            ));
        }
        for task in tasks {
            let (i, path, (parts, body)) = task.await.unwrap();
            assert_eq!(parts.status, StatusCode::OK, "{path}");
            let expected = match path {
                "/mid" => body_of(MID, 1),
                "/mid-later" => body_of(MID, 2),
                "/big" => body_of(BIG, 3),
                _ => Bytes::from_static(b"now"),
            };
            assert!(body == expected, "stream {i} ({path}): body differs");
        }
    });
}

#[test]
fn a_stream_reset_mid_body_leaves_the_others_alone() {
    let server = AppServer::start(1, app);
    run(Duration::from_secs(30), async {
        // A small window keeps every body in flight until its reader asks for more.
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(4 * 1024)
            .initial_connection_window_size(1024 * 1024);
        let send = connect(server.addr, builder).await;
        // Cancelled after their first bytes: one body queued in h2 at once, one sent by a task.
        let mut cancelled = Vec::new();
        for path in ["/mid", "/big"] {
            let mut ready = send.clone().ready().await.unwrap();
            let (response, _) = ready.send_request(get(path), true).unwrap();
            cancelled.push(response);
        }
        let mut others = Vec::new();
        for path in ["/mid", "/big", "/mid-later", "/now"] {
            let send = send.clone();
            others.push(tokio::spawn(
                async move { (path, fetch(&send, path).await) },
            ));
        }
        for response in cancelled {
            let mut body = response.await.unwrap().into_body();
            let first = body.data().await.expect("a first piece").unwrap();
            assert!(!first.is_empty());
            // Dropping the response stream with data left resets it (RST_STREAM CANCEL).
            drop(body);
        }
        for task in others {
            let (path, (parts, body)) = task.await.unwrap();
            assert_eq!(parts.status, StatusCode::OK, "{path}");
            let expected = match path {
                "/mid" => body_of(MID, 1),
                "/mid-later" => body_of(MID, 2),
                "/big" => body_of(BIG, 3),
                _ => Bytes::from_static(b"now"),
            };
            assert!(body == expected, "{path}: body differs");
        }
        // And the connection still takes new streams.
        let (parts, body) = fetch(&send, "/big").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert!(body == body_of(BIG, 3));
    });
}

#[test]
fn connection_specific_fields_from_the_app_are_left_out() {
    let server = AppServer::start(1, app);
    run(Duration::from_secs(30), async {
        let send = connect(server.addr, h2::client::Builder::new()).await;
        // h2 refuses to send a response carrying any of them: the stream would fail here.
        let (parts, body) = fetch(&send, "/hop-by-hop").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, b"fields");
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ] {
            assert!(parts.headers.get(name).is_none(), "{name} was sent");
        }
        assert_eq!(parts.headers.get("x-kept").unwrap(), "yes");
    });
}

#[test]
fn streams_answered_at_once_keep_the_connection_from_idling_out() {
    let server = AppServer::start_with(
        1,
        |config| config.timeouts.idle = Duration::from_secs(1),
        app,
    );
    run(Duration::from_secs(30), async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (send, conn) = h2::client::handshake(tcp).await.unwrap();
        let mut conn = tokio::spawn(conn);
        // A request every 300 ms for 4 s: never idle for the 1 s timeout (the shard's clock
        // ticks once a second, so an idle connection goes within 1–3 s).
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let (parts, body) = fetch(&send, "/now").await;
            assert_eq!(parts.status, StatusCode::OK);
            assert_eq!(body, b"now");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Then idle (the client keeps its handle, so only the server can end the connection): the
        // server ends it with GOAWAY NO_ERROR.
        let idle = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(6), &mut conn).await;
        let result = ended.expect("the idle connection was not closed").unwrap();
        if let Err(err) = result {
            assert_eq!(err.reason(), Some(Reason::NO_ERROR), "{err}");
        }
        assert!(idle.elapsed() >= Duration::from_millis(500));
        drop(send);
    });
}
