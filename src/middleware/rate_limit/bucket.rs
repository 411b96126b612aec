//! One client's token bucket, as a pure function of its state and the time: no clock, no I/O, so
//! tests set the time.
//!
//! The bucket is kept in its "virtual scheduling" form (GCRA, ITU-T I.371): instead of a token
//! count and a last-refill time it keeps one instant, `tat`, the time at which the bucket will be
//! full again if nothing more is taken. Taking `n` tokens pushes `tat` forward by `n` intervals;
//! the take is allowed while `tat` stays within `burst` intervals of now. It is exactly a token
//! bucket of capacity `burst` refilled at `rate`, in one `u64` with no float and no refill step.

/// Nanoseconds on the rate limiter's clock (see `super::clock`).
pub(crate) type Nanos = u64;

pub(crate) const NANOS_PER_SEC: Nanos = 1_000_000_000;

/// Slowest rate allowed: one token per 1000 s. Keeps `burst * interval` far from overflow.
const MAX_INTERVAL: Nanos = 1_000 * NANOS_PER_SEC;
/// Largest burst allowed; with `MAX_INTERVAL`, `burst * interval` < 2^60.
pub(crate) const MAX_BURST: u32 = 1_000_000;

/// A rate and a burst: `burst` requests at once, then one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    interval: Nanos,
    burst: u32,
    /// `burst * interval`: how far ahead of now `tat` may run.
    tolerance: Nanos,
}

impl Quota {
    /// `rate` tokens per second (fractions allowed), `burst` at most. Out-of-range values are
    /// clamped: a rate to one token per 1000 s .. one per ns, a burst to 1 ..= [`MAX_BURST`].
    pub(crate) fn new(rate: f64, burst: u32) -> Quota {
        let interval = if rate.is_finite() && rate > 0.0 {
            (NANOS_PER_SEC as f64 / rate)
                .round()
                .clamp(1.0, MAX_INTERVAL as f64) as Nanos
        } else {
            MAX_INTERVAL
        };
        let burst = burst.clamp(1, MAX_BURST);
        Quota {
            interval,
            burst,
            tolerance: interval * Nanos::from(burst),
        }
    }

    pub(crate) fn burst(&self) -> u32 {
        self.burst
    }

    /// Time between two tokens.
    pub(crate) fn interval(&self) -> Nanos {
        self.interval
    }

    /// Time to refill the whole bucket.
    #[cfg(test)]
    pub(crate) fn refill_time(&self) -> Nanos {
        self.tolerance
    }
}

/// The result of taking from a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// `tokens` (≥ 1) were taken; `remaining` whole tokens are left; the bucket is full again at
    /// `full_at` if nothing more is taken.
    Granted {
        tokens: u32,
        remaining: u32,
        full_at: Nanos,
    },
    /// No whole token is available; the next one is at `retry_at` (> now).
    Denied { retry_at: Nanos, full_at: Nanos },
}

/// A client's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Theoretical arrival time: the bucket is full at and after this instant.
    tat: Nanos,
}

impl Bucket {
    /// A full bucket (any `tat` at or before now is full).
    pub(crate) fn full() -> Bucket {
        Bucket { tat: 0 }
    }

    pub(crate) fn is_full(&self, now: Nanos) -> bool {
        self.tat <= now
    }

    /// When the bucket is full again if nothing more is taken.
    pub(crate) fn full_at(&self, now: Nanos) -> Nanos {
        self.tat.max(now)
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&self, quota: &Quota, now: Nanos) -> u32 {
        // Invariant: tat <= now + tolerance (takes never push it further), so no underflow.
        let room = (now + quota.tolerance).saturating_sub(self.full_at(now));
        (room / quota.interval) as u32
    }

    /// Takes `min(want, available)` tokens if at least one is available; otherwise takes nothing
    /// and says when the next token comes. `want` of 0 counts as 1.
    pub(crate) fn take_up_to(&mut self, quota: &Quota, want: u32, now: Nanos) -> Take {
        let base = self.full_at(now);
        let available = self.available(quota, now);
        if available == 0 {
            return Take::Denied {
                // The first instant at which base + interval <= t + tolerance.
                retry_at: (base + quota.interval)
                    .saturating_sub(quota.tolerance)
                    .max(now + 1),
                full_at: base,
            };
        }
        let tokens = want.clamp(1, available);
        self.tat = base + Nanos::from(tokens) * quota.interval;
        Take::Granted {
            tokens,
            remaining: available - tokens,
            full_at: self.tat,
        }
    }
}

