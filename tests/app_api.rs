//! The library's handler API served by the real runtime: routes with parameters, JSON bodies,
//! per-shard state, a call to another shard over the mesh, panics, and route errors at start-up.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::time::Duration;

use common::app::AppServer;
use common::client;
use percore::{App, Ctx, Error, Json, Request};
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct Counter(Cell<u64>);

#[derive(Deserialize)]
struct Search {
    q: String,
    page: Option<u32>,
}

#[derive(Deserialize, Serialize)]
struct NewItem {
    name: String,
}

fn app(shard: &percore::ShardHandle) -> App<Counter> {
    let _ = shard;
    App::with_state(Counter::default())
        .get("/users/:id", |_req: Request, cx: Ctx<Counter>| {
            let id = cx.param("id").unwrap_or_default().to_owned();
            async move { format!("user {id}") }
        })
        .post("/items", |req: Request, _cx: Ctx<Counter>| async move {
            let item: NewItem = req.json()?;
            Ok::<_, Error>((http::StatusCode::CREATED, Json(item)))
        })
        .get("/search", |req: Request, _cx: Ctx<Counter>| async move {
            let q: Search = req.query()?;
            Ok::<_, Error>(format!("{} page {}", q.q, q.page.unwrap_or(1)))
        })
        .get("/search-cx", |_req: Request, cx: Ctx<Counter>| {
            let q = cx.query::<Search>();
            async move {
                let q = q?;
                Ok::<_, Error>(format!("{} page {}", q.q, q.page.unwrap_or(1)))
            }
        })
        .get("/bye", |_req: Request, _cx: Ctx<Counter>| async move {
            let mut res = http::Response::new(percore::service::Body::from("bye"));
            res.headers_mut()
                .insert(http::header::CONNECTION, "Close".parse().unwrap());
            res
        })
        .get("/count", |_req: Request, cx: Ctx<Counter>| {
            let n = cx.state().0.get() + 1;
            cx.state().0.set(n);
            async move { n.to_string() }
        })
        // Asks every shard (over the mesh) for its counter and sums them.
        .get("/total", |_req: Request, cx: Ctx<Counter>| async move {
            let mut total = 0;
            for shard in 0..cx.shard().count() {
                total += cx.shard().call(shard, |c: &Counter| c.0.get()).await?;
            }
            Ok::<_, Error>(total.to_string())
        })
        .get(
            "/other-shard",
            |_req: Request, cx: Ctx<Counter>| async move {
                let me = cx.shard_id();
                let other = (me + 1) % cx.shard().count();
                let answered_by = cx
                    .shard()
                    .call(other, move |_: &Counter| {
                        std::thread::current().name().map(str::to_owned)
                    })
                    .await?;
                Ok::<_, Error>(format!("{me}->{other} {}", answered_by.unwrap_or_default()))
            },
        )
        .get("/boom", |_req: Request, _cx: Ctx<Counter>| async move {
            if true {
                panic!("deliberate panic in a handler");
            }
            "unreachable"
        })
}

#[test]
fn routes_params_and_json_bodies_over_the_wire() {
    let server = AppServer::start(2, app);
    let c = client();
    let res = c.get(server.url("/users/caf%C3%A9")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().unwrap(), "user café");

    let res = c
        .post(server.url("/items"))
        .header("content-type", "application/json")
        .body(r#"{"name":"pen"}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.text().unwrap(), r#"{"name":"pen"}"#);

    let res = c
        .post(server.url("/items"))
        .header("content-type", "application/json")
        .body(r#"{"name":"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c
        .post(server.url("/items"))
        .header("content-type", "application/json")
        .body(r#"{"title":"pen"}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = c
        .post(server.url("/items"))
        .header("content-type", "text/plain")
        .body(r#"{"name":"pen"}"#)
        .send()
        .unwrap();
    assert_eq!(res.status(), 415);
}

#[test]
fn query_strings_deserialise_into_a_struct() {
    let server = AppServer::start(1, app);
    let c = client();
    let res = c
        .get(server.url("/search?q=caf%C3%A9+cr%C3%A8me&page=3"))
        .send()
        .unwrap();
    assert_eq!(res.text().unwrap(), "café crème page 3");
    let res = c.get(server.url("/search?q=x")).send().unwrap();
    assert_eq!(res.text().unwrap(), "x page 1");
    assert_eq!(
        c.get(server.url("/search?q=x&page=two"))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c.get(server.url("/search")).send().unwrap().status(),
        400,
        "q is required"
    );
}

#[test]
fn a_call_over_the_mesh_runs_on_the_other_shard() {
    let server = AppServer::start(2, app);
    let c = client();
    let text = c
        .get(server.url("/other-shard"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let (route, thread) = text.split_once(' ').unwrap();
    let other = route.split("->").nth(1).unwrap();
    assert!(
        thread.ends_with(other),
        "{text}: answered on thread {thread}"
    );
    assert_ne!(route.split("->").next(), Some(other));
}

#[test]
fn per_shard_state_summed_over_the_mesh() {
    let server = AppServer::start(2, app);
    let c = client();
    // Fresh connections, so the kernel spreads them over both shards.
    for _ in 0..20 {
        let c = client();
        assert_eq!(c.get(server.url("/count")).send().unwrap().status(), 200);
    }
    let total: u64 = c
        .get(server.url("/total"))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, 20);
}

#[test]
fn a_handler_that_says_connection_close_ends_the_connection() {
    let server = AppServer::start(1, app);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // RFC 9112 §9.6: after a response with `Connection: close`, nothing more is read: the
    // request pipelined behind it gets no answer, and the connection closes.
    s.write_all(
        b"GET /count HTTP/1.1\r\nHost: t\r\n\r\nGET /bye HTTP/1.1\r\nHost: t\r\n\r\nGET /count HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
    assert_eq!(all.matches("onnection: close").count(), 1, "{all}");
    assert!(all.ends_with("\r\n\r\nbye"), "{all}");
}

#[test]
fn a_panic_is_a_500_for_that_request_only() {
    let server = AppServer::start(1, app);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three pipelined requests on one connection: the panic in the middle must not disturb the
    // others, nor close the connection.
    s.write_all(
        b"GET /count HTTP/1.1\r\nHost: t\r\n\r\nGET /boom HTTP/1.1\r\nHost: t\r\n\r\nGET /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    // Bodies here have no trailing newline, so a status line may follow a body on one line.
    let statuses: Vec<&str> = all
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|rest| rest.lines().next())
        .collect();
    assert_eq!(
        statuses,
        ["200 OK", "500 Internal Server Error", "200 OK"],
        "{all}"
    );
    assert!(
        all.ends_with("\r\n\r\n2"),
        "the shard kept its state: {all}"
    );
    // And the shard still takes new connections.
    assert_eq!(
        client()
            .get(server.url("/count"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "3"
    );
}

#[test]
fn conflicting_routes_stop_start_up_naming_both() {
    let server = AppServer::start(2, |_shard: &percore::ShardHandle| {
        App::new()
            .get("/users/:id", |_r: Request, _c: Ctx| async { "a" })
            .get("/users/:name/posts", |_r: Request, _c: Ctx| async { "b" })
    });
    let err = server.stop().expect_err("start-up must fail");
    let text = err.to_string();
    assert!(
        text.contains("/users/:id") && text.contains("/users/:name/posts"),
        "{text}"
    );
}
