//! Rate limiting: a token bucket per client address (per IPv6 /64 by default), per limiter. An
//! app-wide limiter ([`App::layer`](crate::App::layer)) and any group's own
//! ([`Group::layer`](crate::Group::layer)) keep separate buckets. Over the limit the answer is
//! `429 Too Many Requests` with `Retry-After`; every answer carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (draft-ietf-httpapi-ratelimit-headers-06).
//!
//! **Per client, not per shard.** A client's connections land on any shard, so a bucket per shard
//! would give it `shards × rate`. Each client's bucket lives on one *owner* shard, chosen by a
//! fixed hash of its address ([`key`]). The owner consults it synchronously (a `HashMap` lookup);
//! other shards ask the owner over the mesh, and to keep that off the common path they batch
//! ([`lease`]): the owner lends a few tokens at once (taken from the bucket, so never granted
//! twice), a denial is remembered locally until the owner's retry time, and one question per
//! client is in flight at a time. With one shard there is no mesh traffic at all.
//!
//! Accuracy: the bucket is the only source of tokens, so a client never gets more than
//! `burst + rate × t`; leases only move tokens in time. They can make a client's burst exceed
//! `burst` by at most `(shards - 1) × max_lease` (tokens leased up to [`lease::LEASE_TTL`] earlier),
//! and a lease that expires unspent is lost to the client. `max_lease` is 20 ms worth of tokens,
//! between 1 and 64, and at most half the burst.
//!
//! If the owner cannot be reached (its shard has stopped), requests are allowed (fail open) and a
//! warning is logged at most once a second per shard.
//!
//! Memory: see [`store`] (owner side: full buckets swept, hard cap evicting the buckets nearest to
//! full) and [`lease`] (asking side: idle entries swept, capped).
//!
//! Cost on the common path: the client address, one clock read, one `HashMap` lookup, and three
//! response headers whose values are either precomputed or slices of a static table.

mod bucket;
mod key;
mod lease;
mod store;

use std::cell::RefCell;
use std::ops::AddAssign;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;

use super::client_ip::{client_ip, TrustedProxies};
use super::{Middleware, Next};
use crate::response::TEXT_PLAIN;
use crate::service::{response, Body, Request, Response};
use crate::shard::ShardHandle;
use bucket::{secs_ceil, Nanos, Quota, Take, MAX_BURST, NANOS_PER_SEC};
use key::ClientKey;
use lease::{Decision, Inflight, LeaseTable, Verdict};
use store::{BucketTable, LimiterId, ShardBuckets};

/// A rate limiter's settings.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client (fractions allowed: 0.5 is one every 2 s).
    pub rate: f64,
    /// Requests a client may make at once after being idle: the bucket's capacity, and the
    /// value of `RateLimit-Limit`.
    pub burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed (see [`client_ip`]). Default: none.
    pub trusted_proxies: TrustedProxies,
    /// IPv6 clients are limited per prefix of this many bits (default 64: one subscriber).
    pub ipv6_prefix: u8,
    /// Most clients tracked per limiter per shard, as owner and as asker each (default 100,000;
    /// an owned bucket takes about 30 bytes, a lease entry about 75). Beyond it the buckets
    /// nearest to full are evicted (see the `store` module).
    pub max_clients: usize,
    /// How often idle clients' state is dropped (default 10 s).
    pub sweep_interval: Duration,
    /// Send `RateLimit-*` on allowed responses too (default true); 429s always carry them.
    pub headers_on_allowed: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            rate: 100.0,
            burst: 200,
            trusted_proxies: TrustedProxies::none(),
            ipv6_prefix: 64,
            max_clients: 100_000,
            sweep_interval: Duration::from_secs(10),
            headers_on_allowed: true,
        }
    }
}

