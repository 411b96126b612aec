//! Request-head parsing: percore's `HeadParser` against httparse, on three request shapes.
//!
//! Per shape, three functions over the same bytes:
//! - `percore`: `HeadParser::parse` (request line, target decoding, field lines validated into
//!   `Headers`, zero-copy offsets into the head, framing) plus taking the body off the buffer with
//!   `BodyDecoder`, as the connection loop does; the field storage is recycled as in the
//!   connection loop.
//! - `httparse`: `httparse::Request::parse` into a 64-header array, nothing more.
//! - `httparse+map`: httparse, then the same `HeaderMap` built from it with zero-copy values
//!   (hyper's two-phase approach), for a like-for-like comparison.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue};
use percore::http1::{BodyDecoder, BodyEvent, HeadParser, Headers, Limits, Status};

const MINIMAL_GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";

const BROWSER_GET: &[u8] = b"GET /static/app/main.js?v=20240101 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Accept: */*\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Dest: script\r\n\
Referer: https://www.example.com/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; _ga=GA1.2.123456789.1700000000\r\n\
If-None-Match: \"5f3c-617b2a8e\"\r\n\r\n";

const POST_JSON: &[u8] = b"POST /api/v1/orders HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: application/json\r\n\
Content-Type: application/json\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n\
Content-Length: 91\r\n\r\n\
{\"customer\":\"c-1042\",\"items\":[{\"sku\":\"A-17\",\"qty\":2},{\"sku\":\"B-3\",\"qty\":1}],\"express\":true}";

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
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            let status = req
                .parse(black_box(request))
                .expect("benchmark request parses");
            black_box((&req, status));
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
