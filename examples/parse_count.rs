//! A driver for counting the parser's instructions with callgrind: handles one of the three
//! request shapes of `benches/parse.rs` N times, in one of four loops.
//!
//! Every loop starts a request from the same state: the request's bytes are copied into a read
//! buffer reused across requests (`BytesMut::reserve` + `extend_from_slice`, as a connection's
//! read would leave them), and whatever storage the parser needs for field lines is already
//! there (nothing is initialised per request). Then:
//!
//! - `percore`: `HeadParser::parse` (request line, the path percent-decoded if it holds a `%`,
//!   Host checked, field lines validated into the recycled `Headers` as zero-copy offsets,
//!   Content-Length / Transfer-Encoding framing), the head split off the buffer, the body taken
//!   off it with `BodyDecoder` (zero-copy `Bytes`), the field storage recycled: what the
//!   connection loop does with a request.
//! - `httparse`: `httparse::Request::parse_with_uninit_headers` over the buffer into an array of
//!   64 uninitialised header slots (hyper's way of calling it: no slot is written before the parse
//!   fills it), then the buffer emptied (`clear`: the head and body consumed, nothing kept).
//! - `refill`: the copy into the buffer and `clear` alone, the part both loops above share.
//!   A parser's own instructions are its loop's less these.
//! - `httparse-slice`: the loop the figures before session 7 used: httparse over the request as
//!   a static slice (no copy into a buffer), into a fresh array of 64 `EMPTY_HEADER`s, zeroed
//!   every request (~130 instructions of the minimal GET's). Kept to compare with those figures.
//!
//! ```text
//! cargo build --release --example parse_count
//! for n in 1000 3000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n target/release/examples/parse_count browser percore $n
//! done
//! # instructions per request = (total at 3000 - total at 1000) / 2000
//! ```

use std::hint::black_box;
use std::mem::MaybeUninit;

use bytes::BytesMut;
use percore::http1::{BodyDecoder, BodyEvent, HeadParser, Headers, Limits, Status};

#[path = "../benches/shapes/mod.rs"]
mod shapes;

/// Copy `request` into the reused read buffer, as a connection's read does.
#[inline(always)]
fn refill(buf: &mut BytesMut, request: &[u8]) {
    buf.reserve(request.len());
    buf.extend_from_slice(black_box(request));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: parse_count minimal|browser|post percore|httparse|refill|httparse-slice N";
    let request = match args.get(1).map(String::as_str) {
        Some("minimal") => shapes::MINIMAL_GET,
        Some("browser") => shapes::BROWSER_GET,
        Some("post") => shapes::POST_JSON,
        _ => panic!("{usage}"),
    };
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
    // Each loop is a function of its own, so that the code of one does not change how the
    // compiler lays out another.
    match args.get(2).map(String::as_str) {
        Some("percore") => percore_loop(request, n),
        Some("httparse") => httparse_loop(request, n),
        Some("refill") => refill_loop(request, n),
        Some("httparse-slice") => httparse_slice_loop(request, n),
        _ => panic!("{usage}"),
    }
}

#[inline(never)]
fn percore_loop(request: &[u8], n: usize) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut parser = HeadParser::new(Limits::default());
    let mut spare = Headers::default();
    for _ in 0..n {
        refill(&mut buf, request);
        let Ok(Status::Complete(head)) = parser.parse(&mut buf, &mut spare) else {
            panic!("request did not parse");
        };
        let mut body = BodyDecoder::new(head.framing, u64::MAX);
        while let Ok(Status::Complete(BodyEvent::Data(d))) = body.decode(&mut buf) {
            black_box(d);
        }
        black_box(&head.target);
        spare = head.headers.recycle();
    }
}

#[inline(never)]
fn httparse_loop(request: &[u8], n: usize) {
    let mut buf = BytesMut::with_capacity(4096);
    for _ in 0..n {
        refill(&mut buf, request);
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
        let mut req = httparse::Request::new(&mut []);
        let status = req
            .parse_with_uninit_headers(&buf, &mut headers)
            .expect("request parses");
        black_box((&req, status));
        buf.clear();
    }
}

#[inline(never)]
fn refill_loop(request: &[u8], n: usize) {
    let mut buf = BytesMut::with_capacity(4096);
    for _ in 0..n {
        refill(&mut buf, request);
        black_box(&buf);
        buf.clear();
    }
}

#[inline(never)]
fn httparse_slice_loop(request: &[u8], n: usize) {
    for _ in 0..n {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let status = req.parse(black_box(request)).expect("request parses");
        black_box((&req, status));
    }
}
