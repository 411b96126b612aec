//! The buckets a shard owns: for every limiter, the buckets of the clients whose addresses hash
//! to this shard. Kept in the shard's locals, one per shard, so that other shards reach it over
//! the mesh (`ShardHandle::call(owner, |store: &ShardBuckets| ...)`) and the owner itself reaches
//! it directly. It owns the buckets' memory bound: a sweep of full buckets and a hard cap.
//!
//! Limiters are told apart by [`LimiterId`], the order in which they were built on the shard. The
//! app factory builds the same layers in the same order on every shard, so a limiter has the same
//! id everywhere, and an app-wide limiter never shares a bucket with a group's.

use std::cell::{Cell, RefCell};

use super::bucket::{Bucket, Nanos, Quota, Take};
use super::key::{ClientKey, KeyMap};
use super::RateLimitStats;

/// A limiter's index in every shard's [`ShardBuckets`].
pub(crate) type LimiterId = usize;

/// One limiter's buckets on their owner shard.
#[derive(Debug)]
pub(crate) struct BucketTable {
    quota: Quota,
    max_entries: usize,
    sweep_every: Nanos,
    next_sweep: Nanos,
    buckets: KeyMap<Bucket>,
}

/// Counts of what a table did, for [`RateLimitStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableEvents {
    pub(crate) evicted: usize,
}

impl BucketTable {
    pub(crate) fn new(quota: Quota, max_entries: usize, sweep_every: Nanos) -> Self {
        BucketTable {
            quota,
            max_entries: max_entries.max(1),
            sweep_every,
            next_sweep: 0,
            buckets: KeyMap::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Takes up to `want` tokens from `key`'s bucket (see [`Bucket::take_up_to`]), creating a full
    /// bucket for a new client. Runs the periodic sweep when it is due.
    pub(crate) fn take(&mut self, key: ClientKey, want: u32, now: Nanos) -> (Take, TableEvents) {
        let mut events = TableEvents::default();
        if now >= self.next_sweep {
            self.sweep(now);
        }
        if let Some(bucket) = self.buckets.get_mut(&key) {
            return (bucket.take_up_to(&self.quota, want, now), events);
        }
        let mut bucket = Bucket::full();
        let take = bucket.take_up_to(&self.quota, want, now);
        if self.buckets.len() >= self.max_entries {
            events.evicted = self.make_room(now);
        }
        self.buckets.insert(key, bucket);
        (take, events)
    }

    /// Drops every full bucket: a client that comes back gets a new full bucket, the same thing,
    /// so the sweep loses nothing. An idle client's bucket is full `burst / rate` after its last
    /// request.
    pub(crate) fn sweep(&mut self, now: Nanos) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.next_sweep = now.saturating_add(self.sweep_every);
    }

    /// At the cap, after a sweep: evicts the eighth of the buckets nearest to full (smallest
    /// `full_at`). An evicted client starts again with a full bucket, so it may get up to what
    /// its bucket was missing (less than `burst`, and the least among all clients) early; this
    /// happens only with more than `max_entries` clients active within one refill time. Sorting
    /// costs O(n) per eviction round, once per `max_entries / 8` new clients.
    fn make_room(&mut self, now: Nanos) -> usize {
        self.sweep(now);
        if self.buckets.len() < self.max_entries {
            return 0;
        }
        let target = self.max_entries - self.max_entries.div_ceil(8);
        let excess = self.buckets.len() - target;
        let mut full_at: Vec<Nanos> = self.buckets.values().map(|b| b.full_at(now)).collect();
        let (_, &mut cutoff, _) = full_at.select_nth_unstable(excess - 1);
        // Everything strictly nearer to full goes, then as many ties at the cutoff as needed.
        let nearer = full_at.iter().filter(|&&t| t < cutoff).count();
        let mut ties = excess - nearer;
        self.buckets.retain(|_, bucket| match bucket.full_at(now) {
            t if t < cutoff => false,
            t if t == cutoff && ties > 0 => {
                ties -= 1;
                false
            }
            _ => true,
        });
        excess
    }
}

/// The per-shard store: every limiter's table, and the shard's counters.
#[derive(Debug, Default)]
pub(crate) struct ShardBuckets {
    tables: RefCell<Vec<BucketTable>>,
    pub(crate) stats: RefCell<RateLimitStats>,
    /// When a failed mesh call was last logged (at most once a second per shard).
    pub(crate) last_mesh_warning: Cell<Option<Nanos>>,
}

impl ShardBuckets {
    /// Adds a limiter's table; its id is its position.
    pub(crate) fn register(&self, table: BucketTable) -> LimiterId {
        let mut tables = self.tables.borrow_mut();
        tables.push(table);
        tables.len() - 1
    }

    /// Takes from limiter `id`'s bucket for `key`; `None` if this shard has no such limiter
    /// (the shards were built with different layers).
    pub(crate) fn take(
        &self,
        id: LimiterId,
        key: ClientKey,
        want: u32,
        now: Nanos,
    ) -> Option<Take> {
        let mut tables = self.tables.borrow_mut();
        let table = tables.get_mut(id)?;
        let (take, events) = table.take(key, want, now);
        if events.evicted > 0 {
            self.stats.borrow_mut().evicted += events.evicted as u64;
        }
        Some(take)
    }