/// A setting out of range, for the command line to report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitConfigError {
    #[error("rate limit rate must be a positive number of requests per second (at least 0.001), not {0}")]
    Rate(f64),
    #[error("rate limit burst must be between 1 and {MAX_BURST}, not {0}")]
    Burst(u32),
    #[error("rate limit IPv6 prefix must be between 1 and 128 bits, not {0}")]
    Ipv6Prefix(u8),
    #[error("rate limit max clients must be at least 1")]
    MaxClients,
}

impl RateLimitConfig {
    /// `rate` requests per second with bursts of `burst`, other settings default.
    pub fn per_second(rate: f64, burst: u32) -> Self {
        RateLimitConfig {
            rate,
            burst,
            ..RateLimitConfig::default()
        }
    }

    /// Checks the ranges [`RateLimit::new`] would otherwise clamp silently.
    pub fn validate(&self) -> Result<(), RateLimitConfigError> {
        if !(self.rate.is_finite() && self.rate >= 0.001) {
            return Err(RateLimitConfigError::Rate(self.rate));
        }
        if !(1..=MAX_BURST).contains(&self.burst) {
            return Err(RateLimitConfigError::Burst(self.burst));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(RateLimitConfigError::Ipv6Prefix(self.ipv6_prefix));
        }
        if self.max_clients == 0 {
            return Err(RateLimitConfigError::MaxClients);
        }
        Ok(())
    }
}

/// Counters of the rate limiters on one shard (or summed over shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Requests checked (by every limiter: a request through two limiters counts twice).
    pub checked: u64,
    /// Requests answered 429.
    pub denied: u64,
    /// Lease requests this shard sent to owner shards.
    pub mesh_calls: u64,
    /// Of those, how many failed (and were allowed).
    pub mesh_failures: u64,
    /// Lease requests this shard answered as owner.
    pub leases_served: u64,
    /// Buckets evicted by the `max_clients` cap (not by the lossless sweep).
    pub evicted: u64,
    /// Buckets held now.
    pub buckets: u64,
}

impl AddAssign for RateLimitStats {
    fn add_assign(&mut self, other: Self) {
        self.checked += other.checked;
        self.denied += other.denied;
        self.mesh_calls += other.mesh_calls;
        self.mesh_failures += other.mesh_failures;
        self.leases_served += other.leases_served;
        self.evicted += other.evicted;
        self.buckets += other.buckets;
    }
}

/// Lease size: this much time's worth of tokens. 20 ms keeps a flood's mesh traffic to a few
/// dozen messages a second per client and shard while the tokens a lease can carry past their
/// time stay a small fraction of what the client gets.
const LEASE_WINDOW: Nanos = 20_000_000;
const MAX_LEASE: u32 = 64;

/// What a shard built with other layers than the asking one answers (the factory must build the
/// same limiters in the same order on every shard).
const NO_SUCH_LIMITER: &str = "the owner shard has no such limiter (were the shards built alike?)";

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The rate-limit layer. Build one per shard with [`RateLimit::new`], in the same order on every
/// shard (the app factory does this naturally): the order is the limiter's identity.
pub struct RateLimit {
    id: LimiterId,
    quota: Quota,
    shard: ShardHandle,
    /// This shard's owner store (also in the shard's locals, for the mesh).
    store: Rc<ShardBuckets>,
    /// Leases and denials for clients other shards own.
    leases: RefCell<LeaseTable>,
    trusted: TrustedProxies,
    ipv6_prefix: u8,
    headers_on_allowed: bool,
    limit_value: HeaderValue,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("id", &self.id)
            .field("quota", &self.quota)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// A limiter on `shard`; out-of-range settings are clamped (use
    /// [`RateLimitConfig::validate`] first to report them).
    pub fn new(config: RateLimitConfig, shard: &ShardHandle) -> Self {
        let quota = Quota::new(config.rate, config.burst);
        let sweep_every = to_nanos(config.sweep_interval);
        let store = shard.locals().get_or_insert_with(ShardBuckets::default);
        let id = store.register(BucketTable::new(quota, config.max_clients, sweep_every));
        let max_lease = ((LEASE_WINDOW / quota.interval()) as u32)
            .clamp(1, MAX_LEASE)
            .min((quota.burst() / 2).max(1));
        RateLimit {
            id,
            quota,
            shard: shard.clone(),
            store,
            leases: RefCell::new(LeaseTable::new(max_lease, config.max_clients, sweep_every)),
            trusted: config.trusted_proxies,
            ipv6_prefix: config.ipv6_prefix.clamp(1, 128),
            headers_on_allowed: config.headers_on_allowed,
            limit_value: number(u64::from(quota.burst())),
        }
    }

