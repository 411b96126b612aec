//! `ChunkedDecoder`: the chunked transfer coding (RFC 9112 §7.1) as an explicit state machine.
//!
//! It walks the control bytes (size lines, CRLFs, trailers) one at a time over the buffer it is
//! given and hands out chunk data with a zero-copy `split_to`. It never pulls from I/O: when the
//! buffer runs dry it returns `Partial` with its state kept in `self`, so it is driven the same way
//! by a socket, a test, or a fuzzer (unlike hyper's poll-coupled decoder).

use bytes::{Buf, BytesMut};
use http::HeaderMap;

use super::framing::BodyEvent;
use super::parse::parse_trailer_fields;
use super::{ParseError, Status};

/// Most hex digits in a chunk-size, leading zeros included. 16 digits hold any `u64`; more can
/// only be padding, and an endless run of `0`s must not keep the decoder busy forever.
const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// Most chunk-extension bytes over a whole body. Extensions are ignored (RFC 9112 §7.1.1), so
/// they are pure overhead; hyper bounds them the same way (16 KiB per body, `decode.rs`).
const MAX_CHUNK_EXT_BYTES: usize = 16 * 1024;

/// Most bytes in the trailer section (RFC 9112 §7.1.2), final CRLF included.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a chunk-size.
    Size,
    /// Whitespace after the size: only a `;` may follow (BWS before chunk-ext, §7.1.1).
    SizeBws,
    /// Inside chunk extensions, until CR.
    Extension,
    /// Saw the CR that ends a size line; LF must follow.
    SizeLf,
    /// Chunk data, `size` bytes still to come.
    Data,
    /// After chunk data: CR must follow.
    DataCr,
    /// After chunk data and CR: LF must follow.
    DataLf,
    /// After the last chunk, at the start of a trailer line or of the final CRLF.
    TrailerLineStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Saw the CR that ends a trailer line; LF must follow.
    TrailerLf,
    /// Saw the CR of the final empty line; LF must follow.
    EndLf,
    /// Body and trailers fully consumed.
    Done,
}

