//! `DateCache`: the `Date` header value (RFC 9110 §6.6.1, IMF-fixdate), formatted at most once a
//! second per shard instead of once per response. The clock is the caller's: `new` and `update`
//! take `now`, so tests drive virtual time and this module never reads the system clock.

use std::io::Write;

use http::HeaderValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE_LEN: usize = 29;

/// The last second IMF-fixdate can express (9999-12-31T23:59:59Z); `httpdate` panics past it.
const MAX_SECS: u64 = 253_402_300_799;

#[derive(Debug, Clone)]
pub struct DateCache {
    bytes: [u8; IMF_FIXDATE_LEN],
    /// The same value as a header value, for responses built as an `http::HeaderMap` (HTTP/2):
    /// made once a second, cloned (a reference count) per response.
    header: HeaderValue,
    /// Whole seconds since the epoch of the cached value.
    secs: u64,
}

impl DateCache {
    pub fn new(now: SystemTime) -> Self {
        let mut cache = DateCache {
            bytes: [b' '; IMF_FIXDATE_LEN],
            header: HeaderValue::from_static(""),
            secs: 0,
        };
        cache.render(clamped_secs(now));
        cache
    }

    /// Refresh the cached value if `now` is in another second than the cached one.
    pub fn update(&mut self, now: SystemTime) {
        let secs = clamped_secs(now);
        if secs != self.secs {
            self.render(secs);
        }
    }

    /// The IMF-fixdate, 29 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The IMF-fixdate as a `Date` header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    fn render(&mut self, secs: u64) {
        let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
        let mut cursor = &mut self.bytes[..];
        // Writing to a fixed slice without allocating; an IMF-fixdate of a year <= 9999 is
        // always exactly 29 bytes, so this cannot run out of room.
        let written = write!(cursor, "{date}");
        debug_assert!(written.is_ok() && cursor.is_empty());
        self.header = HeaderValue::from_bytes(&self.bytes)
            .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
        self.secs = secs;
    }
}

/// Seconds since the epoch, clamped to what IMF-fixdate can express (a clock set before 1970
/// or past 9999 must not panic the server).
fn clamped_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_imf_fixdate() {
        let cache = DateCache::new(at(784_111_777));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn the_header_value_follows_the_bytes() {
        let mut cache = DateCache::new(at(784_111_777));
        assert_eq!(cache.header_value().as_bytes(), cache.as_bytes());
        cache.update(at(784_111_778));
        assert_eq!(
            cache.header_value().as_bytes(),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
    }

    #[test]
    fn updates_only_when_the_second_changes() {
        let mut cache = DateCache::new(at(784_111_777));
        cache.update(at(784_111_777) + Duration::from_millis(999));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(at(784_111_778));
        assert_eq!(cache.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
    }

    #[test]
    fn clamps_times_out_of_range() {
        let before = DateCache::new(UNIX_EPOCH - Duration::from_secs(10));
        assert_eq!(before.as_bytes(), b"Thu, 01 Jan 1970 00:00:00 GMT");
        let after = DateCache::new(at(MAX_SECS + 1_000_000));
        assert_eq!(after.as_bytes(), b"Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
