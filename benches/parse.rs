//! Request-head parsing: percore's `HeadParser` against httparse, on three request shapes.
//!
//! Per shape, three functions over the same bytes:
//! - `percore`: `HeadParser::parse` (request line, target decoding, field lines validated into
//!   `Headers`, zero-copy offsets into the head, framing) plus taking the body off the buffer with
//!   `BodyDecoder`, as the connection loop does; the field storage is recycled as in the
//!   connection loop.
//! - `httparse`: the same copy into a reused read buffer, then
//!   `httparse::Request::parse_with_uninit_headers` into 64 uninitialised header slots (as hyper
//!   calls it), then the buffer emptied: the same starting state as `percore`'s, and nothing
//!   more (see `examples/parse_count.rs`).
//! - `httparse+map`: httparse, then the same `HeaderMap` built from it with zero-copy values
//!   (hyper's two-phase approach), for a like-for-like comparison.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue};
use percore::http1::{BodyDecoder, BodyEvent, HeadParser, Headers, Limits, Status};

#[path = "shapes/mod.rs"]
mod shapes;
use shapes::{BROWSER_GET, MINIMAL_GET, POST_JSON};

fn bench_shape(c: &mut Criterion, name: &str, request: &'static [u8]) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(request.len() as u64));

    group.bench_function("percore", |b| {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::with_capacity(4096);
        let mut spare = Headers::default();
        b.iter(|| {
            // The read buffer is reused across requests, as in the connection loop.
            buf.reserve(request.len());
            buf.extend_from_slice(black_box(request));
            let Ok(Status::Complete(head)) = parser.parse(&mut buf, &mut spare) else {
                panic!("benchmark request did not parse");
            };
            let mut body = BodyDecoder::new(head.framing, u64::MAX);
            while let Ok(Status::Complete(BodyEvent::Data(d))) = body.decode(&mut buf) {
                black_box(d);
            }
            black_box(&head.target);
            spare = head.headers.recycle();
        })
    });

    group.bench_function("httparse", |b| {
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.reserve(request.len());
            buf.extend_from_slice(black_box(request));
            let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
            let mut req = httparse::Request::new(&mut []);
            let status = req
                .parse_with_uninit_headers(&buf, &mut headers)
                .expect("benchmark request parses");
            black_box((&req, status));
            buf.clear();
        })
    });

    group.bench_function("httparse+map", |b| {
        let mut buf = BytesMut::with_capacity(4096);
        let mut map = HeaderMap::new();
        b.iter(|| {
            buf.reserve(request.len());
            buf.extend_from_slice(black_box(request));
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(len)) = req.parse(&buf) else {
                panic!("benchmark request did not parse");
            };
            // Record value ranges, then freeze once and slice (hyper role.rs HeaderIndices).
            let base = buf.as_ptr() as usize;
            let mut indices = [(0usize, 0usize); 64];
            let n = req.headers.len();
            for (h, idx) in req.headers.iter().zip(indices.iter_mut()) {
                let start = h.value.as_ptr() as usize - base;
                *idx = (start, start + h.value.len());
            }
            let names: [Option<HeaderName>; 64] = std::array::from_fn(|i| {
                req.headers
                    .get(i)
                    .map(|h| HeaderName::from_bytes(h.name.as_bytes()).expect("valid name"))
            });
            let path_len = req.path.map_or(0, str::len);
            let head: Bytes = buf.split_to(len).freeze();
            for (name, &(s, e)) in names.into_iter().flatten().zip(&indices[..n]) {
                let value = HeaderValue::from_maybe_shared(head.slice(s..e)).expect("valid value");
                map.append(name, value);
            }
            black_box((&map, path_len));
            map.clear();
            buf.clear();
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    bench_shape(c, "minimal_get", MINIMAL_GET);
    bench_shape(c, "browser_get", BROWSER_GET);
    bench_shape(c, "post_json", POST_JSON);
}

criterion_group!(benches, parse);
criterion_main!(benches);