/// Decodes one chunked body from the front of a buffer.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// The chunk-size being read, then the data bytes still to come.
    size: u64,
    size_digits: u8,
    ext_bytes: usize,
    /// Sum of all chunk sizes so far, checked against `max_body`.
    total: u64,
    max_body: u64,
    /// The trailer section, allocated only if the body has trailers. Boxed, so that the
    /// decoder of a body without trailers (nearly all; one decoder per request) holds one pointer
    /// instead of a `Vec` and a ~100-byte `HeaderMap`, and is that much smaller to build.
    trailers: Option<Box<Trailers>>,
    error: Option<ParseError>,
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl ChunkedDecoder {
    pub fn new(max_body: u64) -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            size: 0,
            size_digits: 0,
            ext_bytes: 0,
            total: 0,
            max_body,
            trailers: None,
            error: None,
        }
    }

    /// Same contract as `BodyDecoder::decode`. Errors stick.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Status<BodyEvent>, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let result = self.decode_inner(buf);
        if let Err(e) = result {
            self.error = Some(e);
        }
        result
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The trailer fields, once `End` was returned; `None` if there were none.
    pub fn trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.as_mut()?.map.take()
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Status<BodyEvent>, ParseError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Status::Complete(BodyEvent::End)),
                ChunkState::Data => {
                    if buf.is_empty() {
                        return Ok(Status::Partial);
                    }
                    let n = usize::try_from(self.size).map_or(buf.len(), |s| s.min(buf.len()));
                    let data = buf.split_to(n).freeze();
                    // n <= size: it is the minimum of the two.
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    return Ok(Status::Complete(BodyEvent::Data(data)));
                }
                _ => {
                    let mut used = 0;
                    for &b in buf.iter() {
                        used += 1;
                        if let Err(e) = self.step(b) {
                            buf.advance(used);
                            return Err(e);
                        }
                        if matches!(self.state, ChunkState::Data | ChunkState::Done) {
                            break;
                        }
                    }
                    buf.advance(used);
                    if !matches!(self.state, ChunkState::Data | ChunkState::Done) {
                        return Ok(Status::Partial);
                    }
                }
            }
        }
    }

    /// Consume one control byte.
    fn step(&mut self, b: u8) -> Result<(), ParseError> {
        use ChunkState::*;
        match self.state {
            // RFC 9112 §7.1: chunk-size = 1*HEXDIG.
            Size => match hex_value(b) {
                Some(v) => {
                    self.size_digits += 1;
                    if self.size_digits > MAX_CHUNK_SIZE_DIGITS {
                        return Err(ParseError::BadChunkSize);
                    }
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(v))
                        .ok_or(ParseError::BadChunkSize)?;
                }
                None => {
                    if self.size_digits == 0 {
                        return Err(ParseError::BadChunkSize);
                    }
                    self.state = match b {
                        b'\r' => SizeLf,
                        b';' => Extension,
                        b' ' | b'\t' => SizeBws,
                        _ => return Err(ParseError::BadChunkSize),
                    };
                    // The body limit is checked as soon as a chunk announces its size, before
                    // its data is read.
                    self.total = self
                        .total
                        .checked_add(self.size)
                        .filter(|&t| t <= self.max_body)
                        .ok_or(ParseError::BodyTooLarge)?;
                }
            },
            // RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
            // chunk-ext-val ] ): whitespace after the size is allowed only before a ';'.
            SizeBws => {
                self.count_ext_byte()?;
                match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = Extension,
                    _ => return Err(ParseError::BadChunkSize),
                }
            }
            // RFC 9112 §7.1.1: extensions are parsed only far enough to find their end, then
            // ignored. No CTL but HTAB may appear in them (so no bare CR or LF).
            Extension => {
                self.count_ext_byte()?;
                match b {
                    b'\r' => self.state = SizeLf,
                    b'\t' | 0x20..=0x7e | 0x80..=0xff => {}
                    _ => return Err(ParseError::BadChunkExtension),
                }
            }
            // RFC 9112 §7.1: the size line ends with CRLF; last-chunk (size 0) starts the
            // trailer section.
            SizeLf => {
                if b != b'\n' {
                    return Err(ParseError::BadChunkSize);
                }
                self.state = if self.size == 0 {
                    TrailerLineStart
                } else {
                    Data
                };
            }
            Data => unreachable!("chunk data is split off in decode_inner, not stepped"),
            // RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF.
            DataCr => {
                if b != b'\r' {
                    return Err(ParseError::BadChunkTerminator);
                }
                self.state = DataLf;
            }
            DataLf => {
                if b != b'\n' {
                    return Err(ParseError::BadChunkTerminator);
                }
                self.state = Size;
                self.size = 0;
                self.size_digits = 0;
            }
            // RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then the final CRLF.
            TrailerLineStart => match b {
                b'\r' => self.state = EndLf,
                // RFC 9112 §2.2: bare LF rejected, as in the head.
                b'\n' => return Err(ParseError::BareLineFeed),
                _ => {
                    self.push_trailer_byte(b)?;
                    self.state = TrailerLine;
                }
            },
            TrailerLine => {
                self.push_trailer_byte(b)?;
                match b {
                    b'\r' => self.state = TrailerLf,
                    b'\n' => return Err(ParseError::BareLineFeed),
                    _ => {}
                }
            }
            TrailerLf => {
                if b != b'\n' {
                    return Err(ParseError::BareCarriageReturn);
                }
                self.push_trailer_byte(b)?;
                self.state = TrailerLineStart;
            }
            EndLf => {
                if b != b'\n' {
                    return Err(ParseError::BareCarriageReturn);
                }
                self.finish_trailers()?;
                self.state = Done;
            }
            Done => unreachable!("decode_inner returns End before stepping in Done"),
        }
        Ok(())
    }

    fn count_ext_byte(&mut self) -> Result<(), ParseError> {
        self.ext_bytes += 1;
        if self.ext_bytes > MAX_CHUNK_EXT_BYTES {
            return Err(ParseError::ChunkExtensionTooLong);
        }
        Ok(())
    }

    fn push_trailer_byte(&mut self, b: u8) -> Result<(), ParseError> {
        let bytes = &mut self.trailers.get_or_insert_default().bytes;
        // +2 for the final CRLF still to come.
        if bytes.len() + 2 >= MAX_TRAILER_BYTES {
            return Err(ParseError::TrailersTooLarge);
        }
        bytes.push(b);
        Ok(())
    }

    /// Parse the collected trailer lines with the same field rules as the head (RFC 9112
    /// §7.1.2: trailer fields use the field-line syntax of §5).
    fn finish_trailers(&mut self) -> Result<(), ParseError> {
        let Some(trailers) = self.trailers.as_mut().filter(|t| !t.bytes.is_empty()) else {
            return Ok(());
        };
        let section = bytes::Bytes::from(std::mem::take(&mut trailers.bytes));
        let mut map = HeaderMap::new();
        parse_trailer_fields(&section, &mut map)?;
        trailers.map = Some(map);
        Ok(())
    }
}

