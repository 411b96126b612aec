//! `HeadParser`: finds a complete request head (RFC 9112 §2.1) at the front of the read buffer,
//! validates the request line (§3) and field lines (§5), and hands back a `RequestHead` whose
//! `Headers` are offsets into the head bytes (zero-copy, nothing hashed or lowercased).
//!
//! Two phases, as in hyper: while the head is incomplete only the newly read bytes are scanned
//! for line ends (limits are enforced on those partial scans too); once the empty line is found
//! the head is split off the buffer once (`split_to(n).freeze()`) and parsed in a single pass.
//! The body and any pipelined requests stay in the buffer. No I/O, no clock.
//!
//! A head that is whole in the buffer at the first look, with lines of the usual shape (nearly
//! every request), is taken in one pass with the parser's progress in locals (`parse_whole`); at
//! anything else it hands its progress to the incremental path, which goes on from there.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::framing::{FieldKind, Framing, HeadFacts};
use super::headers::{is_field_value, Field, Headers};
use super::scan::{
    block_at, find_byte, find_ctl, find_non_name, hostname_marks, non_name_mask, word_at,
};
use super::target::{scan_target, TargetScan};
use super::{Limits, ParseError, Status, Target, Version};

/// RFC 9112 §2.2: a server "SHOULD ignore at least one empty line (CRLF) received prior to the
/// request-line". We ignore a few (some clients send a CRLF after a POST body); more is abuse.
const MAX_LEADING_EMPTY_LINES: usize = 4;

/// Build a 256-entry byte class table at compile time (httparse `byte_map!`).
const fn byte_class(chars: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    if alnum {
        let mut b = 0usize;
        while b < 256 {
            if (b as u8).is_ascii_alphanumeric() {
                t[b] = true;
            }
            b += 1;
        }
    }
    t
}

/// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
/// "_" / "`" / "|" / "~" / DIGIT / ALPHA.
static TOKEN: [bool; 256] = byte_class(b"!#$%&'*+-.^_`|~", true);

/// RFC 9110 §7.2 Host = uri-host [ ":" port ]; uri-host (RFC 3986 §3.2.2) is an IP-literal in
/// brackets, an IPv4 address, or a reg-name of unreserved, pct-encoded and sub-delims.
static HOST_BYTE: [bool; 256] = byte_class(b"-._~!$&'()*+,;=%:[]", true);

/// Whether `s` is a `token` (RFC 9110 §5.6.2): one or more `tchar`.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TOKEN[usize::from(b)])
}

/// A parsed request head. `headers` holds every field line as received (names as sent), values
/// being views of the head bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub target: Target,
    pub version: Version,
    pub headers: Headers,
    pub framing: Framing,
    /// RFC 9112 §9.3: HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive".
    pub keep_alive: bool,
    /// "Expect: 100-continue" on an HTTP/1.1 request that has a body (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// `Connection` lists the `upgrade` option: the request may ask to switch protocols (RFC 9110
    /// §7.8; see [`super::wants_h2c`]).
    pub connection_upgrade: bool,
}

/// A request line, parsed as soon as its CRLF arrives (so garbage is rejected early).
#[derive(Debug, Clone)]
struct RequestLine {
    method: Method,
    /// The request-target, as offsets into the buffer.
    target: Range<usize>,
    /// What the pass over the target found, for `Target::parse_scanned`.
    target_scan: TargetScan,
    version: Version,
    /// Index of the LF that ends the request line.
    end: usize,
}

/// Progress on the current head. Offsets are from the front of the caller's buffer, which only
/// grows between calls until the head is complete.
#[derive(Debug, Default)]
struct Scan {
    /// Where the request line starts, once the leading empty lines are behind us.
    start: Option<usize>,
    request_line: Option<RequestLine>,
    /// Start of the first line not yet complete.
    line_start: usize,
    /// Bytes already searched for LF.
    scanned: usize,
    /// The first CTL (other than LF) or DEL in the line not yet complete, if one was seen.
    first_ctl: Option<usize>,
    tally: Tally,
}

/// What the field lines of the current head have added up to so far.
#[derive(Debug, Default)]
struct Tally {
    /// Field lines seen so far (for `Limits::max_headers`).
    field_lines: usize,
    /// Host field lines seen so far.
    hosts: usize,
    /// What the framing fields said so far.
    facts: HeadFacts,
    /// The first field line that failed a check of its value or name length. Reported only once
    /// the head is complete and its target parsed, so that which error a bad request gets does
    /// not depend on when in the scan the check runs (the target is checked first).
    field_error: Option<ParseError>,
}

/// Incremental parser for request heads; one per connection.
///
/// Each line is checked once, when its LF arrives: the request line is parsed, and each field
/// line is split into name and value ranges, its value checked and its framing meaning noted, in
/// the same pass. The ranges go straight into the field storage that the `Headers` will own
/// (taken from the caller's `spare`, so no allocation per request). When the empty line arrives
/// the head is frozen once and handed over with that storage, without rescanning (hyper's two
/// phases, made incremental and fused).
#[derive(Debug)]
pub struct HeadParser {
    limits: Limits,
    scan: Scan,
    fields: Vec<Field>,
    /// A rejection is fatal for the connection: once set, every call returns it again.
    error: Option<ParseError>,
}

impl HeadParser {
    pub fn new(limits: Limits) -> Self {
        HeadParser {
            limits,
            scan: Scan::default(),
            fields: Vec::new(),
            error: None,
        }
    }

