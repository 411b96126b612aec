//! The application boundary: what a connection hands to the app and what it gets back.
//!
//! A [`Service`] runs on one shard and never leaves it, so it need not be `Send`; its futures are
//! not boxed (`async fn` in a trait, monomorphised into the connection loop).

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;

use crate::http1::{DefaultFields, Headers, RequestHead, Target, Version};

/// A request as the application sees it: the parsed head, the whole body, and where it came from.
///
/// The parts live in one heap allocation, reached through `Deref` (`req.body`, `req.peer`, ...):
/// a request is moved through every middleware layer and into the handler's future, and moving
/// a pointer instead of 350 bytes measured 600 fewer instructions per request (callgrind, /plaintext).
#[derive(Debug)]
pub struct Request {
    parts: Box<RequestParts>,
}

/// What a [`Request`] holds.
#[derive(Debug)]
pub struct RequestParts {
    pub head: RequestHead,
    /// The request body, fully read (bounded by the body-size limit).
    pub body: Bytes,
    pub peer: SocketAddr,
    /// The shard (core) serving this request.
    pub shard: usize,
    /// Whether the request came over TLS (for `Strict-Transport-Security` and redirects).
    pub tls: bool,
    /// Set by the request-id layer ([`crate::middleware::RequestIds`]).
    pub request_id: Option<crate::middleware::RequestId>,
    /// Values middleware attach for later layers and the handler (the request id, the client
    /// address behind a trusted proxy, ...). Allocates only when something is inserted.
    pub extensions: http::Extensions,
}

impl std::ops::Deref for Request {
    type Target = RequestParts;
    fn deref(&self) -> &RequestParts {
        &self.parts
    }
}

impl std::ops::DerefMut for Request {
    fn deref_mut(&mut self) -> &mut RequestParts {
        &mut self.parts
    }
}

impl Request {
    pub fn new(parts: RequestParts) -> Request {
        Request {
            parts: Box::new(parts),
        }
    }

    pub fn method(&self) -> &Method {
        &self.head.method
    }
    pub fn target(&self) -> &Target {
        &self.head.target
    }
    /// The percent-decoded path (see [`Target::path`] for what stays encoded).
    pub fn path(&self) -> &str {
        self.head.target.path()
    }
    /// The request's header fields, read in place (see [`Headers`]; `to_header_map` gives an
    /// `http::HeaderMap`).
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }
    pub fn version(&self) -> Version {
        self.head.version
    }
    /// The request id, when the request-id layer runs.
    pub fn request_id(&self) -> Option<&crate::middleware::RequestId> {
        self.request_id.as_ref()
    }
    /// The raw query string (after `?`, still percent-encoded), if any.
    pub fn query_str(&self) -> Option<&str> {
        self.head.target.query()
    }
    /// The query string deserialised into `T` (`application/x-www-form-urlencoded` rules); a
    /// missing query deserialises from the empty string, so optional fields work.
    pub fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::error::Error> {
        crate::extract::query(self.query_str().unwrap_or(""))
    }
    /// The body as JSON of type `T`, with the rejections of [`crate::extract::json`].
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::error::Error> {
        crate::extract::json(self.headers().get("content-type"), &self.body)
    }
    /// As [`Request::json`], then the value's [`crate::extract::Validate`] check (422 on failure).
    pub fn json_validated<T>(&self) -> Result<T, crate::error::Error>
    where
        T: serde::de::DeserializeOwned + crate::extract::Validate,
    {
        crate::extract::json_validated(self.headers().get("content-type"), &self.body)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        crate::header_pool::give_request_headers(std::mem::take(&mut self.head.headers));
    }
}

/// A response body. Framing (Content-Length or chunked) is decided by the connection.
#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    /// A body whose bytes are all known; `Bytes::from_static` costs nothing.
    Full(Bytes),
    /// Pieces sent in order: bytes in memory and ranges of open files, which the connection
    /// sends from the page cache without holding them in memory (a file body, or the parts of a
    /// `multipart/byteranges` answer).
    Chunks(Vec<Chunk>),
}

/// One piece of a [`Body::Chunks`].
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`. The file must still hold them when they are sent;
    /// if it shrank meanwhile, the connection is closed (the length was already promised).
    File {
        file: std::rc::Rc<std::fs::File>,
        offset: u64,
        len: u64,
    },
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Body {
    pub fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::Full(b) => b.len(),
            Body::Chunks(chunks) => {
                let total: u64 = chunks.iter().map(Chunk::len).sum();
                usize::try_from(total).unwrap_or(usize::MAX)
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::Full(Bytes::from_static(s.as_bytes()))
    }
}
impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Body::Full(Bytes::from_static(s))
    }
}
impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::Full(Bytes::from(s))
    }
}
impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Full(Bytes::from(v))
    }
}
impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Full(b)
    }
}

pub type Response = http::Response<Body>;

/// A `200 OK` response with `body`, whose header map comes from the shard's pool (the connection
/// gives it back after encoding): building responses this way allocates nothing for headers.
pub fn response(body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    *res.headers_mut() = crate::header_pool::take();
    res
}

/// An application: turns a request into a response, on the shard that accepted the connection.
pub trait Service: 'static {
    fn call(&self, req: Request) -> impl Future<Output = Response>;

    /// Fields the connection adds to each of this service's responses that lacks them, as the
    /// response goes out (`tls`: the connection's). None by default.
    fn default_fields(&self, tls: bool) -> &DefaultFields {
        let _ = tls;
        DefaultFields::none()
    }
}
