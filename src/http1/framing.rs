//! Message framing: how long a request body is (RFC 9112 §6.3), plus the other per-request
//! connection decisions taken from header fields (keep-alive, RFC 9112 §9.3; `Expect`, RFC 9110
//! §10.1.1), and `BodyDecoder`, which cuts the body out of the read buffer without copying.
//!
//! `HeadFacts` collects what the framing fields said while `HeadParser` walks the header lines;
//! `HeadFacts::finish` then applies §6.3 in order. Nothing here reads a socket: `BodyDecoder`
//! only ever looks at the `BytesMut` it is given.

use super::headers::trim_ows;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;

use super::chunked::ChunkedDecoder;
use super::parse::is_token;
use super::{ParseError, Status, Version};

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (RFC 9112 §6.3 rule 7: a request without CL or TE has none).
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    /// The request carries body bytes (or might: a chunked body can still be empty).
    pub fn has_body(self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }
}

/// One step of body decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEvent {
    /// Body bytes, split off the read buffer (zero-copy).
    Data(Bytes),
    /// The body (and its trailers) has been fully consumed; the buffer now starts at the next
    /// request, if any.
    End,
}

/// What §6.3 and the connection fields decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadDecision {
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub connection_upgrade: bool,
}

/// The fields that decide framing and connection handling, recognised from the raw name while
/// scanning (by length first, so other names cost one comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
}

/// Whether the token `name` is `lowercase` (which holds only lowercase letters and "-") but for
/// ASCII case: eight (or, for a short name, four) bytes at a time, each byte ORed with 0x20, which
/// among token bytes turns exactly the uppercase letters into lowercase ones (RFC 9110 §5.1: names
/// are case-insensitive). Words overlap to cover a length that is not a multiple of the word.
/// Called once per candidate name with a constant `lowercase`, so that the loop unrolls into a
/// few fixed-size loads and compares (a variable-length copy into a word cost more than the
/// compare did, measured).
#[inline(always)]
fn token_eq_lowercase(name: &[u8], lowercase: &[u8]) -> bool {
    #[inline(always)]
    fn word8(bytes: &[u8], at: usize) -> u64 {
        bytes
            .get(at..)
            .and_then(<[u8]>::first_chunk)
            .map_or(0, |w| u64::from_le_bytes(*w))
    }
    #[inline(always)]
    fn word4(bytes: &[u8], at: usize) -> u32 {
        bytes
            .get(at..)
            .and_then(<[u8]>::first_chunk)
            .map_or(0, |w| u32::from_le_bytes(*w))
    }
    let len = name.len();
    if len != lowercase.len() {
        return false;
    }
    if len < 4 {
        return name.eq_ignore_ascii_case(lowercase);
    }
    if len < 8 {
        const FOLD: u32 = u32::from_ne_bytes([0x20; 4]);
        return word4(name, 0) | FOLD == word4(lowercase, 0)
            && word4(name, len - 4) | FOLD == word4(lowercase, len - 4);
    }
    const FOLD: u64 = u64::from_ne_bytes([0x20; 8]);
    let mut at = 0;
    loop {
        if word8(name, at) | FOLD != word8(lowercase, at) {
            return false;
        }
        if at + 8 >= len {
            return true;
        }
        at = (at + 8).min(len - 8);
    }
}

impl FieldKind {
    /// The kind of a field named `name`, a token (as the parser checked every name to be).
    #[inline]
    pub(crate) fn of(name: &[u8]) -> FieldKind {
        // By length first, so that other names cost one comparison.
        match name.len() {
            4 if token_eq_lowercase(name, b"host") => FieldKind::Host,
            6 if token_eq_lowercase(name, b"expect") => FieldKind::Expect,
            10 if token_eq_lowercase(name, b"connection") => FieldKind::Connection,
            14 if token_eq_lowercase(name, b"content-length") => FieldKind::ContentLength,
            17 if token_eq_lowercase(name, b"transfer-encoding") => FieldKind::TransferEncoding,
            _ => FieldKind::Other,
        }
    }
}