    /// Look for a complete request head at the start of `buf`.
    ///
    /// On `Complete` the head's bytes are split off the front of `buf` once; the body and any
    /// pipelined requests stay in `buf`. The field storage is taken out of `spare` (left empty) so
    /// a connection can recycle it: put it back with [`Headers::recycle`] after the response. After
    /// `Partial`, call again with more bytes appended to the same `buf` (do not consume from it):
    /// only the new bytes are scanned. Limits are enforced on partial heads too. Errors stick.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        spare: &mut Headers,
    ) -> Result<Status<RequestHead>, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let result = self.parse_inner(buf, spare);
        if let Err(e) = result {
            self.error = Some(e);
        }
        result
    }

    fn parse_inner(
        &mut self,
        buf: &mut BytesMut,
        spare: &mut Headers,
    ) -> Result<Status<RequestHead>, ParseError> {
        if self.scan.start.is_none() {
            let result = self.parse_whole(buf, spare);
            // `Partial` from `parse_whole` means "not taken" (it never sees a head incomplete
            // in any other sense); returning its result as is keeps the head where
            // `parse_whole` built it (an `Option` around it cost a ~190-byte copy, measured).
            if !matches!(result, Ok(Status::Partial)) {
                return result;
            }
        }
        self.parse_general(buf, spare)
    }

    /// Every head `parse_whole` does not take: one split over reads, or with lines of another
    /// shape. Not inlined, so that the usual path's code stays small enough for LLVM to keep its
    /// state in registers (inlined, the usual path cost ~30 instructions more, measured).
    #[inline(never)]
    fn parse_general(
        &mut self,
        buf: &mut BytesMut,
        spare: &mut Headers,
    ) -> Result<Status<RequestHead>, ParseError> {
        // Fill the caller's recycled storage rather than our own: at completion it is handed
        // over as is, and ours (emptied) goes back to `spare`.
        if self.fields.is_empty() && spare.capacity() > self.fields.capacity() {
            spare.swap_fields(&mut self.fields);
        }
        let Some(end) = self.scan_lines(buf)? else {
            return Ok(Status::Partial);
        };
        let line = self
            .scan
            .request_line
            .take()
            .expect("a head is complete only after its request line");
        let head = buf.split_to(end).freeze();
        let mut fields = spare.take_fields();
        std::mem::swap(&mut fields, &mut self.fields);
        // The scan state is read in place, not moved: moving it (and the head's parts) through
        // the stack cost more than the parsing did for a small head (measured).
        let result = build_head(head, line, fields, &self.scan.tally, self.limits.max_body);
        self.scan = Scan::default();
        result
    }

    /// The usual case, taken in one pass with the parser's progress in locals: a head that is
    /// whole in the buffer at the first look, with a request line and field lines of the usual
    /// shape (`usual_request_line`, `usual_field_line`). `Partial` at the first thing that is
    /// not (no request line of the usual shape, a line of another shape, a line not complete
    /// yet), with the progress so far handed to the general path in `self.scan`, which goes on
    /// from there without rescanning. Called only on a fresh scan state.
    ///
    /// The field lines go straight into `spare`'s storage, which the head then takes whole:
    /// passing it through the parser's own list cost two exchanges of the lists per request
    /// (~20 instructions, measured).
    ///
    /// Kept apart from `scan_lines` because there the request line and counters live in
    /// `self.scan`: storing the ~90-byte request line there, reading it back and resetting the
    /// state cost more than the request line's parsing did (measured).
    #[inline(always)]
    fn parse_whole(
        &mut self,
        buf: &mut BytesMut,
        spare: &mut Headers,
    ) -> Result<Status<RequestHead>, ParseError> {
        let limits = self.limits;
        // A head that starts with empty lines goes the general way too.
        let Some(line) = usual_request_line(buf, 0, limits.max_request_line) else {
            return Ok(Status::Partial);
        };
        let mut tally = Tally::default();
        let mut line_start = line.end + 1;
        let fields = spare.fields_to_fill();
        loop {
            match usual_line(buf, line_start, line.end, limits, &mut tally, fields) {
                Ok(UsualLine::Field(next)) => line_start = next,
                Ok(UsualLine::End(end)) => {
                    let head = buf.split_to(end).freeze();
                    let fields = spare.take_filled();
                    return build_head(head, line, fields, &tally, limits.max_body);
                }
                Ok(UsualLine::Other) => break,
                Err(e) => {
                    // No field may point into a head that `spare` does not hold.
                    fields.clear();
                    return Err(e);
                }
            }
        }
        self.hand_over(line, line_start, tally, spare);
        Ok(Status::Partial)
    }

    /// `parse_whole`'s progress, for the general path to go on from, with the field lines
    /// recorded so far (in `spare`'s storage). Out of line (and cold), so that the usual path
    /// need not keep the request line in a form ready to be stored.
    #[cold]
    #[inline(never)]
    fn hand_over(
        &mut self,
        line: RequestLine,
        line_start: usize,
        tally: Tally,
        spare: &mut Headers,
    ) {
        debug_assert!(self.fields.is_empty(), "a fresh scan state has no fields");
        spare.swap_fields_filled(&mut self.fields);
        self.scan = Scan {
            start: Some(0),
            request_line: Some(line),
            line_start,
            scanned: line_start,
            first_ctl: None,
            tally,
        };
    }

    /// Check the lines completed since the last call; `Some(head length)` once the empty line
    /// that ends the head has arrived.
    fn scan_lines(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        if buf.len() < self.scan.scanned {
            // The caller consumed bytes between calls; start over rather than trust stale offsets.
            self.scan = Scan::default();
            self.fields.clear();
        }
        let start = match self.scan.start {
            Some(start) => start,
            None => match skip_leading_empty_lines(buf)? {
                Some(start) => {
                    self.scan.start = Some(start);
                    self.scan.line_start = start;
                    self.scan.scanned = start;
                    start
                }
                None => return Ok(None),
            },
        };
        let limits = self.limits;
        // A request line of the usual shape, whole in the buffer, is taken in one pass
        // (`usual_request_line`); anything else goes the general way below.
        if self.scan.request_line.is_none() && self.scan.scanned == start {
            if let Some(line) = usual_request_line(buf, start, limits.max_request_line) {
                self.scan.scanned = line.end + 1;
                self.scan.line_start = line.end + 1;
                self.scan.request_line = Some(line);
            }
        }
        loop {
            // A whole field line of the usual shape is taken in one pass (`usual_field_line`);
            // anything else, or a line not complete yet, goes the general way below.
            if let Some(request_line) = &self.scan.request_line {
                let line_start = self.scan.line_start;
                if self.scan.scanned == line_start {
                    let tally = &mut self.scan.tally;
                    let end = request_line.end;
                    match usual_line(buf, line_start, end, limits, tally, &mut self.fields)? {
                        UsualLine::Field(next) => {
                            self.scan.scanned = next;
                            self.scan.line_start = next;
                            continue;
                        }
                        UsualLine::End(end) => return Ok(Some(end)),
                        UsualLine::Other => {}
                    }
                }
            }
            let Some(lf) = find_line_end(buf, self.scan.scanned, &mut self.scan.first_ctl) else {
                break;
            };
            let line_start = self.scan.line_start;
            let first_ctl = self.scan.first_ctl.take();
            self.scan.scanned = lf + 1;
            self.scan.line_start = lf + 1;
            // buf[start] is neither CR nor LF, so lf > start and lf - 1 >= line_start.
            let after_cr = buf.get(lf.wrapping_sub(1)) == Some(&b'\r');
            // Only the CR that ends the line, if any: the value is all VCHAR, obs-text and SP.
            let clean = first_ctl.is_none_or(|at| after_cr && at == lf - 1);
            let line = buf
                .get(line_start..lf - usize::from(after_cr))
                .unwrap_or_default();
            match &self.scan.request_line {
                None => {
                    // RFC 9112 §3: a request line longer than we accept → 414. Checked before
                    // its syntax, so that the outcome does not depend on how reads split.
                    if line.len() > limits.max_request_line {
                        return Err(ParseError::RequestLineTooLong);
                    }
                    // RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator; we
                    // do not, so that every hop agrees on where lines end (request smuggling).
                    if !after_cr {
                        return Err(ParseError::BareLineFeed);
                    }
                    self.scan.request_line = Some(parse_request_line(line, clean, start, lf)?);
                }
                Some(request_line) => {
                    // RFC 6585 §5: the field section (incl. the final CRLF) over the limit → 431.
                    if lf - request_line.end > limits.max_header_bytes {
                        return Err(ParseError::HeadersTooLarge);
                    }
                    // RFC 9112 §2.2, as above.
                    if !after_cr {
                        return Err(ParseError::BareLineFeed);
                    }
                    if line.is_empty() {
                        return Ok(Some(lf + 1));
                    }
                    let tally = &mut self.scan.tally;
                    if tally.field_lines >= limits.max_headers {
                        return Err(ParseError::TooManyHeaders);
                    }
                    tally.field_lines += 1;
                    let (name_len, value) = split_field_line(line)?;
                    if tally.field_error.is_none() {
                        let name = line_start..line_start + name_len;
                        let value = line_start + value.start..line_start + value.end;
                        if let Err(e) =
                            record_field(tally, &mut self.fields, buf, name, value, clean)
                        {
                            tally.field_error = Some(e);
                        }
                    }
                }
            }
        }
        self.scan.scanned = buf.len();
        // The head is incomplete: reject as soon as what we have already passes a limit.
        match &self.scan.request_line {
            None => {
                let pending_cr = buf.last() == Some(&b'\r');
                if buf.len() - start - usize::from(pending_cr) > limits.max_request_line {
                    return Err(ParseError::RequestLineTooLong);
                }
            }
            Some(request_line) => {
                if buf.len() - (request_line.end + 1) > limits.max_header_bytes {
                    return Err(ParseError::HeadersTooLarge);
                }
            }
        }
        Ok(None)
    }
}

/// Check one field line's name length and value and note what it means for framing (the
/// checks `build_head` would otherwise make in a second pass), then store its ranges.
/// `clean`: the line holds no CTL but its final CR and no DEL (see `find_line_end`).
#[inline(always)]
fn record_field(
    tally: &mut Tally,
    fields: &mut Vec<Field>,
    buf: &[u8],
    name: Range<usize>,
    value: Range<usize>,
    clean: bool,
) -> Result<(), ParseError> {
    let kind = FieldKind::of(buf.get(name.clone()).unwrap_or_default());
    // The name was checked to be a token by `split_field_line`; only its length is left to
    // check (`Field` refuses names over 65535 bytes, as `http::HeaderName` does).
    let field = Field::new(name, value.clone()).ok_or(ParseError::BadHeaderName)?;
    let value_start = value.start;
    let value = buf.get(value).unwrap_or_default();
    // A clean line holds only bytes RFC 9110 §5.5 allows.
    if !clean {
        check_field_value(value)?;
    }
    match kind {
        FieldKind::Other => {}
        FieldKind::Host => {
            // RFC 9112 §3.2: more than one Host field line → 400.
            tally.hosts += 1;
            if tally.hosts > 1 {
                return Err(ParseError::DuplicateHost);
            }
            // RFC 9112 §3.2: an invalid Host field value → 400. A host name of letters,
            // digits, "-" and "." up to 16 bytes long (nearly all) passes with one block test
            // of the buffer from the value on, its bits past the value ignored; any other value
            // (a port, an IP literal, a long or unusual reg-name) is checked byte by byte.
            let short_hostname = value.len() <= 16
                && block_at(buf, value_start)
                    .is_some_and(|block| hostname_marks(block) & ((1u32 << value.len()) - 1) == 0);
            if !short_hostname && !value.iter().all(|&b| HOST_BYTE[usize::from(b)]) {
                return Err(ParseError::BadHost);
            }
        }
        FieldKind::ContentLength => tally.facts.content_length(value)?,
        _ => tally.facts.observe(kind, value)?,
    }
    fields.push(field);
    Ok(())
}

