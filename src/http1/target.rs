//! The request-target (RFC 9112 §3.2): its four forms, and the path percent-decoded once.
//!
//! `Target` owns a zero-copy slice of the frozen head bytes and a few ranges into it. The decoded
//! path is allocated only when the path contains a `%`. This module knows nothing about routing:
//! it only guarantees that `path()` is valid UTF-8 and that an encoded `/`, NUL or `%` stays
//! encoded (as `%2F`, `%00`, `%25`), so a router can never confuse `/a%2Fb` with `/a/b`.

use std::ops::Range;

use bytes::Bytes;
use bytestring::ByteString;
use http::Method;

use super::scan::{block_at, eq_mask, find_byte, non_target_mask, target_marks, word_at};
use super::ParseError;

/// Which of the four request-target forms of RFC 9112 §3.2 the request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query` (§3.2.1), the usual form.
    Origin,
    /// `http://host/path?query` (§3.2.2), mostly sent to proxies; servers must accept it.
    Absolute,
    /// `host:port` (§3.2.3), only for CONNECT.
    Authority,
    /// `*` (§3.2.4), only for a server-wide OPTIONS.
    Asterisk,
}

/// A parsed request-target. Every byte of `raw` was checked to be visible ASCII (no CTL, SP,
/// `#` or byte >= 0x80), so every range below is valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Checked as UTF-8 once at parse (it is ASCII), so the accessors below slice it as `str`
    /// without checking again: they run several times per request (router, logs, redirects).
    raw: ByteString,
    // INVARIANT: every span lies within `raw`, which is all ASCII.
    path: Span,
    /// Where the query starts, after its `?` (it runs to the end of `raw`); 0 when there is
    /// none, as a query never starts at 0. Not an `Option<Span>`: the ~70-byte `Target` is built
    /// and moved once per request, and each optional span added 8 bytes to it.
    query_start: u32,
    /// The authority of an absolute-form or authority-form target; `0..0` when there is none
    /// (both forms refuse an empty one).
    authority: Span,
    /// The percent-decoded path, present only when the raw path contains `%`.
    decoded: Option<Box<str>>,
    form: TargetForm,
    encoded_slash: bool,
    encoded_nul: bool,
}

/// A range of a target's bytes in 32-bit offsets: a `Target` is built and moved once per request,
/// and 64-bit ranges made it half as large again (measured in instructions per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `range` of a target whose length was checked to fit in a `u32`.
    fn within_u32(range: Range<usize>) -> Span {
        debug_assert!(u32::try_from(range.end).is_ok());
        Span {
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Bytes allowed anywhere in a request-target: visible ASCII except `#`.
///
/// RFC 9112 §3.2 builds targets from RFC 3986 characters: no CTL, no SP (it separates the request
/// line), nothing >= 0x80 (RFC 3986 §2: non-ASCII must be percent-encoded), and no fragment
/// (RFC 9110 §4.2.1 / §7.1: a fragment is never sent). Visible characters outside RFC 3986 such
/// as `"`, `{`, `|` are tolerated, as most servers do, because real clients send them unencoded;
/// none of them can change how the request line splits.
static TARGET_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        t[b] = b != b'#' as usize;
        b += 1;
    }
    t
};

/// What one pass over a request-target found (`scan_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TargetScan {
    /// How many bytes from the start are all `TARGET_BYTE`s: up to the first byte that is not
    /// (in a request line, the SP before the version), or the whole input.
    pub(super) len: usize,
    /// The offset of the first `?` within `len`.
    pub(super) query: Option<usize>,
    /// A `%` before that `?`: the path needs percent-decoding.
    pub(super) percent: bool,
}

