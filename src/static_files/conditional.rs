//! Validators and conditional requests for static files (RFC 9110 §8.8, §13).
//!
//! Owns: the validators of a file ([`Validators`]: a strong `ETag` and `Last-Modified`, both
//! formatted once when the file's metadata is cached), the evaluation of `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in RFC 9110 §13.2.2's order
//! ([`evaluate`]), and `If-Range` ([`if_range_allows`]). Sans-IO: it never stats a file nor reads
//! a clock; the caller passes metadata and header values. It does not build responses: a 304
//! must still carry the headers a 200 would have had (RFC 9110 §15.4.5) and that is the
//! handler's job, as is evaluating preconditions only when the response without them would have
//! been 2xx or 412 (RFC 9110 §13.2.1).
//!
//! The common path (no conditional header) allocates nothing and parses nothing: every field is
//! looked at only when present.

use crate::http1::trim_ows;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, StatusCode};

/// 9999-12-31T23:59:59Z, the last second an IMF-fixdate can hold (four-digit year, RFC 9110
/// §5.6.7); `httpdate` panics past it, so later mtimes are clamped here.
const MAX_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// An entity tag (RFC 9110 §8.8.3) as sent in `ETag`: the quoted opaque-tag, with `W/` when weak.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ETag {
    header: HeaderValue,
    weak: bool,
}

impl ETag {
    /// The strong tag of a file version: `"<size>-<mtime ns>-<inode>"` in hex. Strong (RFC 9110
    /// §8.8.1) because any write that can change the bytes changes the size or the mtime, and a
    /// file replaced by rename (how deploys update files) changes the inode even when size and
    /// mtime are copied along. Nanoseconds, not seconds, so two writes in one second differ.
    pub fn for_file(size: u64, mtime: SystemTime, ino: u64) -> ETag {
        let mtime = match mtime.duration_since(UNIX_EPOCH) {
            Ok(after) => format!("{:x}", after.as_nanos()),
            // Before 1970: a distinct spelling so it cannot equal a post-epoch time.
            Err(before) => format!("n{:x}", before.duration().as_nanos()),
        };
        let value = format!("\"{size:x}-{mtime}-{ino:x}\"");
        ETag {
            header: HeaderValue::from_str(&value)
                .expect("quotes, hex digits, 'n' and '-' are visible ASCII"),
            weak: false,
        }
    }

    /// The `ETag` field value, quotes included.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// Whether the tag is weak (`W/"..."`, RFC 9110 §8.8.3).
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// This tag with `suffix` appended inside the quotes (`"abc"` → `"abc-br"`), for a variant
    /// that is a different representation of the same file, such as a content-coded one: a
    /// strong tag must differ between representations (RFC 9110 §8.8.3). `None` if `suffix`
    /// holds a byte an opaque-tag cannot (RFC 9110 §8.8.3: `etagc`).
    pub fn with_suffix(&self, suffix: &str) -> Option<ETag> {
        if !suffix.bytes().all(is_etagc) {
            return None;
        }
        let bytes = self.header.as_bytes();
        let (prefix, opaque) = if self.weak {
            bytes.split_at_checked(2)?
        } else {
            (&bytes[..0], bytes)
        };
        let inner = opaque.get(1..opaque.len().checked_sub(1)?)?;
        let mut value = Vec::with_capacity(bytes.len() + suffix.len());
        value.extend_from_slice(prefix);
        value.push(b'"');
        value.extend_from_slice(inner);
        value.extend_from_slice(suffix.as_bytes());
        value.push(b'"');
        Some(ETag {
            header: HeaderValue::from_bytes(&value).ok()?,
            weak: self.weak,
        })
    }

    /// The opaque-tag without its quotes (and without `W/`).
    fn opaque(&self) -> &[u8] {
        let bytes = self.header.as_bytes();
        let quoted = if self.weak {
            bytes.get(2..).unwrap_or_default()
        } else {
            bytes
        };
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
    }
}

/// The validators of one file version, computed once when its metadata is cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    etag: ETag,
    /// The mtime truncated to the second and clamped to what an HTTP-date can hold: the value
    /// the `Last-Modified` header states, and so the one every date comparison uses.
    last_modified: SystemTime,
    last_modified_secs: u64,
    last_modified_header: HeaderValue,
}