/// Whole seconds covering `delta` nanoseconds, rounded up: a client that waits that long is not
/// early (RFC 9110 §10.2.3 `Retry-After` is in whole seconds).
pub(crate) fn secs_ceil(delta: Nanos) -> u64 {
    delta.div_ceil(NANOS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;
    const S: Nanos = NANOS_PER_SEC;

    fn granted(take: Take) -> (u32, u32) {
        match take {
            Take::Granted {
                tokens, remaining, ..
            } => (tokens, remaining),
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn a_new_bucket_allows_the_burst_then_denies() {
        let q = Quota::new(10.0, 5);
        let mut b = Bucket::full();
        let now = 1_000 * S;
        for left in (0..5).rev() {
            assert_eq!(granted(b.take_up_to(&q, 1, now)), (1, left));
        }
        assert!(matches!(b.take_up_to(&q, 1, now), Take::Denied { .. }));
    }

    #[test]
    fn tokens_refill_at_the_rate() {
        let q = Quota::new(10.0, 5);
        let mut b = Bucket::full();
        let t0 = 50 * S;
        assert_eq!(granted(b.take_up_to(&q, 5, t0)), (5, 0));
        assert_eq!(b.available(&q, t0 + 99 * MS), 0);
        assert_eq!(b.available(&q, t0 + 100 * MS), 1);
        assert_eq!(b.available(&q, t0 + 350 * MS), 3);
        // Never more than the burst, however long the wait.
        assert_eq!(b.available(&q, t0 + 3600 * S), 5);
        assert!(b.is_full(t0 + 500 * MS));
        assert!(!b.is_full(t0 + 499 * MS));
    }

    #[test]
    fn grants_over_time_match_rate_times_time_plus_burst() {
        // One request every 1 ms for 10 s against 100/s with a burst of 20.
        let q = Quota::new(100.0, 20);
        let mut b = Bucket::full();
        let t0 = 7 * S;
        let granted = (0..10_000)
            .filter(|i| matches!(b.take_up_to(&q, 1, t0 + i * MS), Take::Granted { .. }))
            .count();
        assert_eq!(granted, 20 + 1000 - 1);
    }

    #[test]
    fn retry_at_is_when_the_next_token_arrives() {
        let q = Quota::new(2.0, 3);
        let mut b = Bucket::full();
        let t0 = 10 * S;
        granted(b.take_up_to(&q, 3, t0));
        match b.take_up_to(&q, 1, t0 + 100 * MS) {
            Take::Denied { retry_at, full_at } => {
                assert_eq!(retry_at, t0 + 500 * MS);
                assert_eq!(full_at, t0 + 1500 * MS);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(granted(b.take_up_to(&q, 1, t0 + 500 * MS)), (1, 0));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(secs_ceil(0), 0);
        assert_eq!(secs_ceil(1), 1);
        assert_eq!(secs_ceil(S), 1);
        assert_eq!(secs_ceil(S + 1), 2);
        assert_eq!(secs_ceil(2500 * MS), 3);
    }

    #[test]
    fn a_lease_takes_what_is_available_up_to_the_ask() {
        let q = Quota::new(100.0, 10);
        let mut b = Bucket::full();
        let t0 = S;
        assert_eq!(granted(b.take_up_to(&q, 4, t0)), (4, 6));
        assert_eq!(granted(b.take_up_to(&q, 8, t0)), (6, 0));
        // 25 ms later two and a half tokens have come back: two whole ones are leased.
        assert_eq!(granted(b.take_up_to(&q, 8, t0 + 25 * MS)), (2, 0));
        // Leased tokens count as taken: the bucket is full only after they refill.
        match b.take_up_to(&q, 1, t0 + 25 * MS) {
            Take::Denied { retry_at, full_at } => {
                assert_eq!(retry_at, t0 + 30 * MS);
                assert_eq!(full_at, t0 + 120 * MS);
            }
            other => panic!("{other:?}"),
        }
        // A want of 0 is one token.
        assert_eq!(granted(b.take_up_to(&q, 0, t0 + S)), (1, 9));
    }

    #[test]
    fn full_at_reports_when_the_bucket_refills() {
        let q = Quota::new(1.0, 60);
        let mut b = Bucket::full();
        let t0 = S;
        match b.take_up_to(&q, 1, t0) {
            Take::Granted { full_at, .. } => assert_eq!(full_at, t0 + S),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.full_at(t0 + 5 * S), t0 + 5 * S);
    }

    #[test]
    fn out_of_range_quotas_are_clamped() {
        let q = Quota::new(0.0, 0);
        assert_eq!(q.burst(), 1);
        assert_eq!(q.interval(), MAX_INTERVAL);
        let q = Quota::new(f64::NAN, u32::MAX);
        assert_eq!(q.burst(), MAX_BURST);
        assert_eq!(q.refill_time(), MAX_INTERVAL * Nanos::from(MAX_BURST));
        let q = Quota::new(1e12, 1);
        assert_eq!(q.interval(), 1);
        let q = Quota::new(0.5, 1);
        assert_eq!(q.interval(), 2 * S);
        // Even the extremes never overflow.
        let mut b = Bucket::full();
        let q = Quota::new(1e-9, u32::MAX);
        let _ = b.take_up_to(&q, u32::MAX, Nanos::MAX / 4);
        let _ = b.take_up_to(&q, u32::MAX, Nanos::MAX / 4);
    }
}