/// Check the bytes of a target, find its query and whether its path holds a `%`, in one pass:
/// sixteen bytes at a time (`target_marks`), then eight (`non_target_mask`, and `?` or `%` until
/// the query starts), jumping from one marked byte to the next. Inlined into the request-line
/// parser, as `Target::parse_scanned` into `build_head`: as calls they cost ~45 and ~55
/// instructions per request more (measured), in moving their results through the stack.
#[inline(always)]
pub(super) fn scan_target(raw: &[u8]) -> TargetScan {
    let mut scan = TargetScan {
        len: raw.len(),
        query: None,
        percent: false,
    };
    let mut at = 0;
    while let Some(block) = block_at(raw, at) {
        let (stops, specials) = target_marks(block);
        let mut marks = stops | specials;
        while marks != 0 {
            let i = at + marks.trailing_zeros() as usize;
            if !scan.note(i, raw[i]) {
                return scan;
            }
            marks &= marks - 1;
        }
        at += 16;
    }
    while let Some(x) = word_at(raw, at) {
        let mut marks = non_target_mask(x);
        if scan.query.is_none() {
            marks |= eq_mask(x, b'?') | eq_mask(x, b'%');
        }
        if marks == 0 {
            at += 8;
            continue;
        }
        at += (marks.trailing_zeros() / 8) as usize;
        if !scan.note(at, raw[at]) {
            return scan;
        }
        at += 1;
    }
    for (i, &b) in raw.iter().enumerate().skip(at) {
        if !scan.note(i, b) {
            break;
        }
    }
    scan
}

