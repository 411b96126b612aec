//! Request ids: keep a well-formed incoming `X-Request-Id` (so an id minted by a proxy in front
//! follows the request through), otherwise mint one; put it on the request for later layers and
//! the handler ([`Request::request_id`]), and echo it on the response.
//!
//! Minted ids are 32 lowercase hex digits: a per-process random half (so two runs do not repeat
//! ids) mixed with the shard, and a per-shard counter. No lock, no syscall per request.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::Hook;
use crate::service::{Request, Response};

/// The request id, as sent in `X-Request-Id`.
///
/// A minted id is held inline: copying it to the request, to later layers and to the response
/// allocates nothing until the response's header value is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Minted([u8; 32]),
    Incoming(HeaderValue),
}

impl RequestId {
    pub fn as_str(&self) -> &str {
        // Only built from bytes checked by `is_valid_id` or from hex digits: always ASCII.
        match &self.0 {
            Repr::Minted(hex) => std::str::from_utf8(hex).unwrap_or(""),
            Repr::Incoming(value) => value.to_str().unwrap_or(""),
        }
    }

    /// The id as a header value, marked sensitive: unique to one response, it must not take an
    /// HPACK dynamic-table slot (RFC 7541 §7.1.3 "never indexed"). Indexed, every HTTP/2
    /// response inserted one and evicted an entry that repeats (content-type, server); HTTP/1.1
    /// ignores the mark.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut value = match &self.0 {
            Repr::Minted(hex) => HeaderValue::from_maybe_shared(Bytes::copy_from_slice(hex))
                .expect("hex digits are a valid header value"),
            Repr::Incoming(value) => value.clone(),
        };
        value.set_sensitive(true);
        value
    }
}

/// Longest incoming id kept; longer ones are replaced (they would bloat every log line).
pub const MAX_INCOMING_LEN: usize = 128;

/// An incoming id is kept only if it is 1 to 128 characters of `A-Z a-z 0-9 - _ . : / + =`:
/// enough for UUIDs, ULIDs, base64 and trace ids, nothing that could forge a log line.
pub fn is_valid_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_INCOMING_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The request-id layer. Build one per shard with [`RequestIds::new`].
#[derive(Debug)]
pub struct RequestIds {
    header: HeaderName,
    /// Keep valid incoming ids (turn off when clients are not trusted to choose them).
    trust_incoming: bool,
    /// The first 16 hex digits of every id this layer mints, formatted once.
    prefix: [u8; 16],
    counter: Cell<u64>,
}

impl RequestIds {
    /// Mints ids unique to `shard` within this process, keeping valid incoming `X-Request-Id`s.
    pub fn new(shard: usize) -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(shard);
        let mut prefix = [0u8; 16];
        write_hex(&mut prefix, hasher.finish() ^ ((shard as u64) << 56));
        RequestIds {
            header: HeaderName::from_static("x-request-id"),
            trust_incoming: true,
            prefix,
            counter: Cell::new(0),
        }
    }

    /// Uses `name` instead of `X-Request-Id`.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// Whether to keep a valid incoming id (default) or always mint a new one.
    pub fn trust_incoming(mut self, trust: bool) -> Self {
        self.trust_incoming = trust;
        self
    }

    fn mint(&self) -> RequestId {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut hex = [0u8; 32];
        hex[..16].copy_from_slice(&self.prefix);
        write_hex(&mut hex[16..], n);
        RequestId(Repr::Minted(hex))
    }

    fn incoming(&self, req: &Request) -> Option<RequestId> {
        if !self.trust_incoming {
            return None;
        }
        let id = req.headers().get(self.header.as_str())?;
        if !is_valid_id(id) {
            return None;
        }
        HeaderValue::from_bytes(id)
            .ok()
            .map(|value| RequestId(Repr::Incoming(value)))
    }
}

/// Writes `n` as 16 lowercase hex digits, a byte (two digits) at a time.
fn write_hex(out: &mut [u8], n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

impl Hook for RequestIds {
    /// The id, to echo on the response.
    type Carry = RequestId;

    fn before(&self, req: &mut Request) -> Result<RequestId, Response> {
        let id = self.incoming(req).unwrap_or_else(|| self.mint());
        req.request_id = Some(id.clone());
        Ok(id)
    }

    fn after(&self, id: RequestId, res: &mut Response) {
        res.headers_mut()
            .insert(self.header.clone(), id.to_header_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::{DynMiddleware, Endpoint, Layers, Next};
    use crate::response::IntoResponse;
    use crate::shard::LocalBoxFuture;
    use crate::testing::{block_on, request};
    use std::rc::Rc;

    /// Answers with the id the handler saw, to check it matches the header.
    struct EchoId;
    impl Endpoint for EchoId {
        fn call<'a>(&'a self, req: Request) -> LocalBoxFuture<'a, Response> {
            let seen = req
                .request_id()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            Box::pin(async move { seen.into_response() })
        }
    }

    fn run(layer: RequestIds, raw: &str) -> (String, String) {
        let layers: Layers = Rc::from(vec![Rc::new(layer) as Rc<dyn DynMiddleware>]);
        let res = block_on(Next::new(&layers, &EchoId).run(request(raw)));
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let seen = match res.body() {
            crate::service::Body::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
            _ => String::new(),
        };
        (header, seen)
    }

    #[test]
    fn keeps_a_valid_incoming_id_and_echoes_it() {
        let (header, seen) = run(
            RequestIds::new(0),
            "GET / HTTP/1.1\r\nX-Request-Id: abc-123_x.y\r\n\r\n",
        );
        assert_eq!(header, "abc-123_x.y");
        assert_eq!(seen, "abc-123_x.y");
    }

    #[test]
    fn replaces_an_invalid_incoming_id() {
        let long = "a".repeat(MAX_INCOMING_LEN + 1);
        for bad in ["has space", "quote\"", long.as_str(), ""] {
            let raw = format!("GET / HTTP/1.1\r\nX-Request-Id: {bad}\r\n\r\n");
            let (header, seen) = run(RequestIds::new(0), &raw);
            assert_eq!(header.len(), 32, "{bad:?} gave {header}");
            assert_eq!(header, seen);
        }
    }

    #[test]
    fn the_response_id_is_marked_never_indexed_for_hpack() {
        for raw in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nX-Request-Id: abc\r\n\r\n",
        ] {
            let layers: Layers =
                Rc::from(vec![Rc::new(RequestIds::new(0)) as Rc<dyn DynMiddleware>]);
            let res = block_on(Next::new(&layers, &EchoId).run(request(raw)));
            assert!(res.headers()["x-request-id"].is_sensitive(), "{raw:?}");
        }
    }

    #[test]
    fn hex_is_sixteen_digits_big_endian() {
        let mut out = [0u8; 16];
        write_hex(&mut out, 0x0123_4567_89ab_cdef);
        assert_eq!(&out, b"0123456789abcdef");
    }

    #[test]
    fn minted_ids_are_unique_per_request() {
        let layer = RequestIds::new(1);
        let a = layer.mint();
        let b = layer.mint();
        assert_ne!(a, b);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn can_be_told_not_to_trust_incoming_ids() {
        let (header, _) = run(
            RequestIds::new(0).trust_incoming(false),
            "GET / HTTP/1.1\r\nX-Request-Id: abc\r\n\r\n",
        );
        assert_ne!(header, "abc");
    }
}
