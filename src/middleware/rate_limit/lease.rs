//! What a shard remembers about clients whose buckets another shard owns, so that a busy client
//! does not cost a cross-thread round trip per request.
//!
//! - **Leases.** The owner hands out a few tokens at once, taken from the bucket like any others
//!   (so nothing is ever granted twice); this shard spends them locally until they run out or
//!   expire ([`LEASE_TTL`]). A lease that expires unspent wastes its tokens (the client gets
//!   slightly less, never more), so the size adapts: it doubles when a lease is spent before it
//!   expires and shrinks to what was used when it expires with tokens left, between 1 and the
//!   limiter's `max_lease`.
//! - **Denials.** When the owner says no, it says until when; this shard answers 429 locally
//!   until then, so a flood costs the owner one message per refilled token at most.
//! - **One question at a time.** While a lease request for a client is in flight, other requests
//!   from that client on this shard wait for its answer instead of asking too.
//!
//! Pure over `now`, like the bucket. Memory: entries that hold nothing live (no tokens, no
//! denial, no question in flight) are swept periodically, and the table is capped.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::bucket::{Nanos, Take};
use super::key::{ClientKey, KeyMap};

/// How long leased tokens may be spent. Short, so that tokens a client stops using are not
/// banked: at most `max_lease` tokens per shard can be spent later than they were taken.
pub(crate) const LEASE_TTL: Nanos = 50_000_000;

/// A request in flight to the owner for one client; others wait on it.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    done: Cell<bool>,
    waiters: Cell<u32>,
    wakers: RefCell<Vec<Waker>>,
}

