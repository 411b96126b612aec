//! The access log end to end: the real runtime serving an app with the request-id and
//! access-log layers, the process's tracing set up by `percore::logging::init` writing the access
//! log to a temp file, and an independent client. Every test reads the one shared file and keeps
//! the lines under its own path prefix; every line of the file must be valid JSON.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::app::AppServer;
use common::{client, ResponseReader};
use percore::logging::AccessLogTarget;
use percore::middleware::{AccessLog, AccessLogConfig, RequestIds};
use percore::{App, Ctx, Request, ShardHandle};
use serde_json::Value;

/// The access log of this test process, set up once.
fn access_log() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!(
            "percore-access-log-test-{}.log",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let guard = percore::logging::init(Some(AccessLogTarget::File(path.clone())))
            .expect("install the subscriber");
        // Shard threads flush when they exit; the test threads log no access events.
        std::mem::forget(guard);
        path
    })
}

/// Every complete line of the access log parsed as JSON (a line must never be torn or mixed
/// with another), keeping those whose path starts with `prefix`. A last line without its
/// newline may be another test's write in progress, and is skipped.
fn lines_under(prefix: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(access_log()).expect("read the access log");
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|err| panic!("not one JSON object ({err}): {line:?}"))
        })
        .filter(|line| line["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .collect()
}

fn app(shard: &ShardHandle) -> App {
    App::new()
        .get("/t/:test/ok", |_req: Request, _cx: Ctx| async { "hello" })
        .get("/t/:test/boom", |_req: Request, _cx: Ctx| async {
            if true {
                panic!("deliberate panic for the access log");
            }
            "unreachable"
        })
        .layer(RequestIds::new(shard.id()))
        .layer(AccessLog::new(AccessLogConfig::default()))
}

fn start() -> AppServer {
    access_log();
    AppServer::start(2, app)
}

#[test]
fn one_line_per_request_with_its_fields() {
    let server = start();
    let res = client()
        .get(server.url("/t/fields/ok"))
        .header("x-request-id", "it-fields-1")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .get(server.url("/t/fields/ok?minted"))
        .send()
        .unwrap();
    let minted = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    // HTTP/1.0 on a raw socket, to check the protocol and the peer address.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(b"GET /t/fields/ok HTTP/1.0\r\nX-Request-Id: it-fields-10\r\n\r\n")
        .unwrap();
    let raw = ResponseReader::new().read(&mut s, false).unwrap();
    assert_eq!(raw.status, 200);
    server.stop().unwrap();

    let lines = lines_under("/t/fields/");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no line with request id {id}: {lines:?}"))
    };
    let first = by_id("it-fields-1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/t/fields/ok");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], 5);
    assert_eq!(first["protocol"], "HTTP/1.1");
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert!(first["duration_us"].is_u64());
    assert!(matches!(first["shard"].as_u64(), Some(0 | 1)));
    assert!(first["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(first.get("query").is_none(), "the query is off by default");

    by_id(&minted);
    let old = by_id("it-fields-10");
    assert_eq!(old["protocol"], "HTTP/1.0");
    assert_eq!(old["peer"], local.to_string());
}

#[test]
fn not_found_and_panics_are_logged() {
    let server = start();
    let c = client();
    assert_eq!(
        c.get(server.url("/t/errors/missing"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(server.url("/t/errors/boom")).send().unwrap().status(),
        500
    );
    server.stop().unwrap();

    let lines = lines_under("/t/errors/");
    let status_of = |path: &str| {
        let line = lines
            .iter()
            .find(|l| l["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {lines:?}"));
        line["status"].as_u64()
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(status_of("/t/errors/missing"), Some(404));
    assert_eq!(status_of("/t/errors/boom"), Some(500));
}

#[test]
fn lines_from_two_shards_never_interleave() {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 250;
    let server = start();
    let url = server.url("/t/load/ok");
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let mut c = client();
                for i in 0..PER_CLIENT {
                    // A fresh connection now and then, so the kernel spreads them over both
                    // shards (40 connections all on one shard: odds 2^-39).
                    if i % 50 == 0 {
                        c = client();
                    }
                    let res = c.get(&url).send().unwrap();
                    assert_eq!(res.status(), 200);
                }
            });
        }
    });
    server.stop().unwrap();

    // `lines_under` checks that every line of the file is one whole JSON object.
    let lines = lines_under("/t/load/");
    assert_eq!(lines.len(), CLIENTS * PER_CLIENT);
    let shards: HashSet<u64> = lines.iter().filter_map(|l| l["shard"].as_u64()).collect();
    assert_eq!(
        shards,
        HashSet::from([0, 1]),
        "both shards served and logged"
    );
    let ids: HashSet<&str> = lines
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), CLIENTS * PER_CLIENT, "one line per request");
}

#[test]
fn paths_with_quotes_backslashes_and_controls_stay_one_json_line() {
    let server = start();
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Decoded: `"`, `\`, U+0001, and a multi-byte character around plain text, past 16 bytes.
    s.write_all(b"GET /t/escape/q%22u%5Co%01te%C3%A9-and-more HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let raw = ResponseReader::new().read(&mut s, false).unwrap();
    assert_eq!(raw.status, 404);
    drop(s);
    server.stop().unwrap();

    // `lines_under` checks that every line of the file is one whole JSON object.
    let lines = lines_under("/t/escape/");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["path"], "/t/escape/q\"u\\o\u{1}teé-and-more");
    assert_eq!(lines[0]["status"], 404);
}
