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
//! Cost on the common path (this shard owns the client, or holds a lease for it): the client
//! address, one clock read, one lookup in a map with a cheap keyed hash ([`key::KeyHashing`]), and
//! three response fields ([`headers`]); no allocation and nothing awaited but the inner layers.
//! Only a question to the owner shard is asynchronous, and it is boxed, so its state does not
//! enlarge the future every request allocates for this layer.

mod bucket;
mod headers;
mod key;
mod lease;
mod store;

use std::cell::RefCell;
use std::future::Future;
use std::ops::AddAssign;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;

use super::client_ip::{client_ip, TrustedProxies};
use super::{Middleware, Next};
use crate::response::TEXT_PLAIN;
use crate::service::{response, Body, Request, Response};
use crate::shard::{LocalBoxFuture, ShardHandle};
use bucket::{secs_ceil, Nanos, Quota, Take, MAX_BURST, NANOS_PER_SEC};
use headers::{number, RateLimitHeaders};
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
    headers: RateLimitHeaders,
    /// The clock's epoch (see [`clock`]), copied here to skip the `OnceLock` per request.
    epoch: Instant,
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

/// A request's verdict and the time it was reached; `None` to fail open.
type Checked = Option<(Verdict, Nanos)>;

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
            headers: RateLimitHeaders::new(quota.burst()),
            epoch: clock::epoch(),
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

    fn now(&self) -> Nanos {
        clock::since(self.epoch)
    }

    /// The verdict for one request from `key` if this shard can reach it without waiting: it
    /// owns the client, or holds a lease or a denial for it. Otherwise the owner and the question
    /// to ask it or wait for, for [`check_remote`](Self::check_remote).
    fn check_here(&self, key: ClientKey) -> Result<Checked, (usize, Pending<'_>)> {
        self.store.stats.borrow_mut().checked += 1;
        let now = self.now();
        let owner = key.owner(self.shard.count());
        if owner == self.shard.id() {
            return Ok(self
                .store
                .take(self.id, key, 1, now)
                .map(|take| (verdict(take), now)));
        }
        let decision = self.leases.borrow_mut().decide(key, now);
        match decision {
            Decision::Done(verdict) => Ok(Some((verdict, now))),
            Decision::Wait(inflight) => Err((owner, Pending::Wait(inflight))),
            Decision::Ask { want, inflight } => {
                Err((owner, Pending::Ask(self.ask(key, want, inflight))))
            }
        }
    }

    /// The rest of [`check_here`](Self::check_here) when the owner must be asked or waited for.
    async fn check_remote(
        &self,
        owner: usize,
        key: ClientKey,
        mut pending: Pending<'_>,
    ) -> Checked {
        loop {
            match pending {
                Pending::Ask(question) => return self.ask_owner(owner, question).await,
                Pending::Wait(inflight) => inflight.wait().await,
            }
            let now = self.now();
            let decision = self.leases.borrow_mut().decide(key, now);
            pending = match decision {
                Decision::Done(verdict) => return Some((verdict, now)),
                Decision::Wait(inflight) => Pending::Wait(inflight),
                Decision::Ask { want, inflight } => Pending::Ask(self.ask(key, want, inflight)),
            };
        }
    }

    /// This request's question to the owner, guarded from the moment the lease table records it
    /// as in flight.
    fn ask(&self, key: ClientKey, want: u32, inflight: Rc<Inflight>) -> Question<'_> {
        Question {
            want,
            guard: AskGuard {
                leases: &self.leases,
                key,
                inflight,
            },
        }
    }

    async fn ask_owner(&self, owner: usize, question: Question<'_>) -> Checked {
        // The guard wakes the requests waiting on this question however this ends, even if this
        // request's future is dropped mid-call (its connection closed).
        let Question { want, guard } = question;
        let key = guard.key;
        self.store.stats.borrow_mut().mesh_calls += 1;
        let id = self.id;
        let answer = self
            .shard
            .call(owner, move |store: &ShardBuckets| {
                store.lease(id, key, want, clock::now())
            })
            .await;
        let now = self.now();
        let checked = match answer {
            Ok(Some(take)) => Some((self.leases.borrow_mut().settle(key, take, now), now)),
            Ok(None) => {
                self.fail_open(owner, &NO_SUCH_LIMITER, now);
                None
            }
            Err(err) => {
                self.fail_open(owner, &err, now);
                None
            }
        };
        drop(guard);
        checked
    }

    /// The answer once the verdict is known: a 429, or the inner layers' response with the
    /// `RateLimit-*` fields.
    fn respond<'s, 'n, R>(
        &'s self,
        checked: Checked,
        req: Request,
        next: Next<'n>,
    ) -> Respond<'s, 'n, R> {
        match checked {
            Some((Verdict::Allow { remaining, full_at }, now)) => Respond::Allowed {
                inner: next.run(req),
                fields: self
                    .headers_on_allowed
                    .then(|| (remaining, secs_ceil(full_at.saturating_sub(now)))),
                headers: &self.headers,
            },
            Some((Verdict::Deny { retry_at, full_at }, now)) => Respond::Denied(Some(Refusal {
                layer: self,
                retry_at,
                full_at,
                now,
            })),
            None => Respond::Allowed {
                inner: next.run(req),
                fields: None,
                headers: &self.headers,
            },
        }
    }

    /// [`check_remote`](Self::check_remote), then [`respond`](Self::respond).
    async fn respond_remote(
        &self,
        owner: usize,
        key: ClientKey,
        pending: Pending<'_>,
        req: Request,
        next: Next<'_>,
    ) -> Response {
        let checked = self.check_remote(owner, key, pending).await;
        // Decided now: never `Remote`, whose type is then any future.
        self.respond::<std::future::Pending<Response>>(checked, req, next)
            .await
    }

    fn fail_open(&self, owner: usize, err: &dyn std::fmt::Display, now: Nanos) {
        self.store.stats.borrow_mut().mesh_failures += 1;
        let last = self.store.last_mesh_warning.get();
        if last.is_none_or(|at| now >= at.saturating_add(NANOS_PER_SEC)) {
            self.store.last_mesh_warning.set(Some(now));
            tracing::warn!(owner, error = %err, "rate limit: owner shard unreachable, allowing the request");
        }
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
        self.headers
            .put_denied(headers, secs_ceil(full_at.saturating_sub(now)));
        res
    }
}

