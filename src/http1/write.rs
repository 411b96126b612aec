//! Response encoding: the status line and header section of a response (RFC 9112 §4, §6) and the
//! chunked framing of its body (RFC 9112 §7.1), appended to the connection's output `Vec<u8>`.
//!
//! Framing is decided here and only here: the caller's `Content-Length`, `Transfer-Encoding`,
//! `Connection`, `Date` and `Server` are dropped and ours are written from `ResponseMeta`. This
//! module never writes a body and never allocates beyond growing `out` (no `format!`).

use http::header::{HeaderName, HeaderValue};
use http::{header, HeaderMap, StatusCode};

use super::{DateCache, Version};

/// Fields every response gets unless it carries a field of the same name (app-wide security
/// headers, say), encoded once. Written by [`write_response_head`] as the head goes out, they cost
/// a few name comparisons and one copy per response, where inserting them into each response's
/// `HeaderMap` cost ~250 instructions a field (callgrind).
#[derive(Debug, Clone, Default)]
pub struct DefaultFields {
    fields: Vec<(HeaderName, HeaderValue)>,
    /// `name: value\r\n` for each field, in order.
    encoded: Vec<u8>,
}

impl DefaultFields {
    /// No fields.
    pub const EMPTY: DefaultFields = DefaultFields {
        fields: Vec::new(),
        encoded: Vec::new(),
    };

    /// No fields, for a caller that needs a reference.
    pub fn none() -> &'static DefaultFields {
        static NONE: DefaultFields = DefaultFields::EMPTY;
        &NONE
    }

    /// `fields`, in order; a name given twice keeps its first value.
    pub fn new(fields: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Self {
        let mut kept: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in fields {
            if !kept.iter().any(|(n, _)| *n == name) {
                kept.push((name, value));
            }
        }
        let mut encoded = Vec::new();
        for (name, value) in &kept {
            encode_field(&mut encoded, name.as_str().as_bytes(), value.as_bytes());
        }
        DefaultFields {
            fields: kept,
            encoded,
        }
    }

    pub fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Inserts into `headers` each field it does not have (for protocols that send a map).
    pub fn fill(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.fields {
            // One hash and probe per field, found or not.
            headers.entry(name).or_insert_with(|| value.clone());
        }
    }

    /// Bit `i` set when the response's fields include the `i`th default (for the first 64).
    fn mark(&self, present: &mut u64, name: &HeaderName) {
        if let Some(i) = self.fields.iter().take(64).position(|(n, _)| n == name) {
            *present |= 1 << i;
        }
    }

    /// Appends the defaults not marked in `present`.
    fn write_missing(&self, out: &mut Vec<u8>, present: u64, headers: &HeaderMap) {
        if present == 0 && self.fields.len() <= 64 {
            out.extend_from_slice(&self.encoded);
            return;
        }
        for (i, (name, value)) in self.fields.iter().enumerate() {
            let has = if i < 64 {
                present & (1 << i) != 0
            } else {
                headers.contains_key(name)
            };
            if !has {
                encode_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    }
}

/// `name: value\r\n`, with one capacity check for the line instead of one per piece.
fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the response body will be delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: `Content-Length: 0` where a length is allowed.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunks written with `write_chunk`, ended by `write_last_chunk`. An HTTP/1.0 client cannot
    /// read chunked (RFC 9112 §6.1): for it `write_response_head` writes no `Transfer-Encoding`
    /// and forces `Connection: close`, and the caller MUST then write the body raw (without
    /// `write_chunk`) and close the connection to end it (close-delimited, RFC 9112 §6.3 rule 8).
    Chunked,
}

/// What the connection loop knows about a response beyond its header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    pub status: StatusCode,
    pub body: BodyKind,
    pub keep_alive: bool,
    /// The request was HEAD: framing headers are written as for GET, but no body follows.
    pub head_request: bool,
    /// The request's version (the status line always says HTTP/1.1, RFC 9110 §2.5).
    pub version: Version,
}

