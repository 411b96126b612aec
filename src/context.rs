//! [`Ctx`]: what a handler gets beside the request: the matched path parameters, this shard's
//! state, and the shard itself (its id and the mesh to other shards).

use std::ops::Range;
use std::rc::Rc;

use bytestring::ByteString;

use crate::shard::ShardHandle;

/// The path parameters of the matched route, in pattern order.
///
/// Each value is kept twice over one buffer: `raw`, as the request path had it (percent-decoded
/// except `%2F`, `%25` and `%00`, which the HTTP layer keeps encoded so that `/a%2Fb` is one
/// segment), and `get`, fully decoded once at match time.
///
/// Boxed, and absent for routes without parameters, so a `Ctx` stays three pointers wide.
#[derive(Debug, Clone, Default)]
pub struct PathParams {
    inner: Option<Box<ParamsInner>>,
}

#[derive(Debug, Clone)]
struct ParamsInner {
    names: Rc<[Box<str>]>,
    buf: String,
    /// (raw, decoded) ranges in `buf`, one pair per name.
    spans: Vec<(Range<u32>, Range<u32>)>,
}

impl PathParams {
    /// Builds the parameters from `(name, raw value)` pairs as matched, in pattern order;
    /// `names` is the route's list of names in the same order.
    pub(crate) fn new<'p>(
        names: &Rc<[Box<str>]>,
        raw_values: impl Iterator<Item = &'p str>,
    ) -> Self {
        let mut params = ParamsInner {
            names: names.clone(),
            buf: String::new(),
            spans: Vec::with_capacity(names.len()),
        };
        for raw in raw_values {
            let start = params.buf.len();
            params.buf.push_str(raw);
            let raw_range = start as u32..params.buf.len() as u32;
            let decoded_range = if raw.contains('%') {
                let start = params.buf.len();
                decode_reserved(raw, &mut params.buf);
                start as u32..params.buf.len() as u32
            } else {
                raw_range.clone()
            };
            params.spans.push((raw_range, decoded_range));
        }
        PathParams {
            inner: Some(Box::new(params)),
        }
    }

    /// The `(raw, decoded)` values of parameter `name`.
    fn find(&self, name: &str) -> Option<(&str, &str)> {
        let inner = self.inner.as_deref()?;
        let i = inner.names.iter().position(|n| &**n == name)?;
        let (raw, decoded) = inner.spans.get(i)?;
        Some((inner.slice(raw), inner.slice(decoded)))
    }

    /// The decoded value of parameter `name` (`/users/:id` → `get("id")`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).map(|(_, decoded)| decoded)
    }

    /// The value as it appeared in the request path (see the type's docs).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.find(name).map(|(raw, _)| raw)
    }

    /// `(name, decoded value)` in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.as_deref().into_iter().flat_map(|inner| {
            inner
                .names
                .iter()
                .zip(&inner.spans)
                .map(|(name, (_, decoded))| (&**name, inner.slice(decoded)))
        })
    }

    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.spans.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ParamsInner {
    fn slice(&self, range: &Range<u32>) -> &str {
        &self.buf[range.start as usize..range.end as usize]
    }
}

/// Decodes the three escapes the HTTP layer leaves in paths (`%2F`, `%25`, `%00`, any case);
/// every other `%` was decoded already, so any other `%` here is literal.
fn decode_reserved(raw: &str, out: &mut String) {
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.as_bytes().get(at + 1..at + 3);
        let decoded = match escape {
            Some(b"2F" | b"2f") => Some('/'),
            Some(b"25") => Some('%'),
            Some(b"00") => Some('\0'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
}

/// The per-request context: path parameters, the query string, this shard's state `S`, and the
/// shard.
pub struct Ctx<S = ()> {
    params: PathParams,
    /// Shares the request's bytes (no copy); `None` without a `?`.
    query: Option<ByteString>,
    state: Rc<S>,
    shard: ShardHandle,
}

impl<S> Ctx<S> {
    pub(crate) fn new(params: PathParams, state: Rc<S>, shard: ShardHandle) -> Self {
        Ctx {
            params,
            query: None,
            state,
            shard,
        }
    }

    pub(crate) fn with_query(mut self, query: Option<ByteString>) -> Self {
        self.query = query;
        self
    }

    /// The raw query string (after `?`, still percent-encoded), if any.
    pub fn query_str(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The query string deserialised into `T` (400 if it does not fit; a missing query reads as
    /// empty, so optional fields work). The same as [`crate::Request::query`].
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::error::Error> {
        crate::extract::query(self.query_str().unwrap_or(""))
    }

    /// The decoded value of path parameter `name`, if the route has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// All path parameters.
    pub fn params(&self) -> &PathParams {
        &self.params
    }

    /// This shard's copy of the application state (built once per shard; not shared).
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The state as an `Rc`, to keep beyond the handler (in a spawned task, say).
    pub fn state_rc(&self) -> Rc<S> {
        self.state.clone()
    }

    /// The shard serving this request (its id, its locals, the mesh to the others).
    pub fn shard(&self) -> &ShardHandle {
        &self.shard
    }

    /// This shard's index.
    pub fn shard_id(&self) -> usize {
        self.shard.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Rc<[Box<str>]> {
        list.iter().map(|n| Box::<str>::from(*n)).collect()
    }

    #[test]
    fn params_decode_the_reserved_escapes_once_and_keep_the_raw_form() {
        let p = PathParams::new(&names(&["a", "b"]), ["x%2Fy%25z%41", "plain"].into_iter());
        assert_eq!(p.get("a"), Some("x/y%z%41"));
        assert_eq!(p.raw("a"), Some("x%2Fy%25z%41"));
        assert_eq!(p.get("b"), Some("plain"));
        assert_eq!(p.get("c"), None);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [("a", "x/y%z%41"), ("b", "plain")]
        );
    }

    #[test]
    fn the_query_deserialises_from_the_context() {
        #[derive(serde::Deserialize)]
        struct Page {
            n: u32,
        }
        let cx = Ctx::new(
            PathParams::default(),
            Rc::new(()),
            ShardHandle::standalone(),
        )
        .with_query(Some(ByteString::from_static("n=4&x=y")));
        assert_eq!(cx.query::<Page>().unwrap().n, 4);
        assert_eq!(cx.query_str(), Some("n=4&x=y"));
        let none = Ctx::new(
            PathParams::default(),
            Rc::new(()),
            ShardHandle::standalone(),
        );
        assert!(none.query::<Page>().is_err(), "n is required");
    }

    #[test]
    fn unicode_params_pass_through() {
        let p = PathParams::new(&names(&["nom"]), ["日本%2f"].into_iter());
        assert_eq!(p.get("nom"), Some("日本/"));
    }

    #[test]
    fn a_trailing_percent_is_literal() {
        let mut out = String::new();
        decode_reserved("a%", &mut out);
        assert_eq!(out, "a%");
        out.clear();
        decode_reserved("%2", &mut out);
        assert_eq!(out, "%2");
    }
}