    /// The counters of the limiters on `shard` (zero if it has none).
    pub fn stats(shard: &ShardHandle) -> RateLimitStats {
        shard
            .locals()
            .get::<ShardBuckets>()
            .map_or_else(RateLimitStats::default, |store| store.snapshot())
    }

    /// The counters summed over every shard (asked over the mesh; shards that do not answer are
    /// left out).
    pub async fn stats_all(shard: &ShardHandle) -> RateLimitStats {
        let mut total = RateLimitStats::default();
        for to in 0..shard.count() {
            if let Ok(stats) = shard
                .call(to, |store: &ShardBuckets| store.snapshot())
                .await
            {
                total += stats;
            }
        }
        total
    }

    /// The verdict for one request from `key`, and the time it was reached; `None` to fail open.
    async fn check(&self, key: ClientKey) -> Option<(Verdict, Nanos)> {
        self.store.stats.borrow_mut().checked += 1;
        let owner = key.owner(self.shard.count());
        if owner == self.shard.id() {
            let now = clock::now();
            let take = self.store.take(self.id, key, 1, now)?;
            return Some((verdict(take), now));
        }
        loop {
            let now = clock::now();
            let decision = self.leases.borrow_mut().decide(key, now);
            match decision {
                Decision::Done(verdict) => return Some((verdict, now)),
                Decision::Wait(inflight) => inflight.wait().await,
                Decision::Ask { want, inflight } => {
                    return self.ask_owner(owner, key, want, inflight).await
                }
            }
        }
    }

    async fn ask_owner(
        &self,
        owner: usize,
        key: ClientKey,
        want: u32,
        inflight: Rc<Inflight>,
    ) -> Option<(Verdict, Nanos)> {
        // Wakes the requests waiting on this question however this ends, even if this request's
        // future is dropped mid-call (its connection closed).
        let _guard = AskGuard {
            leases: &self.leases,
            key,
            inflight,
        };
        self.store.stats.borrow_mut().mesh_calls += 1;
        let id = self.id;
        let answer = self
            .shard
            .call(owner, move |store: &ShardBuckets| {
                store.lease(id, key, want, clock::now())
            })
            .await;
        let now = clock::now();
        match answer {
            Ok(Some(take)) => Some((self.leases.borrow_mut().settle(key, take, now), now)),
            Ok(None) => {
                self.fail_open(owner, &NO_SUCH_LIMITER, now);
                None
            }
            Err(err) => {
                self.fail_open(owner, &err, now);
                None
            }
        }
    }

    fn fail_open(&self, owner: usize, err: &dyn std::fmt::Display, now: Nanos) {
        self.store.stats.borrow_mut().mesh_failures += 1;
        let last = self.store.last_mesh_warning.get();
        if last.is_none_or(|at| now >= at.saturating_add(NANOS_PER_SEC)) {
            self.store.last_mesh_warning.set(Some(now));
            tracing::warn!(owner, error = %err, "rate limit: owner shard unreachable, allowing the request");
        }
    }