    /// [`take`](Self::take) on behalf of another shard: a lease.
    pub(crate) fn lease(
        &self,
        id: LimiterId,
        key: ClientKey,
        want: u32,
        now: Nanos,
    ) -> Option<Take> {
        self.stats.borrow_mut().leases_served += 1;
        self.take(id, key, want, now)
    }

    /// This shard's counters, with the number of buckets it holds now.
    pub(crate) fn snapshot(&self) -> RateLimitStats {
        let mut stats = *self.stats.borrow();
        stats.buckets = self.tables.borrow().iter().map(|t| t.len() as u64).sum();
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::rate_limit::bucket::NANOS_PER_SEC;
    use std::net::IpAddr;

    const MS: Nanos = 1_000_000;
    const S: Nanos = NANOS_PER_SEC;

    fn key(n: u32) -> ClientKey {
        ClientKey::new(IpAddr::from(n.to_be_bytes()), 64)
    }

    fn granted(take: Take) -> bool {
        matches!(take, Take::Granted { .. })
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let mut t = BucketTable::new(Quota::new(1.0, 2), 100, 10 * S);
        let now = S;
        assert!(granted(t.take(key(1), 2, now).0));
        assert!(!granted(t.take(key(1), 1, now).0));
        assert!(granted(t.take(key(2), 1, now).0));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_sweep_drops_only_full_buckets() {
        // 10/s, burst 10: a bucket emptied at t is full at t + 1 s.
        let mut t = BucketTable::new(Quota::new(10.0, 10), 100, 5 * S);
        let t0 = 100 * S;
        t.take(key(1), 10, t0);
        t.take(key(2), 5, t0 + 900 * MS);
        t.sweep(t0 + 1000 * MS);
        assert_eq!(t.len(), 1, "key 1 is full again and dropped; key 2 is not");
        t.sweep(t0 + 1400 * MS - 1);
        assert_eq!(t.len(), 1);
        t.sweep(t0 + 1400 * MS);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_sweep_runs_by_itself_when_due() {
        let mut t = BucketTable::new(Quota::new(10.0, 1), 100, 5 * S);
        let t0 = 100 * S;
        for n in 0..50 {
            t.take(key(n), 1, t0);
        }
        t.take(key(1000), 1, t0 + 4 * S);
        assert_eq!(t.len(), 51, "not due yet");
        t.take(key(1001), 1, t0 + 5 * S + 1);
        assert_eq!(t.len(), 1, "the due sweep dropped the 51 refilled buckets");
    }

    #[test]
    fn swept_clients_lose_nothing() {
        let mut t = BucketTable::new(Quota::new(1.0, 3), 100, S);
        let t0 = 10 * S;
        t.take(key(1), 3, t0);
        t.sweep(t0 + 3 * S);
        assert_eq!(t.len(), 0);
        match t.take(key(1), 5, t0 + 3 * S).0 {
            Take::Granted { tokens, .. } => assert_eq!(tokens, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cap_evicts_the_buckets_nearest_to_full() {
        let mut t = BucketTable::new(Quota::new(1.0, 100), 16, 3600 * S);
        let t0 = 10 * S;
        // Client n has taken n + 1 tokens: client 0 is nearest to full.
        for n in 0..16 {
            t.take(key(n), n + 1, t0);
        }
        assert_eq!(t.len(), 16);
        let (_, events) = t.take(key(99), 1, t0);
        // 16 - ceil(16/8) = 14 kept before the insert: the 2 nearest to full went.
        assert_eq!(events.evicted, 2);
        assert_eq!(t.len(), 15);
        assert!(!t.buckets.contains_key(&key(0)));
        assert!(!t.buckets.contains_key(&key(1)));
        assert!(t.buckets.contains_key(&key(2)));
        assert!(t.buckets.contains_key(&key(15)));
        // Memory stays bounded however many clients come.
        for n in 1000..5000 {
            t.take(key(n), 1, t0);
        }
        assert!(t.len() <= 16);
    }

    #[test]
    fn limiters_do_not_share_buckets() {
        let store = ShardBuckets::default();
        let app = store.register(BucketTable::new(Quota::new(1.0, 1), 10, S));
        let group = store.register(BucketTable::new(Quota::new(1.0, 1), 10, S));
        assert_ne!(app, group);
        let now = 5 * S;
        assert!(granted(store.take(app, key(7), 1, now).unwrap()));
        assert!(!granted(store.take(app, key(7), 1, now).unwrap()));
        assert!(granted(store.take(group, key(7), 1, now).unwrap()));
        assert_eq!(store.take(5, key(7), 1, now), None);
        assert_eq!(store.snapshot().buckets, 2);
    }

    #[test]
    fn leases_are_counted() {
        let store = ShardBuckets::default();
        let id = store.register(BucketTable::new(Quota::new(100.0, 10), 10, S));
        match store.lease(id, key(1), 4, S) {
            Some(Take::Granted {
                tokens, remaining, ..
            }) => assert_eq!((tokens, remaining), (4, 6)),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.snapshot().leases_served, 1);
    }
}
