//! The `Content-Type` of a static file, from its name's extension (RFC 9110 §8.3), and whether
//! that type is worth compressing.
//!
//! Owns: the extension → media type table (the web's common types here, the long tail from
//! `mime_guess`), the `charset` parameter, and the compressibility rule. Sans-IO: it never reads
//! the file (no sniffing: the server states the type, and the security layer's
//! `X-Content-Type-Options: nosniff` tells browsers to trust it).
//!
//! Cost per call: the common types are `HeaderValue::from_static` constants chosen by a `match`
//! (no allocation, no hashing); a long-tail type without charset borrows `mime_guess`'s static
//! string (no allocation); a long-tail text type is built once per thread and then cloned from a
//! small per-thread map (a reference-count increment).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use http::HeaderValue;

/// For a name with no extension, an extension we do not know, or one that is not UTF-8.
/// RFC 9110 §8.3: a sender that does not know the type may send `application/octet-stream`;
/// guessing `text/plain` instead could render an executable or an archive as text.
pub const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Longest extension the common table holds is 11 bytes (`webmanifest`); longer ones go
/// straight to `mime_guess`, which compares case-insensitively by itself.
const MAX_COMMON_EXT: usize = 16;

/// The `Content-Type` for a file named `path` (only its extension is read).
///
/// Text types get `; charset=utf-8`: `text/*` (RFC 6838 §4.2.1: a text type without charset
/// defaults to US-ASCII, which mangles UTF-8 files), JavaScript (RFC 9239 §4.2: UTF-8 is the
/// only charset that should be used, but browsers fall back to the page's), JSON, XML, SVG and
/// the web app manifest (RFC 8259 §8.1 and RFC 7303 §3.2 make UTF-8 the default; saying it
/// explicitly costs nothing and overrides any guess). Files not in UTF-8 would need a
/// per-directory override, which we do not have.
///
/// JavaScript is `text/javascript` for `.js`, `.mjs` and `.cjs` (RFC 9239 §6, replacing
/// `application/javascript`); XML is `application/xml` (RFC 7303 §4.1 prefers it to `text/xml`).
pub fn content_type(path: &Path) -> HeaderValue {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return OCTET_STREAM;
    };
    let mut lower = [0u8; MAX_COMMON_EXT];
    if let Some(buf) = lower.get_mut(..ext.len()) {
        buf.copy_from_slice(ext.as_bytes());
        buf.make_ascii_lowercase();
        if let Some(value) = common_type(buf) {
            return value;
        }
    }
    match mime_guess::from_ext(ext).first_raw() {
        Some(mime) => long_tail_type(mime),
        None => OCTET_STREAM,
    }
}

/// The types a web site serves most, with the values we want for them (several differ from
/// `mime_guess`: `mjs`, `xml`, `ico`, `cjs`, `map`). `ext` is lowercase.
fn common_type(ext: &[u8]) -> Option<HeaderValue> {
    let value = match ext {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" | b"cjs" => "text/javascript; charset=utf-8",
        // Source maps are JSON (ECMA-426 §3).
        b"json" | b"map" => "application/json; charset=utf-8",
        // W3C Web App Manifest §1.1: `application/manifest+json`.
        b"webmanifest" => "application/manifest+json; charset=utf-8",
        b"xml" => "application/xml; charset=utf-8",
        b"xhtml" => "application/xhtml+xml; charset=utf-8",
        b"rss" => "application/rss+xml; charset=utf-8",
        b"atom" => "application/atom+xml; charset=utf-8",
        b"svg" => "image/svg+xml; charset=utf-8",
        b"txt" => "text/plain; charset=utf-8",
        b"md" => "text/markdown; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"ics" => "text/calendar; charset=utf-8",
        b"wasm" => "application/wasm",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"jxl" => "image/jxl",
        b"bmp" => "image/bmp",
        b"tif" | b"tiff" => "image/tiff",
        // IANA registers image/vnd.microsoft.icon, but image/x-icon is what nginx, Apache and
        // every browser use.
        b"ico" => "image/x-icon",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"eot" => "application/vnd.ms-fontobject",
        b"mp4" | b"m4v" => "video/mp4",
        b"webm" => "video/webm",
        b"mp3" => "audio/mpeg",
        b"m4a" => "audio/mp4",
        b"ogg" | b"oga" | b"opus" => "audio/ogg",
        b"wav" => "audio/wav",
        b"flac" => "audio/flac",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"tar" => "application/x-tar",
        _ => return None,
    };
    Some(HeaderValue::from_static(value))
}

