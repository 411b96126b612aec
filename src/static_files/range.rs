//! Byte-range requests (RFC 9110 §14) for static files.
//!
//! Owns: parsing `Range` ([`parse_range`]), resolving it against a file's length into what to
//! send ([`RangeSpec::resolve`]: the whole file, sorted disjoint ranges, or 416), the
//! `Content-Range` values ([`content_range`], [`unsatisfied_content_range`]) and the layout of a
//! `multipart/byteranges` body ([`MultipartPlan`]). Sans-IO: it never opens a file or a socket;
//! the caller sends the [`Piece`]s. It does not decide whether `Range` applies: the caller
//! ignores it for methods other than GET (RFC 9110 §14.2) and when `If-Range` fails
//! (conditional.rs, RFC 9110 §13.1.5).
//!
//! What a server may refuse, it ignores instead: an unparsable `Range`, another unit, or too
//! many ranges all mean "send 200 with the whole file" (RFC 9110 §14.2: a server MAY ignore
//! `Range`), never a 400. Only a well-formed `bytes` range-set with no satisfiable range is a 416
//! (RFC 9110 §15.5.17).
//!
//! The single-range case (the one video players and download resumers send) allocates nothing
//! until the `Content-Range` header value is made.

use crate::http1::{is_token, trim_ows};
use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// Ranges closer than this many bytes are merged into one part. A part costs its boundary line,
/// `Content-Type` and `Content-Range` (about 100 bytes with a 32-character boundary), so sending
/// the gap is cheaper than a new part (RFC 9110 §14.6 allows coalescing ranges "separated by a
/// gap that is smaller than the overhead of sending multiple parts"); Apache merges the same
/// way. It also makes a request for thousands of tiny ranges collapse into a few.
pub const COALESCE_GAP: u64 = 80;

/// Why a `Range` header is ignored (the response is 200 with the whole file, RFC 9110 §14.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A unit other than `bytes`: RFC 9110 §14.2, a server MUST ignore a range unit it does not
    /// understand.
    #[error("the range unit is not `bytes`")]
    UnsupportedUnit,
    /// Not a `ranges-specifier` (RFC 9110 §14.1.1), including an int-range whose last-pos is
    /// below its first-pos. Ignored rather than answered with 400: RFC 9110 §14.2 lets a server
    /// ignore `Range`, and a client that sent garbage still gets the file.
    #[error("the Range header is not a valid bytes ranges-specifier")]
    Malformed,
}

/// One `range-spec` of the `bytes` unit (RFC 9110 §14.1.1). Positions beyond `u64::MAX` are
/// held as `u64::MAX` (RFC 9110 §14.1.2: recipients MUST anticipate large numerals and not fail
/// on overflow); no file is that long, so the meaning is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRangeSpec {
    /// `first-pos "-" [ last-pos ]`, both inclusive.
    Int { first: u64, last: Option<u64> },
    /// `"-" suffix-length`: the last that many bytes.
    Suffix(u64),
}

/// A syntactically valid `bytes` range-set, borrowed from the header: parsing validates it in
/// one pass without allocating, and [`RangeSpec::resolve`] walks it again against the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSpec<'a> {
    set: &'a [u8],
    count: usize,
}

/// Parses a `Range` field value (RFC 9110 §14.1.1 `ranges-specifier`). Tolerates OWS around the
/// value, around list elements, after `=` (erratum 7306 restores it in the grammar) and empty
/// list elements (RFC 9110 §5.6.1.2); nothing else.
pub fn parse_range(header: &[u8]) -> Result<RangeSpec<'_>, RangeError> {
    let header = trim_ows(header);
    let eq = memchr::memchr(b'=', header).ok_or(RangeError::Malformed)?;
    let (unit, set) = (
        header.get(..eq).unwrap_or_default(),
        header.get(eq + 1..).unwrap_or_default(),
    );
    if !is_token(unit) {
        return Err(RangeError::Malformed);
    }
    // RFC 9110 §14.1: range units are compared case-insensitively.
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return Err(RangeError::UnsupportedUnit);
    }
    let mut count = 0usize;
    for spec in SpecIter::new(set) {
        spec?;
        count += 1;
    }
    // `range-set = 1#range-spec`.
    if count == 0 {
        return Err(RangeError::Malformed);
    }
    Ok(RangeSpec { set, count })
}

/// What to send for a range request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Ignore `Range`: 200 with the whole file.
    Full,
    /// 206: one range (send it with [`content_range`]) or several (send a [`MultipartPlan`]).
    Partial(Ranges),
    /// 416 with [`unsatisfied_content_range`] (RFC 9110 §15.5.17).
    Unsatisfiable,
}