impl Drop for ChunkedDecoder {
    /// Frees the trailers out of line, so that dropping a `BodyDecoder` (once per request) is a
    /// few inlined compares rather than a call into drop glue that saves six registers first
    /// (measured: ~20 instructions per request).
    #[inline]
    fn drop(&mut self) {
        #[cold]
        #[inline(never)]
        fn free(trailers: Box<Trailers>) {
            drop(trailers);
        }
        if let Some(trailers) = self.trailers.take() {
            free(trailers);
        }
    }
}

/// A chunked body's trailer section: the bytes as received, then the fields parsed from them.
#[derive(Debug, Default)]
struct Trailers {
    bytes: Vec<u8>,
    map: Option<HeaderMap>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Decode `input` in one go; returns (body, trailers, rest of buffer).
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), ParseError> {
        decode_with_limit(input, u64::MAX)
    }

    fn decode_with_limit(
        input: &[u8],
        max_body: u64,
    ) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), ParseError> {
        let mut dec = ChunkedDecoder::new(max_body);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match dec.decode(&mut buf)? {
                Status::Complete(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                Status::Complete(BodyEvent::End) => return Ok((body, dec.trailers(), buf)),
                Status::Partial => panic!("unexpected Partial after {} body bytes", body.len()),
            }
        }
    }

    #[test]
    fn decodes_chunks_and_stops_at_the_end() {
        let (body, trailers, rest) =
            decode_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /").unwrap();
        assert_eq!(body, b"hello world");
        assert!(trailers.is_none());
        assert_eq!(&rest[..], b"GET /");
    }

    #[test]
    fn chunk_size_is_hex_any_case_with_leading_zeros() {
        let (body, _, _) =
            decode_all(b"000A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body.len(), 20);
    }

    #[test]
    fn ignores_chunk_extensions() {
        let input = b"5;name=value;quoted=\"a b\"\r\nhello\r\n5 ; x\r\nworld\r\n0;last\r\n\r\n";
        let (body, _, _) = decode_all(input).unwrap();
        assert_eq!(body, b"helloworld");
    }

    #[test]
    fn parses_trailers_with_field_rules() {
        let (body, trailers, rest) =
            decode_all(b"3\r\nabc\r\n0\r\nX-Sum: 42\r\nX-B:  b \r\n\r\nnext").unwrap();
        assert_eq!(body, b"abc");
        let t = trailers.unwrap();
        assert_eq!(t["x-sum"], "42");
        assert_eq!(t["x-b"], "b");
        assert_eq!(&rest[..], b"next");
    }

    #[test]
    fn rejects_bad_chunk_size() {
        for input in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"0x5\r\n",
            b"5 \r\n",
            b";x\r\n",
            b"5\rx",
        ] {
            assert_eq!(
                decode_all(input).unwrap_err(),
                ParseError::BadChunkSize,
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_chunk_size_overflow_and_long_digit_runs() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n").unwrap_err(),
            ParseError::BadChunkSize
        );
        assert_eq!(
            decode_all(b"00000000000000001\r\n").unwrap_err(),
            ParseError::BadChunkSize
        );
        // 16 digits are fine as long as the body limit allows them.
        assert_eq!(
            decode_with_limit(b"FFFFFFFFFFFFFFFF\r\n", 10).unwrap_err(),
            ParseError::BodyTooLarge
        );
    }

    #[test]
    fn rejects_missing_crlf_after_chunk_data() {
        assert_eq!(
            decode_all(b"3\r\nabcX\r\n").unwrap_err(),
            ParseError::BadChunkTerminator
        );
        assert_eq!(
            decode_all(b"3\r\nabc\rX").unwrap_err(),
            ParseError::BadChunkTerminator
        );
        assert_eq!(
            decode_all(b"3\r\nabc\n0\r\n").unwrap_err(),
            ParseError::BadChunkTerminator
        );
    }

    #[test]
    fn rejects_chunk_extension_too_long() {
        let mut input = b"1;".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_CHUNK_EXT_BYTES));
        input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(
            decode_all(&input).unwrap_err(),
            ParseError::ChunkExtensionTooLong
        );
    }

    #[test]
    fn rejects_control_bytes_in_chunk_extension() {
        assert_eq!(
            decode_all(b"1;a\nb\r\n").unwrap_err(),
            ParseError::BadChunkExtension
        );
        assert_eq!(
            decode_all(b"1;a\x00\r\n").unwrap_err(),
            ParseError::BadChunkExtension
        );
    }

    #[test]
    fn rejects_trailers_too_large() {
        let mut input = b"0\r\nX-Big: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES));
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            decode_all(&input).unwrap_err(),
            ParseError::TrailersTooLarge
        );
    }

    #[test]
    fn rejects_bad_trailer_fields() {
        assert_eq!(
            decode_all(b"0\r\nX :a\r\n\r\n").unwrap_err(),
            ParseError::WhitespaceBeforeColon
        );
        assert_eq!(
            decode_all(b"0\r\nX: a\r\n b\r\n\r\n").unwrap_err(),
            ParseError::ObsFold
        );
        assert_eq!(
            decode_all(b"0\r\nX: a\x00\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderValue
        );
        assert_eq!(
            decode_all(b"0\r\nX: a\n\r\n").unwrap_err(),
            ParseError::BareLineFeed
        );
        assert_eq!(
            decode_all(b"0\r\n\rX").unwrap_err(),
            ParseError::BareCarriageReturn
        );
    }

    #[test]
    fn rejects_body_over_max_body_before_its_data_arrives() {
        let mut dec = ChunkedDecoder::new(8);
        let mut buf = BytesMut::from(&b"5\r\nhello\r\n4\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Status::Complete(BodyEvent::Data(Bytes::from_static(
                b"hello"
            ))))
        );
        assert_eq!(dec.decode(&mut buf), Err(ParseError::BodyTooLarge));
        // Errors stick.
        assert_eq!(dec.decode(&mut buf), Err(ParseError::BodyTooLarge));
    }

    #[test]
    fn resumes_across_every_split() {
        let input = b"4;e=1\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\nNEXT";
        let (whole, whole_trailers, _) = decode_all(input).unwrap();
        for split in 0..input.len() {
            let mut dec = ChunkedDecoder::new(u64::MAX);
            let mut buf = BytesMut::from(&input[..split]);
            let mut body = Vec::new();
            let mut fed_rest = false;
            loop {
                match dec.decode(&mut buf).unwrap() {
                    Status::Complete(BodyEvent::Data(d)) => body.extend_from_slice(&d),
                    Status::Complete(BodyEvent::End) => break,
                    Status::Partial => {
                        assert!(!fed_rest, "Partial with all input at split {split}");
                        buf.extend_from_slice(&input[split..]);
                        fed_rest = true;
                    }
                }
            }
            if !fed_rest {
                buf.extend_from_slice(&input[split..]);
            }
            assert_eq!(body, whole, "split {split}");
            assert_eq!(dec.trailers(), whole_trailers, "split {split}");
            assert_eq!(&buf[..], b"NEXT", "split {split}");
        }
    }
}