impl Validators {
    /// The validators of a file of `size` bytes, modified at `mtime`, with inode number `ino`.
    pub fn new(size: u64, mtime: SystemTime, ino: u64) -> Validators {
        // RFC 9110 §8.8.2: Last-Modified is an HTTP-date, one-second precision; a pre-1970 mtime
        // cannot be written as one, so it is stated as the epoch.
        let secs = mtime
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_HTTP_DATE_SECS);
        let last_modified = UNIX_EPOCH + Duration::from_secs(secs);
        let last_modified_header = HeaderValue::from_str(&httpdate::fmt_http_date(last_modified))
            .expect("an IMF-fixdate is visible ASCII");
        Validators {
            etag: ETag::for_file(size, mtime, ino),
            last_modified,
            last_modified_secs: secs,
            last_modified_header,
        }
    }

    /// The validators of the file `metadata` describes (size, mtime with nanoseconds, inode).
    pub fn from_metadata(metadata: &std::fs::Metadata) -> Validators {
        // `MetadataExt` rather than `Metadata::modified()`: no `Result` to handle, and the
        // nanoseconds are the kernel's own.
        // Checked arithmetic: the values come from the filesystem, which may hold any i64.
        let secs = Duration::from_secs(metadata.mtime().unsigned_abs());
        let nanos = Duration::from_nanos(u64::try_from(metadata.mtime_nsec()).unwrap_or(0));
        let whole = if metadata.mtime() >= 0 {
            UNIX_EPOCH.checked_add(secs)
        } else {
            UNIX_EPOCH.checked_sub(secs)
        };
        let mtime = whole
            .and_then(|t| t.checked_add(nanos))
            .unwrap_or(UNIX_EPOCH);
        Validators::new(metadata.len(), mtime, metadata.ino())
    }

    /// These validators with the entity tag of a variant (see [`ETag::with_suffix`]); the dates
    /// stay, since the variant changes exactly when the file does.
    pub fn with_etag_suffix(&self, suffix: &str) -> Option<Validators> {
        Some(Validators {
            etag: self.etag.with_suffix(suffix)?,
            ..self.clone()
        })
    }

    pub fn etag(&self) -> &ETag {
        &self.etag
    }

    /// The `ETag` field value.
    pub fn etag_header(&self) -> &HeaderValue {
        self.etag.header_value()
    }

    /// The `Last-Modified` field value (IMF-fixdate, RFC 9110 §5.6.7).
    pub fn last_modified_header(&self) -> &HeaderValue {
        &self.last_modified_header
    }

    /// The `Last-Modified` to send in a response originated at `now`. RFC 9110 §8.8.2.1: an
    /// origin with a clock MUST NOT send a Last-Modified later than the message's Date, and
    /// MUST replace a future modification time (a file touched with a date ahead of the clock)
    /// with the origination date.
    pub fn last_modified_header_at(&self, now: SystemTime) -> HeaderValue {
        if self.last_modified <= now {
            return self.last_modified_header.clone();
        }
        HeaderValue::from_str(&httpdate::fmt_http_date(now))
            .expect("an IMF-fixdate is visible ASCII")
    }

    /// The time `Last-Modified` states: the mtime truncated to the second. RFC 9110 §8.8.2.1:
    /// an origin SHOULD NOT send a Last-Modified later than its `Date`; comparing this with the
    /// clock (a file touched with a future mtime) is the caller's.
    pub fn last_modified(&self) -> SystemTime {
        self.last_modified
    }
}

/// The outcome of a request's preconditions (RFC 9110 §13.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Every precondition holds (or none was sent): perform the method.
    Proceed,
    /// `If-None-Match` or `If-Modified-Since` failed on GET/HEAD: 304.
    NotModified,
    /// `If-Match` or `If-Unmodified-Since` failed, or `If-None-Match` failed on another method: 412.
    PreconditionFailed,
}

impl Precondition {
    /// The status that answers the request instead of performing it, if any.
    pub fn status(self) -> Option<StatusCode> {
        match self {
            Precondition::Proceed => None,
            Precondition::NotModified => Some(StatusCode::NOT_MODIFIED),
            Precondition::PreconditionFailed => Some(StatusCode::PRECONDITION_FAILED),
        }
    }
}

