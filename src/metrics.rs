//! Request metrics: a per-shard histogram of request durations and counts by status class
//! ([`ShardHistogram`], filled by the [`Timing`](crate::middleware::Timing) layer), and
//! [`metrics_handler`], which gathers every shard's histogram over the mesh and renders the
//! Prometheus text exposition format.
//!
//! Recording is a bucket search over 17 bounds and four `Cell` updates: no allocation, no lock,
//! no atomic. Shards never share a histogram; a scrape asks each for a copy.

use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;

use crate::context::Ctx;
use crate::service::{response, Request, Response};

/// Bucket upper bounds in nanoseconds: Prometheus' default buckets (5 ms .. 10 s, steps of 1,
/// 2.5, 5 per decade) extended down to 50 µs, since most requests here take microseconds.
pub const BUCKET_BOUNDS_NS: [u64; 17] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The `le` label of each bound, in seconds.
const BUCKET_LABELS: [&str; 17] = [
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];

/// Buckets including the last, unbounded one (`le="+Inf"`).
const BUCKETS: usize = BUCKET_BOUNDS_NS.len() + 1;

/// Status classes counted: 1xx to 5xx, and one slot for anything else (600-999).
const CLASSES: usize = 6;
const CLASS_LABELS: [&str; CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// One shard's request durations. Kept in the shard's locals by the timing layer.
#[derive(Debug)]
pub struct ShardHistogram {
    /// Per bucket, not cumulative.
    counts: [Cell<u64>; BUCKETS],
    sum_ns: Cell<u64>,
    by_class: [Cell<u64>; CLASSES],
}

impl Default for ShardHistogram {
    fn default() -> Self {
        ShardHistogram {
            counts: std::array::from_fn(|_| Cell::new(0)),
            sum_ns: Cell::new(0),
            by_class: std::array::from_fn(|_| Cell::new(0)),
        }
    }
}

impl ShardHistogram {
    pub fn new() -> Self {
        ShardHistogram::default()
    }

    /// Counts one request that took `elapsed` and was answered with `status`.
    pub fn record(&self, elapsed: Duration, status: StatusCode) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Prometheus buckets are `le`: a value equal to a bound belongs to that bound's bucket.
        let bucket = BUCKET_BOUNDS_NS.partition_point(|&bound| bound < ns);
        let count = &self.counts[bucket];
        count.set(count.get().wrapping_add(1));
        self.sum_ns.set(self.sum_ns.get().saturating_add(ns));
        let class = &self.by_class[class_index(status)];
        class.set(class.get().wrapping_add(1));
    }

    /// A copy of the counts, to send to the shard that renders them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].get()),
            sum_ns: u128::from(self.sum_ns.get()),
            by_class: std::array::from_fn(|i| self.by_class[i].get()),
        }
    }
}

fn class_index(status: StatusCode) -> usize {
    match status.as_u16() / 100 {
        c @ 1..=5 => usize::from(c - 1),
        _ => CLASSES - 1,
    }
}

/// A histogram's counts at one moment; snapshots of several shards add up with [`merge`].
///
/// [`merge`]: HistogramSnapshot::merge
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Per bucket (bounds [`BUCKET_BOUNDS_NS`], then +Inf), not cumulative.
    pub counts: [u64; BUCKETS],
    pub sum_ns: u128,
    /// 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub by_class: [u64; CLASSES],
}

impl HistogramSnapshot {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a = a.wrapping_add(b);
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a = a.wrapping_add(b);
        }
    }

    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |sum, &c| sum.wrapping_add(c))
    }

    /// Appends the Prometheus text format (version 0.0.4): the duration histogram with
    /// cumulative `le` buckets, its `_sum` in seconds and `_count`, and requests by status class.
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str(
            "# HELP percore_request_duration_seconds Time from the timing layer receiving a \
             request to its response being ready.\n\
             # TYPE percore_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0u64;
        for (label, count) in BUCKET_LABELS.iter().zip(self.counts) {
            cumulative = cumulative.wrapping_add(count);
            let _ = writeln!(
                out,
                "percore_request_duration_seconds_bucket{{le=\"{label}\"}} {cumulative}"
            );
        }
        let total = self.count();
        let _ = writeln!(
            out,
            "percore_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let secs = self.sum_ns / 1_000_000_000;
        let nanos = self.sum_ns % 1_000_000_000;
        let _ = writeln!(
            out,
            "percore_request_duration_seconds_sum {secs}.{nanos:09}\n\
             percore_request_duration_seconds_count {total}"
        );
        out.push_str(
            "# HELP percore_requests_total Requests answered, by status class.\n\
             # TYPE percore_requests_total counter\n",
        );
        for (i, (label, count)) in CLASS_LABELS.iter().zip(self.by_class).enumerate() {
            // Other classes appear only once seen; the five standard ones always (rate() of a
            // series that appears late misses its first increase).
            if i < CLASSES - 1 || count > 0 {
                let _ = writeln!(out, "percore_requests_total{{class=\"{label}\"}} {count}");
            }
        }
    }
}

/// The content type of the Prometheus text format.
pub static PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

