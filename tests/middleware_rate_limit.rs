//! The rate-limit layer served by the real runtime on 2 shards: 429s and their headers,
//! `X-Forwarded-For` from trusted and untrusted peers, a group's limiter beside the app-wide one,
//! and the per-client accuracy when one client's connections land on every shard.
//!
//! Clients are raw keep-alive sockets; responses are read with httparse.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::app::AppServer;
use common::{RawResponse, ResponseReader};
use percore::middleware::{RateLimit, RateLimitConfig, TrustedProxies};
use percore::{App, Ctx, Request};

/// A keep-alive connection that sends one request at a time.
struct Conn {
    stream: TcpStream,
    reader: ResponseReader,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            reader: ResponseReader::new(),
        }
    }

    fn get(&mut self, path: &str, extra_headers: &str) -> RawResponse {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra_headers}\r\n");
        self.stream.write_all(req.as_bytes()).expect("write");
        self.reader
            .read(&mut self.stream, false)
            .expect("a response")
    }
}

/// An app with one app-wide limiter and a plaintext route.
fn app_with(config: RateLimitConfig) -> impl Fn(&percore::ShardHandle) -> App + Send + Sync {
    move |shard| {
        App::new()
            .layer(RateLimit::new(config.clone(), shard))
            .get("/plaintext", |_r: Request, _c: Ctx| async {
                "Hello, World!"
            })
    }
}

/// One token per 10 s: nothing refills while a test runs.
fn slow(burst: u32) -> RateLimitConfig {
    RateLimitConfig::per_second(0.1, burst)
}

#[test]
fn answers_429_with_retry_after_and_ratelimit_headers_after_the_burst() {
    let server = AppServer::start(2, app_with(slow(3)));
    let mut conn = Conn::open(server.addr);
    for _ in 0..3 {
        assert_eq!(conn.get("/plaintext", "").status, 200);
    }
    let res = conn.get("/plaintext", "");
    assert_eq!(res.status, 429);
    assert_eq!(res.header("retry-after"), Some("10"));
    assert_eq!(res.header("ratelimit-limit"), Some("3"));
    assert_eq!(res.header("ratelimit-remaining"), Some("0"));
    assert_eq!(res.header("ratelimit-reset"), Some("30"));
    assert_eq!(res.body_str(), "Too Many Requests\n");
    // The connection stays usable, and stays limited.
    assert_eq!(conn.get("/plaintext", "").status, 429);
    // So is a new connection, whichever shard it lands on.
    assert_eq!(Conn::open(server.addr).get("/plaintext", "").status, 429);
}

#[test]
fn allowed_responses_carry_ratelimit_headers() {
    let server = AppServer::start(2, app_with(slow(5)));
    let mut conn = Conn::open(server.addr);
    for (remaining, reset) in [("4", "10"), ("3", "20"), ("2", "30")] {
        let res = conn.get("/plaintext", "");
        assert_eq!(res.status, 200);
        assert_eq!(res.body_str(), "Hello, World!");
        assert_eq!(res.header("ratelimit-limit"), Some("5"));
        assert_eq!(res.header("ratelimit-remaining"), Some(remaining));
        assert_eq!(res.header("ratelimit-reset"), Some(reset));
        assert_eq!(res.header("retry-after"), None);
    }
}

#[test]
fn remaining_above_ten_thousand_counts_down_exactly() {
    // Values past the static digit table are formatted once and reused while they repeat; a
    // stale one would show here.
    let server = AppServer::start(2, app_with(slow(20_000)));
    let mut conn = Conn::open(server.addr);
    for remaining in ["19999", "19998", "19997"] {
        let res = conn.get("/plaintext", "");
        assert_eq!(res.status, 200);
        assert_eq!(res.header("ratelimit-limit"), Some("20000"));
        assert_eq!(res.header("ratelimit-remaining"), Some(remaining));
    }
}

#[test]
fn x_forwarded_for_is_honoured_from_a_trusted_proxy() {
    let config = RateLimitConfig {
        trusted_proxies: TrustedProxies::parse(["127.0.0.1"]).unwrap(),
        ..slow(2)
    };
    let server = AppServer::start(2, app_with(config));
    let mut conn = Conn::open(server.addr);
    let first = "X-Forwarded-For: 203.0.113.1\r\n";
    assert_eq!(conn.get("/plaintext", first).status, 200);
    assert_eq!(conn.get("/plaintext", first).status, 200);
    assert_eq!(conn.get("/plaintext", first).status, 429);
    // Another client behind the same proxy has its own bucket.
    let second = "X-Forwarded-For: 198.51.100.1, 203.0.113.2\r\n";
    let res = conn.get("/plaintext", second);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("ratelimit-remaining"), Some("1"));
    // So does the proxy itself when it sends no header.
    assert_eq!(conn.get("/plaintext", "").status, 200);
}

#[test]
fn x_forwarded_for_is_ignored_from_an_untrusted_peer() {
    let server = AppServer::start(2, app_with(slow(2)));
    let mut conn = Conn::open(server.addr);
    // Every request is 127.0.0.1's, whatever it claims.
    assert_eq!(
        conn.get("/plaintext", "X-Forwarded-For: 203.0.113.1\r\n")
            .status,
        200
    );
    assert_eq!(
        conn.get("/plaintext", "X-Forwarded-For: 203.0.113.2\r\n")
            .status,
        200
    );
    let res = conn.get("/plaintext", "X-Forwarded-For: 203.0.113.3\r\n");
    assert_eq!(res.status, 429);
}

