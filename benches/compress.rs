//! On-the-fly compression at `Level::DEFAULT` (and `Level::FASTEST`) on 64 KiB of generated
//! HTML/JS-like text: the cost a shard pays once per file version and coding before
//! `CompressedCache` answers. Throughput is MB/s of input; each coding's ratio is printed first.
//!
//! Run: `cargo bench --bench compress -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use percore::static_files::compress::{compress, Level};
use percore::static_files::negotiate::Encoding;

/// Markup and script with the repetition of real pages: shared tags and keywords, varying
/// identifiers, attributes and numbers.
fn html_js(len: usize) -> Vec<u8> {
    let words = [
        "static", "server", "request", "header", "shard", "cache", "response", "encoding",
        "document", "window", "element", "listener", "config", "version", "content", "length",
    ];
    let mut out = Vec::with_capacity(len + 256);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0usize;
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let w = |shift: u32| words[((state >> shift) % words.len() as u64) as usize];
        let line = match i % 5 {
            0 => format!(
                "<div class=\"{}-{} col-{}\"><a href=\"/{}/{}.html\" title=\"{} {}\">{}</a></div>\n",
                w(0), w(4), state % 12, w(8), state % 997, w(12), w(16), w(20)
            ),
            1 => format!(
                "function {}{}({}, {}) {{ if (!{}) return null; return {}.{}({}) + {}; }}\n",
                w(0), i, w(4), w(8), w(4), w(8), w(12), w(16), state % 4096
            ),
            2 => format!(
                "  <p>The {} {} of the {} is {} when the {} has {} {}.</p>\n",
                w(0), w(4), w(8), state % 100, w(12), state % 7, w(16)
            ),
            3 => format!(
                "var {}_{} = {{ \"{}\": {}, \"{}\": \"{}-{}\", \"retries\": {} }};\n",
                w(0), i, w(4), state.is_multiple_of(2), w(8), w(12), state % 65536, state % 9
            ),
            _ => format!(
                "document.querySelector('#{}-{}').addEventListener('{}', (e) => {}(e, {}));\n",
                w(0), state % 50, w(4), w(8), state % 1000
            ),
        };
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn bench_compress(c: &mut Criterion) {
    let input = html_js(64 * 1024);
    let mut group = c.benchmark_group("compress-64KiB");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for (level_name, level) in [("default", Level::DEFAULT), ("fastest", Level::FASTEST)] {
        for (name, encoding) in [
            ("gzip", Encoding::Gzip),
            ("br", Encoding::Brotli),
            ("zstd", Encoding::Zstd),
        ] {
            let coded = compress(&input, encoding, level).expect("compresses");
            println!(
                "{name}-{level_name} ({level:?}): {} -> {} bytes, ratio {:.3}",
                input.len(),
                coded.len(),
                coded.len() as f64 / input.len() as f64
            );
            group.bench_function(format!("{name}-{level_name}"), |b| {
                b.iter(|| compress(black_box(&input), encoding, level).expect("compresses"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_compress);
criterion_main!(benches);