/// The offset of the first LF in `buf` at or after `from`, noting in `first_ctl` the first other
/// CTL or DEL passed on the way (if none was noted before): one pass finds where a field line
/// ends and whether its value needs the byte-by-byte check of RFC 9110 §5.5.
/// `find_ctl` jumps from one CTL to the next, usually straight to the CR, and the LF right after
/// it is checked directly.
#[inline]
fn find_line_end(buf: &[u8], from: usize, first_ctl: &mut Option<usize>) -> Option<usize> {
    let mut i = from;
    loop {
        let at = find_ctl(buf, i)?;
        match buf.get(at) {
            Some(b'\n') => return Some(at),
            Some(b'\r') if buf.get(at + 1) == Some(&b'\n') => {
                first_ctl.get_or_insert(at);
                return Some(at + 1);
            }
            _ => {}
        }
        first_ctl.get_or_insert(at);
        i = at + 1;
    }
}

/// A field line found by `usual_field_line`: offsets into the buffer.
struct UsualFieldLine {
    /// The end of the name (the colon).
    name_end: usize,
    /// The value, without OWS.
    value: Range<usize>,
    /// The LF that ends the line.
    lf: usize,
}

/// The field line at `buf[start..]`, if it is complete and of the usual shape: a name of letters,
/// digits and "-", a colon, a value without CTLs (HTAB included) and CRLF. Such a line passes
/// every check of the general path but the ones on names, values and framing fields that
/// `record_field` makes, and is split the same way (`split_field_line`); every other line, and
/// one whose CRLF has not arrived, is left to the general path (`None`).
#[inline(always)]
fn usual_field_line(buf: &[u8], start: usize) -> Option<UsualFieldLine> {
    let name_end = find_non_name(buf, start)?;
    if name_end == start || buf.get(name_end) != Some(&b':') {
        return None;
    }
    let mut value_start = name_end + 1;
    while buf.get(value_start) == Some(&b' ') {
        value_start += 1;
    }
    let cr = find_ctl(buf, value_start)?;
    if buf.get(cr..)?.get(..2)? != b"\r\n" {
        return None;
    }
    // The value holds no CTL (`find_ctl` stopped at its CR), so only SPs are trimmed here.
    let value_end = value_start + buf.get(value_start..cr)?.trim_ascii_end().len();
    Some(UsualFieldLine {
        name_end,
        value: value_start..value_end,
        lf: cr + 1,
    })
}

/// What `usual_line` found at the start of a line.
enum UsualLine {
    /// A field line of the usual shape, checked and recorded; the next line starts here.
    Field(usize),
    /// The empty line that ends the head; the head is this long.
    End(usize),
    /// Anything else, or a line not complete yet: for the general path.
    Other,
}

/// The line at `buf[line_start..]`, after a request line that ends with the LF at
/// `request_line_end`, if it is the empty line that ends the head or a whole field line of the
/// usual shape (`usual_field_line`), with the checks the general path makes of such a line
/// (limits, and `record_field`'s).
#[inline(always)]
fn usual_line(
    buf: &[u8],
    line_start: usize,
    request_line_end: usize,
    limits: Limits,
    tally: &mut Tally,
    fields: &mut Vec<Field>,
) -> Result<UsualLine, ParseError> {
    if let Some(b"\r\n") = buf.get(line_start..).and_then(<[u8]>::first_chunk) {
        let lf = line_start + 1;
        // RFC 6585 §5: the field section (incl. the final CRLF) over the limit → 431.
        if lf - request_line_end > limits.max_header_bytes {
            return Err(ParseError::HeadersTooLarge);
        }
        return Ok(UsualLine::End(lf + 1));
    }
    let Some(line) = usual_field_line(buf, line_start) else {
        return Ok(UsualLine::Other);
    };
    // RFC 6585 §5, as above.
    if line.lf - request_line_end > limits.max_header_bytes {
        return Err(ParseError::HeadersTooLarge);
    }
    if tally.field_lines >= limits.max_headers {
        return Err(ParseError::TooManyHeaders);
    }
    tally.field_lines += 1;
    if tally.field_error.is_none() {
        let name = line_start..line.name_end;
        if let Err(e) = record_field(tally, fields, buf, name, line.value, true) {
            tally.field_error = Some(e);
        }
    }
    Ok(UsualLine::Field(line.lf + 1))
}

/// Skip up to `MAX_LEADING_EMPTY_LINES` CRLFs; the offset of the request line, or `None` if the
/// buffer holds nothing else yet.
fn skip_leading_empty_lines(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut i = 0;
    let mut lines = 0;
    loop {
        match buf.get(i) {
            None => return Ok(None),
            Some(b'\r') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => {
                    lines += 1;
                    if lines > MAX_LEADING_EMPTY_LINES {
                        return Err(ParseError::TooManyLeadingEmptyLines);
                    }
                    i += 2;
                }
                Some(_) => return Err(ParseError::BareCarriageReturn),
            },
            Some(b'\n') => return Err(ParseError::BareLineFeed),
            Some(_) => return Ok(Some(i)),
        }
    }
}

/// `HTTP/1.1` and `HTTP/1.0` as `word_at` reads them.
const HTTP_11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_10: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// The request line at `buf[start..]`, if it is complete, at most `max_len` bytes long (without
/// CRLF) and of the usual shape: `GET` or `POST`, SP, a target of `TARGET_BYTE`s only, SP,
/// `HTTP/1.1` or `HTTP/1.0`, CRLF. Such a line holds no CTL but its CR, and `parse_request_line`
/// would parse it to the same `RequestLine`; only the separate search for its LF is saved. Every
/// other line (and one too long, so that it gets 414 there) is left to the general path (`None`).
#[inline(always)]
fn usual_request_line(buf: &[u8], start: usize, max_len: usize) -> Option<RequestLine> {
    // The line and its CRLF, no further: a target is never scanned past the length limit.
    let line = buf.get(start..)?;
    let line = line.get(..line.len().min(max_len.saturating_add(2)))?;
    let (method, after_method) = match line {
        [b'G', b'E', b'T', b' ', ..] => (Method::GET, 4),
        [b'P', b'O', b'S', b'T', b' ', ..] => (Method::POST, 5),
        _ => return None,
    };
    let rest = line.get(after_method..)?;
    let target_scan = scan_target(rest);
    let target_len = target_scan.len;
    // SP, the version as one word, CRLF (a match on an 11-byte literal compared bytewise).
    let after = rest.get(target_len..)?;
    if target_len == 0 || after.first() != Some(&b' ') || after.get(9..11)? != b"\r\n" {
        return None;
    }
    let version = match word_at(after, 1)? {
        HTTP_11 => Version::Http11,
        HTTP_10 => Version::Http10,
        _ => return None,
    };
    let sp2 = start + after_method + target_len;
    Some(RequestLine {
        method,
        target: start + after_method..sp2,
        target_scan,
        version,
        end: sp2 + 10,
    })
}

/// Parse the request line `line` (without CRLF) found at `start`, ending with the LF at `end`.
/// `clean`: the line holds no CTL or DEL at all (`find_line_end` saw none before its CRLF).
fn parse_request_line(
    line: &[u8],
    clean: bool,
    start: usize,
    end: usize,
) -> Result<RequestLine, ParseError> {
    // RFC 9112 §2.2: a bare CR is invalid anywhere in the request line.
    if !clean && memchr::memchr(b'\r', line).is_some() {
        return Err(ParseError::BareCarriageReturn);
    }
    // RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single SPs. We do not
    // take the §3 option of splitting on any whitespace run. The two methods most requests use
    // are recognised by their first bytes (both are tokens, so no check is skipped); any other
    // goes through the token check and `Method::from_bytes`. (A method is a few bytes: a plain
    // loop beats a memchr call there.)
    let (known, sp1) = match line {
        [b'G', b'E', b'T', b' ', ..] => (Some(Method::GET), 3),
        [b'P', b'O', b'S', b'T', b' ', ..] => (Some(Method::POST), 4),
        _ => (
            None,
            line.iter()
                .position(|&b| b == b' ')
                .ok_or(ParseError::BadRequestLine)?,
        ),
    };
    let after_method = sp1 + 1;
    let rest = line.get(after_method..).unwrap_or_default();
    // One pass over the target checks its bytes and notes its `?` and `%` for `Target`: it ends
    // at its first byte that a target may not hold, normally the SP before the version.
    let target_scan = scan_target(rest);
    let target_len = match rest.get(target_scan.len) {
        Some(b' ') => target_scan.len,
        // Some other byte: the target is rejected once the head is complete (`build_head`, so
        // that which error a bad request gets does not depend on how reads split); the SP that
        // ends it is searched for now.
        Some(_) => {
            let after = rest.get(target_scan.len..).unwrap_or_default();
            target_scan.len + find_byte(after, b' ').ok_or(ParseError::BadRequestLine)?
        }
        None => return Err(ParseError::BadRequestLine),
    };
    let sp2 = after_method + target_len;
    let version_bytes = line.get(sp2 + 1..).unwrap_or_default();
    let version = parse_version(version_bytes);
    if sp1 == 0 || target_len == 0 || version.is_err() && find_byte(version_bytes, b' ').is_some() {
        return Err(ParseError::BadRequestLine);
    }
    let method = match known {
        Some(method) => method,
        None => {
            let method_bytes = &line[..sp1];
            // RFC 9112 §3.1: method = token; extension methods are allowed (RFC 9110 §9.1).
            if !is_token(method_bytes) {
                return Err(ParseError::BadMethod);
            }
            Method::from_bytes(method_bytes).map_err(|_| ParseError::BadMethod)?
        }
    };
    // Checked before the target: an unsupported version gets 505 whatever else is wrong.
    let version = version?;
    Ok(RequestLine {
        method,
        target: start + after_method..start + sp2,
        target_scan,
        version,
        end,
    })
}

