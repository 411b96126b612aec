//! HTTP/1.1 (RFC 9112) protocol core: parsing request heads, framing bodies, encoding responses.
//!
//! This module does no I/O and imports no runtime: every function works on byte slices or
//! `BytesMut` buffers owned by the caller, and time is an argument. The connection loop in
//! `crate::serve::h1` is the only code that reads sockets and drives these types; a second runtime
//! could drive the same code unchanged (CI greps this folder for `monoio`).

mod chunked;
mod date;
mod error;
mod framing;
mod fuzz;
mod headers;
mod parse;
mod scan;
mod target;
mod upgrade;
mod write;

pub use chunked::ChunkedDecoder;
pub use date::DateCache;
pub use error::ParseError;
pub use framing::{BodyDecoder, BodyEvent, Framing};
#[doc(hidden)]
pub use fuzz::fuzz_drive;
pub use headers::{trim_ows, Headers};
pub use parse::{is_token, HeadParser, RequestHead};
pub use target::{Target, TargetForm};
pub use upgrade::wants_h2c;
pub use write::{
    body_allowed, write_chunk, write_last_chunk, write_response_head, BodyKind, DefaultFields,
    ResponseMeta,
};

/// Result of feeding bytes to a parser: `Partial` means "need more bytes" and is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    Partial,
}

/// HTTP version of a request. The HTTP/1.1 parser rejects anything other than 1.0 and 1.1 with
/// 505; `Http2` marks requests that came over HTTP/2 (RFC 9113), which this module never parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    Http2,
}

/// Size limits enforced while parsing. Every limit maps to one status code (see `ParseError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version) in bytes; over it: 414.
    pub max_request_line: usize,
    /// Most bytes of header fields (after the request line); over it: 431.
    pub max_header_bytes: usize,
    /// Most header fields; over it: 431.
    pub max_headers: usize,
    /// Largest request body; over it: 413.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
        }
    }
}
