//! The client's address: the TCP peer, or, when the peer is a proxy we trust, the address that
//! proxy saw, read from `X-Forwarded-For` (or `Forwarded`, RFC 7239) by walking the list from the
//! right past our own trusted hops.
//!
//! Only the hops appended by trusted proxies can be believed: anything to their left was sent by
//! the client and may be forged. So the answer is the first untrusted address from the right, not
//! the leftmost one. This module owns the parsing of those headers and of the trusted list; it
//! keeps no state and never allocates on the request path.

use crate::http1::trim_ows;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::service::Request;

/// Which header the trusted proxies append the address they saw to.
///
/// Only one is read: a proxy that appends to `X-Forwarded-For` usually passes a client's
/// `Forwarded` header through untouched, so reading both would let the client choose its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the de facto standard).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239 §4, §5.2).
    Forwarded,
}

/// One trusted network: an address as 128 bits (IPv4 as IPv4-mapped IPv6, RFC 4291 §2.5.5.2) and
/// a prefix length over those 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    bits: u128,
    mask: u128,
}

impl Network {
    fn contains(&self, addr: u128) -> bool {
        addr & self.mask == self.bits
    }
}

/// The proxies whose forwarding headers are believed: IPs and CIDR networks, IPv4 and IPv6.
/// Empty by default: the peer address is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    header: ForwardedHeader,
}

/// A trusted-proxy entry that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted proxy {entry:?}: {reason}")]
pub struct InvalidProxy {
    /// The entry as given.
    pub entry: String,
    pub reason: &'static str,
}

impl TrustedProxies {
    /// Trusts nobody: the client is always the peer.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Parses entries such as `"10.0.0.0/8"`, `"::1"`, `"127.0.0.1"`, `"fd00::/8"`. Host bits
    /// below the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`). The first invalid entry is
    /// the error.
    pub fn parse<I, E>(entries: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        let networks = entries
            .into_iter()
            .map(|entry| parse_network(entry.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies {
            networks,
            header: ForwardedHeader::default(),
        })
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 compares as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = ip_bits(ip);
        self.networks.iter().any(|net| net.contains(bits))
    }
}

/// A comma-separated list, as a command-line flag gives it: `"10.0.0.0/8, ::1"`.
impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    fn from_str(list: &str) -> Result<Self, InvalidProxy> {
        TrustedProxies::parse(list.split(',').map(str::trim).filter(|e| !e.is_empty()))
    }
}

fn parse_network(entry: &str) -> Result<Network, InvalidProxy> {
    let invalid = |reason| InvalidProxy {
        entry: entry.to_owned(),
        reason,
    };
    let (addr, prefix) = match entry.trim().split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry.trim(), None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
    // An IPv4 prefix counts from bit 96 of the mapped form.
    let (offset, width) = match ip {
        IpAddr::V4(_) => (96, 32),
        IpAddr::V6(_) => (0, 128),
    };
    let prefix = match prefix {
        None => width,
        Some(p) => match p.parse::<u32>() {
            Ok(p) if p <= width => p,
            _ => {
                return Err(invalid(
                    "the prefix length is not a number within the address",
                ))
            }
        },
    };
    let total = offset + prefix;
    let mask = if total == 0 {
        0
    } else {
        u128::MAX << (128 - total)
    };
    Ok(Network {
        bits: ip_bits(ip) & mask,
        mask,
    })
}

/// `ip` as 128 bits, IPv4 (and IPv4-mapped IPv6) as `::ffff:a.b.c.d`.
#[inline]
pub(crate) fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports for an IPv4 peer) as
/// IPv4, so one client has one address whichever socket it came through.
#[inline]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the first address
/// from the right of the forwarding header that is not a trusted proxy. All field lines of the
/// header are one list, in order (RFC 9110 §5.3). If every hop is trusted, the leftmost is the
/// client. A malformed entry (`unknown`, an obfuscated RFC 7239 identifier, garbage) ends the walk:
/// the answer is the last good hop to its right, or the peer.
///
/// With no trusted proxies this is the peer's address and nothing else: inlined into the layers
/// that ask, no header is looked at.
#[inline]
pub fn client_ip(req: &Request, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical_ip(req.peer.ip());
    if trusted.networks.is_empty() {
        return peer;
    }
    forwarded_client_ip(req, trusted, peer)
}