/// A handler for `GET /metrics`: every shard's [`ShardHistogram`], summed, in the Prometheus
/// text format. A shard that keeps no histogram (no timing layer) or does not answer is left
/// out, and counted in `percore_metrics_shards_missing`.
pub async fn metrics_handler<S: 'static>(_req: Request, cx: Ctx<S>) -> Response {
    let shard = cx.shard();
    let mut total = HistogramSnapshot::default();
    let mut missing = 0usize;
    for id in 0..shard.count() {
        match shard.call(id, |h: &ShardHistogram| h.snapshot()).await {
            Ok(snapshot) => total.merge(&snapshot),
            Err(err) => {
                tracing::debug!(shard = id, error = %err, "no metrics from shard");
                missing += 1;
            }
        }
    }
    let mut body = String::with_capacity(2048);
    total.render_prometheus(&mut body);
    body.push_str(
        "# HELP percore_metrics_shards_missing Shards whose metrics this scrape could not read.\n\
         # TYPE percore_metrics_shards_missing gauge\n",
    );
    let _ = writeln!(body, "percore_metrics_shards_missing {missing}");
    let mut res = response(body);
    res.headers_mut()
        .insert(CONTENT_TYPE, PROMETHEUS_TEXT.clone());
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::PathParams;
    use crate::service::Body;
    use crate::shard::ShardHandle;
    use crate::testing::{block_on, request};
    use std::rc::Rc;

    fn micros(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_whose_bound_is_not_below_it() {
        let h = ShardHistogram::new();
        h.record(Duration::ZERO, StatusCode::OK);
        h.record(micros(50), StatusCode::OK);
        h.record(micros(50) + Duration::from_nanos(1), StatusCode::OK);
        h.record(Duration::from_secs(10), StatusCode::OK);
        h.record(Duration::from_secs(11), StatusCode::OK);
        h.record(Duration::MAX, StatusCode::OK);
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "0 and exactly 50 µs");
        assert_eq!(s.counts[1], 1, "just over 50 µs");
        assert_eq!(s.counts[BUCKETS - 2], 1, "exactly 10 s");
        assert_eq!(s.counts[BUCKETS - 1], 2, "over 10 s: +Inf");
        assert_eq!(s.count(), 6);
    }

    #[test]
    fn statuses_are_counted_by_class() {
        let h = ShardHistogram::new();
        for code in [101, 200, 204, 301, 404, 429, 500, 503, 999] {
            h.record(micros(1), StatusCode::from_u16(code).unwrap());
        }
        assert_eq!(h.snapshot().by_class, [1, 2, 1, 2, 2, 1]);
    }

    #[test]
    fn snapshots_merge_by_adding() {
        let a = ShardHistogram::new();
        let b = ShardHistogram::new();
        a.record(micros(10), StatusCode::OK);
        b.record(micros(10), StatusCode::OK);
        b.record(micros(3000), StatusCode::NOT_FOUND);
        let mut total = a.snapshot();
        total.merge(&b.snapshot());
        assert_eq!(total.count(), 3);
        assert_eq!(total.counts[0], 2);
        assert_eq!(total.sum_ns, 3_020_000);
        assert_eq!(total.by_class[1], 2);
        assert_eq!(total.by_class[3], 1);
    }

    #[test]
    fn prometheus_buckets_are_cumulative_with_sum_in_seconds() {
        let h = ShardHistogram::new();
        h.record(micros(40), StatusCode::OK);
        h.record(micros(200), StatusCode::OK);
        h.record(Duration::from_secs(20), StatusCode::INTERNAL_SERVER_ERROR);
        let mut text = String::new();
        h.snapshot().render_prometheus(&mut text);
        for line in [
            "# TYPE percore_request_duration_seconds histogram",
            "percore_request_duration_seconds_bucket{le=\"0.00005\"} 1",
            "percore_request_duration_seconds_bucket{le=\"0.0001\"} 1",
            "percore_request_duration_seconds_bucket{le=\"0.00025\"} 2",
            "percore_request_duration_seconds_bucket{le=\"10\"} 2",
            "percore_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "percore_request_duration_seconds_sum 20.000240000",
            "percore_request_duration_seconds_count 3",
            "percore_requests_total{class=\"2xx\"} 2",
            "percore_requests_total{class=\"5xx\"} 1",
            "percore_requests_total{class=\"1xx\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("class=\"other\""));
    }

    #[test]
    fn the_handler_renders_the_shards_histograms() {
        let shard = ShardHandle::standalone();
        let h = shard.locals().get_or_insert_with(ShardHistogram::new);
        h.record(micros(10), StatusCode::OK);
        h.record(micros(10), StatusCode::OK);
        let cx = Ctx::new(PathParams::default(), Rc::new(()), shard);
        let res = block_on(metrics_handler(
            request("GET /metrics HTTP/1.1\r\n\r\n"),
            cx,
        ));
        assert_eq!(res.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
        let Body::Full(body) = res.body() else {
            panic!("empty body")
        };
        let text = std::str::from_utf8(body).unwrap();
        assert!(
            text.contains("\npercore_request_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("\npercore_metrics_shards_missing 0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_shard_without_a_histogram_is_reported_missing() {
        let cx = Ctx::new(
            PathParams::default(),
            Rc::new(()),
            ShardHandle::standalone(),
        );
        let res = block_on(metrics_handler(
            request("GET /metrics HTTP/1.1\r\n\r\n"),
            cx,
        ));
        let Body::Full(body) = res.body() else {
            panic!("empty body")
        };
        let text = std::str::from_utf8(body).unwrap();
        assert!(
            text.contains("\npercore_metrics_shards_missing 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\npercore_request_duration_seconds_count 0\n"),
            "{text}"
        );
    }
}