impl Middleware for RateLimit {
    /// Decides at once when this shard can (it owns the client, or holds a lease or a denial):
    /// no state machine, just the inner layers' future and the fields to add. Only a question to
    /// the owner shard builds an async state, boxed.
    fn handle(&self, req: Request, next: Next<'_>) -> impl Future<Output = Response> {
        let key = ClientKey::new(client_ip(&req, &self.trusted), self.ipv6_prefix);
        match self.check_here(key) {
            Ok(checked) => self.respond(checked, req, next),
            Err((owner, pending)) => Respond::Remote(Box::pin(
                self.respond_remote(owner, key, pending, req, next),
            )),
        }
    }
}

/// A question to the owner shard that a request must ask, or wait for another request's.
enum Pending<'a> {
    Wait(Rc<Inflight>),
    Ask(Question<'a>),
}

/// A question this request asks: how many tokens, and the guard that clears it.
struct Question<'a> {
    want: u32,
    guard: AskGuard<'a>,
}

/// What [`RateLimit::handle`] returns: the response once the verdict is known, or (`Remote`, with
/// `R` the boxed `respond_remote`) after asking the owner shard.
enum Respond<'s, 'n, R> {
    /// Allowed (or failed open): the inner layers' response, with `(remaining, reset)` fields.
    Allowed {
        inner: LocalBoxFuture<'n, Response>,
        fields: Option<(u32, u64)>,
        headers: &'s RateLimitHeaders,
    },
    /// The 429, made when polled (a `Response` would make this future, which every request
    /// allocates, several times larger).
    Denied(Option<Refusal<'s>>),
    Remote(Pin<Box<R>>),
}

/// What a 429 says.
struct Refusal<'s> {
    layer: &'s RateLimit,
    retry_at: Nanos,
    full_at: Nanos,
    now: Nanos,
}

impl<R: Future<Output = Response>> Future for Respond<'_, '_, R> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.get_mut() {
            Respond::Allowed {
                inner,
                fields,
                headers,
            } => {
                // Changed in place and returned as it came: a `Response` moved is a `memcpy`.
                let mut answer = inner.as_mut().poll(cx);
                if let (Poll::Ready(res), Some((remaining, reset_secs))) = (&mut answer, *fields) {
                    headers.put_allowed(res.headers_mut(), remaining, reset_secs);
                }
                answer
            }
            Respond::Denied(refusal) => {
                let Refusal {
                    layer,
                    retry_at,
                    full_at,
                    now,
                } = refusal
                    .take()
                    .expect("a future is not polled after it completed");
                Poll::Ready(layer.too_many(retry_at, full_at, now))
            }
            Respond::Remote(remote) => remote.as_mut().poll(cx),
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
/// read through the vDSO: no syscall. Read once per request, exactly: the coarse clock
/// (`CLOCK_MONOTONIC_COARSE`, 4 ms here) would cap a limiter whose burst refills faster than a
/// tick at `burst` per tick.
mod clock {
    use super::*;

    static EPOCH: OnceLock<Instant> = OnceLock::new();

    pub(crate) fn epoch() -> Instant {
        *EPOCH.get_or_init(Instant::now)
    }

    pub(crate) fn since(epoch: Instant) -> Nanos {
        to_nanos(Instant::now().saturating_duration_since(epoch))
    }

    pub(crate) fn now() -> Nanos {
        since(epoch())
    }
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
    fn the_future_of_a_request_decided_here_is_small() {
        // Every request allocates it (`DynMiddleware::handle_dyn` boxes it) and moves it once.
        let shard = ShardHandle::standalone();
        let limiter = RateLimit::new(RateLimitConfig::default(), &shard);
        let future = limiter.handle(request(GET), Next::new(&[], &Ok200));
        assert!(
            std::mem::size_of_val(&future) <= 64,
            "{} bytes",
            std::mem::size_of_val(&future)
        );
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
        let verdict = block_on(limiter.ask_owner(1, limiter.ask(key, want, inflight.clone())));
        assert_eq!(verdict, None);
        // Asked again (the next request would), it fails again.
        let Decision::Ask { want, inflight } =
            limiter.leases.borrow_mut().decide(key, clock::now())
        else {
            panic!("a failed question is asked again");
        };
        let verdict = block_on(limiter.ask_owner(1, limiter.ask(key, want, inflight.clone())));
        assert_eq!(verdict, None);
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