thread_local! {
    /// Long-tail text types with their charset appended, keyed by `mime_guess`'s static string.
    /// Bounded by the size of `mime_guess`'s table (a few hundred text-like types at most).
    static WITH_CHARSET: RefCell<HashMap<&'static str, HeaderValue>> =
        RefCell::new(HashMap::new());
}

fn long_tail_type(mime: &'static str) -> HeaderValue {
    if !needs_charset(mime.as_bytes()) {
        // Zero-copy: `from_maybe_shared` keeps the static `Bytes`. It validates instead of
        // panicking, in case the table ever holds a byte a field value cannot.
        return HeaderValue::from_maybe_shared(Bytes::from_static(mime.as_bytes()))
            .unwrap_or(OCTET_STREAM);
    }
    WITH_CHARSET.with(|cache| {
        if let Some(value) = cache.borrow().get(mime) {
            return value.clone();
        }
        let value =
            HeaderValue::from_str(&format!("{mime}; charset=utf-8")).unwrap_or(OCTET_STREAM);
        cache.borrow_mut().insert(mime, value.clone());
        value
    })
}

/// Whether a media type (no parameters) is text that should carry `charset=utf-8`.
fn needs_charset(essence: &[u8]) -> bool {
    starts_with_ignore_case(essence, b"text/")
        || ends_with_ignore_case(essence, b"+json")
        || ends_with_ignore_case(essence, b"+xml")
        || [
            &b"application/javascript"[..],
            b"application/x-javascript",
            b"application/ecmascript",
            b"application/json",
            b"application/xml",
        ]
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
}