/// [`client_ip`] when some proxies are trusted.
#[inline(never)]
fn forwarded_client_ip(req: &Request, trusted: &TrustedProxies, peer: IpAddr) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let mut walk = RightmostUntrusted::new(peer, trusted);
    match trusted.header {
        ForwardedHeader::XForwardedFor => {
            for line in req.headers().get_all("x-forwarded-for") {
                for entry in line.split(|&b| b == b',') {
                    walk.push(trim_ows(entry), parse_node);
                }
            }
        }
        ForwardedHeader::Forwarded => {
            for line in req.headers().get_all("forwarded") {
                for element in split_outside_quotes(line, b',') {
                    walk.push(trim_ows(element), forwarded_for);
                }
            }
        }
    }
    walk.answer()
}

/// The right-to-left walk done in one left-to-right pass (the header lines come as a forward-only
/// iterator and we do not allocate): the answer is decided by the rightmost "stopper" (an untrusted
/// or a malformed hop) and, for a malformed one, by the good hop just right of it.
struct RightmostUntrusted<'t> {
    peer: IpAddr,
    trusted: &'t TrustedProxies,
    /// Leftmost hop seen, for when every hop is trusted.
    first: Option<IpAddr>,
    /// The rightmost stopper so far: `Some(ip)` untrusted, `None` malformed.
    stopper: Option<Option<IpAddr>>,
    /// The first (trusted) hop after the rightmost stopper.
    after_stopper: Option<IpAddr>,
}

/// What one list element says.
enum Hop {
    /// An empty list element: RFC 9110 §5.6.1 says to ignore it.
    Empty,
    Addr(IpAddr),
    Malformed,
}

impl<'t> RightmostUntrusted<'t> {
    fn new(peer: IpAddr, trusted: &'t TrustedProxies) -> Self {
        RightmostUntrusted {
            peer,
            trusted,
            first: None,
            stopper: None,
            after_stopper: None,
        }
    }

    fn push(&mut self, element: &[u8], parse: fn(&[u8]) -> Hop) {
        match parse(element) {
            Hop::Empty => {}
            Hop::Malformed => {
                self.stopper = Some(None);
                self.after_stopper = None;
            }
            Hop::Addr(ip) => {
                let ip = canonical_ip(ip);
                self.first.get_or_insert(ip);
                if !self.trusted.contains(ip) {
                    self.stopper = Some(Some(ip));
                    self.after_stopper = None;
                } else if self.stopper.is_some() {
                    self.after_stopper.get_or_insert(ip);
                }
            }
        }
    }

    fn answer(&self) -> IpAddr {
        match self.stopper {
            Some(Some(untrusted)) => untrusted,
            Some(None) => self.after_stopper.unwrap_or(self.peer),
            None => self.first.unwrap_or(self.peer),
        }
    }
}

/// A node as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443` (RFC 7239 §6 for the bracketed forms; ports are ignored).
fn parse_node(node: &[u8]) -> Hop {
    if node.is_empty() {
        return Hop::Empty;
    }
    // The longest IPv6 text with brackets and a port is under 64 bytes.
    if node.len() > 64 {
        return Hop::Malformed;
    }
    let Ok(text) = std::str::from_utf8(node) else {
        return Hop::Malformed;
    };
    let addr = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Hop::Malformed;
        };
        if !(after.is_empty() || is_port(after.strip_prefix(':'))) {
            return Hop::Malformed;
        }
        return match v6.parse::<Ipv6Addr>() {
            Ok(v6) => Hop::Addr(IpAddr::V6(v6)),
            Err(_) => Hop::Malformed,
        };
    } else if let Some((v4, port)) = text.split_once(':').filter(|(_, p)| !p.contains(':')) {
        // One colon: IPv4 with a port (an IPv6 address has at least two).
        if !is_port(Some(port)) {
            return Hop::Malformed;
        }
        v4.parse::<Ipv4Addr>().map(IpAddr::V4)
    } else {
        text.parse::<IpAddr>()
    };
    addr.map_or(Hop::Malformed, Hop::Addr)
}

