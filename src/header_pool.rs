//! Recycled header storage, one pool per thread (so per shard): response `HeaderMap`s and the
//! field lists of request [`Headers`].
//!
//! A `HeaderMap` allocates twice on its first insert, and a request's field list once. Without
//! reuse every request would allocate three times just for headers. The connection loop takes
//! request field lists from here and `Request`'s `Drop` gives them back; responses built with
//! [`crate::service::response`] start from a pooled map that the loop returns after encoding.

use std::cell::RefCell;
use std::thread::LocalKey;

use http::HeaderMap;

use crate::http1::Headers;

/// Maps kept per thread. Enough for every request in flight on a busy shard.
const POOL_CAP: usize = 256;
/// A map that grew past this many entries (an unusual request) is freed, not kept.
const MAX_KEPT_CAPACITY: usize = 64;

/// Request field lists kept per thread, as for maps.
const REQUEST_POOL_CAP: usize = 256;
/// A field list that grew past this many fields (16 bytes each) is freed, not kept. Above the
/// default limit of 100 fields, so even unusual requests recycle.
const MAX_KEPT_FIELDS: usize = 128;

thread_local! {
    static POOL: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
    static REQUEST_POOL: RefCell<Vec<Headers>> = const { RefCell::new(Vec::new()) };
}

/// An empty request field list, recycled when one is available.
pub fn take_request_headers() -> Headers {
    REQUEST_POOL
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default()
}

/// Empties `headers` (releasing the head bytes it points into) and keeps its storage for reuse.
pub fn give_request_headers(headers: Headers) {
    let capacity = headers.capacity();
    if capacity == 0 || capacity > MAX_KEPT_FIELDS {
        return;
    }
    keep(&REQUEST_POOL, REQUEST_POOL_CAP, headers.recycle());
}

/// Fields a new map is asked to hold without growing: a response to `/plaintext` carries 8 with the
/// default middleware, a static file 12, or 13 with `Vary: accept-encoding` (any request that
/// sends `Accept-Encoding`). A map's table doubles, so anything over 12 gets room for 24.
const FRESH_CAPACITY: usize = 16;

/// An empty map, recycled when one is available. A new one is sized for a usual response at once:
/// HTTP/2 never gives its maps back (h2 consumes them), and a map grown one insert at a time
/// allocates twice and rehashes once on the way to 12 fields.
pub fn take() -> HeaderMap {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| HeaderMap::with_capacity(FRESH_CAPACITY))
}

/// Clears `map` and keeps it for reuse.
pub fn give(mut map: HeaderMap) {
    let capacity = map.capacity();
    if capacity == 0 || capacity > MAX_KEPT_CAPACITY {
        return;
    }
    map.clear();
    keep(&POOL, POOL_CAP, map);
}

/// Pushes `item` onto this thread's `pool` unless it already holds `cap` items.
fn keep<T: 'static>(pool: &'static LocalKey<RefCell<Vec<T>>>, cap: usize, item: T) {
    pool.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < cap {
            pool.push(item);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_map_comes_back_cleared_with_its_capacity() {
        let mut map = HeaderMap::new();
        map.insert("x-a", "1".parse().unwrap());
        let capacity = map.capacity();
        give(map);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
    }

    #[test]
    fn request_headers_come_back_empty_with_their_capacity() {
        let headers = Headers::with_capacity(16);
        give_request_headers(headers);
        let again = take_request_headers();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), 16);
        give_request_headers(Headers::default());
        give_request_headers(Headers::with_capacity(MAX_KEPT_FIELDS + 1));
        assert_eq!(take_request_headers().capacity(), 0);
    }

    #[test]
    fn unallocated_maps_are_not_kept() {
        POOL.with(|pool| pool.borrow_mut().clear());
        give(HeaderMap::new());
        assert!(POOL.with(|pool| pool.borrow().is_empty()));
    }

    #[test]
    fn a_new_map_holds_a_usual_response_without_growing() {
        POOL.with(|pool| pool.borrow_mut().clear());
        let mut map = take();
        let capacity = map.capacity();
        assert!(capacity >= FRESH_CAPACITY);
        for i in 0..FRESH_CAPACITY {
            map.insert(
                http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                http::HeaderValue::from(i),
            );
        }
        assert_eq!(map.capacity(), capacity);
    }
}