/// Evaluates the preconditions of a request for the representation `validators` describe, in the
/// order of RFC 9110 §13.2.2. `if_match` and `if_none_match` are every line of the field
/// (`Headers::get_all`), since both are lists that may be split across lines (RFC 9110 §5.3);
/// the dates are the first line (`Headers::get`). `If-Range` is separate: see
/// [`if_range_allows`], step 5 of the same order, once this returns [`Precondition::Proceed`].
pub fn evaluate<'a>(
    method: &Method,
    if_match: impl IntoIterator<Item = &'a [u8]>,
    if_unmodified_since: Option<&[u8]>,
    if_none_match: impl IntoIterator<Item = &'a [u8]>,
    if_modified_since: Option<&[u8]>,
    validators: &Validators,
) -> Precondition {
    // Step 1 (RFC 9110 §13.2.2): If-Match, strong comparison (§13.1.1); false → 412.
    // Step 2: otherwise If-Unmodified-Since (§13.1.4 MUST ignore it when If-Match is present).
    match list_matches(if_match, validators.etag(), Comparison::Strong) {
        Some(false) => return Precondition::PreconditionFailed,
        Some(true) => {}
        None => {
            if let Some(date) = if_unmodified_since.and_then(parse_http_date_secs) {
                // §13.1.4: true when the last modification is earlier than or equal to the date.
                if validators.last_modified_secs > date {
                    return Precondition::PreconditionFailed;
                }
            }
        }
    }

    let safe = *method == Method::GET || *method == Method::HEAD;
    // Step 3: If-None-Match, weak comparison (§13.1.2); false → 304 on GET/HEAD, else 412.
    // Step 4: otherwise If-Modified-Since, on GET/HEAD only (§13.1.3 MUST ignore it when
    // If-None-Match is present; SHOULD ignore it for other methods).
    match list_matches(if_none_match, validators.etag(), Comparison::Weak) {
        Some(true) if safe => Precondition::NotModified,
        Some(true) => Precondition::PreconditionFailed,
        Some(false) => Precondition::Proceed,
        None => match if_modified_since.and_then(parse_http_date_secs) {
            // §13.1.3: false (not modified) when the last modification is earlier than or equal
            // to the date. A date in the future is not refused: RFC 9110 dropped RFC 2616's
            // "later than the server's time is invalid", and such a date only hurts its sender.
            Some(date) if safe && validators.last_modified_secs <= date => {
                Precondition::NotModified
            }
            _ => Precondition::Proceed,
        },
    }
}

/// Whether a Range request may be served as ranges (RFC 9110 §13.1.5): `true` when there is no
/// `If-Range`, when it holds an entity tag that strongly matches (a weak tag never does), or
/// when it holds an HTTP-date exactly equal to `Last-Modified`. Anything else, including a value
/// that is neither, is `false`: ignore `Range` and send the whole representation (200). The
/// caller evaluates it only when `Range` is present (§13.1.5: MUST ignore it otherwise).
///
/// §13.1.5 also requires the date to be a strong validator (§8.8.2.2), which a server whose
/// files can be rewritten twice within a second cannot know for sure. The date is accepted on an
/// exact match, as nginx and Apache do, because every response from this server carries a strong
/// `ETag`, and §13.1.5 forbids a client holding an entity tag from sending a date instead.
pub fn if_range_allows(if_range: Option<&[u8]>, validators: &Validators) -> bool {
    let Some(value) = if_range else {
        return true;
    };
    let value = trim_ows(value);
    // §13.1.5: an entity-tag starts with `"` or `W/`, an HTTP-date with a day name, so the first
    // two bytes tell the forms apart.
    if value.first() == Some(&b'"') || value.starts_with(b"W/") {
        let mut tags = EntityTagList::new(value);
        return match (tags.next(), tags.next()) {
            (Some(ListElement::Tag { weak, opaque }), None) => {
                Comparison::Strong.matches(weak, opaque, validators.etag())
            }
            _ => false,
        };
    }
    parse_http_date_secs(value) == Some(validators.last_modified_secs)
}

/// RFC 9110 §8.8.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and their opaque-tags identical.
    Strong,
    /// Opaque-tags identical, either or both may be weak.
    Weak,
}

impl Comparison {
    fn matches(self, weak: bool, opaque: &[u8], current: &ETag) -> bool {
        if self == Comparison::Strong && (weak || current.is_weak()) {
            return false;
        }
        opaque == current.opaque()
    }
}

