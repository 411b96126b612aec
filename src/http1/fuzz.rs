//! The driver shared by the fuzz target (`fuzz/fuzz_targets/parse_request.rs`) and the corpus
//! replay test (`tests/fuzz_corpus_replay.rs`): feeds bytes through `HeadParser` and
//! `BodyDecoder` the way the connection loop does, pipelined requests included.
//!
//! Besides "never panic", it checks that the outcome does not depend on how the input was split
//! into reads: the whole input at once, split at a position taken from the input, and (for small
//! inputs) one byte at a time must all yield the same heads, bodies, trailers and error.

use bytes::BytesMut;
use http::HeaderMap;

use super::{BodyDecoder, BodyEvent, HeadParser, Headers, Limits, ParseError, RequestHead, Status};

/// Small limits, so that short fuzz inputs reach every limit check.
const SMALL_LIMITS: Limits = Limits {
    max_request_line: 64,
    max_header_bytes: 256,
    max_headers: 8,
    max_body: 1024,
};

/// Inputs up to this size are also fed one byte at a time.
const BYTE_AT_A_TIME_MAX: usize = 4096;

/// Requests handled per input at most (each consumes bytes, so this only bounds the work).
const MAX_REQUESTS: usize = 64;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Head(Box<RequestHead>),
    Body(Vec<u8>),
    Trailers(Option<HeaderMap>),
    Error(ParseError),
}

/// Drive `data` through the parsers; panics only if an invariant breaks. The first byte picks
/// the limits and the split position; the rest is the byte stream.
#[doc(hidden)]
pub fn fuzz_drive(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let limits = if control & 0x80 == 0 {
        SMALL_LIMITS
    } else {
        Limits::default()
    };
    let whole = drive(limits, std::iter::once(input));

    let split = input.len() * usize::from(control & 0x7f) / 0x7f;
    let (a, b) = input.split_at(split);
    let two_reads = drive(limits, [a, b].into_iter());
    assert_eq!(whole, two_reads, "outcome depends on a split at {split}");

    if input.len() <= BYTE_AT_A_TIME_MAX {
        let bytewise = drive(limits, input.chunks(1));
        assert_eq!(
            whole, bytewise,
            "outcome differs when fed one byte at a time"
        );
    }
}

fn drive<'a>(limits: Limits, mut reads: impl Iterator<Item = &'a [u8]>) -> Vec<Outcome> {
    let mut buf = BytesMut::new();
    let mut parser = HeadParser::new(limits);
    let mut spare = Headers::default();
    let mut outcomes = Vec::new();
    let mut body: Option<(BodyDecoder, Vec<u8>)> = None;
    let mut requests = 0;
    loop {
        match &mut body {
            None => match parser.parse(&mut buf, &mut spare) {
                Err(e) => {
                    outcomes.push(Outcome::Error(e));
                    return outcomes;
                }
                Ok(Status::Complete(head)) => {
                    check_target_accessors(&head);
                    check_header_accessors(&head.headers);
                    // The upgrade check reads any head without panicking.
                    let _ = super::wants_h2c(&head);
                    body = Some((BodyDecoder::new(head.framing, limits.max_body), Vec::new()));
                    outcomes.push(Outcome::Head(Box::new(head)));
                    requests += 1;
                }
                Ok(Status::Partial) => match reads.next() {
                    Some(read) => buf.extend_from_slice(read),
                    None => return outcomes,
                },
            },
            Some((decoder, data)) => match decoder.decode(&mut buf) {
                Err(e) => {
                    outcomes.push(Outcome::Body(std::mem::take(data)));
                    outcomes.push(Outcome::Error(e));
                    return outcomes;
                }
                Ok(Status::Complete(BodyEvent::Data(d))) => {
                    assert!(!d.is_empty(), "Data events are never empty");
                    data.extend_from_slice(&d);
                }
                Ok(Status::Complete(BodyEvent::End)) => {
                    assert!(decoder.is_done());
                    outcomes.push(Outcome::Body(std::mem::take(data)));
                    outcomes.push(Outcome::Trailers(decoder.trailers()));
                    body = None;
                    if requests >= MAX_REQUESTS {
                        return outcomes;
                    }
                }
                Ok(Status::Partial) => {
                    assert!(buf.is_empty(), "body Partial leaves no bytes behind");
                    match reads.next() {
                        Some(read) => buf.extend_from_slice(read),
                        None => {
                            outcomes.push(Outcome::Body(std::mem::take(data)));
                            return outcomes;
                        }
                    }
                }
            },
        }
    }
}

/// The accessors rely on invariants of `Target::parse`; calling them checks those hold.
fn check_target_accessors(head: &RequestHead) {
    let t = &head.target;
    let _ = (
        t.form(),
        t.raw(),
        t.raw_path(),
        t.path(),
        t.query(),
        t.authority(),
    );
    if !t.raw_path().contains('%') {
        assert_eq!(t.path(), t.raw_path());
    }
}

/// What the parser promises about every field it accepted, checked through the public accessors.
fn check_header_accessors(headers: &Headers) {
    assert_eq!(headers.iter().count(), headers.len());
    assert_eq!(headers.is_empty(), headers.iter().next().is_none());
    for (name, value) in headers.iter() {
        // RFC 9110 §5.6.2: names are tokens.
        assert!(super::parse::is_token(name.as_bytes()), "name {name:?}");
        // RFC 9110 §5.5: values have no CTL but HTAB, no DEL, and no surrounding OWS.
        assert!(
            value
                .iter()
                .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t'),
            "value {value:?}"
        );
        assert!(!matches!(value.first(), Some(b' ' | b'\t')), "leading OWS");
        assert!(!matches!(value.last(), Some(b' ' | b'\t')), "trailing OWS");
        assert!(headers.contains(name) && headers.contains(&name.to_ascii_uppercase()));
        assert!(headers.get_all(name).any(|v| v == value));
        let first = headers.get(name).expect("a listed name is found");
        if let Some(s) = headers.get_str(name) {
            assert_eq!(s.as_bytes(), first);
        }
    }
    // Everything the parser accepted, the http crate's types accept too.
    assert_eq!(headers.to_header_map().len(), headers.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_pipelined_requests_without_panicking() {
        let mut data = vec![0x40];
        data.extend_from_slice(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /p HTTP/1.1\r\nHost: a\r\n\
              Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /%zz HTTP/1.1\r\n\r\n",
        );
        fuzz_drive(&data);
        fuzz_drive(&[]);
        fuzz_drive(&[0xff]);
    }
}