/// Build the `RequestHead` from a complete, frozen head, the fields recorded while scanning and
/// what the scan learnt from them. Inlined into both of its callers: as a call, the ~190-byte
/// head it builds went through the stack once more (measured).
#[inline(always)]
fn build_head(
    head: Bytes,
    line: RequestLine,
    fields: Vec<Field>,
    tally: &Tally,
    max_body: u64,
) -> Result<Status<RequestHead>, ParseError> {
    let target = Target::parse_scanned(head.slice(line.target), &line.method, line.target_scan)?;
    if let Some(e) = tally.field_error {
        return Err(e);
    }
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
    // request message that lacks a Host header field". HTTP/1.0 did not require it.
    if line.version == Version::Http11 && tally.hosts == 0 {
        return Err(ParseError::MissingHost);
    }
    let decision = tally.facts.finish(line.version, max_body)?;
    // Built in the `Status` it is returned in, so that it is not moved again to be wrapped.
    Ok(Status::Complete(RequestHead {
        method: line.method,
        target,
        version: line.version,
        headers: Headers::new(head, fields),
        framing: decision.framing,
        keep_alive: decision.keep_alive,
        expect_continue: decision.expect_continue,
        connection_upgrade: decision.connection_upgrade,
    }))
}

/// RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
#[inline]
fn parse_version(v: &[u8]) -> Result<Version, ParseError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        // Well-formed but another version (0.9, 2.0, 1.2, ...) → 505 (RFC 9110 §15.6.6).
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(ParseError::UnsupportedVersion)
        }
        _ => Err(ParseError::BadVersion),
    }
}