/// Whether any line of an `If-Match`/`If-None-Match` field matches `current`; `None` when the
/// field is absent. `*` matches any current representation (§13.1.1, §13.1.2), and the static
/// handler only evaluates preconditions for a file that exists. `*` counts only as a whole field
/// line: the grammar is `"*" / #entity-tag`, so a `*` inside a list is malformed, and malformed
/// elements never match (the list's other elements still may).
fn list_matches<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    current: &ETag,
    comparison: Comparison,
) -> Option<bool> {
    let mut present = false;
    for line in lines {
        present = true;
        let line = trim_ows(line);
        if line == b"*" {
            return Some(true);
        }
        // The usual revalidation echoes our own tag back alone: one comparison instead of a scan.
        if line == current.header.as_bytes()
            && (comparison == Comparison::Weak || !current.is_weak())
        {
            return Some(true);
        }
        let matched = EntityTagList::new(line).any(|element| match element {
            ListElement::Tag { weak, opaque } => comparison.matches(weak, opaque, current),
            ListElement::Malformed => false,
        });
        if matched {
            return Some(true);
        }
    }
    present.then_some(false)
}

/// One element of a `#entity-tag` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListElement<'a> {
    /// `opaque` is the opaque-tag without its quotes.
    Tag { weak: bool, opaque: &'a [u8] },
    /// Anything that is not `[W/]"etagc*"` followed by OWS and a comma or the end.
    Malformed,
}

/// The elements of an entity-tag list (RFC 9110 §8.8.3, §5.6.1): OWS around elements and empty
/// elements are skipped (§5.6.1.2: recipients MUST accept empty elements). Commas are valid
/// `etagc`, so elements are delimited by scanning each quoted tag, not by splitting on commas.
/// After a malformed element the scan resumes after the next comma.
struct EntityTagList<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> EntityTagList<'a> {
    fn new(bytes: &'a [u8]) -> EntityTagList<'a> {
        EntityTagList { bytes, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn malformed(&mut self) -> ListElement<'a> {
        self.pos = match memchr::memchr(b',', self.bytes.get(self.pos..).unwrap_or_default()) {
            Some(comma) => self.pos + comma + 1,
            None => self.bytes.len(),
        };
        ListElement::Malformed
    }

    fn element(&mut self) -> ListElement<'a> {
        // §8.8.3: `weak = %s"W/"`, case-sensitive.
        let weak = self
            .bytes
            .get(self.pos..)
            .unwrap_or_default()
            .starts_with(b"W/");
        if weak {
            self.pos += 2;
        }
        if self.peek() != Some(b'"') {
            return self.malformed();
        }
        let start = self.pos + 1;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| !is_etagc(b)) else {
            // No closing quote.
            return self.malformed();
        };
        if rest.get(len) != Some(&b'"') {
            return self.malformed();
        }
        self.pos = start + len + 1;
        self.skip_ows();
        match self.peek() {
            None => {}
            Some(b',') => self.pos += 1,
            Some(_) => return self.malformed(),
        }
        ListElement::Tag {
            weak,
            opaque: rest.get(..len).unwrap_or_default(),
        }
    }
}

impl<'a> Iterator for EntityTagList<'a> {
    type Item = ListElement<'a>;

    fn next(&mut self) -> Option<ListElement<'a>> {
        loop {
            self.skip_ows();
            match self.peek()? {
                b',' => self.pos += 1,
                _ => return Some(self.element()),
            }
        }
    }
}

