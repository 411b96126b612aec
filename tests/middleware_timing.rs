//! The timing layer end to end: `Server-Timing` on real responses, and `/metrics` summing the
//! histograms of two shards over the mesh.

mod common;

use std::collections::HashSet;

use common::app::AppServer;
use common::client;
use percore::metrics::metrics_handler;
use percore::middleware::{Timing, TimingConfig};
use percore::{App, Ctx, Request, ShardHandle};

fn app(shard: &ShardHandle) -> App {
    App::new()
        .get("/work", |_req: Request, cx: Ctx| async move {
            cx.shard_id().to_string()
        })
        .get("/metrics", metrics_handler::<()>)
        .layer(Timing::new(TimingConfig::default(), shard))
}

/// The value of the sample `name` (a whole metric name with its labels) in Prometheus text.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not an integer in\n{text}"))
}

#[test]
fn server_timing_is_present_and_parseable() {
    let server = AppServer::start(1, app);
    let res = client().get(server.url("/work")).send().unwrap();
    assert_eq!(res.status(), 200);
    let value = res.headers()["server-timing"].to_str().unwrap();
    // W3C Server Timing: `metric;dur=<milliseconds>`.
    let ms = value
        .strip_prefix("app;dur=")
        .unwrap_or_else(|| panic!("unexpected Server-Timing {value:?}"));
    let (whole, frac) = ms.split_once('.').expect("three decimals");
    assert_eq!(frac.len(), 3, "{value}");
    assert!(whole.bytes().all(|b| b.is_ascii_digit()), "{value}");
    let ms: f64 = ms.parse().unwrap();
    assert!((0.0..10_000.0).contains(&ms), "{value}");
}

#[test]
fn metrics_count_every_request_across_two_shards() {
    const REQUESTS: u64 = 200;
    let server = AppServer::start(2, app);
    let mut shards = HashSet::new();
    let mut c = client();
    for i in 0..REQUESTS {
        // Fresh connections so both shards serve some (20 connections on one shard: 2^-19).
        if i % 10 == 0 {
            c = client();
        }
        let res = c.get(server.url("/work")).send().unwrap();
        assert_eq!(res.status(), 200);
        shards.insert(res.text().unwrap());
    }
    assert_eq!(shards.len(), 2, "both shards served");
    for _ in 0..3 {
        assert_eq!(c.get(server.url("/nowhere")).send().unwrap().status(), 404);
    }

    let res = client().get(server.url("/metrics")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = res.text().unwrap();
    // The scrape itself is recorded after its response is built, so it is not counted yet.
    let total = REQUESTS + 3;
    assert_eq!(
        sample(&text, "percore_request_duration_seconds_count"),
        total
    );
    assert_eq!(
        sample(
            &text,
            "percore_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        total
    );
    assert_eq!(
        sample(&text, "percore_requests_total{class=\"2xx\"}"),
        REQUESTS
    );
    assert_eq!(sample(&text, "percore_requests_total{class=\"4xx\"}"), 3);
    assert_eq!(sample(&text, "percore_metrics_shards_missing"), 0);

    // A second scrape counts the first.
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        sample(&text, "percore_request_duration_seconds_count"),
        total + 1
    );
}
