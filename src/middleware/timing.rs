//! Request timing: `Server-Timing: app;dur=<ms>` on every response (W3C Server Timing §3: a
//! metric name, then `dur` in milliseconds), and the duration recorded in the shard's
//! [`ShardHistogram`] for [`crate::metrics::metrics_handler`].
//!
//! The duration is from this layer receiving the request to the inner layers returning the
//! response: it covers the layers inside this one and the handler, not the socket write.

use std::rc::Rc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};

use super::Hook;
use crate::metrics::ShardHistogram;
use crate::service::{Request, Response};
use crate::shard::ShardHandle;

/// Settings of the timing layer.
#[derive(Debug, Clone)]
pub struct TimingConfig {
    /// Send `Server-Timing` (default on). The W3C spec (§6, privacy and security) notes it tells
    /// clients how long the server worked; turn it off where that matters.
    pub server_timing: bool,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            server_timing: true,
        }
    }
}

/// The timing layer. Build one per shard with [`Timing::new`].
#[derive(Debug)]
pub struct Timing {
    histogram: Rc<ShardHistogram>,
    server_timing: Option<HeaderName>,
}

impl Timing {
    /// Records into `shard`'s histogram (created in its locals on first use, so every timing
    /// layer of a shard, app-wide or per group, adds to the one histogram `/metrics` reads).
    pub fn new(config: TimingConfig, shard: &ShardHandle) -> Self {
        Timing {
            histogram: shard.locals().get_or_insert_with(ShardHistogram::new),
            server_timing: config
                .server_timing
                .then(|| HeaderName::from_static("server-timing")),
        }
    }
}

/// Longest value: `app;dur=` + 17 digits of whole milliseconds (u64 µs / 1000) + `.` + 3.
const VALUE_CAP: usize = 8 + 17 + 1 + 3;

/// `app;dur=<ms>.<µs>`: milliseconds with three decimals, formatted on the stack.
fn server_timing_value(elapsed: Duration) -> Option<HeaderValue> {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let mut buf = [0u8; VALUE_CAP];
    let prefix = b"app;dur=";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut len = prefix.len();
    let mut digits = itoa::Buffer::new();
    let whole = digits.format(micros / 1000).as_bytes();
    buf[len..len + whole.len()].copy_from_slice(whole);
    len += whole.len();
    let frac = (micros % 1000) as u16;
    buf[len..len + 4].copy_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    len += 4;
    HeaderValue::from_bytes(&buf[..len]).ok()
}

impl Hook for Timing {
    type Carry = Instant;

    fn before(&self, _req: &mut Request) -> Result<Instant, Response> {
        Ok(Instant::now())
    }

    fn after(&self, started: Instant, res: &mut Response) {
        let elapsed = started.elapsed();
        self.histogram.record(elapsed, res.status());
        if let Some(name) = &self.server_timing {
            if let Some(mut value) = server_timing_value(elapsed) {
                // A fresh value per response: never worth an HPACK table slot (see request_id).
                value.set_sensitive(true);
                // Appended: a handler's own metrics (`db;dur=...`) stay; the field is a list.
                res.headers_mut().append(name.clone(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers, Next};
    use crate::response::IntoResponse;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use http::StatusCode;

    struct Answer(StatusCode);
    impl Endpoint for Answer {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            let mut res = (self.0, "body").into_response();
            if self.0 == StatusCode::ACCEPTED {
                res.headers_mut()
                    .insert("server-timing", HeaderValue::from_static("db;dur=1.5"));
            }
            Box::pin(async move { res })
        }
    }

    fn run(layer: Timing, end: StatusCode) -> Response {
        let layers: Layers = Rc::from(vec![Rc::new(layer) as Rc<dyn DynMiddleware>]);
        block_on(Next::new(&layers, &Answer(end)).run(request("GET / HTTP/1.1\r\n\r\n")))
    }

    #[test]
    fn server_timing_is_milliseconds_with_three_decimals() {
        for (us, want) in [
            (0, "app;dur=0.000"),
            (7, "app;dur=0.007"),
            (1_234, "app;dur=1.234"),
            (1_234_567_890, "app;dur=1234567.890"),
        ] {
            let value = server_timing_value(Duration::from_micros(us)).unwrap();
            assert_eq!(value, want);
        }
        let max = server_timing_value(Duration::MAX).unwrap();
        assert_eq!(max, "app;dur=18446744073709551.615");
    }

    #[test]
    fn every_response_gets_a_server_timing_header() {
        let res = run(
            Timing::new(TimingConfig::default(), &ShardHandle::standalone()),
            StatusCode::OK,
        );
        let value = &res.headers()["server-timing"];
        assert!(
            value.is_sensitive(),
            "unique per response: never indexed by HPACK"
        );
        let ms: f64 = value
            .to_str()
            .unwrap()
            .strip_prefix("app;dur=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(ms >= 0.0);
    }

    #[test]
    fn a_handler_server_timing_is_kept() {
        let res = run(
            Timing::new(TimingConfig::default(), &ShardHandle::standalone()),
            StatusCode::ACCEPTED,
        );
        let values: Vec<_> = res.headers().get_all("server-timing").iter().collect();
        assert_eq!(values.len(), 2);
        assert_eq!(values[0], "db;dur=1.5");
    }

    #[test]
    fn the_header_can_be_turned_off() {
        let config = TimingConfig {
            server_timing: false,
        };
        let res = run(
            Timing::new(config, &ShardHandle::standalone()),
            StatusCode::OK,
        );
        assert!(res.headers().get("server-timing").is_none());
    }

    #[test]
    fn each_request_is_recorded_in_the_shard_histogram() {
        let shard = ShardHandle::standalone();
        run(Timing::new(TimingConfig::default(), &shard), StatusCode::OK);
        run(
            Timing::new(TimingConfig::default(), &shard),
            StatusCode::NOT_FOUND,
        );
        let snapshot = shard.locals().get::<ShardHistogram>().unwrap().snapshot();
        assert_eq!(snapshot.count(), 2);
        assert_eq!(snapshot.by_class[1], 1);
        assert_eq!(snapshot.by_class[3], 1);
    }
}