/// What the framing-related fields of a head said, collected one field line at a time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeadFacts {
    content_length: Option<u64>,
    transfer_encoding: bool,
    codings: usize,
    chunked_seen: bool,
    last_coding_chunked: bool,
    unsupported_coding: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    expect_continue: bool,
    expect_other: bool,
}

/// Elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed, empty elements skipped.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

impl HeadFacts {
    /// Record one header field of the given kind (`FieldKind::of` its name).
    pub(crate) fn observe(&mut self, kind: FieldKind, value: &[u8]) -> Result<(), ParseError> {
        match kind {
            FieldKind::Other | FieldKind::Host => Ok(()),
            FieldKind::ContentLength => self.content_length(value),
            FieldKind::TransferEncoding => self.transfer_encoding(value),
            FieldKind::Connection => {
                // The usual value is one option alone: compared as a whole, without splitting
                // the list. `token_eq_lowercase` is exact here too: a value holds no CTL (checked
                // before this), and no other byte ORed with 0x20 gives a lowercase letter or "-".
                if token_eq_lowercase(value, b"keep-alive") {
                    self.connection_keep_alive = true;
                    return Ok(());
                }
                if token_eq_lowercase(value, b"close") {
                    self.connection_close = true;
                    return Ok(());
                }
                // RFC 9112 §9.3 / RFC 9110 §7.6.1: a list of case-insensitive tokens.
                for option in list_elements(value) {
                    if option.eq_ignore_ascii_case(b"close") {
                        self.connection_close = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") {
                        self.connection_keep_alive = true;
                    } else if option.eq_ignore_ascii_case(b"upgrade") {
                        // RFC 9110 §7.8: an `Upgrade` field counts only with this option. Noted
                        // here, in the pass over `Connection` that happens anyway, so that only
                        // requests that have it pay for looking at `Upgrade` at all.
                        self.connection_upgrade = true;
                    }
                }
                Ok(())
            }
            FieldKind::Expect => {
                // RFC 9110 §10.1.1: the only expectation defined is "100-continue"
                // (case-insensitive).
                for e in list_elements(value) {
                    if e.eq_ignore_ascii_case(b"100-continue") {
                        self.expect_continue = true;
                    } else {
                        self.expect_other = true;
                    }
                }
                Ok(())
            }
        }
    }

    /// RFC 9110 §8.6: Content-Length = 1*DIGIT. A list of identical values ("5, 5"), or the same
    /// value repeated in several field lines, may be accepted as that one value; differing values
    /// are an error (RFC 9112 §6.3 rule 5).
    ///
    /// Inlined into the field-line loop, unlike `observe`: the usual value, one number of up to
    /// 19 digits (which cannot overflow a u64), is read here without splitting the list (it cost
    /// ~90 instructions the general way), and a call into `observe`, a large function, cost ~30
    /// more in saving and restoring registers (measured).
    #[inline]
    pub(crate) fn content_length(&mut self, value: &[u8]) -> Result<(), ParseError> {
        if (1..=19).contains(&value.len()) {
            // Digits checked and summed in one pass; the sum is used only if every byte was a
            // digit, and wraps meanwhile so that other bytes cannot overflow it.
            let (n, digits) = value.iter().fold((0u64, true), |(n, digits), &b| {
                let d = b.wrapping_sub(b'0');
                (
                    n.wrapping_mul(10).wrapping_add(u64::from(d)),
                    digits & (d < 10),
                )
            });
            if digits {
                return self.note_content_length(n);
            }
        }
        self.content_length_list(value)
    }

    /// `content_length` for any other value: a list, or not a number at all.
    #[inline(never)]
    fn content_length_list(&mut self, value: &[u8]) -> Result<(), ParseError> {
        // An empty value or an empty list element ("5,,5") is not 1*DIGIT: rejected.
        for element in value.split(|&b| b == b',') {
            self.note_content_length(parse_content_length(trim_ows(element))?)?;
        }
        Ok(())
    }