/// Split one field line (without its CRLF) into the name length and the value range (OWS
/// trimmed), checking the name. Shared by the head and chunked trailers.
#[inline(always)]
fn split_field_line(line: &[u8]) -> Result<(usize, Range<usize>), ParseError> {
    // RFC 9112 §5.2: obs-fold (a line starting with SP or HTAB continues the previous field) is
    // obsolete; outside message/http a server MUST reject it or replace it with SP. We reject.
    if let Some(b' ' | b'\t') = line.first() {
        return Err(ParseError::ObsFold);
    }
    // RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; field-name = token.
    // Most names are letters, digits and "-" only: eight bytes of those are skipped at once
    // (`non_name_mask`), and the table takes over at the first other byte (usually the colon).
    let mut name_len = 0;
    while let Some(x) = word_at(line, name_len) {
        let others = non_name_mask(x);
        if others != 0 {
            name_len += (others.trailing_zeros() / 8) as usize;
            break;
        }
        name_len += 8;
    }
    if line.get(name_len) != Some(&b':') {
        name_len += line
            .get(name_len..)
            .unwrap_or_default()
            .iter()
            .position(|&b| !TOKEN[usize::from(b)])
            .unwrap_or(line.len() - name_len);
    }
    match line.get(name_len) {
        Some(b':') if name_len > 0 => {}
        // RFC 9112 §5.1: "No whitespace is allowed between the field name and colon"; a server
        // MUST reject such a request with 400 (it has been used for request smuggling).
        Some(b' ' | b'\t') if name_len > 0 => return Err(ParseError::WhitespaceBeforeColon),
        _ => return Err(ParseError::BadHeaderName),
    }
    // RFC 9110 §5.5: OWS around the value is not part of it.
    let mut start = name_len + 1;
    let mut end = line.len();
    while let Some(b' ' | b'\t') = line.get(start) {
        start += 1;
    }
    while end > start && matches!(line.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    Ok((name_len, start..end))
}

/// RFC 9110 §5.5: field-value = *field-content of VCHAR, obs-text, SP and HTAB; NUL, CR, LF,
/// other CTLs and DEL are rejected (the set `http::HeaderValue` enforces; see `headers.rs`).
#[inline]
fn check_field_value(value: &[u8]) -> Result<(), ParseError> {
    if is_field_value(value) {
        Ok(())
    } else if value.contains(&b'\r') {
        // RFC 9112 §2.2: a CR not followed by LF is invalid.
        Err(ParseError::BareCarriageReturn)
    } else {
        Err(ParseError::BadHeaderValue)
    }
}

/// Make the name and zero-copy value of a trailer field line whose ranges `split_field_line`
/// found, with the same checks as a head's field line.
fn build_trailer_field(
    section: &Bytes,
    name: Range<usize>,
    value: Range<usize>,
) -> Result<(HeaderName, HeaderValue), ParseError> {
    let name_bytes = section.get(name).unwrap_or_default();
    let name = HeaderName::from_bytes(name_bytes).map_err(|_| ParseError::BadHeaderName)?;
    check_field_value(section.get(value.clone()).unwrap_or_default())?;
    let value = HeaderValue::from_maybe_shared(section.slice(value))
        .map_err(|_| ParseError::BadHeaderValue)?;
    Ok((name, value))
}

/// Parse a trailer section (field lines, each ending in CRLF, without the final empty line)
/// into `map`, with the same rules as the head's field lines.
pub(crate) fn parse_trailer_fields(section: &Bytes, map: &mut HeaderMap) -> Result<(), ParseError> {
    let mut pos = 0;
    while let Some(off) = section
        .get(pos..)
        .and_then(|rest| memchr::memchr(b'\n', rest))
    {
        let lf = pos + off;
        // The chunked decoder only stores lines that end in CRLF.
        let line = section.get(pos..lf.saturating_sub(1)).unwrap_or_default();
        let (name_len, value) = split_field_line(line)?;
        let (name, value) = build_trailer_field(
            section,
            pos..pos + name_len,
            pos + value.start..pos + value.end,
        )?;
        map.try_append(name, value)
            .map_err(|_| ParseError::TrailersTooLarge)?;
        pos = lf + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{BodyDecoder, BodyEvent, TargetForm};

    fn parse_with(limits: Limits, input: &[u8]) -> Result<Status<RequestHead>, ParseError> {
        let mut parser = HeadParser::new(limits);
        let mut buf = BytesMut::from(input);
        parser.parse(&mut buf, &mut Headers::default())
    }

    fn parse_ok(input: &str) -> RequestHead {
        match parse_with(Limits::default(), input.as_bytes()) {
            Ok(Status::Complete(head)) => head,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    fn parse_err(input: &str) -> ParseError {
        match parse_with(Limits::default(), input.as_bytes()) {
            Err(e) => e,
            other => panic!("{input:?} was not rejected: {other:?}"),
        }
    }

    // ---------------------------------------------------------------- good requests

    #[test]
    fn parses_good_requests() {
        struct Case {
            input: &'static str,
            method: Method,
            path: &'static str,
            query: Option<&'static str>,
            version: Version,
            framing: Framing,
            keep_alive: bool,
        }
        let cases = [
            Case {
                input: "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
                method: Method::GET,
                path: "/plaintext",
                query: None,
                version: Version::Http11,
                framing: Framing::None,
                keep_alive: true,
            },
            Case {
                input: "GET /?a=1 HTTP/1.0\r\n\r\n",
                method: Method::GET,
                path: "/",
                query: Some("a=1"),
                version: Version::Http10,
                framing: Framing::None,
                keep_alive: false,
            },
            Case {
                input: "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
                method: Method::POST,
                path: "/submit",
                query: None,
                version: Version::Http11,
                framing: Framing::Length(5),
                keep_alive: true,
            },
            Case {
                input: "PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n",
                method: Method::PUT,
                path: "/u",
                query: None,
                version: Version::Http11,
                framing: Framing::Chunked,
                keep_alive: false,
            },
            Case {
                input: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
                method: Method::OPTIONS,
                path: "*",
                query: None,
                version: Version::Http11,
                framing: Framing::None,
                keep_alive: true,
            },
            Case {
                input: "DELETE http://example.com/a%20b?x HTTP/1.1\r\nHost: ignored\r\n\r\n",
                method: Method::DELETE,
                path: "/a b",
                query: Some("x"),
                version: Version::Http11,
                framing: Framing::None,
                keep_alive: true,
            },
            Case {
                input: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                method: Method::CONNECT,
                path: "",
                query: None,
                version: Version::Http11,
                framing: Framing::None,
                keep_alive: true,
            },
            Case {
                input: "PURGE /cache HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                method: Method::from_bytes(b"PURGE").unwrap(),
                path: "/cache",
                query: None,
                version: Version::Http11,
                framing: Framing::None,
                keep_alive: true,
            },
        ];
        for c in cases {
            let head = parse_ok(c.input);
            assert_eq!(head.method, c.method, "{}", c.input);
            assert_eq!(head.target.path(), c.path, "{}", c.input);
            assert_eq!(head.target.query(), c.query, "{}", c.input);
            assert_eq!(head.version, c.version, "{}", c.input);
            assert_eq!(head.framing, c.framing, "{}", c.input);
            assert_eq!(head.keep_alive, c.keep_alive, "{}", c.input);
        }
    }

    #[test]
    fn accepts_extension_methods() {
        for m in ["M-SEARCH", "PURGE", "BREW", "X.Y_Z~1!"] {
            let head = parse_ok(&format!("{m} / HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(head.method.as_str(), m);
        }
    }

    #[test]
    fn keeps_header_values_zero_copy_and_trims_ows() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \t spaced  value \t\r\nX-A:second\r\n\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let mut spare = Headers::default();
        let Ok(Status::Complete(head)) =
            HeadParser::new(Limits::default()).parse(&mut buf, &mut spare)
        else {
            panic!("not parsed")
        };
        let values: Vec<_> = head.headers.get_all("x-a").collect();
        assert_eq!(values, [&b"spaced  value"[..], b"second"]);
        for v in values {
            assert!(range.contains(&(v.as_ptr() as usize)), "value was copied");
        }
    }

    #[test]
    fn allows_htab_and_obs_text_in_field_values() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\xff\x80c\r\n\r\n";
        let Ok(Status::Complete(head)) = parse_with(Limits::default(), input) else {
            panic!()
        };
        assert_eq!(head.headers.get("x"), Some(&b"a\tb\xff\x80c"[..]));
    }

    #[test]
    fn leaves_body_and_pipelined_requests_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n"[..],
        );
        let mut parser = HeadParser::new(Limits::default());
        let Ok(Status::Complete(_)) = parser.parse(&mut buf, &mut Headers::default()) else {
            panic!()
        };
        assert_eq!(&buf[..], b"abcGET / HTTP/1.1\r\n");
    }

    #[test]
    fn takes_the_field_storage_from_spare() {
        let mut spare = Headers::with_capacity(64);
        let cap = spare.capacity();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        let Ok(Status::Complete(head)) =
            HeadParser::new(Limits::default()).parse(&mut buf, &mut spare)
        else {
            panic!()
        };
        assert_eq!(head.headers.capacity(), cap);
        assert_eq!(spare.capacity(), 0);
    }

    #[test]
    fn line_end_scan_finds_the_lf_and_the_first_other_ctl_at_every_position() {
        for b in 0..=255u8 {
            for len in 1..40 {
                for pos in 0..len {
                    let mut hay = vec![b'a'; len];
                    hay[pos] = b;
                    // A second mark after the first must not hide it.
                    if pos + 1 < len {
                        hay[pos + 1] = b;
                    }
                    let mut first_ctl = None;
                    let lf = find_line_end(&hay, 0, &mut first_ctl);
                    let ctl = b < 0x20 || b == 0x7f;
                    assert_eq!(lf, (b == b'\n').then_some(pos), "{b:#04x} at {pos}");
                    let expected = (ctl && b != b'\n').then_some(pos);
                    assert_eq!(first_ctl, expected, "{b:#04x} at {pos} of {len}");
                }
            }
        }
    }

    // ---------------------------------------------------------------- incremental parsing

    #[test]
    fn partial_heads_rescan_only_new_bytes() {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
        let mut spare = Headers::default();
        assert_eq!(parser.parse(&mut buf, &mut spare), Ok(Status::Partial));
        assert_eq!(parser.scan.scanned, buf.len());
        assert_eq!(parser.fields.len(), 1);
        buf.extend_from_slice(b"\r");
        assert_eq!(parser.parse(&mut buf, &mut spare), Ok(Status::Partial));
        buf.extend_from_slice(b"\nGET");
        assert!(matches!(
            parser.parse(&mut buf, &mut spare),
            Ok(Status::Complete(_))
        ));
        assert_eq!(&buf[..], b"GET");
        // The scan state was reset for the next head.
        assert_eq!(parser.scan.scanned, 0);
        assert_eq!(parser.scan.start, None);
    }

    #[test]
    fn errors_stick() {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..]);
        let mut spare = Headers::default();
        assert_eq!(
            parser.parse(&mut buf, &mut spare),
            Err(ParseError::BareLineFeed)
        );
        let mut good = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
        assert_eq!(
            parser.parse(&mut good, &mut spare),
            Err(ParseError::BareLineFeed)
        );
    }

    // ---------------------------------------------------------------- request line (§2, §3)

    #[test]
    fn ignores_up_to_four_leading_empty_lines() {
        let head = parse_ok("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(head.target.path(), "/");
    }

    #[test]
    fn rejects_more_than_four_leading_empty_lines() {
        assert_eq!(
            parse_err("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::TooManyLeadingEmptyLines
        );
    }

    #[test]
    fn rejects_bare_lf_line_endings() {
        assert_eq!(
            parse_err("GET / HTTP/1.1\nHost: x\r\n\r\n"),
            ParseError::BareLineFeed
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\n\r\n"),
            ParseError::BareLineFeed
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\r\n\n"),
            ParseError::BareLineFeed
        );
        assert_eq!(
            parse_err("\nGET / HTTP/1.1\r\n\r\n"),
            ParseError::BareLineFeed
        );
        assert_eq!(ParseError::BareLineFeed.status(), 400);
    }

    #[test]
    fn rejects_bare_cr() {
        assert_eq!(
            parse_err("GET /\r HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BareCarriageReturn
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n"),
            ParseError::BareCarriageReturn
        );
        assert_eq!(
            parse_err("\rGET / HTTP/1.1\r\n\r\n"),
            ParseError::BareCarriageReturn
        );
        assert_eq!(ParseError::BareCarriageReturn.status(), 400);
    }

    #[test]
    fn rejects_invalid_method_token() {
        for input in [
            "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n",
            "G\"T / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(parse_err(input), ParseError::BadMethod, "{input}");
        }
    }

    #[test]
    fn rejects_request_line_without_single_sp_separators() {
        for input in [
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            " GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
            "GET /  HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /\r\nHost: x\r\n\r\n",
            "GET\r\nHost: x\r\n\r\n",
            "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(parse_err(input), ParseError::BadRequestLine, "{input:?}");
        }
    }

    #[test]
    fn rejects_well_formed_unsupported_version_with_505() {
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"] {
            let e = parse_err(&format!("GET / {v}\r\nHost: x\r\n\r\n"));
            assert_eq!(e, ParseError::UnsupportedVersion, "{v}");
            assert_eq!(e.status(), 505);
        }
    }

    #[test]
    fn rejects_malformed_version_with_400() {
        for v in [
            "http/1.1",
            "HTTP/1.1x",
            "HTTP/11",
            "HTTP/1.",
            "HTTP/a.b",
            "HTTPS/1.1",
            "X",
        ] {
            let e = parse_err(&format!("GET / {v}\r\nHost: x\r\n\r\n"));
            assert_eq!(e, ParseError::BadVersion, "{v}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn rejects_request_line_too_long_before_its_crlf() {
        let limits = Limits {
            max_request_line: 32,
            ..Limits::default()
        };
        let mut line = b"GET /".to_vec();
        line.resize(32, b'a');
        // Exactly at the limit, still waiting for the rest.
        assert_eq!(parse_with(limits, &line), Ok(Status::Partial));
        line.push(b'\r');
        assert_eq!(parse_with(limits, &line), Ok(Status::Partial));
        line.pop();
        line.push(b'a');
        let e = parse_with(limits, &line).unwrap_err();
        assert_eq!(e, ParseError::RequestLineTooLong);
        assert_eq!(e.status(), 414);
    }

    #[test]
    fn rejects_request_line_too_long() {
        let limits = Limits {
            max_request_line: 16,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with(limits, b"GET /aaa HTTP/1.1\r\nHost: x\r\n\r\n"), // 17 bytes
            Err(ParseError::RequestLineTooLong)
        ));
        assert!(matches!(
            parse_with(limits, b"GET /aa HTTP/1.1\r\nHost: x\r\n\r\n"), // 16 bytes
            Ok(Status::Complete(_))
        ));
    }

    #[test]
    fn rejects_fragment_and_bad_bytes_in_target() {
        assert_eq!(
            parse_err("GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BadTarget
        );
        assert_eq!(
            parse_err("GET a HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BadTarget
        );
        assert_eq!(
            parse_with(
                Limits::default(),
                b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .unwrap_err(),
            ParseError::BadTarget
        );
    }

    #[test]
    fn rejects_bad_percent_encoding_in_target() {
        assert_eq!(
            parse_err("GET /%G1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BadPercentEncoding
        );
    }

    #[test]
    fn target_form_depends_on_method() {
        assert_eq!(
            parse_ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
                .target
                .form(),
            TargetForm::Asterisk
        );
        assert_eq!(
            parse_err("GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BadTarget
        );
        assert_eq!(
            parse_err("CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::BadTarget
        );
    }

    // ---------------------------------------------------------------- field lines (§5)

    #[test]
    fn rejects_header_section_too_large_before_its_end() {
        // A 70 KiB head without an end is rejected as soon as it passes the 64 KiB limit.
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "[..]);
        let mut spare = Headers::default();
        let mut result = parser.parse(&mut buf, &mut spare);
        while result == Ok(Status::Partial) {
            assert!(buf.len() < 70 * 1024);
            buf.extend_from_slice(&[b'a'; 1024]);
            result = parser.parse(&mut buf, &mut spare);
        }
        assert_eq!(result.unwrap_err(), ParseError::HeadersTooLarge);
        assert!(buf.len() - 16 > 64 * 1024 && buf.len() - 16 <= 65 * 1024);
        assert_eq!(ParseError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn rejects_header_section_too_large() {
        let limits = Limits {
            max_header_bytes: 20,
            ..Limits::default()
        };
        // "Host: x\r\n" + "X: 123456789\r\n" = 23 > 20, even with the final CRLF not counted.
        assert_eq!(
            parse_with(limits, b"GET / HTTP/1.1\r\nHost: x\r\nX: 123456789\r\n\r\n").unwrap_err(),
            ParseError::HeadersTooLarge
        );
        // "Host: x\r\n" + "X: 1234\r\n" + "\r\n" = 20.
        assert!(parse_with(limits, b"GET / HTTP/1.1\r\nHost: x\r\nX: 1234\r\n\r\n").is_ok());
    }

    #[test]
    fn rejects_too_many_headers() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let ok = b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(matches!(parse_with(limits, ok), Ok(Status::Complete(_))));
        let e = parse_with(
            limits,
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
        )
        .unwrap_err();
        assert_eq!(e, ParseError::TooManyHeaders);
        assert_eq!(e.status(), 431);
    }

    #[test]
    fn rejects_invalid_field_names() {
        for input in [
            "GET / HTTP/1.1\r\nHost: x\r\nX(y): 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX\"y: 1\r\n\r\n",
        ] {
            assert_eq!(parse_err(input), ParseError::BadHeaderName, "{input:?}");
        }
    }

    #[test]
    fn rejects_whitespace_between_field_name_and_colon() {
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            ParseError::WhitespaceBeforeColon
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\r\nContent-Length\t: 5\r\n\r\n"),
            ParseError::WhitespaceBeforeColon
        );
    }

    #[test]
    fn rejects_obs_fold() {
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
            ParseError::ObsFold
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n"),
            ParseError::ObsFold
        );
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\n Host: x\r\n\r\n"),
            ParseError::ObsFold
        );
    }

    #[test]
    fn rejects_nul_and_control_characters_in_field_values() {
        for bad in [&b"\x00"[..], b"\x01", b"\x1f", b"\x7f", b"\x0b"] {
            let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX: a".to_vec();
            input.extend_from_slice(bad);
            input.extend_from_slice(b"b\r\n\r\n");
            assert_eq!(
                parse_with(Limits::default(), &input).unwrap_err(),
                ParseError::BadHeaderValue,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_control_characters_at_any_position_of_a_long_field_value() {
        // The line scan skips 16 bytes at a time; a CTL or DEL must be found in any block.
        for pos in 0..40 {
            for (bad, expected) in [
                (b'\x00', ParseError::BadHeaderValue),
                (b'\x7f', ParseError::BadHeaderValue),
                (b'\r', ParseError::BareCarriageReturn),
            ] {
                let mut value = vec![b'v'; 40];
                value[pos] = bad;
                let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
                input.extend_from_slice(&value);
                input.extend_from_slice(b"\r\n\r\n");
                assert_eq!(
                    parse_with(Limits::default(), &input).unwrap_err(),
                    expected,
                    "{bad:#04x} at {pos}"
                );
            }
            let mut value = vec![b'v'; 40];
            value[pos] = b'\t';
            let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec();
            input.extend_from_slice(&value);
            input.extend_from_slice(b"\r\n\r\n");
            let Ok(Status::Complete(head)) = parse_with(Limits::default(), &input) else {
                panic!("HTAB at {pos} rejected")
            };
            let trimmed = value.trim_ascii();
            assert_eq!(head.headers.get("x-long"), Some(trimmed));
        }
    }

    // ---------------------------------------------------------------- Host (§3.2)

    #[test]
    fn rejects_http11_request_without_host() {
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nX: y\r\n\r\n"),
            ParseError::MissingHost
        );
        // HTTP/1.0 did not require Host.
        assert!(parse_ok("GET / HTTP/1.0\r\n\r\n").headers.is_empty());
    }

    #[test]
    fn rejects_duplicate_host() {
        assert_eq!(
            parse_err("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            ParseError::DuplicateHost
        );
    }

    #[test]
    fn rejects_invalid_host_value() {
        // Short and long values, a bad byte at the start, middle and end of each, and fields
        // after the Host line (so that the bytes after the value fill a whole block).
        let bad = [
            "a b",
            "a/b",
            "a@b",
            "a\"b",
            "/abcdefghijklmn",
            "abcdefg/hijklmn",
        ];
        let bad = bad
            .into_iter()
            .map(String::from)
            .chain([15, 16, 17, 30].map(|len| format!("{}/", "a".repeat(len))));
        for host in bad {
            for after in ["", "X-Padding: 0123456789abcdef\r\n"] {
                let e = parse_err(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n{after}\r\n"));
                assert_eq!(e, ParseError::BadHost, "{host}");
            }
        }
        let good = [
            "www.example.com",
            "exa_mple.com",
            "[::1]:8080",
            "localhost:80",
            "a.b-c.d",
        ];
        for host in good
            .into_iter()
            .map(String::from)
            .chain(["a".repeat(16), "b".repeat(17)])
        {
            for after in ["", "X-Padding: 0123456789abcdef\r\n"] {
                let head = parse_ok(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n{after}\r\n"));
                assert_eq!(head.headers.get("host"), Some(host.as_bytes()));
            }
        }
        // An empty Host is valid (RFC 9110 §7.2).
        assert!(parse_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n")
            .headers
            .contains("host"));
    }

    // ---------------------------------------------------------------- framing (§6)

    fn post(fields: &str) -> String {
        format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n")
    }

    #[test]
    fn rejects_content_length_with_transfer_encoding() {
        let e = parse_err(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"));
        assert_eq!(e, ParseError::ContentLengthWithTransferEncoding);
        assert_eq!(e.status(), 400);
        assert_eq!(
            parse_err(&post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
            ParseError::ContentLengthWithTransferEncoding
        );
    }

    #[test]
    fn rejects_transfer_encoding_whose_final_coding_is_not_chunked() {
        for te in [
            "chunked, gzip",
            "gzip",
            "identity",
            "chunked\r\nTransfer-Encoding: gzip",
        ] {
            let e = parse_err(&post(&format!("Transfer-Encoding: {te}\r\n")));
            assert_eq!(e, ParseError::ChunkedNotFinal, "{te}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn rejects_unimplemented_transfer_coding_with_501() {
        for te in [
            "gzip, chunked",
            "x-custom, chunked",
            "deflate\r\nTransfer-Encoding: chunked",
        ] {
            let e = parse_err(&post(&format!("Transfer-Encoding: {te}\r\n")));
            assert_eq!(e, ParseError::UnsupportedTransferCoding, "{te}");
            assert_eq!(e.status(), 501);
        }
    }

    #[test]
    fn rejects_chunked_applied_twice() {
        for te in ["chunked, chunked", "chunked\r\nTransfer-Encoding: chunked"] {
            assert_eq!(
                parse_err(&post(&format!("Transfer-Encoding: {te}\r\n"))),
                ParseError::ChunkedTwice,
                "{te}"
            );
        }
    }

    #[test]
    fn rejects_malformed_transfer_encoding() {
        for te in ["", " , ", "chunked;x=1", "ch\"unked"] {
            assert_eq!(
                parse_err(&post(&format!("Transfer-Encoding: {te}\r\n"))),
                ParseError::BadTransferEncoding,
                "{te:?}"
            );
        }
    }

    #[test]
    fn accepts_chunked_transfer_encoding_list_with_empty_elements() {
        assert_eq!(
            parse_ok(&post("Transfer-Encoding: , CHUNKED ,\r\n")).framing,
            Framing::Chunked
        );
    }

    #[test]
    fn rejects_transfer_encoding_on_http10() {
        assert_eq!(
            parse_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::TransferEncodingOnHttp10
        );
    }

    #[test]
    fn rejects_content_length_that_is_not_digits() {
        for cl in ["+5", "-5", "0x5", "5 5", "", "5,", "5,,5", "five", "1e3"] {
            let e = parse_err(&post(&format!("Content-Length: {cl}\r\n")));
            assert_eq!(e, ParseError::BadContentLength, "{cl:?}");
        }
    }

    #[test]
    fn rejects_content_length_overflow() {
        assert_eq!(
            parse_err(&post("Content-Length: 18446744073709551616\r\n")),
            ParseError::BadContentLength
        );
    }

    #[test]
    fn accepts_identical_content_length_values() {
        assert_eq!(
            parse_ok(&post("Content-Length: 5, 5\r\n")).framing,
            Framing::Length(5)
        );
        assert_eq!(
            parse_ok(&post("Content-Length: 5\r\nContent-Length: 005\r\n")).framing,
            Framing::Length(5)
        );
        // 19 digits and fewer are read whole, longer values digit by digit with overflow checks.
        let limits = Limits {
            max_body: u64::MAX,
            ..Limits::default()
        };
        for (value, n) in [
            ("0000000000000000012", 12),
            ("9999999999999999999", 9_999_999_999_999_999_999),
            ("18446744073709551615", u64::MAX),
            ("00000000000000000000012", 12),
        ] {
            let input = post(&format!("Content-Length: {value}\r\n"));
            let Ok(Status::Complete(head)) = parse_with(limits, input.as_bytes()) else {
                panic!("{value} parses");
            };
            assert_eq!(head.framing, Framing::Length(n), "{value}");
        }
    }

    #[test]
    fn rejects_differing_content_length_values() {
        assert_eq!(
            parse_err(&post("Content-Length: 5, 6\r\n")),
            ParseError::ConflictingContentLength
        );
        assert_eq!(
            parse_err(&post("Content-Length: 5\r\nContent-Length: 6\r\n")),
            ParseError::ConflictingContentLength
        );
    }

    #[test]
    fn rejects_content_length_over_max_body_at_head_time() {
        let limits = Limits {
            max_body: 10,
            ..Limits::default()
        };
        let e = parse_with(limits, post("Content-Length: 11\r\n").as_bytes()).unwrap_err();
        assert_eq!(e, ParseError::BodyTooLarge);
        assert_eq!(e.status(), 413);
        assert!(parse_with(limits, post("Content-Length: 10\r\n").as_bytes()).is_ok());
    }

    // ---------------------------------------------------------------- keep-alive (§9.3)

    #[test]
    fn keep_alive_follows_version_and_connection_tokens() {
        let cases = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n",
                true,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            // Near misses of the whole-value compare, which ORs each byte with 0x20.
            ("GET / HTTP/1.0\r\nConnection: keep_alive\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep\talive\r\n\r\n", false),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n",
                false,
            ),
        ];
        for (input, keep_alive) in cases {
            assert_eq!(parse_ok(input).keep_alive, keep_alive, "{input:?}");
        }
    }

    // ---------------------------------------------------------------- Expect (RFC 9110 §10.1.1)

    #[test]
    fn expect_100_continue_only_for_http11_requests_with_a_body() {
        let cases = [
            (post("Expect: 100-continue\r\nContent-Length: 3\r\n"), true),
            (
                post("Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n"),
                true,
            ),
            (post("Expect: 100-continue\r\nContent-Length: 0\r\n"), false),
            (post("Expect: 100-continue\r\n"), false),
            (
                "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n".into(),
                false,
            ),
        ];
        for (input, expect) in cases {
            assert_eq!(parse_ok(&input).expect_continue, expect, "{input:?}");
        }
    }

    // ---------------------------------------------------------------- Upgrade (RFC 9110 §7.8)

    #[test]
    fn connection_upgrade_is_noted_from_the_connection_options() {
        let cases = [
            ("Connection: Upgrade, HTTP2-Settings\r\n", true),
            ("Connection: keep-alive\r\nConnection: upgrade\r\n", true),
            ("Connection: upgrades\r\n", false),
            ("Upgrade: h2c\r\n", false),
            ("", false),
        ];
        for (fields, want) in cases {
            let input = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
            assert_eq!(parse_ok(&input).connection_upgrade, want, "{input:?}");
        }
    }

    #[test]
    fn rejects_unsupported_expectation_with_417() {
        let e = parse_err(&post("Expect: something-else\r\nContent-Length: 3\r\n"));
        assert_eq!(e, ParseError::UnsupportedExpectation);
        assert_eq!(e.status(), 417);
    }

    // ---------------------------------------------------------------- one-pass shortcuts

    #[test]
    fn usual_request_line_agrees_with_the_general_path() {
        let lines: [&[u8]; 10] = [
            b"GET / HTTP/1.1\r\n",
            b"GET /plaintext HTTP/1.0\r\n",
            b"POST /api/v1/orders?x=%20&y HTTP/1.1\r\n",
            b"GET /a%2Fb?q=1 HTTP/1.1\r\n",
            b"GET /static/app/main.js?v=20240101&a=b/c/d/e/f/g/h/i/j/k HTTP/1.1\r\n",
            b"GET http://example.com/ HTTP/1.1\r\n",
            b"GET *?# HTTP/1.1\r\n",
            b"POST /x\x80 HTTP/1.1\r\n",
            b"GET /x  HTTP/1.1\r\n",
            b"GET /x HTTP/2.0\r\n",
        ];
        for line in lines {
            let lf = line.len() - 1;
            let general = parse_request_line(&line[..lf - 1], true, 0, lf);
            match usual_request_line(line, 0, lf - 1) {
                Some(usual) => {
                    let general = general.expect("the shortcut takes only good lines");
                    assert_eq!(usual.method, general.method, "{line:?}");
                    assert_eq!(usual.target, general.target, "{line:?}");
                    assert_eq!(usual.target_scan, general.target_scan, "{line:?}");
                    assert_eq!(usual.version, general.version, "{line:?}");
                    assert_eq!(usual.end, general.end, "{line:?}");
                }
                // Left to the general path: only lines that path rejects, or parses to a target
                // it rejects once the head is complete.
                None => assert!(
                    general.is_err() || line.contains(&b'#') || line.contains(&0x80),
                    "{line:?}"
                ),
            }
            // One byte over the length limit: left to the general path (414).
            assert!(usual_request_line(line, 0, lf - 2).is_none(), "{line:?}");
            // Not complete yet: left to the general path.
            assert!(usual_request_line(&line[..lf], 0, lf).is_none(), "{line:?}");
        }
    }

    // ---------------------------------------------------------------- split at every byte

    /// Drive a byte stream through HeadParser + BodyDecoder, fed in `reads`.
    fn drive(reads: &[&[u8]]) -> Vec<(Method, String, Vec<u8>, Option<HeaderMap>)> {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut spare = Headers::default();
        let mut reads = reads.iter();
        let mut out = Vec::new();
        'requests: loop {
            let head = loop {
                match parser.parse(&mut buf, &mut spare).unwrap() {
                    Status::Complete(head) => break head,
                    Status::Partial => match reads.next() {
                        Some(r) => buf.extend_from_slice(r),
                        None => break 'requests,
                    },
                }
            };
            let mut body = Vec::new();
            let mut decoder = BodyDecoder::new(head.framing, 1 << 20);
            loop {
                match decoder.decode(&mut buf).unwrap() {
                    Status::Complete(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                    Status::Complete(BodyEvent::End) => break,
                    Status::Partial => {
                        buf.extend_from_slice(reads.next().expect("input ends inside a body"))
                    }
                }
            }
            out.push((
                head.method,
                head.target.path().to_owned(),
                body,
                decoder.trailers(),
            ));
            // Recycle the field storage, as the connection loop does.
            spare = head.headers.recycle();
        }
        assert!(buf.is_empty());
        out
    }

    const PIPELINED: &[u8] = b"\r\nGET /one HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /two%20 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n\
        PUT /three HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";

    /// `parse_whole` takes a head whole in the first read; anything else it hands to the general
    /// path part-way. Whatever the split and wherever the hand-over, the outcome is the same.
    #[test]
    fn the_whole_head_path_and_the_general_path_agree_at_every_split() {
        let heads: [&[u8]; 9] = [
            b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nAccept: */*\r\n\r\n",
            // A line of another shape after usual ones (HTAB in a value, a name with "_").
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\nX_B: c\r\nX-C: d\r\n\r\n",
            // A request line of another shape, then usual lines.
            b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            // Rejected, by the usual-line checks and by the general path.
            b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
        ];
        let parse_in = |parts: &[&[u8]]| {
            let mut parser = HeadParser::new(Limits::default());
            let mut buf = BytesMut::new();
            for part in parts {
                buf.extend_from_slice(part);
                match parser.parse(&mut buf, &mut Headers::default()) {
                    Ok(Status::Partial) => continue,
                    // An error can come before the rest of the head is read: how much of it
                    // was read then does not count.
                    Err(e) => return (Err(e), None),
                    Ok(head) => return (Ok(head), Some(buf.len())),
                }
            }
            panic!("{parts:?} did not complete");
        };
        for head in heads {
            let whole = parse_in(&[head]);
            for split in 1..head.len() {
                let (a, b) = head.split_at(split);
                assert_eq!(parse_in(&[a, b]), whole, "{head:?} split at {split}");
            }
        }
    }

    #[test]
    fn split_at_every_byte_gives_the_same_result() {
        let whole = drive(&[PIPELINED]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].1, "/two ");
        assert_eq!(whole[1].2, b"Wikipedia");
        assert_eq!(whole[1].3.as_ref().unwrap()["x-trailer"], "yes");
        assert_eq!(whole[2].2, b"hello");

        let bytewise: Vec<&[u8]> = PIPELINED.chunks(1).collect();
        assert_eq!(drive(&bytewise), whole);
        for split in 0..=PIPELINED.len() {
            let (a, b) = PIPELINED.split_at(split);
            assert_eq!(drive(&[a, b]), whole, "split at {split}");
        }
    }

    // ---------------------------------------------------------------- property: round trip

    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Body {
            None,
            Length(Vec<u8>),
            Chunked(Vec<Vec<u8>>),
        }

        #[derive(Debug, Clone)]
        struct Request {
            method: Method,
            /// Path segments: (raw as sent, expected after decoding).
            path: Vec<(String, String)>,
            query: Option<String>,
            http10: bool,
            headers: Vec<(String, String)>,
            body: Body,
        }

        fn method() -> impl Strategy<Value = Method> {
            prop_oneof![
                Just(Method::GET),
                Just(Method::POST),
                Just(Method::PUT),
                Just(Method::DELETE),
                Just(Method::PATCH),
                Just(Method::HEAD),
                "[A-Z][A-Z_-]{0,11}"
                    .prop_filter("CONNECT needs authority-form", |m| m != "CONNECT")
                    .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
            ]
        }

        /// A path piece: a safe character as is, or any ASCII byte %-escaped in random case.
        fn piece() -> impl Strategy<Value = (String, String)> {
            prop_oneof![
                "[a-zA-Z0-9._~!$&'()*+,;=:@-]".prop_map(|c| (c.clone(), c)),
                (0u8..0x80, any::<bool>()).prop_map(|(b, lower)| {
                    let hex = format!("{b:02X}");
                    let raw = format!(
                        "%{}",
                        if lower {
                            hex.to_lowercase()
                        } else {
                            hex.clone()
                        }
                    );
                    let decoded = match b {
                        b'/' | 0 | b'%' => format!("%{hex}"),
                        _ => char::from(b).to_string(),
                    };
                    (raw, decoded)
                }),
                Just(("/".to_owned(), "/".to_owned())),
            ]
        }

        fn header() -> impl Strategy<Value = (String, String)> {
            let name =
                "[a-zA-Z][a-zA-Z0-9!#$&'*+.^_`|~-]{0,15}".prop_filter("framing field", |n| {
                    let n = n.to_ascii_lowercase();
                    !matches!(
                        n.as_str(),
                        "host" | "content-length" | "transfer-encoding" | "connection" | "expect"
                    )
                });
            let value = "([!-~]([ -~]{0,30}[!-~])?)?";
            (name, value)
        }

        fn body() -> impl Strategy<Value = Body> {
            prop_oneof![
                Just(Body::None),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Body::Length),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..32), 0..5)
                    .prop_map(Body::Chunked),
            ]
        }

        fn request() -> impl Strategy<Value = Request> {
            (
                method(),
                proptest::collection::vec(piece(), 0..12),
                proptest::option::of("[a-zA-Z0-9=&%._/?-]{0,20}"),
                any::<bool>(),
                proptest::collection::vec(header(), 0..20),
                body(),
            )
                .prop_map(|(method, path, query, http10, headers, body)| {
                    // HTTP/1.0 has no chunked framing (RFC 9112 §6.1).
                    let body = match body {
                        Body::Chunked(chunks) if http10 => Body::Length(chunks.concat()),
                        b => b,
                    };
                    Request {
                        method,
                        path,
                        query,
                        http10,
                        headers,
                        body,
                    }
                })
        }

        fn encode(r: &Request) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(r.method.as_str().as_bytes());
            out.extend_from_slice(b" /");
            for (raw, _) in &r.path {
                out.extend_from_slice(raw.as_bytes());
            }
            if let Some(q) = &r.query {
                out.push(b'?');
                out.extend_from_slice(q.as_bytes());
            }
            out.extend_from_slice(if r.http10 {
                b" HTTP/1.0\r\n"
            } else {
                b" HTTP/1.1\r\n"
            });
            out.extend_from_slice(b"Host: example.com\r\n");
            for (name, value) in &r.headers {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            match &r.body {
                Body::None => out.extend_from_slice(b"\r\n"),
                Body::Length(b) => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes(),
                    );
                    out.extend_from_slice(b);
                }
                Body::Chunked(chunks) => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for c in chunks {
                        crate::http1::write_chunk(&mut out, c);
                    }
                    crate::http1::write_last_chunk(&mut out);
                }
            }
            out
        }

        proptest! {
            #[test]
            fn parses_back_what_was_encoded(r in request()) {
                let bytes = encode(&r);
                let mut buf = BytesMut::from(&bytes[..]);
                let mut parser = HeadParser::new(Limits::default());
                let head = match parser.parse(&mut buf, &mut Headers::default()) {
                    Ok(Status::Complete(head)) => head,
                    other => panic!("{other:?} for {:?}", String::from_utf8_lossy(&bytes)),
                };
                prop_assert_eq!(&head.method, &r.method);
                let raw_path: String = r.path.iter().map(|(raw, _)| raw.as_str()).collect();
                let path: String = r.path.iter().map(|(_, dec)| dec.as_str()).collect();
                prop_assert_eq!(head.target.raw_path(), format!("/{raw_path}"));
                prop_assert_eq!(head.target.path(), format!("/{path}"));
                prop_assert_eq!(head.target.query(), r.query.as_deref());
                prop_assert_eq!(head.version, if r.http10 { Version::Http10 } else { Version::Http11 });
                for (name, value) in &r.headers {
                    let values: Vec<&[u8]> = head.headers.get_all(name.as_str()).collect();
                    prop_assert!(values.contains(&value.as_bytes()), "{} missing", name);
                }
                // Every field line came back, plus Host and the framing field.
                let framing_fields = usize::from(!matches!(r.body, Body::None));
                prop_assert_eq!(head.headers.len(), r.headers.len() + 1 + framing_fields);

                let mut decoder = BodyDecoder::new(head.framing, u64::MAX);
                let mut body = Vec::new();
                loop {
                    match decoder.decode(&mut buf).unwrap() {
                        Status::Complete(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                        Status::Complete(BodyEvent::End) => break,
                        Status::Partial => panic!("body incomplete"),
                    }
                }
                let expected = match &r.body {
                    Body::None => Vec::new(),
                    Body::Length(b) => b.clone(),
                    Body::Chunked(c) => c.concat(),
                };
                prop_assert_eq!(body, expected);
                prop_assert!(buf.is_empty());
            }
        }
    }
}