/// Non-empty, sorted, disjoint byte ranges within the file, at least [`COALESCE_GAP`] apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranges(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    One(Range<u64>),
    /// Two or more.
    Many(Vec<Range<u64>>),
}

impl Ranges {
    pub fn as_slice(&self) -> &[Range<u64>] {
        match &self.0 {
            Repr::One(range) => std::slice::from_ref(range),
            Repr::Many(ranges) => ranges,
        }
    }

    /// The range, if there is exactly one: a single-part 206 (RFC 9110 §14.6: a multipart
    /// response for a single range is not allowed, §15.3.7.2).
    pub fn single(&self) -> Option<&Range<u64>> {
        match &self.0 {
            Repr::One(range) => Some(range),
            Repr::Many(_) => None,
        }
    }

    /// The number of bytes of the file the ranges cover.
    pub fn total_len(&self) -> u64 {
        self.as_slice().iter().map(|r| r.end - r.start).sum()
    }
}

impl<'a> RangeSpec<'a> {
    /// The number of range-specs in the header, before resolving.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The range-specs in the order received.
    pub fn specs(&self) -> impl Iterator<Item = ByteRangeSpec> + 'a {
        SpecIter::new(self.set).filter_map(Result::ok)
    }

    /// Resolves the range-set against a file of `len` bytes (RFC 9110 §14.1.2).
    ///
    /// Unsatisfiable specs are dropped; none left is [`Resolved::Unsatisfiable`]. Overlapping,
    /// adjacent and nearly adjacent ranges (see [`COALESCE_GAP`]) are merged and the result is
    /// sorted, whatever order they came in (RFC 9110 §14.6 allows coalescing "regardless of the
    /// order"; §15.3.7.2's SHOULD keep the request's order is given up only when the client sent
    /// an out-of-order set, which is what range-amplification attacks send). If more than
    /// `max_ranges` ranges remain, the header is ignored ([`Resolved::Full`]): Apache's
    /// CVE-2011-3192 was a few hundred overlapping ranges turning one request into gigabytes of
    /// parts and exhausting memory; after merging, the parts are disjoint, so the body is never
    /// larger than the file plus the part headers, and `max_ranges` bounds those.
    /// `max_ranges == 0` turns range support off.
    pub fn resolve(&self, len: u64, max_ranges: usize) -> Resolved {
        if max_ranges == 0 {
            return Resolved::Full;
        }
        let mut first: Option<Range<u64>> = None;
        let mut more: Vec<Range<u64>> = Vec::new();
        let mut satisfiable_but_empty = false;
        for spec in self.specs() {
            match satisfiable_range(spec, len) {
                Satisfiable::Range(range) => match &first {
                    None => first = Some(range),
                    Some(head) => {
                        if more.is_empty() {
                            more.reserve_exact(self.count);
                            more.push(head.clone());
                        }
                        more.push(range);
                    }
                },
                Satisfiable::Empty => satisfiable_but_empty = true,
                Satisfiable::No => {}
            }
        }
        if more.is_empty() {
            return match first {
                Some(range) => Resolved::Partial(Ranges(Repr::One(range))),
                // RFC 9110 §14.1.2: with a zero-length file the only satisfiable form is a suffix
                // with a non-zero length; there is no byte to put in a 206 (`Content-Range`
                // cannot state an empty range), so the "entire representation" is a 200.
                None if satisfiable_but_empty => Resolved::Full,
                None => Resolved::Unsatisfiable,
            };
        }
        coalesce(&mut more);
        if more.len() > max_ranges {
            return Resolved::Full;
        }
        match <[Range<u64>; 1]>::try_from(more) {
            Ok([range]) => Resolved::Partial(Ranges(Repr::One(range))),
            Err(many) => Resolved::Partial(Ranges(Repr::Many(many))),
        }
    }
}

enum Satisfiable {
    Range(Range<u64>),
    /// A non-zero suffix of a zero-length file.
    Empty,
    No,
}

/// RFC 9110 §14.1.2 for one spec.
fn satisfiable_range(spec: ByteRangeSpec, len: u64) -> Satisfiable {
    match spec {
        // Satisfiable iff first-pos < length; a last-pos at or past the end means "to the end".
        ByteRangeSpec::Int { first, .. } if first >= len => Satisfiable::No,
        ByteRangeSpec::Int { first, last } => {
            let end = last.map_or(len, |last| last.saturating_add(1).min(len));
            Satisfiable::Range(first..end)
        }
        // A zero suffix-length is unsatisfiable; a suffix longer than the file is all of it.
        ByteRangeSpec::Suffix(0) => Satisfiable::No,
        ByteRangeSpec::Suffix(_) if len == 0 => Satisfiable::Empty,
        ByteRangeSpec::Suffix(n) => Satisfiable::Range(len.saturating_sub(n)..len),
    }
}