    /// `RateLimit-*` on an allowed response. An inner limiter (a group's) may have set them
    /// already: the draft asks for the policy closest to exhaustion, so the lower remaining wins.
    fn put_headers(&self, res: &mut Response, remaining: u32, full_at: Nanos, now: Nanos) {
        let headers = res.headers_mut();
        if let Some(existing) = headers.get(&RATELIMIT_REMAINING) {
            let theirs = std::str::from_utf8(existing.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            if theirs.is_some_and(|theirs| theirs <= u64::from(remaining)) {
                return;
            }
        }
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit_value.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(u64::from(remaining)));
        headers.insert(
            RATELIMIT_RESET.clone(),
            number(secs_ceil(full_at.saturating_sub(now))),
        );
    }

    /// The 429. A plain static body rather than an [`Error`](crate::Error) page: under a flood a
    /// refusal must cost less than an answer.
    fn too_many(&self, retry_at: Nanos, full_at: Nanos, now: Nanos) -> Response {
        self.store.stats.borrow_mut().denied += 1;
        let mut res = response(Body::from("Too Many Requests\n"));
        *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, TEXT_PLAIN.clone());
        // RFC 9110 §10.2.3: whole seconds; rounded up, and at least 1, so a client that waits
        // that long finds a token.
        let retry = secs_ceil(retry_at.saturating_sub(now)).max(1);
        headers.insert(RETRY_AFTER, number(retry));
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit_value.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(0));
        headers.insert(
            RATELIMIT_RESET.clone(),
            number(secs_ceil(full_at.saturating_sub(now))),
        );
        res
    }
}

impl Middleware for RateLimit {
    async fn handle(&self, req: Request, next: Next<'_>) -> Response {
        let key = ClientKey::new(client_ip(&req, &self.trusted), self.ipv6_prefix);
        match self.check(key).await {
            Some((Verdict::Allow { remaining, full_at }, now)) => {
                let mut res = next.run(req).await;
                if self.headers_on_allowed {
                    self.put_headers(&mut res, remaining, full_at, now);
                }
                res
            }
            Some((Verdict::Deny { retry_at, full_at }, now)) => {
                self.too_many(retry_at, full_at, now)
            }
            None => next.run(req).await,
        }
    }
}

fn verdict(take: Take) -> Verdict {
    match take {
        Take::Granted {
            remaining, full_at, ..
        } => Verdict::Allow { remaining, full_at },
        Take::Denied { retry_at, full_at } => Verdict::Deny { retry_at, full_at },
    }
}

/// Clears the question in flight and wakes its waiters when the asking request is done with it.
struct AskGuard<'a> {
    leases: &'a RefCell<LeaseTable>,
    key: ClientKey,
    inflight: Rc<Inflight>,
}

impl Drop for AskGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut leases) = self.leases.try_borrow_mut() {
            leases.abandon(self.key, &self.inflight);
        }
        self.inflight.finish();
    }
}

fn to_nanos(d: Duration) -> Nanos {
    d.as_nanos().min(u128::from(Nanos::MAX)) as Nanos
}

/// The limiter's clock: nanoseconds since a process-wide epoch, so that instants computed on one
/// shard (a retry time from the owner) mean the same on another. `Instant` is `CLOCK_MONOTONIC`,
/// read through the vDSO: no syscall.
mod clock {
    use super::*;

    static EPOCH: OnceLock<Instant> = OnceLock::new();

    pub(crate) fn now() -> Nanos {
        to_nanos(EPOCH.get_or_init(Instant::now).elapsed())
    }
}

/// Decimal numbers 0..10,000 written end to end ("0123...9999"), so a header value for any of
/// them is a slice of static memory: no allocation, no formatting per response.
const NUMBER_TEXT_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9000 * 4;
static NUMBER_TEXT: [u8; NUMBER_TEXT_LEN] = number_text();