/// RFC 9110 §6.4.1 / RFC 9112 §6.3 rule 1: 1xx, 204 and 304 responses have no content.
fn status_has_content(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Whether a body may follow this response head: not for HEAD (RFC 9110 §9.3.2), 1xx, 204 or 304.
pub fn body_allowed(status: StatusCode, head_request: bool) -> bool {
    !head_request && status_has_content(status)
}

/// Precomputed status lines for the codes a server sends most.
fn common_status_line(status: StatusCode) -> Option<&'static [u8]> {
    Some(match status.as_u16() {
        100 => b"HTTP/1.1 100 Continue\r\n",
        101 => b"HTTP/1.1 101 Switching Protocols\r\n",
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        202 => b"HTTP/1.1 202 Accepted\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        303 => b"HTTP/1.1 303 See Other\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        307 => b"HTTP/1.1 307 Temporary Redirect\r\n",
        308 => b"HTTP/1.1 308 Permanent Redirect\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        401 => b"HTTP/1.1 401 Unauthorized\r\n",
        403 => b"HTTP/1.1 403 Forbidden\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        405 => b"HTTP/1.1 405 Method Not Allowed\r\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\n",
        413 => b"HTTP/1.1 413 Payload Too Large\r\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\n",
        417 => b"HTTP/1.1 417 Expectation Failed\r\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\n",
        502 => b"HTTP/1.1 502 Bad Gateway\r\n",
        503 => b"HTTP/1.1 503 Service Unavailable\r\n",
        505 => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        _ => return None,
    })
}

/// RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF.
fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    match common_status_line(status) {
        Some(line) => out.extend_from_slice(line),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(status.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Append the response head: status line, `Server`, `Date`, the caller's fields (minus the ones
/// we own), the `defaults` the caller's fields lack, the framing fields, `Connection` when
/// needed, and the empty line.
///
/// Returns whether the connection stays open after this response: not when `meta` says so, when
/// the caller's fields hold `Connection: close` (RFC 9112 §9.6: the server closes after a
/// response that says so; found in the pass that writes the fields, so no second lookup), or
/// when the body can only be delimited by closing.
#[must_use = "the connection must close when this returns false"]
pub fn write_response_head(
    out: &mut Vec<u8>,
    meta: &ResponseMeta,
    headers: &HeaderMap,
    defaults: &DefaultFields,
    date: &DateCache,
) -> bool {
    let status = meta.status;
    write_status_line(out, status);
    out.extend_from_slice(b"Server: percore\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");

    // A 101 needs the caller's "Connection: upgrade" (RFC 9110 §7.8).
    let keep_caller_connection = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut close = !meta.keep_alive;
    let mut present = 0u64;
    for (name, value) in headers {
        if !defaults.is_empty() {
            defaults.mark(&mut present, name);
        }
        if name == header::CONNECTION {
            close |= lists_close(value.as_bytes());
            if !keep_caller_connection {
                continue;
            }
        }
        let ours = name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::DATE
            || name == header::SERVER;
        if ours {
            continue;
        }
        encode_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !defaults.is_empty() {
        defaults.write_missing(out, present, headers);
    }

    let has_content = status_has_content(status);
    // RFC 9110 §8.6: no Content-Length in 1xx or 204 (nor, here, in 304); RFC 9112 §6.1: no
    // Transfer-Encoding in them either. For HEAD, the fields GET would have (RFC 9110 §9.3.2).
    if has_content {
        match meta.body {
            BodyKind::Empty => out.extend_from_slice(b"Content-Length: 0\r\n"),
            BodyKind::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            // RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client; the body is then
            // delimited by closing the connection (RFC 9112 §6.3 rule 8).
            BodyKind::Chunked if meta.version == Version::Http10 => {
                close |= !meta.head_request;
            }
            BodyKind::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
    }

    // RFC 9112 §9.6: announce the close; §9.3: an HTTP/1.0 client keeps the connection only if
    // told "keep-alive". An interim (1xx) response says nothing about the connection.
    if !status.is_informational() {
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if meta.version == Version::Http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    !close
}

/// Whether a `Connection` value lists the `close` option (RFC 9110 §7.6.1).
fn lists_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// RFC 9112 §7.1: chunk = chunk-size CRLF chunk-data CRLF. Nothing for empty data (a zero size
/// would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // Lowercase hex of the length, formatted on the stack (hyper encode.rs `ChunkSize`).
    let mut hex = [0u8; 16];
    let mut n = data.len();
    let mut i = hex.len();
    while n > 0 && i > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
    }
    out.extend_from_slice(&hex[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// RFC 9112 §7.1: last-chunk with no trailers: `0\r\n\r\n`.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    fn date() -> DateCache {
        DateCache::new(UNIX_EPOCH + Duration::from_secs(784_111_777))
    }

    fn meta(status: u16, body: BodyKind) -> ResponseMeta {
        ResponseMeta {
            status: StatusCode::from_u16(status).unwrap(),
            body,
            keep_alive: true,
            head_request: false,
            version: Version::Http11,
        }
    }

    fn head(meta: ResponseMeta, headers: &HeaderMap) -> String {
        let mut out = Vec::new();
        let _ = write_response_head(&mut out, &meta, headers, DefaultFields::none(), &date());
        String::from_utf8(out).unwrap()
    }

    /// Whether the connection stays open after writing `headers` with `meta`.
    fn keeps_alive(meta: ResponseMeta, headers: &HeaderMap) -> bool {
        write_response_head(
            &mut Vec::new(),
            &meta,
            headers,
            DefaultFields::none(),
            &date(),
        )
    }

    fn defaults() -> DefaultFields {
        DefaultFields::new([
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("1"),
            ),
            // A repeated name keeps its first value.
            (
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("SAMEORIGIN"),
            ),
        ])
    }

    fn head_with_defaults(headers: &HeaderMap) -> String {
        let mut out = Vec::new();
        let _ = write_response_head(
            &mut out,
            &meta(200, BodyKind::Empty),
            headers,
            &defaults(),
            &date(),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn defaults_follow_the_callers_fields_in_order() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            head_with_defaults(&h),
            format!(
                "HTTP/1.1 200 OK\r\n{PREFIX}content-type: text/plain\r\nx-frame-options: DENY\r\n\
                 x-content-type-options: nosniff\r\nx-custom: 1\r\nContent-Length: 0\r\n\r\n"
            )
        );
    }

    #[test]
    fn a_field_the_caller_set_replaces_its_default() {
        let mut h = HeaderMap::new();
        h.insert(header::X_FRAME_OPTIONS, "SAMEORIGIN".parse().unwrap());
        h.insert("x-custom", "2".parse().unwrap());
        let written = head_with_defaults(&h);
        assert_eq!(written.matches("x-frame-options").count(), 1, "{written}");
        assert!(
            written.contains("x-frame-options: SAMEORIGIN\r\n"),
            "{written}"
        );
        assert!(written.contains("x-custom: 2\r\n"), "{written}");
        assert!(!written.contains("x-custom: 1"), "{written}");
        assert!(
            written.contains("x-content-type-options: nosniff\r\n"),
            "{written}"
        );
    }

    #[test]
    fn fill_inserts_only_the_missing_defaults() {
        let mut h = HeaderMap::new();
        h.insert(header::X_FRAME_OPTIONS, "SAMEORIGIN".parse().unwrap());
        defaults().fill(&mut h);
        assert_eq!(h[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h["x-custom"], "1");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn more_than_64_defaults_are_each_checked() {
        let many = DefaultFields::new((0..70).map(|i| {
            (
                HeaderName::from_bytes(format!("x-d{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            )
        }));
        let mut h = HeaderMap::new();
        h.insert("x-d3", "mine".parse().unwrap());
        h.insert("x-d68", "mine".parse().unwrap());
        let mut out = Vec::new();
        let _ = write_response_head(&mut out, &meta(200, BodyKind::Empty), &h, &many, &date());
        let written = String::from_utf8(out).unwrap();
        assert_eq!(written.matches("x-d3: ").count(), 1, "{written}");
        assert_eq!(written.matches("x-d68: ").count(), 1, "{written}");
        assert!(written.contains("x-d69: v\r\n"));
        assert_eq!(written.matches(": v\r\n").count(), 68, "{written}");
    }

    #[test]
    fn a_connection_close_among_the_fields_ends_the_connection() {
        let mut h = HeaderMap::new();
        assert!(keeps_alive(meta(200, BodyKind::Empty), &h));
        h.insert(header::CONNECTION, "keep-alive, Close".parse().unwrap());
        assert!(!keeps_alive(meta(200, BodyKind::Empty), &h));
        let written = head(meta(200, BodyKind::Empty), &h);
        assert_eq!(written.matches("Connection").count(), 1, "{written}");
        assert!(written.contains("Connection: close\r\n"), "{written}");
        h.insert(header::CONNECTION, "keep-alive, closed".parse().unwrap());
        assert!(keeps_alive(meta(200, BodyKind::Empty), &h));
        h.append(header::CONNECTION, "close".parse().unwrap());
        assert!(!keeps_alive(meta(200, BodyKind::Empty), &h));
    }

    #[test]
    fn a_close_the_caller_asked_for_or_a_close_delimited_body_ends_the_connection() {
        let h = HeaderMap::new();
        let mut closing = meta(200, BodyKind::Empty);
        closing.keep_alive = false;
        assert!(!keeps_alive(closing, &h));
        let mut old_chunked = meta(200, BodyKind::Chunked);
        old_chunked.version = Version::Http10;
        assert!(!keeps_alive(old_chunked, &h));
    }

    const PREFIX: &str = "Server: percore\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

    #[test]
    fn writes_status_server_date_and_content_length() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            head(meta(200, BodyKind::Length(13)), &h),
            format!(
                "HTTP/1.1 200 OK\r\n{PREFIX}content-type: text/plain\r\nContent-Length: 13\r\n\r\n"
            )
        );
    }

    #[test]
    fn precomputed_status_lines_match_the_generic_ones() {
        for code in 100..600 {
            let status = StatusCode::from_u16(code).unwrap();
            if let Some(line) = common_status_line(status) {
                let mut generic = b"HTTP/1.1 ".to_vec();
                generic.extend_from_slice(status.as_str().as_bytes());
                generic.push(b' ');
                generic.extend_from_slice(status.canonical_reason().unwrap().as_bytes());
                generic.extend_from_slice(b"\r\n");
                assert_eq!(line, &generic[..], "{code}");
            }
        }
        assert_eq!(
            head(meta(599, BodyKind::Empty), &HeaderMap::new()),
            format!("HTTP/1.1 599 \r\n{PREFIX}Content-Length: 0\r\n\r\n")
        );
    }

    #[test]
    fn drops_caller_framing_and_identity_headers() {
        let mut h = HeaderMap::new();
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
            header::DATE,
            header::SERVER,
        ] {
            h.insert(name, HeaderValue::from_static("evil"));
        }
        assert_eq!(
            head(meta(200, BodyKind::Empty), &h),
            format!("HTTP/1.1 200 OK\r\n{PREFIX}Content-Length: 0\r\n\r\n")
        );
    }

    #[test]
    fn keeps_caller_connection_on_101() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(
            head(meta(101, BodyKind::Empty), &h),
            format!(
                "HTTP/1.1 101 Switching Protocols\r\n{PREFIX}connection: upgrade\r\nupgrade: websocket\r\n\r\n"
            )
        );
    }

    #[test]
    fn no_framing_headers_for_1xx_204_304() {
        for code in [100, 204, 304] {
            let s = head(meta(code, BodyKind::Length(5)), &HeaderMap::new());
            assert!(
                !s.contains("Content-Length") && !s.contains("Transfer-Encoding"),
                "{s}"
            );
        }
    }

    #[test]
    fn head_response_has_get_content_length() {
        let mut m = meta(200, BodyKind::Length(42));
        m.head_request = true;
        assert!(head(m, &HeaderMap::new()).contains("Content-Length: 42\r\n"));
        assert!(!body_allowed(StatusCode::OK, true));
        assert!(body_allowed(StatusCode::OK, false));
        assert!(!body_allowed(StatusCode::NO_CONTENT, false));
        assert!(!body_allowed(StatusCode::NOT_MODIFIED, false));
        assert!(!body_allowed(StatusCode::CONTINUE, false));
    }

    #[test]
    fn chunked_on_http11_writes_transfer_encoding() {
        assert_eq!(
            head(meta(200, BodyKind::Chunked), &HeaderMap::new()),
            format!("HTTP/1.1 200 OK\r\n{PREFIX}Transfer-Encoding: chunked\r\n\r\n")
        );
    }

    #[test]
    fn chunked_on_http10_is_close_delimited() {
        let mut m = meta(200, BodyKind::Chunked);
        m.version = Version::Http10;
        assert_eq!(
            head(m, &HeaderMap::new()),
            format!("HTTP/1.1 200 OK\r\n{PREFIX}Connection: close\r\n\r\n")
        );
    }

    #[test]
    fn connection_close_when_not_keep_alive() {
        let mut m = meta(200, BodyKind::Empty);
        m.keep_alive = false;
        assert!(
            head(m, &HeaderMap::new()).ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n")
        );
    }

    #[test]
    fn http10_keep_alive_is_announced() {
        let mut m = meta(200, BodyKind::Empty);
        m.version = Version::Http10;
        assert!(head(m, &HeaderMap::new()).ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn writes_chunks_in_hex() {
        let mut out = Vec::new();
        write_chunk(&mut out, b"");
        assert!(out.is_empty());
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, &[b'x'; 0x1ab]);
        write_last_chunk(&mut out);
        let mut expected = b"5\r\nhello\r\n1ab\r\n".to_vec();
        expected.extend_from_slice(&[b'x'; 0x1ab]);
        expected.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(out, expected);
    }
}