impl TargetScan {
    /// Note the byte `b` at `at`; false (and `len` set) if a target may not hold it.
    #[inline(always)]
    fn note(&mut self, at: usize, b: u8) -> bool {
        match b {
            b'?' => {
                self.query.get_or_insert(at);
            }
            b'%' => self.percent |= self.query.is_none(),
            _ if !TARGET_BYTE[usize::from(b)] => {
                self.len = at;
                return false;
            }
            _ => {}
        }
        true
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Target {
    /// Parse and validate a request-target for `method`.
    pub fn parse(raw: Bytes, method: &Method) -> Result<Target, ParseError> {
        let scan = scan_target(&raw);
        Target::parse_scanned(raw, method, scan)
    }

    /// `parse`, with the pass over the bytes already made (by the request-line parser). Inlined,
    /// so that the target is built in the head that holds it (see `scan_target`).
    #[inline(always)]
    pub(super) fn parse_scanned(
        raw: Bytes,
        method: &Method,
        scan: TargetScan,
    ) -> Result<Target, ParseError> {
        // RFC 9112 §3.2: a target is never empty and holds only URI characters (see TARGET_BYTE).
        if raw.is_empty() || scan.len != raw.len() {
            return Err(ParseError::BadTarget);
        }
        let len = raw.len();
        let is_connect = *method == Method::CONNECT;
        let (form, path, query, authority) = if raw.first() == Some(&b'/') {
            // RFC 9112 §3.2.3: CONNECT takes the authority-form only.
            if is_connect {
                return Err(ParseError::BadTarget);
            }
            match scan.query {
                Some(q) => (TargetForm::Origin, 0..q, Some(q + 1..len), None),
                None => (TargetForm::Origin, 0..len, None, None),
            }
        } else {
            other_form(&raw, method)?
        };

        // Offsets are kept in 32 bits (`Span`): a longer target is only possible with the
        // request-line limit raised past 4 GiB.
        if u32::try_from(len).is_err() {
            return Err(ParseError::BadTarget);
        }
        let raw = ByteString::try_from(raw).map_err(|_| ParseError::BadTarget)?;
        let mut target = Target {
            raw,
            form,
            path: Span::within_u32(path),
            query_start: query.map_or(0, |query| {
                debug_assert!(query.start > 0 && query.end == len);
                query.start as u32
            }),
            authority: authority.map_or(Span { start: 0, end: 0 }, Span::within_u32),
            decoded: None,
            encoded_slash: false,
            encoded_nul: false,
        };
        // The scan noted a `%` in an origin-form path; the other forms are rare: look again.
        let percent = match form {
            TargetForm::Origin => scan.percent,
            TargetForm::Asterisk => false,
            _ => find_byte(&target.raw.as_bytes()[target.path.range()], b'%').is_some(),
        };
        if percent {
            let raw_path = &target.raw.as_bytes()[target.path.range()];
            {
                let decoded = decode_path(raw_path)?;
                target.encoded_slash = decoded.encoded_slash;
                target.encoded_nul = decoded.encoded_nul;
                target.decoded = Some(decoded.path);
            }
        }
        Ok(target)
    }

    pub fn form(&self) -> TargetForm {
        self.form
    }

    /// The target exactly as sent.
    pub fn raw(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// The path as sent, undecoded. For absolute-form with an empty path, `"/"` (RFC 9112
    /// §3.2.2: an empty path is the same as `/`). Empty for authority-form, `"*"` for asterisk-form.
    pub fn raw_path(&self) -> &str {
        if self.form == TargetForm::Absolute && self.path.start == self.path.end {
            return "/";
        }
        self.raw.get(self.path.range()).unwrap_or_default()
    }

    /// The path percent-decoded once. `%2F`, `%00` and `%25` stay encoded (uppercase hex), so an
    /// encoded slash, NUL or percent sign never reads as a separator, terminator or new escape.
    pub fn path(&self) -> &str {
        match &self.decoded {
            Some(p) => p,
            None => self.raw_path(),
        }
    }

    /// The query as sent, without the `?`. `Some("")` for a bare `?`.
    pub fn query(&self) -> Option<&str> {
        if self.query_start == 0 {
            return None;
        }
        Some(
            self.raw
                .get(self.query_start as usize..)
                .unwrap_or_default(),
        )
    }

    /// The query as an owned string sharing this target's bytes (a reference count, no copy).
    pub fn query_shared(&self) -> Option<ByteString> {
        let query = self.query()?;
        Some(self.raw.slice_ref(query))
    }

    /// The authority of an absolute-form or authority-form target.
    pub fn authority(&self) -> Option<&str> {
        if self.authority.end == 0 {
            return None;
        }
        Some(self.raw.get(self.authority.range()).unwrap_or_default())
    }

    /// The path contained `%2F` (any case).
    pub fn has_encoded_slash(&self) -> bool {
        self.encoded_slash
    }

    /// The path contained `%00`.
    pub fn has_encoded_nul(&self) -> bool {
        self.encoded_nul
    }
}

/// A target's form and its path, query and authority ranges.
type FormRanges = (
    TargetForm,
    Range<usize>,
    Option<Range<usize>>,
    Option<Range<usize>>,
);

/// The forms of a target that does not start with `/` (RFC 9112 §3.2.2-§3.2.4). Rare (proxies,
/// CONNECT, a server-wide OPTIONS), so out of line: inlined beside the origin form into the
/// request's assembly, their code cost the usual path ~14 instructions (measured).
#[cold]
#[inline(never)]
fn other_form(raw: &[u8], method: &Method) -> Result<FormRanges, ParseError> {
    let len = raw.len();
    let is_connect = *method == Method::CONNECT;
    Ok(if raw == b"*" {
        // RFC 9112 §3.2.4: the asterisk-form is only used with OPTIONS.
        if *method != Method::OPTIONS {
            return Err(ParseError::BadTarget);
        }
        (TargetForm::Asterisk, 0..len, None, None)
    } else if is_connect {
        // RFC 9112 §3.2.3: authority-form = uri-host ":" port.
        check_authority_form(raw)?;
        (TargetForm::Authority, len..len, None, Some(0..len))
    } else {
        // RFC 9112 §3.2.2: absolute-form, accepted with any method. Only the http and https
        // schemes name something this server can answer (RFC 9110 §4.2).
        let authority_start = absolute_scheme_len(raw).ok_or(ParseError::BadTarget)?;
        let rest = raw.get(authority_start..).unwrap_or_default();
        let authority_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        let authority = authority_start..authority_start + authority_len;
        let host = &raw[authority.clone()];
        // RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid. §4.2.4: userinfo
        // must not be sent, and a recipient should treat it as an error.
        if host.is_empty() || host.contains(&b'@') {
            return Err(ParseError::BadTarget);
        }
        let (path, query) = split_query(raw, authority.end);
        (TargetForm::Absolute, path, query, Some(authority))
    })
}

/// Split `raw[from..]` at the first `?` into (path, query) ranges.
fn split_query(raw: &[u8], from: usize) -> (Range<usize>, Option<Range<usize>>) {
    let rest = raw.get(from..).unwrap_or_default();
    match find_byte(rest, b'?') {
        Some(q) => (from..from + q, Some(from + q + 1..raw.len())),
        None => (from..raw.len(), None),
    }
}

/// Length of `http://` or `https://` (scheme case-insensitive, RFC 3986 §3.1), if `raw` starts so.
fn absolute_scheme_len(raw: &[u8]) -> Option<usize> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if raw.len() >= scheme.len() && raw[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(scheme.len());
        }
    }
    None
}

/// RFC 9112 §3.2.3: `uri-host ":" port`, port being 1 to 5 digits (RFC 3986 §3.2.3).
fn check_authority_form(raw: &[u8]) -> Result<(), ParseError> {
    let colon = memchr::memrchr(b':', raw).ok_or(ParseError::BadTarget)?;
    let (host, port) = (&raw[..colon], &raw[colon + 1..]);
    let host_ok = !host.is_empty() && !host.iter().any(|&b| matches!(b, b'/' | b'?' | b'@'));
    let port_ok = (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit);
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ParseError::BadTarget)
    }
}

