//! Helpers for unit tests of handlers and middleware: a request from raw HTTP/1.1 text, and a
//! way to run a future that never waits for I/O.

use std::future::Future;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use crate::http1::{HeadParser, Headers, Limits, Status};
use crate::service::{Request, RequestParts};

/// A request parsed from `raw` (head only; see [`request_with_body`]), from 127.0.0.1:40000 on
/// shard 0. `Host: test` is added after the request line when `raw` has no Host field. Panics on
/// malformed input: it is for tests.
pub fn request(raw: &str) -> Request {
    request_with_body(raw, Bytes::new())
}

/// As [`request`], with a body.
pub fn request_with_body(raw: &str, body: Bytes) -> Request {
    let mut buf = BytesMut::from(raw.as_bytes());
    if !raw.to_ascii_lowercase().contains("\nhost:") {
        if let Some(eol) = raw.find("\r\n") {
            buf =
                BytesMut::from(format!("{}\r\nHost: test{}", &raw[..eol], &raw[eol..]).as_bytes());
        }
    }
    let mut parser = HeadParser::new(Limits::default());
    let mut spare = Headers::default();
    let head = match parser.parse(&mut buf, &mut spare) {
        Ok(Status::Complete(head)) => head,
        other => panic!("test request did not parse: {other:?}"),
    };
    Request::new(RequestParts {
        head,
        body,
        peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        shard: 0,
        tls: false,
        request_id: None,
        extensions: http::Extensions::new(),
    })
}

/// Polls `fut` to completion, for futures that finish without waiting on I/O or timers (it
/// busy-polls with a no-op waker).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete without I/O")
}
