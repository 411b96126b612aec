//! Who a bucket belongs to: a client address reduced to the unit that is limited, the shard that
//! owns its buckets, and the keyed hash the per-client maps use.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::middleware::client_ip::{canonical_ip, ip_bits};

/// A client as the limiter counts it: an IPv4 address, or an IPv6 prefix (a /64 by default, since
/// one subscriber is usually given a whole /64 and could otherwise rotate addresses freely). 128
/// bits, IPv4 in its IPv4-mapped form, so a key is `Copy` and crosses threads as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(u128);

impl ClientKey {
    /// The key of `ip`, keeping the first `ipv6_prefix` bits of an IPv6 address (clamped to
    /// 1..=128). IPv4-mapped IPv6 is IPv4.
    pub(crate) fn new(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match canonical_ip(ip) {
            v4 @ IpAddr::V4(_) => ClientKey(ip_bits(v4)),
            v6 => {
                let prefix = u32::from(ipv6_prefix.clamp(1, 128));
                ClientKey(ip_bits(v6) & (u128::MAX << (128 - prefix)))
            }
        }
    }

    /// The shard that owns this client's buckets. Every shard must compute the same answer, so
    /// this is a fixed mix of the bits (splitmix64's finaliser), not the per-process `HashMap`
    /// hasher; it need not resist collisions, since each shard's buckets sit in a keyed `HashMap`.
    pub(crate) fn owner(self, shards: usize) -> usize {
        if shards <= 1 {
            return 0;
        }
        let mut x = (self.0 as u64) ^ ((self.0 >> 64) as u64).rotate_left(29);
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x % shards as u64) as usize
    }
}

/// A map from clients to what is known about them, hashed with [`KeyHashing`].
pub(crate) type KeyMap<V> = HashMap<ClientKey, V, KeyHashing>;

/// The per-client maps' hash: foldhash's quality variant (its fast variant, hashbrown's default,
/// clustered consecutive IPv6 /64s badly: the spread test below failed 4 runs in 20), seeded per map,
/// about a tenth of SipHash-1-3's cost for a 128-bit key.
///
/// Hash flooding: clients choose their addresses (a whole /48 or more of IPv6 /64s), so the maps
/// must not let them pick colliding keys. foldhash's per-map seeds come from a per-process random
/// source and never leave the process; and each map is bounded by `max_clients` and swept, so
/// even a lucky guess costs probes within one bounded table, on one shard. (A single folded
/// multiply of the key, tried first, clustered consecutive addresses into a few buckets for some
/// seeds: `the_key_hash_spreads_neighbouring_addresses_over_buckets_and_tags` caught it.)
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyHashing(foldhash::quality::RandomState);

impl BuildHasher for KeyHashing {
    type Hasher = foldhash::quality::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix() {
        let a = ClientKey::new(ip("2001:db8:1:2::1"), 64);
        let b = ClientKey::new(ip("2001:db8:1:2:ffff::9"), 64);
        let c = ClientKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            ClientKey::new(ip("2001:db8:1:2::1"), 128),
            ClientKey::new(ip("2001:db8:1:2::2"), 128)
        );
    }

    #[test]
    fn ipv4_keys_are_whole_addresses_and_mapped_ipv6_is_ipv4() {
        assert_ne!(
            ClientKey::new(ip("10.0.0.1"), 64),
            ClientKey::new(ip("10.0.0.2"), 64)
        );
        assert_eq!(
            ClientKey::new(ip("10.0.0.1"), 64),
            ClientKey::new(ip("::ffff:10.0.0.1"), 64)
        );
    }

    #[test]
    fn owners_spread_over_the_shards() {
        let mut per_shard = [0usize; 4];
        for n in 0..4000u32 {
            let key = ClientKey::new(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), 64);
            per_shard[key.owner(4)] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 800), "{per_shard:?}");
        assert_eq!(ClientKey::new(ip("10.0.0.1"), 64).owner(1), 0);
    }

    #[test]
    fn the_key_hash_is_keyed_per_map_and_stable_within_one() {
        let key = ClientKey::new(ip("203.0.113.7"), 64);
        let (a, b) = (KeyHashing::default(), KeyHashing::default());
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(
            a.hash_one(key),
            b.hash_one(key),
            "each map draws its own secret"
        );
    }

    #[test]
    fn the_key_hash_spreads_neighbouring_addresses_over_buckets_and_tags() {
        // Consecutive IPv4 addresses and consecutive IPv6 /64s: the keys a flood would use.
        let hashing = KeyHashing::default();
        let v4 =
            (0..8192u32).map(|n| ClientKey::new(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), 64));
        let v6 = (0..8192u128).map(|n| {
            ClientKey::new(
                IpAddr::from(((0x2001_0db8_u128 << 96) | (n << 64)).to_be_bytes()),
                64,
            )
        });
        for keys in [v4.collect::<Vec<_>>(), v6.collect()] {
            let mut buckets = [0u32; 1024];
            let mut tags = [0u32; 128];
            for key in &keys {
                let hash = hashing.hash_one(key);
                buckets[(hash % 1024) as usize] += 1;
                tags[(hash >> 57) as usize] += 1;
            }
            // 8 keys per bucket and 64 per tag on average.
            assert!(buckets.iter().all(|&n| n <= 28), "{buckets:?}");
            assert!(tags.iter().all(|&n| (24..=112).contains(&n)), "{tags:?}");
        }
    }

    #[test]
    fn byte_input_hashes_by_content_and_length() {
        let hashing = KeyHashing::default();
        let hash = |bytes: &[u8]| {
            let mut h = hashing.build_hasher();
            h.write(bytes);
            h.finish()
        };
        assert_eq!(hash(b"abc"), hash(b"abc"));
        assert_ne!(hash(b"abc"), hash(b"abd"));
        assert_ne!(hash(b"abc"), hash(b"abc\0"));
        assert_ne!(hash(&[0; 17]), hash(&[0; 18]));
    }
}
