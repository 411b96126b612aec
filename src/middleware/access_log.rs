//! The access log: one tracing event per request (target [`ACCESS_LOG_TARGET`], level INFO),
//! emitted after the response is produced, with the method, path, status, body length,
//! duration, shard, peer, client address, request id and protocol. Where the events go is the
//! subscriber's business ([`crate::logging`] writes them as JSON lines to a file).
//!
//! With no subscriber interested in the target, the layer costs one check of the callsite's
//! cached interest (an atomic load) and captures nothing beyond the chain's one box per layer.
//! On, writing to a file through [`crate::logging`], ~2,700 instructions a request (callgrind,
//! `/plaintext`; 6,000 before the layer and the log were tuned): two clock reads (the end of
//! the duration is the line's time too), the event through tracing, the JSON line, and the
//! amortised `write(2)`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use http::Method;
use tracing::Level;

use super::{client_ip, Middleware, Next, RequestId, TrustedProxies};
use crate::http1::{Target, Version};
use crate::panic::CatchUnwind;
use crate::service::{Request, Response};

/// The tracing target of access events. The diagnostics log must exclude it
/// ([`crate::logging::init`]'s subscriber does).
pub const ACCESS_LOG_TARGET: &str = "percore::access";

/// Settings of the access-log layer.
#[derive(Debug, Clone, Default)]
pub struct AccessLogConfig {
    /// Also log the raw query string (field `query`). Off by default: query strings often carry
    /// tokens and personal data that should not end up in log storage.
    pub query: bool,
    /// Proxies whose forwarding header names the client (`client_ip`); default none: the
    /// client is the TCP peer.
    pub trusted_proxies: TrustedProxies,
}

/// The access-log layer. Put it after the request-id layer so its events carry the id.
#[derive(Debug, Clone, Default)]
pub struct AccessLog {
    config: AccessLogConfig,
    /// Per shard, like the layer; borrowed only between the response and the event.
    addresses: RefCell<AddressTexts>,
}

impl AccessLog {
    pub fn new(config: AccessLogConfig) -> Self {
        AccessLog {
            config,
            addresses: RefCell::default(),
        }
    }