struct DecodedPath {
    path: Box<str>,
    encoded_slash: bool,
    encoded_nul: bool,
}

/// Percent-decode a path once (RFC 3986 §2.1), keeping `%2F`, `%00` and `%25` encoded.
fn decode_path(raw: &[u8]) -> Result<DecodedPath, ParseError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut encoded_slash = false;
    let mut encoded_nul = false;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        // RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG; anything else ("%G1", "%4") is invalid.
        let (hi, lo) = match (raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (Some(h), Some(l)) => (h, l),
            _ => return Err(ParseError::BadPercentEncoding),
        };
        let (h, l) = match (hex_value(hi), hex_value(lo)) {
            (Some(h), Some(l)) => (h, l),
            _ => return Err(ParseError::BadPercentEncoding),
        };
        let v = h << 4 | l;
        match v {
            b'/' | 0 | b'%' => {
                encoded_slash |= v == b'/';
                encoded_nul |= v == 0;
                out.extend_from_slice(&[b'%', hi.to_ascii_uppercase(), lo.to_ascii_uppercase()]);
            }
            _ => out.push(v),
        }
        i += 3;
    }
    let path = String::from_utf8(out).map_err(|_| ParseError::BadPercentEncoding)?;
    Ok(DecodedPath {
        path: path.into_boxed_str(),
        encoded_slash,
        encoded_nul,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, method: Method) -> Result<Target, ParseError> {
        Target::parse(Bytes::copy_from_slice(raw.as_bytes()), &method)
    }

    fn get(raw: &str) -> Result<Target, ParseError> {
        parse(raw, Method::GET)
    }

    #[test]
    fn word_at_a_time_target_check_agrees_with_the_table_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..20 {
                for pos in 0..len {
                    let mut raw = vec![b'a'; len];
                    raw[pos] = b;
                    let scan = scan_target(&raw);
                    let valid = TARGET_BYTE[usize::from(b)];
                    let expected_len = if valid { len } else { pos };
                    assert_eq!(scan.len, expected_len, "{b:#04x} at {pos} of {len}");
                    assert_eq!(scan.query, (b == b'?').then_some(pos));
                    assert_eq!(scan.percent, b == b'%');
                }
            }
        }
    }

    #[test]
    fn target_scan_notes_the_first_query_mark_and_a_percent_before_it_only() {
        for (raw, len, query, percent) in [
            (&b"/a?b?c"[..], 6, Some(2), false),
            (b"/abcdefgh/ijklmn?q=%20", 22, Some(16), false),
            (b"/abcdefgh/ijk%41n?q", 19, Some(17), true),
            (b"/abcdefgh/ijklmnop%41", 21, None, true),
            (b"/abc?defghijkl mnop", 14, Some(4), false),
            (b"/abcdefghij#k?", 11, None, false),
        ] {
            let scan = scan_target(raw);
            assert_eq!(
                (scan.len, scan.query, scan.percent),
                (len, query, percent),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn origin_form_splits_path_and_query() {
        let t = get("/a/b?x=1&y").unwrap();
        assert_eq!(t.form(), TargetForm::Origin);
        assert_eq!(t.raw(), b"/a/b?x=1&y");
        assert_eq!(t.raw_path(), "/a/b");
        assert_eq!(t.path(), "/a/b");
        assert_eq!(t.query(), Some("x=1&y"));
        assert_eq!(t.authority(), None);
        assert_eq!(get("/?").unwrap().query(), Some(""));
        assert_eq!(get("/").unwrap().query(), None);
    }

    #[test]
    fn absolute_form_accepted_with_any_method() {
        for m in [Method::GET, Method::POST, Method::OPTIONS] {
            let t = parse("http://example.com:8080/p/q?z", m).unwrap();
            assert_eq!(t.form(), TargetForm::Absolute);
            assert_eq!(t.authority(), Some("example.com:8080"));
            assert_eq!(t.raw_path(), "/p/q");
            assert_eq!(t.query(), Some("z"));
        }
        let t = get("HTTPS://example.com").unwrap();
        assert_eq!(t.raw_path(), "/");
        assert_eq!(t.path(), "/");
        let t = get("http://example.com?q").unwrap();
        assert_eq!(t.raw_path(), "/");
        assert_eq!(t.query(), Some("q"));
    }

    #[test]
    fn rejects_absolute_form_with_other_scheme_or_empty_host_or_userinfo() {
        for raw in [
            "ftp://x/",
            "http:/x",
            "http:///x",
            "http://u@x/",
            "example.com/x",
        ] {
            assert_eq!(get(raw).unwrap_err(), ParseError::BadTarget, "{raw}");
        }
    }

    #[test]
    fn authority_form_only_for_connect() {
        let t = parse("example.com:443", Method::CONNECT).unwrap();
        assert_eq!(t.form(), TargetForm::Authority);
        assert_eq!(t.authority(), Some("example.com:443"));
        assert_eq!(t.raw_path(), "");
        assert!(parse("[::1]:443", Method::CONNECT).is_ok());
        assert_eq!(get("example.com:443").unwrap_err(), ParseError::BadTarget);
        for raw in [
            "example.com",
            "example.com:",
            ":443",
            "a:123456",
            "a/b:1",
            "/x",
        ] {
            assert_eq!(
                parse(raw, Method::CONNECT).unwrap_err(),
                ParseError::BadTarget,
                "{raw}"
            );
        }
    }

    #[test]
    fn asterisk_form_only_for_options() {
        let t = parse("*", Method::OPTIONS).unwrap();
        assert_eq!(t.form(), TargetForm::Asterisk);
        assert_eq!(t.path(), "*");
        assert_eq!(get("*").unwrap_err(), ParseError::BadTarget);
        assert_eq!(
            parse("*x", Method::OPTIONS).unwrap_err(),
            ParseError::BadTarget
        );
    }

    #[test]
    fn rejects_control_space_non_ascii_and_fragment_in_target() {
        for raw in [
            &b"/a\x00"[..],
            b"/a b",
            b"/a\x7f",
            b"/\xc3\xa9",
            b"/a#frag",
            b"/\t",
            b"",
        ] {
            let r = Target::parse(Bytes::copy_from_slice(raw), &Method::GET);
            assert_eq!(r.unwrap_err(), ParseError::BadTarget, "{raw:?}");
        }
    }

    #[test]
    fn decodes_percent_escapes_once() {
        let t = get("/caf%C3%A9/%2541?q=%20").unwrap();
        assert_eq!(t.path(), "/café/%2541");
        assert_eq!(t.raw_path(), "/caf%C3%A9/%2541");
        assert_eq!(t.query(), Some("q=%20"));
    }

    #[test]
    fn keeps_encoded_slash_nul_and_percent_distinct() {
        let t = get("/a%2fb%00c%25").unwrap();
        assert_eq!(t.path(), "/a%2Fb%00c%25");
        assert!(t.has_encoded_slash());
        assert!(t.has_encoded_nul());
        let t = get("/a/b").unwrap();
        assert!(!t.has_encoded_slash() && !t.has_encoded_nul());
    }

    #[test]
    fn rejects_bad_percent_escapes() {
        for raw in ["/%G1", "/%4", "/%", "/a%zz"] {
            assert_eq!(
                get(raw).unwrap_err(),
                ParseError::BadPercentEncoding,
                "{raw}"
            );
        }
        assert_eq!(ParseError::BadPercentEncoding.status(), 400);
    }

    #[test]
    fn rejects_percent_decoding_to_invalid_utf8() {
        assert_eq!(get("/%C3").unwrap_err(), ParseError::BadPercentEncoding);
        assert_eq!(get("/%FF%FE").unwrap_err(), ParseError::BadPercentEncoding);
    }

    #[test]
    fn does_not_allocate_a_decoded_path_without_percent() {
        let t = get("/plain/path").unwrap();
        assert!(t.decoded.is_none());
        // path() then points into the raw bytes themselves.
        assert_eq!(t.path().as_ptr(), t.raw().as_ptr());
    }
}
