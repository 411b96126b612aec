//! Recycled header maps, one pool per thread (so per shard).
//!
//! A `HeaderMap` allocates twice on its first insert. Request heads and responses need one each,
//! so without reuse every request would allocate four times just for headers. The connection
//! loop takes request maps from here, `Request`'s `Drop` gives them back, and responses built with
//! [`crate::service::response`] start from a pooled map that the loop returns after encoding.

use std::cell::RefCell;

use http::HeaderMap;

/// Maps kept per thread. Enough for every request in flight on a busy shard.
const POOL_CAP: usize = 256;
/// A map that grew past this many entries (an unusual request) is freed, not kept.
const MAX_KEPT_CAPACITY: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty map, recycled when one is available.
pub fn take() -> HeaderMap {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default()
}

/// Clears `map` and keeps it for reuse.
pub fn give(mut map: HeaderMap) {
    let capacity = map.capacity();
    if capacity == 0 || capacity > MAX_KEPT_CAPACITY {
        return;
    }
    map.clear();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_CAP {
            pool.push(map);
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
    fn unallocated_maps_are_not_kept() {
        while take().capacity() > 0 {}
        give(HeaderMap::new());
        assert_eq!(take().capacity(), 0);
    }
}