fn is_port(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239 §4: `for=192.0.2.43;proto=http`,
/// `for="[2001:db8::1]:4711"`); an element without one is malformed for our purpose, as are
/// `unknown` and obfuscated identifiers (§6.2, §6.3).
fn forwarded_for(element: &[u8]) -> Hop {
    if element.is_empty() {
        return Hop::Empty;
    }
    for pair in split_outside_quotes(element, b';') {
        let pair = trim_ows(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if !name.eq_ignore_ascii_case(b"for") {
            continue;
        }
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        };
        // A node identifier never needs quoted-pair escapes; one means it is not an address.
        if value.contains(&b'\\') || value.is_empty() {
            return Hop::Malformed;
        }
        return parse_node(value);
    }
    Hop::Malformed
}

/// Splits at `sep` except inside a quoted-string (RFC 9110 §5.6.4), honouring `\` escapes.
fn split_outside_quotes(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::request;
    use std::net::SocketAddr;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).expect("valid test list")
    }

    fn from(peer: &str, headers: &str) -> Request {
        let mut req = request(&format!("GET / HTTP/1.1\r\n{headers}\r\n"));
        req.peer = peer.parse::<SocketAddr>().expect("test peer");
        req
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let req = from("198.51.100.7:5000", "X-Forwarded-For: 203.0.113.1\r\n");
        assert_eq!(client_ip(&req, &TrustedProxies::none()), ip("198.51.100.7"));
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let req = from("10.0.0.2:5000", "");
        assert_eq!(client_ip(&req, &trusted(&["10.0.0.0/8"])), ip("10.0.0.2"));
    }

    #[test]
    fn the_walk_takes_the_first_untrusted_hop_from_the_right() {
        // The client forged the leftmost entry; the proxies appended the rest.
        let req = from(
            "10.0.0.1:5000",
            "X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.0.0.7\r\n",
        );
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        let req = from(
            "10.0.0.1:5000",
            "X-Forwarded-For: 1.1.1.1, 203.0.113.9\r\nX-Forwarded-For: 10.0.0.7\r\n",
        );
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        let req = from(
            "10.0.0.1:5000",
            "X-Forwarded-For: 203.0.113.9\r\nx-forwarded-for: 10.0.0.7, 10.0.0.8\r\n",
        );
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        let req = from("10.0.0.1:5000", "X-Forwarded-For: 10.0.0.5, 10.0.0.6\r\n");
        assert_eq!(client_ip(&req, &trusted(&["10.0.0.0/8"])), ip("10.0.0.5"));
    }

    #[test]
    fn a_malformed_hop_stops_the_walk_at_the_last_good_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let req = from(
            "10.0.0.1:5000",
            "X-Forwarded-For: 203.0.113.9, unknown, 10.0.0.7\r\n",
        );
        assert_eq!(client_ip(&req, &t), ip("10.0.0.7"));
        let req = from("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.9, garbage\r\n");
        assert_eq!(client_ip(&req, &t), ip("10.0.0.1"));
        let req = from("10.0.0.1:5000", "X-Forwarded-For: 999.1.1.1\r\n");
        assert_eq!(client_ip(&req, &t), ip("10.0.0.1"));
        // A malformed hop left of the answer does not matter.
        let req = from("10.0.0.1:5000", "X-Forwarded-For: ???, 203.0.113.9\r\n");
        assert_eq!(client_ip(&req, &t), ip("203.0.113.9"));
    }

    #[test]
    fn empty_list_elements_are_ignored() {
        let req = from("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.9,, ,\r\n");
        assert_eq!(
            client_ip(&req, &trusted(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn hops_with_ports_and_brackets_parse() {
        let t = trusted(&["10.0.0.0/8"]);
        for (xff, want) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            let req = from("10.0.0.1:5000", &format!("X-Forwarded-For: {xff}\r\n"));
            assert_eq!(client_ip(&req, &t), ip(want), "{xff}");
        }
        for bad in [
            "1.2.3.4:",
            "1.2.3.4:x",
            "[2001:db8::1",
            "[1.2.3.4]",
            "[::1]x",
        ] {
            let req = from("10.0.0.1:5000", &format!("X-Forwarded-For: {bad}\r\n"));
            assert_eq!(client_ip(&req, &t), ip("10.0.0.1"), "{bad}");
        }
    }

    #[test]
    fn ipv6_networks_and_peers() {
        let t = trusted(&["fd00::/8", "::1"]);
        let req = from("[::1]:5000", "X-Forwarded-For: 2001:db8::5, fd12::1\r\n");
        assert_eq!(client_ip(&req, &t), ip("2001:db8::5"));
        let req = from("[2001:db8::2]:5000", "X-Forwarded-For: 2001:db8::5\r\n");
        assert_eq!(client_ip(&req, &t), ip("2001:db8::2"));
    }

    #[test]
    fn ipv4_mapped_ipv6_compares_as_ipv4() {
        let t = trusted(&["127.0.0.1"]);
        let req = from(
            "[::ffff:127.0.0.1]:5000",
            "X-Forwarded-For: 203.0.113.9\r\n",
        );
        assert_eq!(client_ip(&req, &t), ip("203.0.113.9"));
        // A mapped hop is trusted like its IPv4 form, and the answer is IPv4.
        let req = from(
            "127.0.0.1:5000",
            "X-Forwarded-For: ::ffff:203.0.113.9, ::ffff:127.0.0.1\r\n",
        );
        assert_eq!(client_ip(&req, &t), ip("203.0.113.9"));
        let req = from("[::ffff:198.51.100.1]:5000", "");
        assert_eq!(client_ip(&req, &t), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_entries_parse_as_ips_and_networks() {
        let t = trusted(&[
            "10.0.0.0/8",
            "::1",
            "127.0.0.1",
            "192.168.1.77/24",
            "fd00::/8",
        ]);
        for yes in [
            "10.255.0.1",
            "::1",
            "127.0.0.1",
            "192.168.1.1",
            "fdab::1",
            "::ffff:10.1.1.1",
        ] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "::2", "127.0.0.2", "192.168.2.1", "fe00::1"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("8.8.8.8")));
        assert!(!trusted(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
        assert!(trusted(&["::/0"]).contains(ip("2001:db8::1")));
    }

    #[test]
    fn an_invalid_trusted_entry_is_an_error_naming_it() {
        for bad in [
            "10.0.0.0/33",
            "example.com",
            "10.0.0.0/",
            "::1/129",
            "1.2.3.4/x",
            "",
        ] {
            let err = TrustedProxies::parse(["127.0.0.1", bad]).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        let list: TrustedProxies = "10.0.0.0/8, ::1,".parse().expect("a valid list");
        assert!(list.contains(ip("::1")));
        assert!("10.0.0.0/8, nope".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn forwarded_for_is_read_when_configured() {
        let t = trusted(&["10.0.0.0/8"]).with_header(ForwardedHeader::Forwarded);
        let req = from(
            "10.0.0.1:5000",
            "Forwarded: for=1.1.1.1, for=\"[2001:db8:cafe::17]:4711\";proto=https\r\nForwarded: For=10.0.0.9;by=10.0.0.1\r\n",
        );
        assert_eq!(client_ip(&req, &t), ip("2001:db8:cafe::17"));
        let req = from(
            "10.0.0.1:5000",
            "Forwarded: for=203.0.113.9, for=_hidden\r\n",
        );
        assert_eq!(client_ip(&req, &t), ip("10.0.0.1"));
        let req = from("10.0.0.1:5000", "Forwarded: by=\"a,b\";for=203.0.113.9\r\n");
        assert_eq!(client_ip(&req, &t), ip("203.0.113.9"));
        // With Forwarded configured, X-Forwarded-For is not read.
        let req = from("10.0.0.1:5000", "X-Forwarded-For: 203.0.113.9\r\n");
        assert_eq!(client_ip(&req, &t), ip("10.0.0.1"));
    }

    #[test]
    fn hostile_header_values_never_panic() {
        let t = trusted(&["0.0.0.0/0", "::/0"]);
        for value in [
            ",,,,",
            "[",
            "]",
            "[]:",
            "\"",
            "for=\"",
            "for=\"\\\"",
            ";;;",
            "=",
            "[::1]:99999999",
            "::ffff:",
            "1.2.3.4:5:6",
        ] {
            for header in ["X-Forwarded-For", "Forwarded"] {
                let req = from("10.0.0.1:5000", &format!("{header}: {value}\r\n"));
                let _ = client_ip(&req, &t);
                let _ = client_ip(&req, &t.clone().with_header(ForwardedHeader::Forwarded));
            }
        }
        let long = "1.2.3.4, ".repeat(500);
        let req = from("10.0.0.1:5000", &format!("X-Forwarded-For: {long}\r\n"));
        assert_eq!(client_ip(&req, &t), ip("1.2.3.4"));
    }
}