    /// RFC 9112 §6.3 rule 5: repeated Content-Length values must all be the same.
    #[inline]
    fn note_content_length(&mut self, n: u64) -> Result<(), ParseError> {
        match self.content_length {
            Some(prev) if prev != n => Err(ParseError::ConflictingContentLength),
            _ => {
                self.content_length = Some(n);
                Ok(())
            }
        }
    }

    /// RFC 9112 §6.1: Transfer-Encoding = #transfer-coding, applied in the order listed, across
    /// all field lines.
    fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), ParseError> {
        self.transfer_encoding = true;
        for element in list_elements(value) {
            // RFC 9112 §7: transfer-coding = token *( OWS ";" OWS transfer-parameter ).
            let (name, has_params) = match memchr::memchr(b';', element) {
                Some(i) => (trim_ows(&element[..i]), true),
                None => (element, false),
            };
            if !is_token(name) {
                return Err(ParseError::BadTransferEncoding);
            }
            self.codings += 1;
            if name.eq_ignore_ascii_case(b"chunked") {
                // RFC 9112 §7.1: chunked takes no parameters.
                if has_params {
                    return Err(ParseError::BadTransferEncoding);
                }
                // RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
                if self.chunked_seen {
                    return Err(ParseError::ChunkedTwice);
                }
                self.chunked_seen = true;
                self.last_coding_chunked = true;
            } else {
                // gzip, deflate, compress, identity, extensions: none implemented here.
                self.unsupported_coding = true;
                self.last_coding_chunked = false;
            }
        }
        Ok(())
    }

    /// Apply RFC 9112 §6.3 and the connection rules once every field has been seen.
    ///
    /// Inlined into `build_head`: as a call (LLVM's choice under `#[inline]`), the facts went to
    /// it and the decision came back through the stack, ~23 instructions per request (measured).
    #[inline(always)]
    pub(crate) fn finish(
        self,
        version: Version,
        max_body: u64,
    ) -> Result<HeadDecision, ParseError> {
        // RFC 9112 §6.3, message body length of a request:
        //  1. (responses to HEAD and 1xx/204/304: not requests)
        //  2. (2xx responses to CONNECT: not requests)
        //  3. Transfer-Encoding and Content-Length together "ought to be handled as an error"
        //     (request smuggling): we reject with 400 and, like every rejection, close.
        //  4. Transfer-Encoding with chunked final → chunked body; chunked not final in a request
        //     → 400 and close.
        //  5. Content-Length invalid → 400 and close (checked as each field line is recorded).
        //  6. Valid Content-Length → that many bytes.
        //  7. Neither → no body.
        let framing = if self.transfer_encoding {
            // RFC 9112 §6.1: a Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            if version == Version::Http10 {
                return Err(ParseError::TransferEncodingOnHttp10);
            }
            // Rule 3.
            if self.content_length.is_some() {
                return Err(ParseError::ContentLengthWithTransferEncoding);
            }
            if self.codings == 0 {
                return Err(ParseError::BadTransferEncoding);
            }
            // Rule 4.
            if !self.last_coding_chunked {
                return Err(ParseError::ChunkedNotFinal);
            }
            // RFC 9112 §6.1: a coding the server does not understand → 501.
            if self.unsupported_coding {
                return Err(ParseError::UnsupportedTransferCoding);
            }
            Framing::Chunked
        } else if let Some(n) = self.content_length {
            // Rule 6, with the body limit applied before any byte of it is read (RFC 9110
            // §15.5.14: 413).
            if n > max_body {
                return Err(ParseError::BodyTooLarge);
            }
            Framing::Length(n)
        } else {
            // Rule 7.
            Framing::None
        };

        // RFC 9110 §10.1.1: an expectation other than 100-continue cannot be met → 417.
        if self.expect_other {
            return Err(ParseError::UnsupportedExpectation);
        }
        // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST be ignored;
        // without a body there is nothing to wait for.
        let expect_continue =
            self.expect_continue && version == Version::Http11 && framing.has_body();

        // RFC 9112 §9.3: HTTP/1.1 is persistent unless "close"; HTTP/1.0 only with "keep-alive".
        let keep_alive = match version {
            Version::Http11 | Version::Http2 => !self.connection_close,
            Version::Http10 => self.connection_keep_alive && !self.connection_close,
        };
        Ok(HeadDecision {
            framing,
            keep_alive,
            expect_continue,
            connection_upgrade: self.connection_upgrade,
        })
    }
}