    /// Emits the request's access event.
    fn emit(&self, seen: &Seen, res: &Response, started: Instant, ended: Instant) {
        let duration_us =
            u64::try_from(ended.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
        let query = if self.config.query {
            seen.target.query()
        } else {
            None
        };
        // Never busy (nothing awaits while it is borrowed); a fresh cache if it were.
        let mut cached = self.addresses.try_borrow_mut().ok();
        let mut spare = None;
        let addresses = match cached.as_deref_mut() {
            Some(cached) => cached,
            None => spare.insert(AddressTexts::default()),
        };
        let (peer, client_ip) = addresses.texts(seen.peer, seen.client_ip);
        // `ended` is the line's time too: one clock read serves both.
        crate::logging::emit_at(ended, || {
            tracing::info!(
                target: ACCESS_LOG_TARGET,
                method = seen.method.as_str(),
                path = seen.target.path(),
                query,
                status = res.status().as_u16(),
                bytes = res.body().len() as u64,
                duration_us,
                shard = seen.shard as u64,
                peer,
                client_ip,
                request_id = seen.request_id.as_ref().map(RequestId::as_str),
                protocol = protocol(seen.version),
            )
        });
    }
}

/// What the event needs from the request, taken before the request moves down the chain.
/// Cheap: the method clone is free for standard methods, the target clone bumps a reference
/// count (and copies the decoded path only when the path had a `%`).
struct Seen {
    method: Method,
    target: Target,
    version: Version,
    peer: SocketAddr,
    client_ip: IpAddr,
    shard: usize,
    request_id: Option<RequestId>,
}

impl Seen {
    fn of(req: &Request, client_ip: IpAddr) -> Self {
        Seen {
            method: req.method().clone(),
            target: req.target().clone(),
            version: req.version(),
            peer: req.peer,
            client_ip,
            shard: req.shard,
            request_id: req.request_id.clone(),
        }
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
        Version::Http2 => "HTTP/2.0",
    }
}

impl Middleware for AccessLog {
    // One future, boxed once by the chain. (Returning the rest of the chain's boxed future when
    // the log is off, and a second box around the logging future when it is on, cost a second
    // allocation per request with the log on; the off path now carries the larger future, one
    // allocation either way.)
    async fn handle(&self, req: Request, next: Next<'_>) -> Response {
        if !tracing::enabled!(target: ACCESS_LOG_TARGET, Level::INFO) {
            return next.run(req).await;
        }
        let started = Instant::now();
        let seen = Seen::of(&req, client_ip(&req, &self.config.trusted_proxies));
        // A panicking inner layer would otherwise unwind past us (to `App::call`, which answers
        // the same 500) and the request would be missing from the log.
        let res = match CatchUnwind::new(next.run(req)).await {
            Ok(res) => res,
            Err(panic) => {
                tracing::error!(
                    request_id = seen.request_id.as_ref().map(RequestId::as_str),
                    panic = %panic,
                    "middleware panicked; answered 500"
                );
                crate::error::Error::panic_response(panic)
            }
        };
        self.emit(&seen, &res, started, Instant::now());
        res
    }
}

/// The peer address and the client IP as text, kept from one request to the next: requests come
/// from few addresses at a time (a client's keep-alive connections, the proxy in front), so an
/// IP is formatted when it changes and only the port per request. Through `Display` the two
/// addresses cost ~100 ns a line (measured); formatted on the stack for every request, ~330
/// instructions; from here, ~120 (callgrind).
#[derive(Debug, Clone, Default)]
struct AddressTexts {
    /// The last peer IP, and its text as `IpAddr`'s `Display` writes it.
    peer_ip: Option<IpAddr>,
    peer_ip_text: String,
    /// The last client IP that was not its peer's IP (behind a trusted proxy), and its text.
    client_ip: Option<IpAddr>,
    client_ip_text: String,
    /// The current peer as `SocketAddr`'s `Display` writes it: `a.b.c.d:port`,
    /// `[v6%scope]:port` (the scope only when not 0).
    peer: String,
}

impl AddressTexts {
    /// The texts of `peer` and of `client_ip`.
    fn texts(&mut self, peer: SocketAddr, client_ip: IpAddr) -> (&str, &str) {
        let ip = peer.ip();
        if self.peer_ip != Some(ip) {
            write_ip(&mut self.peer_ip_text, ip);
            self.peer_ip = Some(ip);
        }
        self.peer.clear();
        let ip_at = match peer {
            SocketAddr::V4(_) => {
                self.peer.push_str(&self.peer_ip_text);
                0
            }
            SocketAddr::V6(v6) => {
                self.peer.push('[');
                self.peer.push_str(&self.peer_ip_text);
                if v6.scope_id() != 0 {
                    self.peer.push('%');
                    self.peer
                        .push_str(itoa::Buffer::new().format(v6.scope_id()));
                }
                self.peer.push(']');
                1
            }
        };
        self.peer.push(':');
        self.peer.push_str(itoa::Buffer::new().format(peer.port()));
        if client_ip == ip {
            // The usual case: the client is the peer, whose text holds the IP's.
            let ip_text = self
                .peer
                .get(ip_at..ip_at + self.peer_ip_text.len())
                .unwrap_or_default();
            return (&self.peer, ip_text);
        }
        if self.client_ip != Some(client_ip) {
            write_ip(&mut self.client_ip_text, client_ip);
            self.client_ip = Some(client_ip);
        }
        (&self.peer, &self.client_ip_text)
    }
}

/// Replaces `out` with `ip` as `IpAddr`'s `Display` writes it (IPv4 without `fmt`).
fn write_ip(out: &mut String, ip: IpAddr) {
    out.clear();
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let mut digits = itoa::Buffer::new();
            out.push_str(digits.format(a));
            for octet in [b, c, d] {
                out.push('.');
                out.push_str(digits.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers, RequestIds};
    use crate::response::IntoResponse;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use http::StatusCode;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    type Fields = BTreeMap<String, String>;

    /// Records every access event's fields as text.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<Fields>>>);

    struct Collect<'a>(&'a mut Fields);
    impl Visit for Collect<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Events {
        fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
            if event.metadata().target() == ACCESS_LOG_TARGET {
                let mut fields = Fields::new();
                event.record(&mut Collect(&mut fields));
                self.0.lock().unwrap().push(fields);
            }
        }
    }

    struct Answer(StatusCode, &'static str);
    impl Endpoint for Answer {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            let res = (self.0, self.1).into_response();
            Box::pin(async move { res })
        }
    }

    struct Panics;
    impl Middleware for Panics {
        async fn handle(&self, _req: Request, _next: Next<'_>) -> Response {
            panic!("inner layer bug")
        }
    }

    /// Runs `raw` through `layers` ending in `end` with an event collector installed.
    fn run(
        layers: Vec<Rc<dyn DynMiddleware>>,
        end: &dyn Endpoint,
        raw: &str,
    ) -> (Response, Vec<Fields>) {
        let events = Events::default();
        let subscriber = tracing_subscriber::registry().with(events.clone());
        let layers: Layers = Rc::from(layers);
        let res = tracing::subscriber::with_default(subscriber, || {
            block_on(Next::new(&layers, end).run(request(raw)))
        });
        let seen = events.0.lock().unwrap().clone();
        (res, seen)
    }

    fn access_log() -> Rc<dyn DynMiddleware> {
        Rc::new(AccessLog::default())
    }

