//! A driver for counting the parser's instructions with callgrind: parses one of the three
//! request shapes of `benches/parse.rs` N times, with percore's `HeadParser` (as the benchmark
//! does: head, body cut off the buffer, field storage recycled) or with httparse alone.
//!
//! ```text
//! cargo build --release --example parse_count
//! for n in 1000 3000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n target/release/examples/parse_count browser percore $n
//! done
//! # instructions per request = (total at 3000 - total at 1000) / 2000
//! ```

use std::hint::black_box;

use bytes::BytesMut;
use percore::http1::{BodyDecoder, BodyEvent, HeadParser, Headers, Limits, Status};

#[path = "../benches/shapes/mod.rs"]
mod shapes;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: parse_count minimal|browser|post percore|httparse N";
    let request = match args.get(1).map(String::as_str) {
        Some("minimal") => shapes::MINIMAL_GET,
        Some("browser") => shapes::BROWSER_GET,
        Some("post") => shapes::POST_JSON,
        _ => panic!("{usage}"),
    };
    let n: usize = args.get(3).and_then(|n| n.parse().ok()).expect(usage);
    match args.get(2).map(String::as_str) {
        Some("percore") => {
            let mut parser = HeadParser::new(Limits::default());
            let mut buf = BytesMut::with_capacity(4096);
            let mut spare = Headers::default();
            for _ in 0..n {
                buf.reserve(request.len());
                buf.extend_from_slice(black_box(request));
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
        Some("httparse") => {
            for _ in 0..n {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                let status = req.parse(black_box(request)).expect("request parses");
                black_box((&req, status));
            }
        }
        _ => panic!("{usage}"),
    }
}