/// RFC 9110 §8.8.3: `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Seconds since the epoch of an HTTP-date in any of the three formats recipients must accept
/// (RFC 9110 §5.6.7); `None` for anything else, including a list of dates, which §13.1.3 and
/// §13.1.4 say to ignore.
fn parse_http_date_secs(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim_ows(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2024-05-06T07:08:09.5Z.
    const MTIME_SECS: u64 = 1_714_979_289;
    const LM: &[u8] = b"Mon, 06 May 2024 07:08:09 GMT";
    const LM_MINUS_1: &[u8] = b"Mon, 06 May 2024 07:08:08 GMT";
    const LM_PLUS_1: &[u8] = b"Mon, 06 May 2024 07:08:10 GMT";

    fn validators() -> Validators {
        Validators::new(
            0x1234,
            UNIX_EPOCH + Duration::new(MTIME_SECS, 500_000_000),
            0xabc,
        )
    }

    fn tag() -> String {
        String::from_utf8(validators().etag_header().as_bytes().to_vec()).unwrap()
    }

    fn eval(
        method: Method,
        if_match: &[&[u8]],
        ius: Option<&[u8]>,
        if_none_match: &[&[u8]],
        ims: Option<&[u8]>,
    ) -> Precondition {
        evaluate(
            &method,
            if_match.iter().copied(),
            ius,
            if_none_match.iter().copied(),
            ims,
            &validators(),
        )
    }

    fn get_inm(value: &str) -> Precondition {
        eval(Method::GET, &[], None, &[value.as_bytes()], None)
    }

    fn put_im(value: &str) -> Precondition {
        eval(Method::PUT, &[value.as_bytes()], None, &[], None)
    }

    #[test]
    fn an_echoed_tag_matches_by_the_comparison_not_by_bytes_alone() {
        let strong = validators().etag().clone();
        let echoed = strong.header.as_bytes().to_vec();
        assert_eq!(
            list_matches([&echoed[..]], &strong, Comparison::Strong),
            Some(true)
        );
        let weak = ETag {
            header: HeaderValue::from_static("W/\"v1\""),
            weak: true,
        };
        // The client echoes a weak tag byte for byte: If-None-Match (weak) matches, If-Match
        // (strong) must not, yet a later `*` line still does.
        assert_eq!(
            list_matches([&b"W/\"v1\""[..]], &weak, Comparison::Weak),
            Some(true)
        );
        assert_eq!(
            list_matches([&b" W/\"v1\" "[..]], &weak, Comparison::Strong),
            Some(false)
        );
        assert_eq!(
            list_matches([&b"W/\"v1\""[..], b"*"], &weak, Comparison::Strong),
            Some(true)
        );
    }

    #[test]
    fn etag_is_strong_and_built_from_size_mtime_ns_and_inode() {
        let mtime_ns = u128::from(MTIME_SECS) * 1_000_000_000 + 500_000_000;
        assert_eq!(tag(), format!("\"1234-{mtime_ns:x}-abc\""));
        assert!(!validators().etag().is_weak());
    }

    #[test]
    fn etag_changes_with_sub_second_mtime_and_inode() {
        let a = validators();
        let b = Validators::new(0x1234, UNIX_EPOCH + Duration::new(MTIME_SECS, 1), 0xabc);
        let c = Validators::new(
            0x1234,
            UNIX_EPOCH + Duration::new(MTIME_SECS, 500_000_000),
            0xabd,
        );
        assert_ne!(a.etag(), b.etag());
        assert_ne!(a.etag(), c.etag());
        // Same second: Last-Modified cannot tell them apart, the ETag can.
        assert_eq!(a.last_modified_header(), b.last_modified_header());
    }

    #[test]
    fn a_future_mtime_is_stated_as_the_date_of_the_response() {
        let v = validators();
        let stated = UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
        // A clock at or past the mtime: the mtime.
        assert_eq!(v.last_modified_header_at(stated).as_bytes(), LM);
        assert_eq!(
            v.last_modified_header_at(stated + Duration::from_secs(9))
                .as_bytes(),
            LM
        );
        // A clock behind it: the response's own time.
        let now = stated - Duration::from_secs(3600);
        assert_eq!(
            v.last_modified_header_at(now).as_bytes(),
            httpdate::fmt_http_date(now).as_bytes()
        );
    }

    #[test]
    fn last_modified_is_imf_fixdate_truncated_to_the_second() {
        let v = validators();
        assert_eq!(v.last_modified_header().as_bytes(), LM);
        assert_eq!(
            v.last_modified(),
            UNIX_EPOCH + Duration::from_secs(MTIME_SECS)
        );
    }

    #[test]
    fn mtimes_outside_http_date_range_are_clamped_not_panicking() {
        let before = Validators::new(1, UNIX_EPOCH - Duration::from_secs(5), 1);
        assert_eq!(
            before.last_modified_header().as_bytes(),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert!(before.etag_header().as_bytes().starts_with(b"\"1-n"));
        let after = Validators::new(1, UNIX_EPOCH + Duration::from_secs(u64::MAX / 4), 1);
        assert_eq!(
            after.last_modified_header().as_bytes(),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn from_metadata_matches_new() {
        let path = std::env::temp_dir().join(format!("sfcond-{}", std::process::id()));
        std::fs::write(&path, b"hello").unwrap();
        let md = std::fs::metadata(&path).unwrap();
        let v = Validators::from_metadata(&md);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(v, Validators::new(5, md.modified().unwrap(), md.ino()));
    }

    #[test]
    fn etag_suffix_makes_a_distinct_strong_tag() {
        let v = validators().with_etag_suffix("-br").unwrap();
        assert_eq!(
            v.etag_header().as_bytes(),
            format!("{}-br\"", tag().trim_end_matches('"')).as_bytes()
        );
        assert_eq!(
            v.last_modified_header(),
            validators().last_modified_header()
        );
        assert!(validators().with_etag_suffix("a\"b").is_none());
        assert!(validators().with_etag_suffix("a b").is_none());
    }

    #[test]
    fn no_conditional_headers_proceed() {
        assert_eq!(
            eval(Method::GET, &[], None, &[], None),
            Precondition::Proceed
        );
    }

    #[test]
    fn precondition_maps_to_one_status() {
        assert_eq!(Precondition::Proceed.status(), None);
        assert_eq!(
            Precondition::NotModified.status(),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(
            Precondition::PreconditionFailed.status(),
            Some(StatusCode::PRECONDITION_FAILED)
        );
    }

    // §13.1.1 If-Match.

    #[test]
    fn if_match_strong_match_proceeds() {
        assert_eq!(put_im(&tag()), Precondition::Proceed);
    }

    #[test]
    fn if_match_mismatch_is_412() {
        assert_eq!(put_im("\"other\""), Precondition::PreconditionFailed);
        assert_eq!(
            eval(Method::GET, &[b"\"other\""], None, &[], None),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_match_uses_strong_comparison_so_weak_tags_fail() {
        assert_eq!(
            put_im(&format!("W/{}", tag())),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_match_star_matches_an_existing_file() {
        assert_eq!(put_im("*"), Precondition::Proceed);
        assert_eq!(put_im("  *\t"), Precondition::Proceed);
    }

    #[test]
    fn if_match_star_inside_a_list_is_malformed() {
        assert_eq!(put_im("*, \"x\""), Precondition::PreconditionFailed);
    }

    #[test]
    fn if_match_list_matches_any_member() {
        assert_eq!(
            put_im(&format!("\"a\", W/\"b\",{},\"c\"", tag())),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_multiple_lines_are_one_list() {
        let t = tag();
        assert_eq!(
            eval(Method::PUT, &[b"\"a\"", t.as_bytes()], None, &[], None),
            Precondition::Proceed
        );
        assert_eq!(
            eval(Method::PUT, &[b"\"a\"", b"\"b\""], None, &[], None),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_match_empty_value_matches_nothing() {
        assert_eq!(put_im(""), Precondition::PreconditionFailed);
        assert_eq!(put_im(" , ,"), Precondition::PreconditionFailed);
    }

    #[test]
    fn if_match_takes_precedence_over_if_unmodified_since() {
        let t = tag();
        // A failing If-Unmodified-Since is ignored when If-Match is present (§13.1.4).
        assert_eq!(
            eval(Method::PUT, &[t.as_bytes()], Some(LM_MINUS_1), &[], None),
            Precondition::Proceed
        );
    }

    // §13.1.4 If-Unmodified-Since.

    #[test]
    fn if_unmodified_since_at_or_after_last_modified_proceeds() {
        assert_eq!(
            eval(Method::PUT, &[], Some(LM), &[], None),
            Precondition::Proceed
        );
        assert_eq!(
            eval(Method::PUT, &[], Some(LM_PLUS_1), &[], None),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_unmodified_since_before_last_modified_is_412() {
        assert_eq!(
            eval(Method::GET, &[], Some(LM_MINUS_1), &[], None),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_unmodified_since_unparsable_or_list_is_ignored() {
        for bad in [
            &b"yesterday"[..],
            b"Mon, 06 May 2024 07:08:08 GMT, Mon, 06 May 2024 07:08:08 GMT",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(
                eval(Method::PUT, &[], Some(bad), &[], None),
                Precondition::Proceed
            );
        }
    }

    // §13.1.2 If-None-Match.

    #[test]
    fn if_none_match_match_on_get_or_head_is_304() {
        assert_eq!(get_inm(&tag()), Precondition::NotModified);
        assert_eq!(
            eval(Method::HEAD, &[], None, &[tag().as_bytes()], None),
            Precondition::NotModified
        );
    }

    #[test]
    fn if_none_match_match_on_other_methods_is_412() {
        assert_eq!(
            eval(Method::POST, &[], None, &[tag().as_bytes()], None),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert_eq!(get_inm(&format!("W/{}", tag())), Precondition::NotModified);
    }

    #[test]
    fn if_none_match_mismatch_proceeds() {
        assert_eq!(get_inm("\"nope\", W/\"nope\""), Precondition::Proceed);
    }

    #[test]
    fn if_none_match_star_matches_an_existing_file() {
        assert_eq!(get_inm("*"), Precondition::NotModified);
        assert_eq!(
            eval(Method::PUT, &[], None, &[b"*"], None),
            Precondition::PreconditionFailed
        );
    }

    #[test]
    fn if_none_match_lists_and_lines() {
        let t = tag();
        assert_eq!(
            get_inm(&format!(" \"a\" ,\t{t} , \"c\" ")),
            Precondition::NotModified
        );
        assert_eq!(
            eval(Method::GET, &[], None, &[b"\"a\"", t.as_bytes()], None),
            Precondition::NotModified
        );
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        // A mismatching If-None-Match proceeds even if If-Modified-Since would say 304 (§13.1.3).
        assert_eq!(
            eval(Method::GET, &[], None, &[b"\"other\""], Some(LM_PLUS_1)),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_failure_wins_over_if_none_match() {
        let t = tag();
        assert_eq!(
            eval(Method::GET, &[b"\"x\""], None, &[t.as_bytes()], None),
            Precondition::PreconditionFailed
        );
    }

    // Entity-tag list syntax (§8.8.3, §5.6.1).

    #[test]
    fn malformed_entity_tags_never_match() {
        let t = tag();
        let bare = t.trim_matches('"').to_string();
        for bad in [
            bare.clone(),                // unquoted
            format!("w/{t}"),            // `W/` is case-sensitive
            format!("W/ {t}"),           // no space after W/
            format!("\"{bare}"),         // unterminated
            format!("{t}x"),             // garbage after the tag
            format!("{t} {t}"),          // two tags without a comma
            format!("\"{bare} \""),      // space is not etagc
            format!("'{bare}'"),         // wrong quotes
            format!("\"{bare}\u{7f}\""), // DEL is not etagc
        ] {
            assert_eq!(get_inm(&bad), Precondition::Proceed, "{bad:?}");
            assert_eq!(put_im(&bad), Precondition::PreconditionFailed, "{bad:?}");
        }
    }

    #[test]
    fn valid_tags_after_a_malformed_element_still_match() {
        let t = tag();
        assert_eq!(get_inm(&format!("junk, {t}")), Precondition::NotModified);
        assert_eq!(get_inm(&format!("\"a b\", {t}")), Precondition::NotModified);
    }

    #[test]
    fn commas_inside_an_opaque_tag_do_not_split_it() {
        let list: Vec<_> = EntityTagList::new(b"\"a,b\", W/\"c\"").collect();
        assert_eq!(
            list,
            [
                ListElement::Tag {
                    weak: false,
                    opaque: b"a,b"
                },
                ListElement::Tag {
                    weak: true,
                    opaque: b"c"
                },
            ]
        );
    }

    #[test]
    fn empty_list_elements_and_whitespace_are_skipped() {
        let list: Vec<_> = EntityTagList::new(b" ,\t,\"a\" ,, \"\" ,").collect();
        assert_eq!(
            list,
            [
                ListElement::Tag {
                    weak: false,
                    opaque: b"a"
                },
                ListElement::Tag {
                    weak: false,
                    opaque: b""
                },
            ]
        );
    }

    // §13.1.3 If-Modified-Since.

    #[test]
    fn if_modified_since_at_or_after_last_modified_is_304() {
        assert_eq!(
            eval(Method::GET, &[], None, &[], Some(LM)),
            Precondition::NotModified
        );
        assert_eq!(
            eval(Method::HEAD, &[], None, &[], Some(LM_PLUS_1)),
            Precondition::NotModified
        );
    }

    #[test]
    fn if_modified_since_before_last_modified_proceeds() {
        assert_eq!(
            eval(Method::GET, &[], None, &[], Some(LM_MINUS_1)),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_modified_since_compares_at_one_second_precision() {
        // The file's mtime is 07:08:09.5; a client echoing Last-Modified (07:08:09) is current.
        assert_eq!(
            eval(Method::GET, &[], None, &[], Some(LM)),
            Precondition::NotModified
        );
    }

    #[test]
    fn if_modified_since_is_ignored_for_other_methods() {
        assert_eq!(
            eval(Method::POST, &[], None, &[], Some(LM_PLUS_1)),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_modified_since_unparsable_is_ignored() {
        for bad in [
            &b"not a date"[..],
            b"Mon, 06 May 2024 07:08:09 GMT, x",
            b"\xc3\xa9",
        ] {
            assert_eq!(
                eval(Method::GET, &[], None, &[], Some(bad)),
                Precondition::Proceed
            );
        }
    }

    #[test]
    fn if_modified_since_accepts_the_obsolete_date_formats() {
        // §5.6.7: recipients MUST accept rfc850-date and asctime-date.
        for date in [
            &b"Monday, 06-May-24 07:08:09 GMT"[..],
            b"Mon May  6 07:08:09 2024",
        ] {
            assert_eq!(
                eval(Method::GET, &[], None, &[], Some(date)),
                Precondition::NotModified
            );
        }
    }

    // §13.1.5 If-Range.

    #[test]
    fn if_range_absent_allows_ranges() {
        assert!(if_range_allows(None, &validators()));
    }

    #[test]
    fn if_range_strong_etag_match_allows_ranges() {
        assert!(if_range_allows(Some(tag().as_bytes()), &validators()));
        assert!(if_range_allows(
            Some(format!(" {} ", tag()).as_bytes()),
            &validators()
        ));
    }

    #[test]
    fn if_range_weak_etag_never_matches() {
        assert!(!if_range_allows(
            Some(format!("W/{}", tag()).as_bytes()),
            &validators()
        ));
    }

    #[test]
    fn if_range_other_etag_or_list_does_not_match() {
        let v = validators();
        assert!(!if_range_allows(Some(b"\"other\""), &v));
        assert!(!if_range_allows(
            Some(format!("{}, \"x\"", tag()).as_bytes()),
            &v
        ));
        assert!(!if_range_allows(Some(b"*"), &v));
    }

    #[test]
    fn if_range_date_must_equal_last_modified_exactly() {
        let v = validators();
        assert!(if_range_allows(Some(LM), &v));
        assert!(!if_range_allows(Some(LM_PLUS_1), &v));
        assert!(!if_range_allows(Some(LM_MINUS_1), &v));
    }

    #[test]
    fn if_range_garbage_sends_the_whole_representation() {
        let v = validators();
        for bad in [&b""[..], b"garbage", b"\"unterminated", b"\xff"] {
            assert!(!if_range_allows(Some(bad), &v), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_header_values_never_panic(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..64),
            c in proptest::collection::vec(any::<u8>(), 0..64),
            d in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let v = validators();
            for method in [Method::GET, Method::PUT] {
                evaluate(&method, [&a[..]], Some(&b[..]), [&c[..]], Some(&d[..]), &v);
            }
            if_range_allows(Some(&a), &v);
            let _ = EntityTagList::new(&c).count();
        }

        #[test]
        fn tag_lists_from_the_grammar_parse_back(
            tags in proptest::collection::vec(
                (any::<bool>(), "[!#-~]{0,8}", "[ \t]{0,2}", "[ \t]{0,2}"), 0..6),
        ) {
            let mut line = String::new();
            for (i, (weak, opaque, before, after)) in tags.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(before);
                if *weak {
                    line.push_str("W/");
                }
                line.push('"');
                line.push_str(opaque);
                line.push('"');
                line.push_str(after);
            }
            let parsed: Vec<_> = EntityTagList::new(line.as_bytes()).collect();
            let expected: Vec<_> = tags
                .iter()
                .map(|(weak, opaque, _, _)| ListElement::Tag {
                    weak: *weak,
                    opaque: opaque.as_bytes(),
                })
                .collect();
            prop_assert_eq!(parsed, expected);
        }
    }
}