/// RFC 9110 §8.6: 1*DIGIT, decimal, no sign, no whitespace inside, no overflow.
fn parse_content_length(digits: &[u8]) -> Result<u64, ParseError> {
    if digits.is_empty() {
        return Err(ParseError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ParseError::BadContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(ParseError::BadContentLength)?;
    }
    Ok(n)
}

enum Decoding {
    Length(u64),
    Chunked(ChunkedDecoder),
    TooLarge,
    Done,
}

/// Cuts one request body off the front of the read buffer, per its `Framing`.
pub struct BodyDecoder {
    decoding: Decoding,
}

impl BodyDecoder {
    pub fn new(framing: Framing, max_body: u64) -> Self {
        let decoding = match framing {
            Framing::None | Framing::Length(0) => Decoding::Done,
            Framing::Length(n) if n > max_body => Decoding::TooLarge,
            Framing::Length(n) => Decoding::Length(n),
            Framing::Chunked => Decoding::Chunked(ChunkedDecoder::new(max_body)),
        };
        BodyDecoder { decoding }
    }

    /// Take body bytes from the front of `buf` (zero-copy `split_to`). `Data` carries as much as
    /// is available; `End` comes once the body and any trailers are consumed (and again on every
    /// later call); `Partial` asks for more bytes. `BodyTooLarge` when the body exceeds
    /// `max_body`. Errors stick.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Status<BodyEvent>, ParseError> {
        match &mut self.decoding {
            Decoding::Done => Ok(Status::Complete(BodyEvent::End)),
            Decoding::TooLarge => Err(ParseError::BodyTooLarge),
            Decoding::Chunked(c) => c.decode(buf),
            Decoding::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Status::Partial);
                }
                let n = usize::try_from(*remaining).map_or(buf.len(), |r| r.min(buf.len()));
                let data = buf.split_to(n).freeze();
                // n <= remaining: it is the minimum of the two.
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.decoding = Decoding::Done;
                }
                Ok(Status::Complete(BodyEvent::Data(data)))
            }
        }
    }

    /// True once the whole body (and any trailers) has been consumed from the buffer.
    pub fn is_done(&self) -> bool {
        match &self.decoding {
            Decoding::Done => true,
            Decoding::Chunked(c) => c.is_done(),
            Decoding::Length(_) | Decoding::TooLarge => false,
        }
    }

    /// The trailer fields of a chunked body, once `End` was returned (`None` if there were none).
    pub fn trailers(&mut self) -> Option<HeaderMap> {
        match &mut self.decoding {
            Decoding::Chunked(c) => c.trailers(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(
        framing: Framing,
        max_body: u64,
        input: &[u8],
    ) -> Result<(Vec<u8>, BytesMut), ParseError> {
        let mut dec = BodyDecoder::new(framing, max_body);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match dec.decode(&mut buf)? {
                Status::Complete(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                Status::Complete(BodyEvent::End) => return Ok((body, buf)),
                Status::Partial => panic!("unexpected Partial"),
            }
        }
    }

    #[test]
    fn length_body_leaves_the_next_request_in_the_buffer() {
        let (body, rest) = drain(Framing::Length(5), 100, b"helloGET /").unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(&rest[..], b"GET /");
    }

    #[test]
    fn no_body_ends_at_once() {
        let (body, rest) = drain(Framing::None, 100, b"GET /").unwrap();
        assert!(body.is_empty());
        assert_eq!(&rest[..], b"GET /");
        assert!(BodyDecoder::new(Framing::Length(0), 0).is_done());
    }

    #[test]
    fn length_body_waits_for_more_bytes() {
        let mut dec = BodyDecoder::new(Framing::Length(4), 100);
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Status::Complete(BodyEvent::Data(Bytes::from_static(b"ab"))))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Status::Partial));
        assert!(!dec.is_done());
        buf.extend_from_slice(b"cd");
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Status::Complete(BodyEvent::Data(Bytes::from_static(b"cd"))))
        );
        assert!(dec.is_done());
        assert_eq!(dec.decode(&mut buf), Ok(Status::Complete(BodyEvent::End)));
        assert_eq!(dec.decode(&mut buf), Ok(Status::Complete(BodyEvent::End)));
    }

    #[test]
    fn rejects_length_body_over_max_body() {
        assert_eq!(
            drain(Framing::Length(11), 10, b"x").unwrap_err(),
            ParseError::BodyTooLarge
        );
    }

    #[test]
    fn recognises_framing_fields_case_insensitively() {
        assert_eq!(FieldKind::of(b"Content-LENGTH"), FieldKind::ContentLength);
        assert_eq!(
            FieldKind::of(b"transfer-encoding"),
            FieldKind::TransferEncoding
        );
        assert_eq!(FieldKind::of(b"HOST"), FieldKind::Host);
        assert_eq!(FieldKind::of(b"Connection"), FieldKind::Connection);
        assert_eq!(FieldKind::of(b"expect"), FieldKind::Expect);
        assert_eq!(FieldKind::of(b"hostx"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"hast"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Content-Lengtg"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Transfer-Encodinf"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"Transfer_Encoding"), FieldKind::Other);
        assert_eq!(FieldKind::of(b"connectioN"), FieldKind::Connection);
    }

    #[test]
    fn folded_name_compare_agrees_with_eq_ignore_ascii_case_on_tokens() {
        let tchar: Vec<u8> = (0..=255u8)
            .filter(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            .collect();
        for canonical in [
            &b"host"[..],
            b"expect",
            b"connection",
            b"content-length",
            b"transfer-encoding",
        ] {
            for pos in 0..canonical.len() {
                for &b in &tchar {
                    let mut name = canonical.to_vec();
                    name[pos] = b;
                    assert_eq!(
                        token_eq_lowercase(&name, canonical),
                        name.eq_ignore_ascii_case(canonical),
                        "{:?}",
                        String::from_utf8_lossy(&name)
                    );
                }
            }
        }
    }

    #[test]
    fn content_length_one_number_fast_path_agrees_with_the_list_rules() {
        // What the list rules give for a whole value: every element 1*DIGIT, all equal.
        fn by_list_rules(value: &[u8]) -> Result<u64, ParseError> {
            let mut n = None;
            for element in value.split(|&b| b == b',') {
                let m = parse_content_length(trim_ows(element))?;
                if n.is_some_and(|n| n != m) {
                    return Err(ParseError::ConflictingContentLength);
                }
                n = Some(m);
            }
            n.ok_or(ParseError::BadContentLength)
        }
        let values: [&[u8]; 17] = [
            b"0",
            b"007",
            b"91",
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"",
            b"+5",
            b"5a",
            b"a5",
            b":",
            b"/",
            b"5\x80",
            b"5, 5",
            b"5,6",
            b" 5",
            b"99999999999999999999",
        ];
        for value in values {
            let mut facts = HeadFacts::default();
            let got = facts.content_length(value).map(|()| facts.content_length);
            assert_eq!(got, by_list_rules(value).map(Some), "{value:?}");
        }
    }

    #[test]
    fn content_length_digits_only() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"007"), Ok(7));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b""[..],
            b"+5",
            b"-5",
            b"0x5",
            b"5 5",
            b"5.0",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_content_length(bad),
                Err(ParseError::BadContentLength),
                "{bad:?}"
            );
        }
    }
}
