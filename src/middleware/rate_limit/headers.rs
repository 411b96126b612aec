//! The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` fields
//! (draft-ietf-httpapi-ratelimit-headers-06) and the numbers in them, made without formatting or
//! allocating on the common path: a number below 10,000 is a slice of a static table, and a larger
//! one (a burst above 10,000) is reused while it repeats, which it does for a client far below its
//! limit (`remaining` stays `burst - 1`).
//!
//! Each field costs one `HeaderMap` insertion, and that is most of what this layer costs on an
//! allowed request: the map hashes a custom name byte by byte (FNV) before it probes.

use std::cell::RefCell;

use bytes::Bytes;
use http::header::{Entry, HeaderMap, HeaderName, HeaderValue};

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// One limiter's field values.
#[derive(Debug)]
pub(crate) struct RateLimitHeaders {
    limit: HeaderValue,
    remaining: LastNumber,
    reset: LastNumber,
}

impl RateLimitHeaders {
    pub(crate) fn new(limit: u32) -> Self {
        RateLimitHeaders {
            limit: number(u64::from(limit)),
            remaining: LastNumber::default(),
            reset: LastNumber::default(),
        }
    }

    /// The three fields on an allowed response. An inner limiter (a group's) may have set them
    /// already: the draft asks for the policy closest to exhaustion, so the lower remaining wins.
    pub(crate) fn put_allowed(&self, headers: &mut HeaderMap, remaining: u32, reset_secs: u64) {
        // One lookup decides the common case (nobody set them) and inserts the first field. (So
        // `RateLimit-Remaining` comes first on the wire: the order of fields with different names
        // means nothing, RFC 9110 §5.3.)
        match headers.entry(&RATELIMIT_REMAINING) {
            Entry::Vacant(slot) => {
                slot.insert(self.remaining.value(u64::from(remaining)));
            }
            Entry::Occupied(mut slot) => {
                let theirs = std::str::from_utf8(slot.get().as_bytes())
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                if theirs.is_some_and(|theirs| theirs <= u64::from(remaining)) {
                    return;
                }
                slot.insert(self.remaining.value(u64::from(remaining)));
            }
        }
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(RATELIMIT_RESET.clone(), self.reset.value(reset_secs));
    }

    /// The three fields on this limiter's 429.
    pub(crate) fn put_denied(&self, headers: &mut HeaderMap, reset_secs: u64) {
        headers.insert(RATELIMIT_LIMIT.clone(), self.limit.clone());
        headers.insert(RATELIMIT_REMAINING.clone(), number(0));
        headers.insert(RATELIMIT_RESET.clone(), self.reset.value(reset_secs));
    }
}

/// The last number above the static table written into one field, kept as a value to clone.
#[derive(Debug, Default)]
struct LastNumber(RefCell<Option<(u64, HeaderValue)>>);

impl LastNumber {
    fn value(&self, n: u64) -> HeaderValue {
        if n < STATIC_NUMBERS {
            return number(n);
        }
        let mut last = self.0.borrow_mut();
        match &*last {
            Some((cached, value)) if *cached == n => value.clone(),
            _ => {
                let value = HeaderValue::from(n);
                *last = Some((n, value.clone()));
                value
            }
        }
    }
}

/// Decimal numbers 0..10,000 written end to end ("0123...9999"), so a header value for any of
/// them is a slice of static memory: no allocation, no formatting per response.
const STATIC_NUMBERS: u64 = 10_000;
const NUMBER_TEXT_LEN: usize = 10 + 90 * 2 + 900 * 3 + 9000 * 4;
static NUMBER_TEXT: [u8; NUMBER_TEXT_LEN] = number_text();

const fn number_text() -> [u8; NUMBER_TEXT_LEN] {
    let mut out = [0u8; NUMBER_TEXT_LEN];
    let mut n = 0;
    while n < STATIC_NUMBERS as usize {
        let (pos, width) = span(n);
        let mut digit = width;
        let mut rest = n;
        while digit > 0 {
            digit -= 1;
            out[pos + digit] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        n += 1;
    }
    out
}

/// Where `n` (below 10,000) starts in [`NUMBER_TEXT`], and its width.
const fn span(n: usize) -> (usize, usize) {
    match n {
        0..=9 => (n, 1),
        10..=99 => (10 + (n - 10) * 2, 2),
        100..=999 => (190 + (n - 100) * 3, 3),
        _ => (2890 + (n - 1000) * 4, 4),
    }
}

/// `n` as a header value: a static slice below 10,000, formatted (allocating) above.
pub(crate) fn number(n: u64) -> HeaderValue {
    if n >= STATIC_NUMBERS {
        return HeaderValue::from(n);
    }
    let (start, width) = span(n as usize);
    HeaderValue::from_maybe_shared(Bytes::from_static(&NUMBER_TEXT[start..start + width]))
        .unwrap_or_else(|_| HeaderValue::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn numbers_are_slices_of_the_static_table() {
        for n in (0..10_000).chain([10_000, 123_456]) {
            assert_eq!(number(n).to_str().unwrap(), n.to_string());
        }
    }

    #[test]
    fn large_numbers_are_reused_while_they_repeat() {
        let last = LastNumber::default();
        for n in [999_999, 999_999, 12_345, 999_999, 5, 10_000] {
            assert_eq!(last.value(n).to_str().unwrap(), n.to_string());
        }
        assert_eq!(last.0.borrow().as_ref().map(|(n, _)| *n), Some(10_000));
    }

    #[test]
    fn allowed_fields_keep_the_lower_remaining_of_two_limiters() {
        let (outer, inner) = (RateLimitHeaders::new(100), RateLimitHeaders::new(2));
        let mut headers = HeaderMap::new();
        inner.put_allowed(&mut headers, 1, 30);
        outer.put_allowed(&mut headers, 96, 4);
        assert_eq!(field(&headers, "ratelimit-limit"), Some("2"));
        assert_eq!(field(&headers, "ratelimit-remaining"), Some("1"));
        assert_eq!(field(&headers, "ratelimit-reset"), Some("30"));
        // A lower remaining replaces all three fields.
        let mut headers = HeaderMap::new();
        outer.put_allowed(&mut headers, 96, 4);
        inner.put_allowed(&mut headers, 1, 30);
        RateLimitHeaders::new(5).put_allowed(&mut headers, 0, 7);
        assert_eq!(field(&headers, "ratelimit-limit"), Some("5"));
        assert_eq!(field(&headers, "ratelimit-remaining"), Some("0"));
        assert_eq!(field(&headers, "ratelimit-reset"), Some("7"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn a_lower_remaining_set_by_the_handler_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert("ratelimit-remaining", HeaderValue::from_static("3"));
        RateLimitHeaders::new(9).put_allowed(&mut headers, 8, 1);
        assert_eq!(field(&headers, "ratelimit-remaining"), Some("3"));
        assert_eq!(field(&headers, "ratelimit-limit"), None);
        // One that is not a number is replaced, with the other two.
        headers.insert("ratelimit-remaining", HeaderValue::from_static("many"));
        RateLimitHeaders::new(9).put_allowed(&mut headers, 8, 1);
        assert_eq!(field(&headers, "ratelimit-remaining"), Some("8"));
        assert_eq!(field(&headers, "ratelimit-limit"), Some("9"));
        assert_eq!(headers.len(), 3);
    }
}
