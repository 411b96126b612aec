//! A handler's panic is logged with the request id (issue #4: "a handler panic becomes a 500 for
//! that request only, logged with the request id"). Its own test binary: it installs a global
//! tracing subscriber that captures the log, which must not see other tests' events.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::AppServer;
use percore::middleware::RequestIds;
use percore::{App, Ctx, Request};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_with_its_request_id_and_the_next_request_is_served() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let server = AppServer::start(2, |shard: &percore::ShardHandle| {
        App::new()
            .get("/boom", |_req: Request, _cx: Ctx| async move {
                if true {
                    panic!("kaboom in a handler");
                }
                "unreachable"
            })
            .get("/ok", |_req: Request, _cx: Ctx| async { "ok" })
            .layer(RequestIds::new(shard.id()))
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let res = client
        .get(server.url("/boom"))
        .header("x-request-id", "trace-panic-7")
        .send()
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-request-id"], "trace-panic-7");
    assert_eq!(client.get(server.url("/ok")).send().unwrap().status(), 200);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("kaboom in a handler"))
        .unwrap_or_else(|| panic!("no panic line in the log: {log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("trace-panic-7"), "{line}");
}