/// Sorts and merges ranges less than [`COALESCE_GAP`] apart, in place.
fn coalesce(ranges: &mut Vec<Range<u64>>) {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut kept = 0usize;
    for i in 1..ranges.len() {
        let next = ranges[i].clone();
        let current = &mut ranges[kept];
        if next.start.saturating_sub(current.end) < COALESCE_GAP {
            current.end = current.end.max(next.end);
        } else {
            kept += 1;
            ranges[kept] = next;
        }
    }
    ranges.truncate(kept + 1);
}

/// The range-specs of a range-set, skipping empty list elements.
struct SpecIter<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> SpecIter<'a> {
    fn new(set: &'a [u8]) -> SpecIter<'a> {
        SpecIter {
            rest: set,
            done: false,
        }
    }
}

impl Iterator for SpecIter<'_> {
    type Item = Result<ByteRangeSpec, RangeError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let element = match memchr::memchr(b',', self.rest) {
                Some(comma) => {
                    let element = self.rest.get(..comma).unwrap_or_default();
                    self.rest = self.rest.get(comma + 1..).unwrap_or_default();
                    element
                }
                None => {
                    self.done = true;
                    self.rest
                }
            };
            let element = trim_ows(element);
            if !element.is_empty() {
                return Some(parse_spec(element));
            }
        }
        None
    }
}

/// One `range-spec` of the `bytes` unit (RFC 9110 §14.1.1): `other-range` is not valid for it.
fn parse_spec(element: &[u8]) -> Result<ByteRangeSpec, RangeError> {
    if let Some(suffix) = element.strip_prefix(b"-") {
        return numeral(suffix)
            .map(ByteRangeSpec::Suffix)
            .ok_or(RangeError::Malformed);
    }
    let dash = memchr::memchr(b'-', element).ok_or(RangeError::Malformed)?;
    let first_digits = element.get(..dash).unwrap_or_default();
    let last_digits = element.get(dash + 1..).unwrap_or_default();
    let first = numeral(first_digits).ok_or(RangeError::Malformed)?;
    if last_digits.is_empty() {
        return Ok(ByteRangeSpec::Int { first, last: None });
    }
    let last = numeral(last_digits).ok_or(RangeError::Malformed)?;
    // RFC 9110 §14.1.1: "An int-range is invalid if the last-pos value is present and less than
    // the first-pos." Two saturated positions are compared by their digits.
    let backwards = if first == u64::MAX && last == u64::MAX {
        numeral_lt(last_digits, first_digits)
    } else {
        last < first
    };
    if backwards {
        return Err(RangeError::Malformed);
    }
    Ok(ByteRangeSpec::Int {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn numeral(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &b| {
        b.is_ascii_digit()
            .then(|| value.saturating_mul(10).saturating_add(u64::from(b - b'0')))
    })
}

/// `a < b` for two `1*DIGIT` numerals of any length.
fn numeral_lt(a: &[u8], b: &[u8]) -> bool {
    let strip = |d: &[u8]| -> usize { d.iter().position(|&c| c != b'0').unwrap_or(d.len()) };
    let a = a.get(strip(a)..).unwrap_or_default();
    let b = b.get(strip(b)..).unwrap_or_default();
    (a.len(), a) < (b.len(), b)
}

/// `Content-Range: bytes first-last/len` for a 206 (RFC 9110 §14.4). `range` is half-open and
/// non-empty (as in [`Ranges`]).
pub fn content_range(range: &Range<u64>, len: u64) -> HeaderValue {
    let mut buf = BytesMut::with_capacity(6 + 3 * 20 + 2);
    put_content_range(&mut buf, range, len);
    HeaderValue::from_maybe_shared(buf.freeze())
        .expect("`bytes `, digits, `-` and `/` are visible ASCII")
}

/// `Content-Range: bytes */len` for a 416 (RFC 9110 §14.4 `unsatisfied-range`, §15.5.17).
pub fn unsatisfied_content_range(len: u64) -> HeaderValue {
    let mut buf = BytesMut::with_capacity(8 + 20);
    buf.put_slice(b"bytes */");
    buf.put_slice(itoa::Buffer::new().format(len).as_bytes());
    HeaderValue::from_maybe_shared(buf.freeze()).expect("`bytes */` and digits are visible ASCII")
}

fn put_content_range(buf: &mut BytesMut, range: &Range<u64>, len: u64) {
    debug_assert!(
        range.start < range.end,
        "an empty range has no Content-Range"
    );
    let mut digits = itoa::Buffer::new();
    buf.put_slice(b"bytes ");
    buf.put_slice(digits.format(range.start).as_bytes());
    buf.put_u8(b'-');
    // `last-pos` is inclusive (RFC 9110 §14.4).
    let last = range.end.saturating_sub(1).max(range.start);
    buf.put_slice(digits.format(last).as_bytes());
    buf.put_u8(b'/');
    buf.put_slice(digits.format(len).as_bytes());
}

/// One piece of a `multipart/byteranges` body, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes to write as they are: a part's delimiter and headers, or the closing delimiter.
    Bytes(Bytes),
    /// A segment of the file to send (sendfile/splice or a read).
    File(Range<u64>),
}

/// The layout of a `multipart/byteranges` response body (RFC 9110 §14.6), computed before any
/// byte is sent so that `Content-Length` is known:
///
/// ```text
/// --B CRLF Content-Type: T CRLF Content-Range: bytes a-b/LEN CRLF CRLF <file a..=b>
/// CRLF --B CRLF ... <file c..=d>
/// CRLF --B-- CRLF
/// ```
///
/// The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1), so a part's bytes
/// end where the file segment ends. There is no preamble or epilogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartPlan {
    content_type: HeaderValue,
    content_length: u64,
    pieces: Vec<Piece>,
}