/// Whether a response of this `Content-Type` is worth compressing: text and other formats that
/// are not compressed already. Images (except BMP and icons), audio, video, archives and WOFF
/// fonts are compressed inside; coding them again costs CPU and saves nothing. Uncompressed
/// fonts (TTF, OTF, EOT), BMP and ICO shrink well (the h5bp nginx config compresses them too).
///
/// `content_type` is a full field value; parameters are ignored and type names compared
/// case-insensitively (RFC 9110 §8.3.1).
pub fn is_compressible(content_type: &[u8]) -> bool {
    let essence = match content_type.iter().position(|&b| b == b';') {
        Some(i) => &content_type[..i],
        None => content_type,
    };
    let essence = essence.trim_ascii();
    if starts_with_ignore_case(essence, b"text/")
        || ends_with_ignore_case(essence, b"+json")
        || ends_with_ignore_case(essence, b"+xml")
    {
        return true;
    }
    [
        &b"application/javascript"[..],
        b"application/x-javascript",
        b"application/ecmascript",
        b"application/json",
        b"application/xml",
        b"application/wasm",
        b"application/vnd.ms-fontobject",
        b"application/x-font-ttf",
        b"font/ttf",
        b"font/otf",
        b"font/collection",
        b"image/bmp",
        b"image/x-icon",
        b"image/vnd.microsoft.icon",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn ends_with_ignore_case(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(name: &str) -> String {
        content_type(Path::new(name))
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    #[test]
    fn html_css_js_have_utf8_charset() {
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a/b.htm"), "text/html; charset=utf-8");
        assert_eq!(ct("site.css"), "text/css; charset=utf-8");
        assert_eq!(ct("app.js"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn javascript_modules_are_text_javascript() {
        assert_eq!(ct("m.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(ct("m.cjs"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn json_xml_svg_manifest_have_utf8_charset() {
        assert_eq!(ct("d.json"), "application/json; charset=utf-8");
        assert_eq!(ct("app.js.map"), "application/json; charset=utf-8");
        assert_eq!(ct("f.xml"), "application/xml; charset=utf-8");
        assert_eq!(ct("i.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(
            ct("site.webmanifest"),
            "application/manifest+json; charset=utf-8"
        );
    }

    #[test]
    fn binary_types_have_no_charset() {
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.JPG"), "image/jpeg");
        assert_eq!(ct("f.woff2"), "font/woff2");
        assert_eq!(ct("m.wasm"), "application/wasm");
        assert_eq!(ct("v.mp4"), "video/mp4");
    }

    #[test]
    fn extension_is_case_insensitive() {
        assert_eq!(ct("INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(ct("x.Css"), "text/css; charset=utf-8");
        assert_eq!(ct("x.DOCX"), ct("x.docx"));
    }

    #[test]
    fn unknown_or_missing_extension_is_octet_stream() {
        for name in [
            "README",
            "x.unknownext",
            "x.",
            ".htaccess",
            "dir/",
            "x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(ct(name), "application/octet-stream", "{name}");
        }
    }

    #[test]
    fn non_utf8_name_is_octet_stream() {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"x.\xff\xfe");
        assert_eq!(content_type(Path::new(name)), OCTET_STREAM);
    }

    #[test]
    fn long_tail_comes_from_mime_guess() {
        assert_eq!(
            ct("doc.docx"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        );
        assert_eq!(ct("book.epub"), "application/epub+zip");
        // Structured-syntax suffixes (RFC 6839) get the charset too.
        assert_eq!(ct("map.geojson"), "application/geo+json; charset=utf-8");
    }

    #[test]
    fn long_tail_text_types_get_charset_and_are_cached() {
        let first = content_type(Path::new("main.rs"));
        assert_eq!(first.to_str().expect("ASCII"), "text/x-rust; charset=utf-8");
        let second = content_type(Path::new("other.RS"));
        // The same cached value: its bytes are shared, not rebuilt.
        assert_eq!(first.as_bytes().as_ptr(), second.as_bytes().as_ptr());
    }

    #[test]
    fn common_types_do_not_allocate() {
        // `from_static` values point into the binary's read-only data: compare with the literal.
        let a = content_type(Path::new("a.html"));
        let b = content_type(Path::new("b.html"));
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
    }

    #[test]
    fn text_and_structured_text_are_compressible() {
        for t in [
            "text/html; charset=utf-8",
            "TEXT/CSS",
            "text/javascript; charset=utf-8",
            "application/javascript",
            "application/json",
            "application/manifest+json; charset=utf-8",
            "application/xml",
            "image/svg+xml; charset=utf-8",
            "application/rss+xml",
            "application/wasm",
            "font/ttf",
            "image/x-icon",
            " text/plain ; charset=utf-8",
        ] {
            assert!(is_compressible(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn already_compressed_types_are_not_compressible() {
        for t in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "image/avif",
            "video/mp4",
            "audio/mpeg",
            "font/woff2",
            "font/woff",
            "application/zip",
            "application/gzip",
            "application/pdf",
            "application/octet-stream",
            "application/epub+zip",
            "",
            "text",
        ] {
            assert!(!is_compressible(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn every_content_type_we_produce_parses_for_compressibility() {
        // Agreement between the two functions for the common table.
        for (name, compressible) in [
            ("a.html", true),
            ("a.js", true),
            ("a.svg", true),
            ("a.wasm", true),
            ("a.png", false),
            ("a.woff2", false),
            ("a.gz", false),
            ("x", false),
        ] {
            assert_eq!(is_compressible(ct(name).as_bytes()), compressible, "{name}");
        }
    }
}