    #[test]
    fn one_event_per_request_with_every_field() {
        let (res, events) = run(
            vec![Rc::new(RequestIds::new(0)), access_log()],
            &Answer(StatusCode::OK, "hello"),
            "GET /a%20b?x=1 HTTP/1.1\r\nX-Request-Id: req-1\r\n\r\n",
        );
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e["method"], "GET");
        assert_eq!(e["path"], "/a b");
        assert_eq!(e["status"], "200");
        assert_eq!(e["bytes"], "5");
        assert!(e["duration_us"].parse::<u64>().is_ok());
        assert_eq!(e["shard"], "0");
        assert_eq!(e["peer"], "127.0.0.1:40000");
        assert_eq!(e["client_ip"], "127.0.0.1");
        assert_eq!(e["request_id"], "req-1");
        assert_eq!(e["protocol"], "HTTP/1.1");
        assert!(!e.contains_key("query"), "the query is off by default");
    }

    #[test]
    fn error_responses_are_logged_with_their_status_and_length() {
        let (_, events) = run(
            vec![access_log()],
            &Answer(StatusCode::NOT_FOUND, "not here"),
            "HEAD /missing HTTP/1.0\r\n\r\n",
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["status"], "404");
        assert_eq!(events[0]["bytes"], "8");
        assert_eq!(events[0]["method"], "HEAD");
        assert_eq!(events[0]["protocol"], "HTTP/1.0");
        assert!(!events[0].contains_key("request_id"));
    }

    #[test]
    fn a_panicking_inner_layer_is_logged_as_a_500() {
        let (res, events) = run(
            vec![access_log(), Rc::new(Panics)],
            &Answer(StatusCode::OK, "unreachable"),
            "GET / HTTP/1.1\r\n\r\n",
        );
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["status"], "500");
    }

    #[test]
    fn the_query_is_logged_only_when_configured() {
        let layer = Rc::new(AccessLog::new(AccessLogConfig {
            query: true,
            ..AccessLogConfig::default()
        }));
        let (_, events) = run(
            vec![layer],
            &Answer(StatusCode::OK, ""),
            "GET /s?q=a%20b&n=2 HTTP/1.1\r\n\r\n",
        );
        assert_eq!(events[0]["query"], "q=a%20b&n=2");
        assert_eq!(events[0]["path"], "/s");
    }

    #[test]
    fn the_client_ip_comes_from_a_trusted_proxy_header() {
        let layer = Rc::new(AccessLog::new(AccessLogConfig {
            trusted_proxies: "127.0.0.1".parse().unwrap(),
            ..AccessLogConfig::default()
        }));
        let (_, events) = run(
            vec![layer],
            &Answer(StatusCode::OK, ""),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        );
        assert_eq!(events[0]["client_ip"], "203.0.113.9");
        assert_eq!(events[0]["peer"], "127.0.0.1:40000");
        // Without trust, the header is the client's word only: the peer is the client.
        let (_, events) = run(
            vec![access_log()],
            &Answer(StatusCode::OK, ""),
            "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
        );
        assert_eq!(events[0]["client_ip"], "127.0.0.1");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut texts = AddressTexts::default();
        let proxy: IpAddr = "203.0.113.9".parse().unwrap();
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.1.20.3:8080",
            "10.1.20.3:8081",
            "[::1]:443",
            "[2001:db8::ff00:42:8329]:1",
            "[fe80::1%4294967295]:65535",
            "[fe80::1]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
            "[::ffff:1.2.3.4]:80",
            "10.1.20.3:8080",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let (peer, client) = texts.texts(addr, addr.ip());
            assert_eq!(peer, addr.to_string());
            assert_eq!(client, addr.ip().to_string());
            let (peer, client) = texts.texts(addr, proxy);
            assert_eq!(peer, addr.to_string());
            assert_eq!(client, "203.0.113.9");
            let mapped = IpAddr::V4("1.2.3.4".parse().unwrap());
            assert_eq!(texts.texts(addr, mapped).1, "1.2.3.4");
        }
    }

    #[test]
    fn no_event_when_no_layer_wants_the_access_target() {
        // A subscriber whose only layer ignores the access target entirely.
        let events = Events::default();
        let filtered = events.clone().with_filter(
            tracing_subscriber::filter::Targets::new().with_target("other", Level::INFO),
        );
        let subscriber = tracing_subscriber::registry().with(filtered);
        let layers: Layers = Rc::from(vec![access_log()]);
        let end = Answer(StatusCode::OK, "ok");
        let res = tracing::subscriber::with_default(subscriber, || {
            block_on(Next::new(&layers, &end).run(request("GET / HTTP/1.1\r\n\r\n")))
        });
        assert_eq!(res.status(), StatusCode::OK);
        assert!(events.0.lock().unwrap().is_empty());
    }
}