impl MultipartPlan {
    /// The plan for `ranges` (from [`Resolved::Partial`] with two or more ranges) of a file of
    /// `len` bytes whose own type is `content_type`. All the part headers live in one buffer,
    /// so this allocates twice whatever the number of parts.
    pub fn new(ranges: &[Range<u64>], len: u64, content_type: &HeaderValue) -> MultipartPlan {
        let boundary = next_boundary();
        MultipartPlan::with_boundary(ranges, len, content_type, &boundary)
    }

    fn with_boundary(
        ranges: &[Range<u64>],
        len: u64,
        content_type: &HeaderValue,
        boundary: &[u8],
    ) -> MultipartPlan {
        const PART_FIXED: usize =
            "\r\n--\r\nContent-Type: \r\nContent-Range: bytes -/\r\n\r\n".len() + 3 * 20;
        let mut heads = BytesMut::with_capacity(
            ranges.len() * (PART_FIXED + boundary.len() + content_type.len()) + boundary.len() + 8,
        );
        let mut ends = Vec::with_capacity(ranges.len());
        for (i, range) in ranges.iter().enumerate() {
            if i > 0 {
                heads.put_slice(b"\r\n");
            }
            heads.put_slice(b"--");
            heads.put_slice(boundary);
            heads.put_slice(b"\r\nContent-Type: ");
            heads.put_slice(content_type.as_bytes());
            heads.put_slice(b"\r\nContent-Range: ");
            put_content_range(&mut heads, range, len);
            heads.put_slice(b"\r\n\r\n");
            ends.push(heads.len());
        }
        heads.put_slice(b"\r\n--");
        heads.put_slice(boundary);
        heads.put_slice(b"--\r\n");
        let heads = heads.freeze();

        let mut pieces = Vec::with_capacity(2 * ranges.len() + 1);
        let mut start = 0usize;
        for (range, &end) in ranges.iter().zip(&ends) {
            pieces.push(Piece::Bytes(heads.slice(start..end)));
            pieces.push(Piece::File(range.clone()));
            start = end;
        }
        pieces.push(Piece::Bytes(heads.slice(start..)));

        let file_bytes: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        let mut content_type_value = BytesMut::with_capacity(32 + boundary.len());
        content_type_value.put_slice(b"multipart/byteranges; boundary=");
        content_type_value.put_slice(boundary);
        MultipartPlan {
            content_type: HeaderValue::from_maybe_shared(content_type_value.freeze())
                .expect("the boundary is hex digits"),
            content_length: heads.len() as u64 + file_bytes,
            pieces,
        }
    }

    /// `Content-Type: multipart/byteranges; boundary=...` for the response.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The exact body length, for `Content-Length`.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    pub fn into_pieces(self) -> Vec<Piece> {
        self.pieces
    }
}

/// Hex characters in a boundary: 128 bits, well within RFC 2046's 70-character limit.
const BOUNDARY_LEN: usize = 32;

thread_local! {
    /// Two secret SipHash keys per thread (std seeds them from the OS) and a counter: each
    /// boundary is the keyed hash of the next count, so boundaries never repeat within a thread,
    /// and one seen in a response says nothing about the next (a file crafted to contain a
    /// future boundary cannot be written). Per thread, so shards share nothing.
    static BOUNDARY_SOURCE: (RandomState, RandomState, Cell<u64>) =
        (RandomState::new(), RandomState::new(), Cell::new(0));
}