#[test]
fn a_group_limiter_is_separate_from_the_app_wide_one() {
    let server = AppServer::start(2, |shard: &percore::ShardHandle| {
        App::new()
            .layer(RateLimit::new(slow(100), shard))
            .get("/plaintext", |_r: Request, _c: Ctx| async { "open" })
            .group("/strict", |g| {
                g.layer(RateLimit::new(slow(2), shard))
                    .get("/x", |_r: Request, _c: Ctx| async { "strict" })
            })
    });
    let mut conn = Conn::open(server.addr);
    for remaining in ["1", "0"] {
        let res = conn.get("/strict/x", "");
        assert_eq!(res.status, 200);
        // The group's limit is closer to exhaustion, so its headers are the ones shown.
        assert_eq!(res.header("ratelimit-limit"), Some("2"));
        assert_eq!(res.header("ratelimit-remaining"), Some(remaining));
    }
    let res = conn.get("/strict/x", "");
    assert_eq!(res.status, 429);
    assert_eq!(res.header("ratelimit-limit"), Some("2"));
    // The app-wide bucket counted the three requests and is far from empty.
    let res = conn.get("/plaintext", "");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("ratelimit-limit"), Some("100"));
    assert_eq!(res.header("ratelimit-remaining"), Some("96"));
}

const RATE: f64 = 200.0;
const BURST: u32 = 20;
const CONNECTIONS: usize = 32;
const FLOOD: Duration = Duration::from_secs(3);

/// What one client connection saw.
#[derive(Default)]
struct Tally {
    shard: usize,
    granted: u64,
    denied: u64,
}

#[test]
fn one_client_on_every_shard_gets_its_configured_rate_within_10_percent() {
    let server = AppServer::start(2, |shard: &percore::ShardHandle| {
        App::new()
            .get("/shard", |_r: Request, cx: Ctx| async move {
                cx.shard_id().to_string()
            })
            .get("/stats", |_r: Request, cx: Ctx| async move {
                let s = RateLimit::stats_all(cx.shard()).await;
                format!(
                    "{} {} {} {} {}",
                    s.checked, s.denied, s.mesh_calls, s.leases_served, s.mesh_failures
                )
            })
            .group("/limited", |g| {
                g.layer(RateLimit::new(
                    RateLimitConfig::per_second(RATE, BURST),
                    shard,
                ))
                .get("/plaintext", |_r: Request, _c: Ctx| async {
                    "Hello, World!"
                })
            })
    });
    let addr = server.addr;
    let start_line = Arc::new(Barrier::new(CONNECTIONS + 1));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let start_line = start_line.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut tally = Tally {
                    shard: conn.get("/shard", "").body_str().parse().expect("shard id"),
                    ..Tally::default()
                };
                start_line.wait();
                let deadline = Instant::now() + FLOOD;
                while Instant::now() < deadline {
                    match conn.get("/limited/plaintext", "").status {
                        200 => tally.granted += 1,
                        429 => tally.denied += 1,
                        other => panic!("unexpected status {other}"),
                    }
                }
                tally
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .collect();
    let elapsed = start.elapsed().as_secs_f64();

    let mut per_shard = [(0usize, 0u64, 0u64); 2];
    for t in &tallies {
        let s = &mut per_shard[t.shard];
        s.0 += 1;
        s.1 += t.granted;
        s.2 += t.denied;
    }
    let granted: u64 = tallies.iter().map(|t| t.granted).sum();
    let sent: u64 = granted + tallies.iter().map(|t| t.denied).sum::<u64>();
    let expected = f64::from(BURST) + RATE * elapsed;
    let error = (granted as f64 - expected) / expected;
    let stats = Conn::open(addr).get("/stats", "").body_str().to_owned();
    let counters: Vec<u64> = stats
        .split(' ')
        .map(|n| n.parse().expect("a counter"))
        .collect();
    let mesh_calls = counters[2];
    println!(
        "rate limit accuracy: {granted} granted of {sent} sent in {elapsed:.3} s \
         (expected {expected:.1} = {BURST} + {RATE}/s x t; error {:+.2} %); \
         sustained {:.1}/s granted for {RATE}/s configured; \
         per shard (connections, granted, denied): {per_shard:?}; \
         mesh calls {mesh_calls} = {:.4} per request (stats: checked denied mesh_calls \
         leases_served mesh_failures = {stats})",
        error * 100.0,
        (granted as f64 - f64::from(BURST)) / elapsed,
        mesh_calls as f64 / sent as f64,
    );

    assert!(
        per_shard.iter().all(|&(conns, _, _)| conns > 0),
        "the connections did not land on both shards: {per_shard:?}"
    );
    assert!(
        sent as f64 > 2.0 * expected,
        "the clients sent too slowly ({sent} requests) to measure the limit"
    );
    assert!(
        error.abs() <= 0.10,
        "{granted} granted, expected {expected:.1} within 10 %"
    );
    assert_eq!(counters[4], 0, "no mesh call failed");
}