impl Inflight {
    /// Resolves when the question is answered (or abandoned).
    pub(crate) fn wait(self: Rc<Self>) -> impl Future<Output = ()> {
        self.waiters.set(self.waiters.get().saturating_add(1));
        std::future::poll_fn(move |cx| {
            if self.done.get() {
                Poll::Ready(())
            } else {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    pub(crate) fn finish(&self) {
        self.done.set(true);
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.get()
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.get()
    }
}

/// What this shard knows about one remote-owned client.
#[derive(Debug, Clone)]
struct Lease {
    /// Leased tokens not yet spent.
    tokens: u32,
    /// The tokens are void from this instant.
    expires: Nanos,
    /// How many the last lease brought.
    granted: u32,
    /// How many to ask for next time.
    ask: u32,
    /// Answer 429 locally until this instant (0: not denied).
    denied_until: Nanos,
    /// The owner's whole tokens left after the last answer, for `RateLimit-Remaining`.
    owner_remaining: u32,
    /// When the bucket is full again, per the last answer, for `RateLimit-Reset`.
    full_at: Nanos,
    inflight: Option<Rc<Inflight>>,
}

impl Lease {
    fn new() -> Self {
        Lease {
            tokens: 0,
            expires: 0,
            granted: 0,
            ask: 1,
            denied_until: 0,
            owner_remaining: 0,
            full_at: 0,
            inflight: None,
        }
    }

    /// Holds something worth keeping at `now`.
    fn is_live(&self, now: Nanos) -> bool {
        self.inflight.is_some()
            || (self.tokens > 0 && self.expires > now)
            || self.denied_until > now
    }
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow { remaining: u32, full_at: Nanos },
    Deny { retry_at: Nanos, full_at: Nanos },
}

/// What to do about a request from a remote-owned client.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Decided locally, from a lease or a remembered denial.
    Done(Verdict),
    /// Another request is asking the owner; wait for it, then decide again.
    Wait(Rc<Inflight>),
    /// Ask the owner for `want` tokens; this request is now the one in flight.
    Ask { want: u32, inflight: Rc<Inflight> },
}

/// Leases and denials for the clients other shards own, for one limiter on one shard.
#[derive(Debug)]
pub(crate) struct LeaseTable {
    entries: KeyMap<Lease>,
    max_lease: u32,
    max_entries: usize,
    sweep_every: Nanos,
    next_sweep: Nanos,
}

impl LeaseTable {
    pub(crate) fn new(max_lease: u32, max_entries: usize, sweep_every: Nanos) -> Self {
        LeaseTable {
            entries: KeyMap::default(),
            max_lease: max_lease.max(1),
            max_entries: max_entries.max(1),
            sweep_every,
            next_sweep: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn max_lease(&self) -> u32 {
        self.max_lease
    }

    pub(crate) fn decide(&mut self, key: ClientKey, now: Nanos) -> Decision {
        if now >= self.next_sweep {
            self.sweep(now);
        }
        // The lookup only at the cap: a request from a known client hashes once.
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            self.make_room(now);
        }
        let max_lease = self.max_lease;
        let lease = self.entries.entry(key).or_insert_with(Lease::new);
        if lease.denied_until > now {
            return Decision::Done(Verdict::Deny {
                retry_at: lease.denied_until,
                full_at: lease.full_at,
            });
        }
        if lease.tokens > 0 && lease.expires > now {
            lease.tokens -= 1;
            return Decision::Done(Verdict::Allow {
                remaining: lease.owner_remaining.saturating_add(lease.tokens),
                full_at: lease.full_at,
            });
        }
        // A finished question still recorded (its asker could not clear it) is ignored rather
        // than waited on: waiting on it would return at once, forever.
        if let Some(inflight) = lease.inflight.as_ref().filter(|i| !i.is_done()) {
            return Decision::Wait(inflight.clone());
        }
        if lease.granted > 0 {
            lease.ask = if lease.tokens > 0 {
                // Expired with tokens left: ask for what was used.
                lease.granted - lease.tokens
            } else if now < lease.expires {
                // Spent before it expired: ask for more.
                lease.ask.max(lease.granted.saturating_mul(2))
            } else {
                lease.ask
            }
            .clamp(1, max_lease);
            lease.tokens = 0;
            lease.granted = 0;
        }
        let inflight = Rc::new(Inflight::default());
        lease.inflight = Some(inflight.clone());
        Decision::Ask {
            want: lease.ask,
            inflight,
        }
    }

    /// Records the owner's answer to the request in flight, which takes one token of a grant for
    /// itself, and returns that request's verdict.
    pub(crate) fn settle(&mut self, key: ClientKey, answer: Take, now: Nanos) -> Verdict {
        let max_lease = self.max_lease;
        let lease = self.entries.entry(key).or_insert_with(Lease::new);
        let waiters = lease.inflight.take().map_or(0, |i| i.waiters());
        match answer {
            Take::Granted {
                tokens,
                remaining,
                full_at,
            } => {
                lease.tokens = tokens - 1;
                lease.granted = tokens;
                lease.expires = now + LEASE_TTL;
                lease.owner_remaining = remaining;
                lease.full_at = full_at;
                lease.denied_until = 0;
                // Requests that queued behind this one show the demand.
                lease.ask = lease.ask.max(waiters.saturating_add(1)).clamp(1, max_lease);
                Verdict::Allow {
                    remaining: remaining.saturating_add(lease.tokens),
                    full_at,
                }
            }
            Take::Denied { retry_at, full_at } => {
                lease.tokens = 0;
                lease.granted = 0;
                lease.denied_until = retry_at;
                lease.owner_remaining = 0;
                lease.full_at = full_at;
                Verdict::Deny { retry_at, full_at }
            }
        }
    }

    /// Forgets the question in flight for `key` if it is `inflight` (the asking request went away
    /// or its call failed), so that the next request asks again.
    pub(crate) fn abandon(&mut self, key: ClientKey, inflight: &Rc<Inflight>) {
        if let Some(lease) = self.entries.get_mut(&key) {
            if lease
                .inflight
                .as_ref()
                .is_some_and(|i| Rc::ptr_eq(i, inflight))
            {
                lease.inflight = None;
            }
        }
    }

    /// Drops entries that hold nothing live.
    pub(crate) fn sweep(&mut self, now: Nanos) {
        self.entries.retain(|_, lease| lease.is_live(now));
        self.next_sweep = now.saturating_add(self.sweep_every);
    }

    /// At the cap after a sweep: drops entries with no question in flight until an eighth of the
    /// room is free. What is lost is unspent leased tokens (the client gets less, never more) and
    /// remembered denials (the next request asks the owner again).
    fn make_room(&mut self, now: Nanos) {
        self.sweep(now);
        let target = self.max_entries - self.max_entries.div_ceil(8);
        let mut excess = self.entries.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        self.entries.retain(|_, lease| {
            if excess > 0 && lease.inflight.is_none() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const MS: Nanos = 1_000_000;

    fn key(n: u32) -> ClientKey {
        ClientKey::new(IpAddr::from(n.to_be_bytes()), 64)
    }

    fn ask(table: &mut LeaseTable, k: ClientKey, now: Nanos) -> (u32, Rc<Inflight>) {
        match table.decide(k, now) {
            Decision::Ask { want, inflight } => (want, inflight),
            other => panic!("expected to ask the owner, got {other:?}"),
        }
    }

    fn grant(tokens: u32, remaining: u32) -> Take {
        Take::Granted {
            tokens,
            remaining,
            full_at: 10_000 * MS,
        }
    }

    fn allowed(d: Decision) -> u32 {
        match d {
            Decision::Done(Verdict::Allow { remaining, .. }) => remaining,
            other => panic!("expected a local allow, got {other:?}"),
        }
    }

    #[test]
    fn a_lease_is_spent_locally_one_token_per_request() {
        let mut t = LeaseTable::new(8, 100, 1000 * MS);
        let k = key(1);
        let now = 1000 * MS;
        let (want, _) = ask(&mut t, k, now);
        assert_eq!(want, 1, "the first lease is small");
        assert_eq!(
            t.settle(k, grant(3, 5), now),
            Verdict::Allow {
                remaining: 7,
                full_at: 10_000 * MS
            }
        );
        assert_eq!(allowed(t.decide(k, now + MS)), 6);
        assert_eq!(allowed(t.decide(k, now + 2 * MS)), 5);
        let (want, _) = ask(&mut t, k, now + 3 * MS);
        assert_eq!(want, 6, "spent before expiry: the next lease doubles");
    }

    #[test]
    fn lease_size_is_capped_by_max_lease() {
        let mut t = LeaseTable::new(4, 100, 1000 * MS);
        let k = key(1);
        let mut now = 1000 * MS;
        for _ in 0..5 {
            let (want, _) = ask(&mut t, k, now);
            assert!(want <= 4);
            t.settle(k, grant(want, 0), now);
            for _ in 1..want {
                allowed(t.decide(k, now));
            }
            now += MS;
        }
        let (want, _) = ask(&mut t, k, now);
        assert_eq!(want, 4);
    }

    #[test]
    fn an_expired_lease_is_void_and_the_next_is_sized_to_what_was_used() {
        let mut t = LeaseTable::new(16, 100, 1000 * MS);
        let k = key(1);
        let now = 1000 * MS;
        ask(&mut t, k, now);
        t.settle(k, grant(8, 0), now);
        allowed(t.decide(k, now + MS));
        // 6 tokens are left, but the lease has expired: ask again, for the 2 used.
        let (want, _) = ask(&mut t, k, now + LEASE_TTL);
        assert_eq!(want, 2);
    }

    #[test]
    fn a_denial_is_remembered_until_retry_at() {
        let mut t = LeaseTable::new(8, 100, 1000 * MS);
        let k = key(1);
        let now = 1000 * MS;
        ask(&mut t, k, now);
        let retry_at = now + 30 * MS;
        let verdict = t.settle(
            k,
            Take::Denied {
                retry_at,
                full_at: now + 90 * MS,
            },
            now,
        );
        assert!(matches!(verdict, Verdict::Deny { .. }));
        for dt in [1, 10, 29] {
            match t.decide(k, now + dt * MS) {
                Decision::Done(Verdict::Deny { retry_at: r, .. }) => assert_eq!(r, retry_at),
                other => panic!("{other:?}"),
            }
        }
        ask(&mut t, k, retry_at);
    }

    #[test]
    fn one_question_in_flight_per_client_and_waiters_raise_the_next_ask() {
        let mut t = LeaseTable::new(16, 100, 1000 * MS);
        let k = key(1);
        let now = 1000 * MS;
        let (_, inflight) = ask(&mut t, k, now);
        let mut waits = Vec::new();
        for _ in 0..5 {
            match t.decide(k, now) {
                Decision::Wait(i) => {
                    assert!(Rc::ptr_eq(&i, &inflight));
                    waits.push(i.wait());
                }
                other => panic!("{other:?}"),
            }
        }
        // Another client is not held up.
        ask(&mut t, key(2), now);
        t.settle(k, grant(1, 0), now);
        inflight.finish();
        for w in waits {
            crate::testing::block_on(w);
        }
        let (want, _) = ask(&mut t, k, now + MS);
        assert_eq!(
            want, 6,
            "six requests were waiting: the next ask covers them"
        );
    }

    #[test]
    fn an_abandoned_question_lets_the_next_request_ask() {
        let mut t = LeaseTable::new(8, 100, 1000 * MS);
        let k = key(1);
        let now = 1000 * MS;
        let (_, first) = ask(&mut t, k, now);
        assert!(matches!(t.decide(k, now), Decision::Wait(_)));
        t.abandon(k, &first);
        let (_, second) = ask(&mut t, k, now);
        // A stale abandon does not clear the newer question.
        t.abandon(k, &first);
        assert!(matches!(t.decide(k, now), Decision::Wait(i) if Rc::ptr_eq(&i, &second)));
    }

    #[test]
    fn a_finished_question_left_behind_is_not_waited_on() {
        let mut t = LeaseTable::new(8, 100, 1000 * MS);
        let k = key(1);
        let (_, first) = ask(&mut t, k, 1000 * MS);
        first.finish();
        let (_, second) = ask(&mut t, k, 1000 * MS);
        assert!(!Rc::ptr_eq(&first, &second));
    }

    #[test]
    fn idle_entries_are_swept_and_the_table_is_capped() {
        let mut t = LeaseTable::new(8, 16, 1000 * MS);
        let now = 1000 * MS;
        for n in 0..10 {
            ask(&mut t, key(n), now);
            t.settle(key(n), grant(2, 0), now);
        }
        assert_eq!(t.len(), 10);
        t.sweep(now + LEASE_TTL);
        assert_eq!(t.len(), 0, "expired leases are dropped");
        for n in 0..1000 {
            let (_, inflight) = ask(&mut t, key(n), now);
            t.settle(key(n), grant(2, 0), now);
            drop(inflight);
        }
        assert!(t.len() <= 16);
    }
}