fn next_boundary() -> [u8; BOUNDARY_LEN] {
    let (high, low) = BOUNDARY_SOURCE.with(|(a, b, counter)| {
        let n = counter.get();
        counter.set(n.wrapping_add(1));
        (a.hash_one(n), b.hash_one(n))
    });
    let bits = (u128::from(high) << 64) | u128::from(low);
    let mut out = [0u8; BOUNDARY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        let nibble = (bits >> (4 * (BOUNDARY_LEN - 1 - i))) & 0xf;
        *byte = b"0123456789abcdef"[nibble as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(header: &str, len: u64) -> Resolved {
        parse_range(header.as_bytes()).map_or(Resolved::Full, |spec| spec.resolve(len, 16))
    }

    fn partial(ranges: &[Range<u64>]) -> Resolved {
        let repr = match ranges {
            [one] => Repr::One(one.clone()),
            many => Repr::Many(many.to_vec()),
        };
        Resolved::Partial(Ranges(repr))
    }

    fn one(range: Range<u64>) -> Resolved {
        Resolved::Partial(Ranges(Repr::One(range)))
    }

    fn specs(header: &str) -> Vec<ByteRangeSpec> {
        parse_range(header.as_bytes()).unwrap().specs().collect()
    }

    // Parsing (RFC 9110 §14.1.1).

    #[test]
    fn parses_the_three_forms_of_range_spec() {
        assert_eq!(
            specs("bytes=0-499,500-,-200"),
            [
                ByteRangeSpec::Int {
                    first: 0,
                    last: Some(499)
                },
                ByteRangeSpec::Int {
                    first: 500,
                    last: None
                },
                ByteRangeSpec::Suffix(200),
            ]
        );
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(specs("BYTES=1-2").len(), 1);
        assert_eq!(specs("Bytes=1-2").len(), 1);
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse_range(b"items=0-5"), Err(RangeError::UnsupportedUnit));
        assert_eq!(parse_range(b"byte=0-5"), Err(RangeError::UnsupportedUnit));
    }

    #[test]
    fn tolerates_ows_around_elements_and_after_the_equals_sign() {
        assert_eq!(
            parse_range(b" bytes= 0-1 ,\t2-3 , -4 ").map(|s| s.count()),
            Ok(3)
        );
    }

    #[test]
    fn skips_empty_list_elements() {
        assert_eq!(parse_range(b"bytes=,0-1,,2-3,").map(|s| s.count()), Ok(2));
    }

    #[test]
    fn rejects_syntax_errors_so_the_header_is_ignored() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "=0-1",
            "bytes =0-1",
            "by tes=0-1",
            "bytes=0",
            "bytes=-",
            "bytes=a-b",
            "bytes=0-1-2",
            "bytes=0 -1",
            "bytes=0- 1",
            "bytes=- 1",
            "bytes=+1-2",
            "bytes=0x10-20",
            "bytes=1-2;",
            "bytes=0-1,x",
            "bytes=--1",
        ] {
            assert_eq!(
                parse_range(bad.as_bytes()),
                Err(RangeError::Malformed),
                "{bad:?}"
            );
            assert_eq!(resolve(bad, 100), Resolved::Full, "{bad:?}");
        }
    }

    #[test]
    fn backwards_int_range_is_invalid() {
        assert_eq!(parse_range(b"bytes=5-4"), Err(RangeError::Malformed));
        assert_eq!(parse_range(b"bytes=0-1,5-4"), Err(RangeError::Malformed));
        assert_eq!(
            parse_range(b"bytes=99999999999999999999999-9999999999999999999999"),
            Err(RangeError::Malformed)
        );
    }

    #[test]
    fn huge_numerals_saturate_instead_of_failing() {
        // RFC 9110 §14.1.2: MUST anticipate large numerals.
        assert_eq!(
            resolve("bytes=0-99999999999999999999999999", 10),
            one(0..10)
        );
        assert_eq!(resolve("bytes=-99999999999999999999999999", 10), one(0..10));
        assert_eq!(
            resolve("bytes=99999999999999999999999999-", 10),
            Resolved::Unsatisfiable
        );
        assert_eq!(
            specs("bytes=18446744073709551616-18446744073709551617"),
            [ByteRangeSpec::Int {
                first: u64::MAX,
                last: Some(u64::MAX)
            }]
        );
    }

    // Resolving (RFC 9110 §14.1.2).

    #[test]
    fn int_range_is_inclusive() {
        assert_eq!(resolve("bytes=0-0", 10), one(0..1));
        assert_eq!(resolve("bytes=2-5", 10), one(2..6));
    }

    #[test]
    fn last_pos_is_clamped_to_the_end() {
        assert_eq!(resolve("bytes=5-100", 10), one(5..10));
        assert_eq!(resolve("bytes=5-", 10), one(5..10));
    }

    #[test]
    fn whole_file_range_is_still_a_206() {
        assert_eq!(resolve("bytes=0-", 10), one(0..10));
    }

    #[test]
    fn suffix_longer_than_the_file_is_the_whole_file() {
        assert_eq!(resolve("bytes=-3", 10), one(7..10));
        assert_eq!(resolve("bytes=-30", 10), one(0..10));
    }

    #[test]
    fn first_pos_at_or_past_the_end_is_unsatisfiable() {
        assert_eq!(resolve("bytes=10-", 10), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=10-20", 10), Resolved::Unsatisfiable);
    }

    #[test]
    fn zero_suffix_is_unsatisfiable() {
        assert_eq!(resolve("bytes=-0", 10), Resolved::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_specs_are_dropped_when_another_is_satisfiable() {
        assert_eq!(resolve("bytes=50-60,-0,2-3", 10), one(2..4));
    }

    #[test]
    fn zero_length_file_int_ranges_are_unsatisfiable() {
        assert_eq!(resolve("bytes=0-", 0), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=0-0", 0), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=-0", 0), Resolved::Unsatisfiable);
    }

    #[test]
    fn zero_length_file_nonzero_suffix_is_the_whole_empty_file() {
        assert_eq!(resolve("bytes=-5", 0), Resolved::Full);
        assert_eq!(resolve("bytes=0-,-5", 0), Resolved::Full);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_coalesced() {
        assert_eq!(resolve("bytes=0-9,5-19", 1000), one(0..20));
        assert_eq!(resolve("bytes=0-9,10-19", 1000), one(0..20));
        assert_eq!(resolve("bytes=0-99,10-19", 1000), one(0..100));
    }

    #[test]
    fn ranges_closer_than_the_gap_are_coalesced() {
        // Gap of 79 bytes (10..89) merges; a gap of 80 (10..90) does not.
        assert_eq!(resolve("bytes=0-9,89-99", 1000), one(0..100));
        assert_eq!(resolve("bytes=0-9,90-99", 1000), partial(&[0..10, 90..100]));
    }

    #[test]
    fn out_of_order_ranges_are_sorted() {
        assert_eq!(
            resolve("bytes=500-599,0-99,-100", 1000),
            partial(&[0..100, 500..600, 900..1000])
        );
    }

    #[test]
    fn many_tiny_ranges_collapse() {
        let header = format!(
            "bytes={}",
            (0..2000)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(resolve(&header, 10_000), one(0..2000));
        let overlapping = format!("bytes={}", vec!["0-"; 500].join(","));
        assert_eq!(resolve(&overlapping, 10_000), one(0..10_000));
    }

    #[test]
    fn more_than_max_ranges_after_coalescing_is_ignored() {
        let header = "bytes=0-0,100-100,200-200";
        let spec = parse_range(header.as_bytes()).unwrap();
        assert_eq!(spec.resolve(1000, 2), Resolved::Full);
        assert_eq!(spec.resolve(1000, 3), partial(&[0..1, 100..101, 200..201]));
        // Coalescing happens first: these five are one range.
        let spec = parse_range(b"bytes=0-0,1-1,2-2,3-3,4-4").unwrap();
        assert_eq!(spec.resolve(1000, 1), one(0..5));
    }

    #[test]
    fn max_ranges_zero_disables_ranges() {
        let spec = parse_range(b"bytes=0-0").unwrap();
        assert_eq!(spec.resolve(1000, 0), Resolved::Full);
        assert_eq!(
            parse_range(b"bytes=5000-").unwrap().resolve(10, 0),
            Resolved::Full
        );
    }

    #[test]
    fn ranges_accessors() {
        let Resolved::Partial(ranges) = resolve("bytes=0-9,100-109", 1000) else {
            panic!("expected a partial")
        };
        assert_eq!(ranges.single(), None);
        assert_eq!(ranges.total_len(), 20);
        let Resolved::Partial(one) = resolve("bytes=-5", 1000) else {
            panic!("expected a partial")
        };
        assert_eq!(one.single(), Some(&(995..1000)));
        assert_eq!(one.as_slice(), std::slice::from_ref(&(995..1000)));
    }

    // Content-Range (RFC 9110 §14.4).

    #[test]
    fn content_range_is_inclusive_with_the_complete_length() {
        assert_eq!(content_range(&(0..1), 10), "bytes 0-0/10");
        assert_eq!(content_range(&(5..10), 10), "bytes 5-9/10");
        assert_eq!(
            content_range(&(0..u64::MAX), u64::MAX),
            "bytes 0-18446744073709551614/18446744073709551615"
        );
    }

    #[test]
    fn unsatisfied_content_range_states_the_length() {
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
        assert_eq!(unsatisfied_content_range(1234), "bytes */1234");
    }

    // multipart/byteranges (RFC 9110 §14.6).

    fn fake_file(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(131) >> 3) as u8).collect()
    }

    fn render(plan: &MultipartPlan, file: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for piece in plan.pieces() {
            match piece {
                Piece::Bytes(bytes) => body.extend_from_slice(bytes),
                Piece::File(range) => {
                    body.extend_from_slice(&file[range.start as usize..range.end as usize])
                }
            }
        }
        body
    }

    /// A part's header lines and content.
    type Part = (Vec<String>, Vec<u8>);

    /// A strict multipart reader written from RFC 2046 §5.1.1, independent of the plan's code:
    /// it finds each delimiter by searching for `CRLF--boundary`, and returns every part's
    /// header lines and content.
    fn parse_multipart(body: &[u8], boundary: &[u8]) -> Result<Vec<Part>, String> {
        fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
            hay.windows(needle.len()).position(|w| w == needle)
        }
        let mut first = b"--".to_vec();
        first.extend_from_slice(boundary);
        first.extend_from_slice(b"\r\n");
        let mut rest = body
            .strip_prefix(first.as_slice())
            .ok_or("body does not start with the first delimiter")?;
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        let mut parts = Vec::new();
        loop {
            let head_end = find(rest, b"\r\n\r\n").ok_or("part without a blank line")?;
            let headers = std::str::from_utf8(&rest[..head_end])
                .map_err(|e| e.to_string())?
                .split("\r\n")
                .map(str::to_owned)
                .collect::<Vec<_>>();
            rest = &rest[head_end + 4..];
            let end = find(rest, &delimiter).ok_or("part without a closing delimiter")?;
            parts.push((headers, rest[..end].to_vec()));
            rest = &rest[end + delimiter.len()..];
            if let Some(after) = rest.strip_prefix(b"--") {
                if after != b"\r\n" {
                    return Err(format!("bytes after the close delimiter: {after:?}"));
                }
                return Ok(parts);
            }
            rest = rest
                .strip_prefix(b"\r\n")
                .ok_or("delimiter not followed by CRLF")?;
        }
    }

    fn boundary_of(plan: &MultipartPlan) -> Vec<u8> {
        plan.content_type()
            .as_bytes()
            .strip_prefix(b"multipart/byteranges; boundary=")
            .expect("content type names the boundary")
            .to_vec()
    }

    fn check_multipart(ranges: &[Range<u64>], len: u64) -> Result<(), TestCaseError> {
        let file = fake_file(len);
        let ct = HeaderValue::from_static("text/plain; charset=utf-8");
        let plan = MultipartPlan::new(ranges, len, &ct);
        let body = render(&plan, &file);
        prop_assert_eq!(plan.content_length(), body.len() as u64);
        let parts = parse_multipart(&body, &boundary_of(&plan)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parts.len(), ranges.len());
        for ((headers, content), range) in parts.iter().zip(ranges) {
            prop_assert_eq!(
                headers,
                &vec![
                    "Content-Type: text/plain; charset=utf-8".to_owned(),
                    format!(
                        "Content-Range: bytes {}-{}/{}",
                        range.start,
                        range.end - 1,
                        len
                    ),
                ]
            );
            prop_assert_eq!(
                &content[..],
                &file[range.start as usize..range.end as usize]
            );
        }
        Ok(())
    }

    #[test]
    fn multipart_body_splits_back_into_the_ranges() {
        check_multipart(&[0..10, 100..150, 900..1000], 1000).unwrap();
    }

    #[test]
    fn multipart_pieces_alternate_heads_and_file_segments() {
        let ct = HeaderValue::from_static("image/png");
        let plan = MultipartPlan::with_boundary(&[0..10, 100..150], 200, &ct, b"XYZ");
        let expected = [
            Piece::Bytes(Bytes::from_static(
                b"--XYZ\r\nContent-Type: image/png\r\nContent-Range: bytes 0-9/200\r\n\r\n",
            )),
            Piece::File(0..10),
            Piece::Bytes(Bytes::from_static(
                b"\r\n--XYZ\r\nContent-Type: image/png\r\nContent-Range: bytes 100-149/200\r\n\r\n",
            )),
            Piece::File(100..150),
            Piece::Bytes(Bytes::from_static(b"\r\n--XYZ--\r\n")),
        ];
        assert_eq!(plan.pieces(), &expected);
        assert_eq!(plan.content_type(), "multipart/byteranges; boundary=XYZ");
        let heads: usize = expected
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len(),
                Piece::File(_) => 0,
            })
            .sum();
        assert_eq!(plan.content_length(), heads as u64 + 60);
        assert_eq!(plan.clone().into_pieces(), expected);
    }

    #[test]
    fn multipart_boundaries_are_random_hex_and_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let b = next_boundary();
            assert!(b.iter().all(u8::is_ascii_hexdigit));
            assert!(seen.insert(b));
        }
        let other_thread = std::thread::spawn(next_boundary).join().unwrap();
        assert!(!seen.contains(&other_thread));
    }

    fn spec_strategy() -> impl Strategy<Value = String> {
        let pos = prop_oneof![0u64..300, 0u64..5000, Just(u64::MAX), any::<u64>()];
        prop_oneof![
            (pos.clone(), 0u64..500).prop_map(|(a, n)| format!("{a}-{}", a.saturating_add(n))),
            pos.clone().prop_map(|a| format!("{a}-")),
            pos.prop_map(|n| format!("-{n}")),
            "[0-9 ,=-]{0,6}",
        ]
    }

    fn header_strategy() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec((spec_strategy(), "[ \t]{0,1}"), 1..40),
            prop_oneof![
                Just("bytes="),
                Just("BYTES= "),
                Just("items="),
                Just("bytes")
            ],
        )
            .prop_map(|(specs, unit)| {
                let list: Vec<String> = specs
                    .into_iter()
                    .map(|(s, ws)| format!("{ws}{s}"))
                    .collect();
                format!("{unit}{}", list.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn resolve_keeps_its_invariants(
            header in header_strategy(),
            len in prop_oneof![0u64..5000, any::<u64>()],
            max_ranges in 0usize..20,
        ) {
            let Ok(spec) = parse_range(header.as_bytes()) else {
                return Ok(());
            };
            let Resolved::Partial(ranges) = spec.resolve(len, max_ranges) else {
                return Ok(());
            };
            let ranges = ranges.as_slice();
            prop_assert!(!ranges.is_empty() && ranges.len() <= max_ranges);
            for r in ranges {
                prop_assert!(r.start < r.end && r.end <= len, "{:?} of {}", r, len);
            }
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].end + COALESCE_GAP <= pair[1].start, "{:?}", pair);
            }
            if len <= 5000 && ranges.len() >= 2 {
                check_multipart(ranges, len)?;
            }
        }

        #[test]
        fn resolve_covers_exactly_the_requested_bytes(
            header in header_strategy(),
            len in 0u64..3000,
        ) {
            // Every requested byte is sent, and every byte sent was requested or lies in a
            // gap shorter than COALESCE_GAP between requested bytes.
            let Ok(spec) = parse_range(header.as_bytes()) else {
                return Ok(());
            };
            let mut wanted = vec![false; len as usize];
            for s in spec.specs() {
                if let Satisfiable::Range(r) = satisfiable_range(s, len) {
                    wanted[r.start as usize..r.end as usize].fill(true);
                }
            }
            match spec.resolve(len, usize::MAX) {
                Resolved::Partial(ranges) => {
                    let mut sent = vec![false; len as usize];
                    for r in ranges.as_slice() {
                        sent[r.start as usize..r.end as usize].fill(true);
                        prop_assert!(wanted[r.start as usize] && wanted[r.end as usize - 1]);
                    }
                    for (i, (&w, &s)) in wanted.iter().zip(&sent).enumerate() {
                        prop_assert!(!w || s, "byte {} requested but not sent", i);
                    }
                }
                Resolved::Unsatisfiable => prop_assert!(!wanted.contains(&true)),
                Resolved::Full => prop_assert!(len == 0),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            header in proptest::collection::vec(any::<u8>(), 0..80),
            len in any::<u64>(),
        ) {
            if let Ok(spec) = parse_range(&header) {
                let _ = spec.resolve(len, 8);
            }
        }

        #[test]
        fn multipart_length_is_exact_for_any_disjoint_ranges(
            cuts in proptest::collection::btree_set(0u64..4000, 2..20),
            len in 4000u64..4100,
        ) {
            let cuts: Vec<u64> = cuts.into_iter().collect();
            let ranges: Vec<Range<u64>> = cuts.chunks_exact(2).map(|c| c[0]..c[1]).collect();
            check_multipart(&ranges, len)?;
        }
    }
}