const fn number_text() -> [u8; NUMBER_TEXT_LEN] {
    let mut out = [0u8; NUMBER_TEXT_LEN];
    let mut n = 0;
    let mut pos = 0;
    while n < 10_000 {
        let width = if n < 10 {
            1
        } else if n < 100 {
            2
        } else if n < 1000 {
            3
        } else {
            4
        };
        let mut digit = width;
        let mut rest = n;
        while digit > 0 {
            digit -= 1;
            out[pos + digit] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        pos += width;
        n += 1;
    }
    out
}

/// `n` as a header value: a static slice below 10,000, formatted (allocating) above.
fn number(n: u64) -> HeaderValue {
    let (start, width) = match n {
        0..=9 => (n as usize, 1),
        10..=99 => (10 + (n as usize - 10) * 2, 2),
        100..=999 => (190 + (n as usize - 100) * 3, 3),
        1000..=9999 => (2890 + (n as usize - 1000) * 4, 4),
        _ => return HeaderValue::from(n),
    };
    HeaderValue::from_maybe_shared(Bytes::from_static(&NUMBER_TEXT[start..start + width]))
        .unwrap_or_else(|_| HeaderValue::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers};
    use crate::response::IntoResponse;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};

    struct Ok200;
    impl Endpoint for Ok200 {
        fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
            Box::pin(async { "ok".into_response() })
        }
    }

    fn chain(layers: Vec<RateLimit>) -> Layers {
        Rc::from(
            layers
                .into_iter()
                .map(|l| Rc::new(l) as Rc<dyn DynMiddleware>)
                .collect::<Vec<_>>(),
        )
    }

    fn send(layers: &Layers, raw: &str) -> Response {
        block_on(Next::new(layers, &Ok200).run(request(raw)))
    }

    fn header<'r>(res: &'r Response, name: &str) -> Option<&'r str> {
        res.headers().get(name).and_then(|v| v.to_str().ok())
    }

    const GET: &str = "GET / HTTP/1.1\r\n\r\n";

    #[test]
    fn numbers_are_slices_of_the_static_table() {
        for n in [
            0, 7, 10, 42, 99, 100, 555, 999, 1000, 4321, 9999, 10_000, 123_456,
        ] {
            assert_eq!(number(n).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn denies_with_429_and_headers_after_the_burst() {
        let shard = ShardHandle::standalone();
        // 1 per 100 s: nothing refills during the test.
        let layers = chain(vec![RateLimit::new(
            RateLimitConfig::per_second(0.01, 3),
            &shard,
        )]);
        for left in ["2", "1", "0"] {
            let res = send(&layers, GET);
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(header(&res, "ratelimit-limit"), Some("3"));
            assert_eq!(header(&res, "ratelimit-remaining"), Some(left));
        }
        let res = send(&layers, GET);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&res, "retry-after"), Some("100"));
        assert_eq!(header(&res, "ratelimit-limit"), Some("3"));
        assert_eq!(header(&res, "ratelimit-remaining"), Some("0"));
        assert_eq!(header(&res, "ratelimit-reset"), Some("300"));
        let stats = RateLimit::stats(&shard);
        assert_eq!((stats.checked, stats.denied, stats.mesh_calls), (4, 1, 0));
    }

    #[test]
    fn allowed_responses_carry_reset_until_the_bucket_is_full() {
        let shard = ShardHandle::standalone();
        let layers = chain(vec![RateLimit::new(
            RateLimitConfig::per_second(0.5, 10),
            &shard,
        )]);
        let res = send(&layers, GET);
        // One token out at 0.5/s: full again in 2 s.
        assert_eq!(header(&res, "ratelimit-reset"), Some("2"));
        assert_eq!(header(&res, "ratelimit-remaining"), Some("9"));
    }

    #[test]
    fn headers_on_allowed_responses_can_be_turned_off() {
        let shard = ShardHandle::standalone();
        let config = RateLimitConfig {
            headers_on_allowed: false,
            ..RateLimitConfig::per_second(0.01, 1)
        };
        let layers = chain(vec![RateLimit::new(config, &shard)]);
        assert!(header(&send(&layers, GET), "ratelimit-limit").is_none());
        assert_eq!(header(&send(&layers, GET), "ratelimit-limit"), Some("1"));
    }

    #[test]
    fn clients_are_told_apart_by_address_behind_a_trusted_proxy() {
        let shard = ShardHandle::standalone();
        let config = RateLimitConfig {
            trusted_proxies: TrustedProxies::parse(["127.0.0.1"]).unwrap(),
            ..RateLimitConfig::per_second(0.01, 1)
        };
        let layers = chain(vec![RateLimit::new(config, &shard)]);
        let a = "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n";
        let b = "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.2\r\n\r\n";
        assert_eq!(send(&layers, a).status(), StatusCode::OK);
        assert_eq!(send(&layers, a).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(send(&layers, b).status(), StatusCode::OK);
    }

    #[test]
    fn two_limiters_keep_separate_buckets_and_the_lower_remaining_is_shown() {
        let shard = ShardHandle::standalone();
        let outer = RateLimit::new(RateLimitConfig::per_second(0.01, 10), &shard);
        let inner = RateLimit::new(RateLimitConfig::per_second(0.01, 2), &shard);
        assert_ne!(outer.id, inner.id);
        let layers = chain(vec![outer, inner]);
        let res = send(&layers, GET);
        assert_eq!(header(&res, "ratelimit-limit"), Some("2"));
        assert_eq!(header(&res, "ratelimit-remaining"), Some("1"));
        send(&layers, GET);
        let res = send(&layers, GET);
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&res, "ratelimit-limit"), Some("2"));
        // Both limiters counted all three requests.
        assert_eq!(RateLimit::stats(&shard).checked, 6);
    }

    #[test]
    fn lease_size_follows_the_rate_and_burst() {
        let shard = ShardHandle::standalone();
        let size = |rate, burst| {
            let l = RateLimit::new(RateLimitConfig::per_second(rate, burst), &shard);
            let max = l.leases.borrow().max_lease();
            max
        };
        assert_eq!(size(200.0, 20), 4);
        assert_eq!(size(1.0, 100), 1);
        assert_eq!(size(100_000.0, 1000), MAX_LEASE);
        assert_eq!(size(100_000.0, 10), 5);
    }

    #[test]
    fn an_unreachable_owner_fails_open_and_counts_the_failure() {
        let shard = ShardHandle::standalone();
        let limiter = RateLimit::new(RateLimitConfig::per_second(1.0, 1), &shard);
        let key = ClientKey::new("203.0.113.1".parse().unwrap(), 64);
        let Decision::Ask { want, inflight } =
            limiter.leases.borrow_mut().decide(key, clock::now())
        else {
            panic!("a new client is asked about");
        };
        // The standalone shard has no shard 1: the call fails as for a stopped shard.
        for _ in 0..2 {
            let verdict = block_on(limiter.ask_owner(1, key, want, inflight.clone()));
            assert_eq!(verdict, None);
        }
        assert!(inflight.is_done(), "waiters are released");
        let stats = RateLimit::stats(&shard);
        assert_eq!((stats.mesh_calls, stats.mesh_failures), (2, 2));
        // The next request asks again rather than waiting on the failed question.
        assert!(matches!(
            limiter.leases.borrow_mut().decide(key, clock::now()),
            Decision::Ask { .. }
        ));
    }

    #[test]
    fn config_ranges_are_validated() {
        assert!(RateLimitConfig::default().validate().is_ok());
        let bad = [
            RateLimitConfig::per_second(0.0, 1),
            RateLimitConfig::per_second(f64::INFINITY, 1),
            RateLimitConfig::per_second(1.0, 0),
            RateLimitConfig {
                ipv6_prefix: 0,
                ..RateLimitConfig::default()
            },
            RateLimitConfig {
                max_clients: 0,
                ..RateLimitConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
