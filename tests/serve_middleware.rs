//! The binary's middleware flags, end to end: `percore serve` with the default stack, an access
//! log file, CORS, a rate limit, timing and /metrics, talked to with reqwest and raw sockets.

mod common;

use std::time::Duration;

use common::files::TempDir;
use common::{client, eventually, Server, BIN};

#[test]
fn default_stack_sends_request_id_and_security_headers() {
    let server = Server::start(&[]);
    let res = client().get(server.url("/plaintext")).send().unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["x-request-id"].len(), 32);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "strict-origin-when-cross-origin");
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS on plain HTTP"
    );
    assert!(
        h.get("ratelimit-limit").is_none(),
        "no rate limit unless asked"
    );
    // Error pages follow Accept.
    let res = client()
        .get(server.url("/nowhere"))
        .header("accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    assert_eq!(body["error"]["status"], 404);
}

#[test]
fn no_middleware_flag_serves_bare_routes() {
    let server = Server::start(&["--no-middleware"]);
    let res = client().get(server.url("/plaintext")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-request-id").is_none());
    assert!(res.headers().get("x-content-type-options").is_none());
}

#[test]
fn access_log_file_gets_one_json_line_per_request() {
    let dir = TempDir::new("access-log");
    let path = dir.file("access.log");
    let mut server = Server::start(&["--access-log", &path]);
    let c = client();
    for i in 0..5 {
        let res = c
            .get(server.url(&format!("/plaintext?i={i}")))
            .header("x-request-id", format!("req-{i}"))
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(c.get(server.url("/missing")).send().unwrap().status(), 404);
    // The buffer is written within a second (the shard's tick) even with no more traffic.
    assert!(
        eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() == 6)
        }),
        "log: {:?}",
        std::fs::read_to_string(&path)
    );
    server.signal(libc::SIGTERM);
    assert!(server
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["path"], "/plaintext");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["bytes"], 13);
    assert_eq!(lines[0]["request_id"], "req-0");
    assert!(
        lines[0].get("query").is_none(),
        "queries are left out unless asked"
    );
    assert_eq!(lines[5]["status"], 404);
}

#[test]
fn an_unopenable_access_log_is_one_line_and_a_failure() {
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "/nonexistent-dir/x/access.log",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent-dir/x/access.log"), "{stderr}");
}

#[test]
fn cors_and_timing_flags_take_effect() {
    let server = Server::start(&["--cors-origin", "https://app.example", "--timing"]);
    let c = client();
    for _ in 0..3 {
        let res = c
            .get(server.url("/json"))
            .header("origin", "https://app.example")
            .send()
            .unwrap();
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        assert!(res.headers()["server-timing"]
            .to_str()
            .unwrap()
            .starts_with("app;dur="));
    }
    let res = c
        .get(server.url("/json"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let text = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // Four /json requests before this scrape, over whichever shards served them.
    assert!(
        text.lines()
            .any(|l| l == "percore_request_duration_seconds_count 4"),
        "{text}"
    );
}

#[test]
fn rate_limit_flag_refuses_past_the_burst() {
    let server = Server::start(&["--rate-limit", "0.5", "--rate-limit-burst", "3"]);
    let c = client();
    let first = c.get(server.url("/json")).send().unwrap();
    assert_eq!(first.headers()["ratelimit-limit"], "3");
    let mut statuses = vec![first.status().as_u16()];
    for _ in 0..3 {
        statuses.push(c.get(server.url("/json")).send().unwrap().status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "a burst of 3, then a refusal"
    );
    let refused = c.get(server.url("/json")).send().unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
}

#[test]
fn request_id_keeps_a_valid_incoming_id_and_replaces_a_bad_one() {
    let server = Server::start(&[]);
    let c = client();
    let res = c
        .get(server.url("/plaintext"))
        .header("x-request-id", "trace-01HZX3:abc")
        .send()
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-01HZX3:abc");
    let res = c
        .get(server.url("/plaintext"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .unwrap();
    let minted = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(minted.len(), 32);
    assert!(minted.bytes().all(|b| b.is_ascii_hexdigit()));
    // Minted ids differ between requests.
    let again = c.get(server.url("/plaintext")).send().unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), minted);
}

#[test]
fn error_pages_render_html_for_browsers_and_text_for_curl() {
    let server = Server::start(&[]);
    let c = client();
    let res = c
        .get(server.url("/nowhere"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = res.text().unwrap();
    assert!(html.contains("<h1>404 Not Found</h1>"), "{html}");
    assert!(html.contains(&id), "the page names the request id: {html}");
    let res = c
        .delete(server.url("/plaintext"))
        .header("accept", "*/*")
        .send()
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.text().unwrap(), "Method Not Allowed\n");
}
