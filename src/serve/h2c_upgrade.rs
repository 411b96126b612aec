//! The HTTP/2 half of `Upgrade: h2c` (RFC 7540 §3.2): the upgraded HTTP/1.1 request becomes
//! stream 1 of the HTTP/2 connection, "half-closed (remote)" from the server's side.
//!
//! h2's server has no way to adopt a request it did not read itself, so it is given one to read:
//! [`StreamOne`] is the request encoded as a HEADERS frame, and [`Splice`] says where in the
//! client's bytes it goes: after the connection preface and the client's first frame, which must
//! be SETTINGS (RFC 9113 §3.4), and before anything else. `Rewind` (in `h2.rs`) applies it as h2
//! reads. The client never sends stream 1 itself (its own streams start at 3), so nothing it sends
//! can clash with the injected frame.
//!
//! This module only encodes and counts bytes: no I/O, no HTTP/1.1 rules (those are in
//! `crate::http1::wants_h2c`).

use bytes::{BufMut, Bytes, BytesMut};

use super::h2_wire::{
    FrameHead, ACK, END_HEADERS, END_STREAM, FRAME_HEAD_LEN, HEADERS, MAX_FRAME_SIZE, PREFACE,
    SETTINGS,
};
use crate::http1::{trim_ows, RequestHead};

/// The preface and the head of the client's first frame.
const PRELUDE: usize = PREFACE.len() + FRAME_HEAD_LEN;
// A HEADERS frame over MAX_FRAME_SIZE would be a FRAME_SIZE_ERROR; the client's SETTINGS payload
// is held to it too.

/// Fields that mean something only to the HTTP/1.1 connection (RFC 9113 §8.2.2), or are carried
/// by a pseudo-header field instead (`Host` is `:authority`, RFC 9113 §8.3.1). h2 would refuse
/// the request (malformed) if any of the former appeared.
const CONNECTION_SPECIFIC: [&str; 7] = [
    "connection",
    "upgrade",
    "http2-settings",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// The upgraded request as the HEADERS frame a client would have sent for it on stream 1, with
/// END_STREAM (the request has no body, see `wants_h2c`) and END_HEADERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamOne(Bytes);

impl StreamOne {
    /// Encodes `head`, or `None` if it cannot be stream 1: no `Host` to give `:authority` (h2
    /// refuses an empty one), or a header block over one frame (we do not write CONTINUATION
    /// frames; such a request is served over HTTP/1.1 instead).
    ///
    /// Every field is a "literal header field without indexing — new name" (RFC 7541 §6.2.2) with
    /// no Huffman coding: such fields leave the decoder's dynamic table alone, so the client's
    /// encoder, which knows nothing of this block, stays in step with h2's decoder.
    pub(crate) fn encode(head: &RequestHead) -> Option<StreamOne> {
        let authority = head.headers.get("host").filter(|host| !host.is_empty())?;
        let mut frame = BytesMut::with_capacity(256);
        frame.put_bytes(0, FRAME_HEAD_LEN);
        literal(&mut frame, b":method", head.method.as_str().as_bytes());
        literal(&mut frame, b":scheme", b"http");
        literal(&mut frame, b":path", head.target.raw());
        literal(&mut frame, b":authority", authority);
        for (name, value) in head.headers.iter() {
            if is_connection_specific(head, name) {
                continue;
            }
            // RFC 9113 §8.2.2: TE may appear, with "trailers" as its only value.
            if name.eq_ignore_ascii_case("te") {
                if value.eq_ignore_ascii_case(b"trailers") {
                    literal(&mut frame, b"te", b"trailers");
                }
                continue;
            }
            // RFC 9113 §8.2.1: field names are lowercase in HTTP/2.
            frame.put_u8(0x00);
            string(&mut frame, name.len());
            frame.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
            string(&mut frame, value.len());
            frame.put_slice(value);
        }
        let len = frame.len() - FRAME_HEAD_LEN;
        if len > MAX_FRAME_SIZE {
            return None;
        }
        let header = FrameHead {
            len: len as u32,
            kind: HEADERS,
            flags: END_STREAM | END_HEADERS,
            stream: 1,
        }
        .encode();
        frame[..FRAME_HEAD_LEN].copy_from_slice(&header);
        Some(StreamOne(frame.freeze()))
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A field HTTP/2 does not carry as a field: one of `CONNECTION_SPECIFIC`, or one the request's
/// `Connection` names as an option of this connection only (RFC 9110 §7.6.1).
fn is_connection_specific(head: &RequestHead, name: &str) -> bool {
    CONNECTION_SPECIFIC
        .iter()
        .any(|specific| name.eq_ignore_ascii_case(specific))
        || head.headers.get_all("connection").any(|options| {
            options
                .split(|&b| b == b',')
                .any(|option| trim_ows(option).eq_ignore_ascii_case(name.as_bytes()))
        })
}

/// RFC 7541 §6.2.2, new name: the 0x00 prefix, the name, the value, both raw strings.
fn literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0x00);
    string(out, name.len());
    out.put_slice(name);
    string(out, value.len());
    out.put_slice(value);
}

/// RFC 7541 §5.2: the length of a string literal without Huffman coding (H = 0), an integer with
/// a 7-bit prefix (§5.1). The string's bytes follow.
fn string(out: &mut BytesMut, len: usize) {
    const PREFIX_MAX: usize = 0x7f;
    if len < PREFIX_MAX {
        out.put_u8(len as u8);
        return;
    }
    out.put_u8(PREFIX_MAX as u8);
    let mut rest = len - PREFIX_MAX;
    while rest >= 0x80 {
        out.put_u8((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

/// Where stream 1 goes in the client's bytes, as they pass on to h2: counts the preface and the
/// first frame through, then hands out the frame, then lets everything through unchanged. Bytes
/// that are not a preface and a SETTINGS frame are passed on untouched, without the frame, and h2
/// rejects them as it rejects any bad start (the upgraded request is then never served).
#[derive(Debug)]
pub(crate) struct Splice {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Collecting the preface and the first frame's header as they pass: `seen` of them so far.
    Prelude {
        bytes: [u8; PRELUDE],
        seen: usize,
        frame: Bytes,
    },
    /// Passing the client's SETTINGS payload: `left` bytes to go.
    Settings { left: usize, frame: Bytes },
    /// What is left of the frame goes next.
    Inject(Bytes),
    /// Nothing more to do.
    Through,
}

impl Splice {
    /// Nothing to add: the client's bytes pass unchanged (prior-knowledge h2c).
    pub(crate) fn none() -> Splice {
        Splice {
            state: State::Through,
        }
    }

    /// `stream_one` goes after the client's preface and SETTINGS frame.
    pub(crate) fn stream_one(stream_one: StreamOne) -> Splice {
        Splice {
            state: State::Prelude {
                bytes: [0; PRELUDE],
                seen: 0,
                frame: stream_one.0,
            },
        }
    }

    /// The next piece of the injected frame (up to `max` bytes), to be read before any more of
    /// the client's bytes; `None` when it is not the frame's turn.
    pub(crate) fn take_injected(&mut self, max: usize) -> Option<Bytes> {
        let State::Inject(frame) = &mut self.state else {
            return None;
        };
        let piece = frame.split_to(frame.len().min(max));
        if frame.is_empty() {
            self.state = State::Through;
        }
        Some(piece)
    }

    /// At most how many of the client's bytes may pass before the splice must look at them again
    /// (`None`: any number). Never zero while the client's bytes are expected.
    pub(crate) fn pass_limit(&self) -> Option<usize> {
        match &self.state {
            State::Prelude { seen, .. } => Some(PRELUDE - seen),
            State::Settings { left, .. } => Some(*left),
            State::Inject(_) => Some(0),
            State::Through => None,
        }
    }

    /// Notes that `passed` (at most `pass_limit()` bytes) of the client's went on to h2.
    pub(crate) fn passed(&mut self, passed: &[u8]) {
        let state = std::mem::replace(&mut self.state, State::Through);
        self.state = match state {
            State::Prelude {
                mut bytes,
                seen,
                frame,
            } => {
                let n = passed.len().min(PRELUDE - seen);
                bytes[seen..seen + n].copy_from_slice(&passed[..n]);
                let seen = seen + n;
                if seen < PRELUDE {
                    State::Prelude { bytes, seen, frame }
                } else {
                    match settings_payload_len(&bytes) {
                        Some(0) => State::Inject(frame),
                        Some(left) => State::Settings { left, frame },
                        None => State::Through,
                    }
                }
            }
            State::Settings { left, frame } => match left.saturating_sub(passed.len()) {
                0 => State::Inject(frame),
                left => State::Settings { left, frame },
            },
            // Client bytes while the frame waits would be a caller's bug (`pass_limit` is zero):
            // the frame still goes first from here on.
            other => other,
        };
    }
}

/// The payload length of the SETTINGS frame whose header ends `prelude`, if `prelude` is the
/// connection preface and a SETTINGS header h2 will accept (RFC 9113 §6.5: not an ACK, stream 0,
/// whole settings, within the frame size limit).
fn settings_payload_len(prelude: &[u8; PRELUDE]) -> Option<usize> {
    let (preface, head) = prelude.split_at(PREFACE.len());
    let head = FrameHead::parse(head.try_into().ok()?);
    let len = head.len as usize;
    let ok = preface == PREFACE
        && head.kind == SETTINGS
        && head.flags & ACK == 0
        && head.stream == 0
        && len.is_multiple_of(6)
        && len <= MAX_FRAME_SIZE;
    ok.then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{HeadParser, Headers, Limits, Status};

    const CURL: &str = "GET /plaintext?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
        User-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\n\
        Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";

    fn head(input: &str) -> RequestHead {
        let mut parser = HeadParser::new(Limits::default());
        let mut buf = BytesMut::from(input);
        match parser.parse(&mut buf, &mut Headers::default()) {
            Ok(Status::Complete(head)) => head,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    /// Reads a header block of literal-without-indexing, new-name, raw-string fields (the only
    /// representation `StreamOne` writes), failing on anything else.
    fn decode_block(mut block: &[u8]) -> Vec<(String, String)> {
        fn int(block: &mut &[u8]) -> usize {
            let first = block[0];
            *block = &block[1..];
            assert_eq!(first & 0x80, 0, "Huffman-coded string");
            let mut value = usize::from(first & 0x7f);
            if value < 0x7f {
                return value;
            }
            let mut shift = 0;
            loop {
                let b = block[0];
                *block = &block[1..];
                value += usize::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return value;
                }
            }
        }
        fn string(block: &mut &[u8]) -> String {
            let len = int(block);
            let s = String::from_utf8(block[..len].to_vec()).unwrap();
            *block = &block[len..];
            s
        }
        let mut fields = Vec::new();
        while !block.is_empty() {
            assert_eq!(block[0], 0x00, "not a literal without indexing, new name");
            block = &block[1..];
            let name = string(&mut block);
            let value = string(&mut block);
            fields.push((name, value));
        }
        fields
    }

    fn fields(stream_one: &StreamOne) -> Vec<(String, String)> {
        let frame = stream_one.bytes();
        let len = usize::from(frame[0]) << 16 | usize::from(frame[1]) << 8 | usize::from(frame[2]);
        assert_eq!(len, frame.len() - 9);
        assert_eq!(frame[3], HEADERS);
        assert_eq!(frame[4], END_STREAM | END_HEADERS);
        assert_eq!(frame[5..9], [0, 0, 0, 1]);
        decode_block(&frame[9..])
    }

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stream_one_carries_the_request_without_connection_fields() {
        let stream_one = StreamOne::encode(&head(CURL)).unwrap();
        assert_eq!(
            fields(&stream_one),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/plaintext?x=1"),
                (":authority", "127.0.0.1:8080"),
                ("user-agent", "curl/8.5.0"),
                ("accept", "*/*"),
            ])
        );
    }

    #[test]
    fn stream_one_drops_connection_options_and_te_other_than_trailers() {
        let input = CURL.replacen(
            "Accept: */*\r\n",
            "Keep-Alive: 5\r\nProxy-Connection: x\r\nX-Hop: 1\r\nConnection: x-hop\r\n\
             TE: gzip\r\nTE: Trailers\r\nX-Keep: Mixed Case\r\n",
            1,
        );
        let stream_one = StreamOne::encode(&head(&input)).unwrap();
        assert_eq!(
            fields(&stream_one)[4..],
            pairs(&[
                ("user-agent", "curl/8.5.0"),
                ("te", "trailers"),
                ("x-keep", "Mixed Case"),
            ])
        );
    }

    #[test]
    fn lengths_of_127_and_more_use_continuation_bytes() {
        for len in [126, 127, 128, 255, 300, 5000] {
            let value = "v".repeat(len);
            let input = CURL.replacen("Accept: */*", &format!("X-Long: {value}"), 1);
            let stream_one = StreamOne::encode(&head(&input)).unwrap();
            let got = fields(&stream_one);
            assert_eq!(got[5], ("x-long".to_string(), value), "{len}");
        }
    }

    #[test]
    fn a_block_over_one_frame_is_not_encoded() {
        let fits = CURL.replacen("Accept: */*", &format!("X-Big: {}", "a".repeat(16_000)), 1);
        assert!(StreamOne::encode(&head(&fits)).is_some());
        let over = CURL.replacen("Accept: */*", &format!("X-Big: {}", "a".repeat(16_384)), 1);
        assert!(StreamOne::encode(&head(&over)).is_none());
    }

    #[test]
    fn an_empty_host_is_not_encoded() {
        let input = CURL.replacen("Host: 127.0.0.1:8080", "Host:", 1);
        assert!(StreamOne::encode(&head(&input)).is_none());
    }

    // ------------------------------------------------------------------------- Splice

    fn settings(payload: &[u8]) -> Vec<u8> {
        let mut frame = FrameHead {
            len: payload.len() as u32,
            kind: SETTINGS,
            flags: 0,
            stream: 0,
        }
        .encode()
        .to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    fn stream_one() -> StreamOne {
        StreamOne::encode(&head(CURL)).unwrap()
    }

    /// What h2 would read through the splice, the client's bytes arriving in pieces of `piece`
    /// bytes (and h2 asking for up to `want` at a time).
    fn through(client: &[u8], piece: usize, want: usize) -> Vec<u8> {
        let mut splice = Splice::stream_one(stream_one());
        let mut out = Vec::new();
        let mut rest = client;
        loop {
            if let Some(injected) = splice.take_injected(want) {
                out.extend_from_slice(&injected);
                continue;
            }
            if rest.is_empty() {
                return out;
            }
            let limit = splice.pass_limit().unwrap_or(usize::MAX);
            assert!(limit > 0);
            let n = rest.len().min(piece).min(limit).min(want);
            splice.passed(&rest[..n]);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
    }

    fn spliced(client_start: &[u8], rest: &[u8]) -> Vec<u8> {
        [client_start, stream_one().bytes(), rest].concat()
    }

    #[test]
    fn stream_one_goes_right_after_the_client_settings_however_reads_split() {
        let start = [
            &PREFACE[..],
            &settings(&[0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff]),
        ]
        .concat();
        let rest = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x0f\x00\x01";
        let client = [&start[..], rest].concat();
        let want = spliced(&start, rest);
        for piece in [1, 2, 3, 7, 24, 33, 34, 40, 1 << 16] {
            for read in [1, 5, 9, 4096] {
                assert_eq!(through(&client, piece, read), want, "{piece} {read}");
            }
        }
    }

    #[test]
    fn an_empty_client_settings_frame_is_followed_at_once() {
        let start = [&PREFACE[..], &settings(&[])].concat();
        assert_eq!(through(&start, 1, 4096), spliced(&start, &[]));
        assert_eq!(through(&start, 100, 4096), spliced(&start, &[]));
    }

    #[test]
    fn anything_but_preface_and_settings_passes_unchanged() {
        let not_preface = [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0; 40]].concat();
        let ping_first = [
            &PREFACE[..],
            b"\x00\x00\x08\x06\x00\x00\x00\x00\x00",
            &[0; 8],
        ]
        .concat();
        let settings_ack = [&PREFACE[..], b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"].concat();
        let odd_settings = [&PREFACE[..], &settings(&[0; 5])].concat();
        let settings_on_a_stream = [&PREFACE[..], b"\x00\x00\x00\x04\x00\x00\x00\x00\x03"].concat();
        for client in [
            not_preface,
            ping_first,
            settings_ack,
            odd_settings,
            settings_on_a_stream,
        ] {
            for piece in [1, 4096] {
                assert_eq!(through(&client, piece, 4096), client, "{client:?}");
            }
        }
    }

    #[test]
    fn a_short_client_gets_no_frame() {
        let start = [&PREFACE[..], &settings(&[0, 3, 0, 0, 0, 100])].concat();
        for cut in [0, 10, 24, 30, 33, 35] {
            assert_eq!(through(&start[..cut], 1, 4096), &start[..cut], "{cut}");
        }
    }

    // ------------------------------------------------------------------------- Rewind

    /// A socket that delivers `bytes` one at a time, answering every other poll with `Pending`
    /// (and waking at once), then EOF.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        ready: bool,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.ready = !self.ready;
            if !self.ready {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            if let Some(&b) = self.bytes.get(self.at) {
                buf.put_slice(&[b]);
                self.at += 1;
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Everything h2 would read from a `Rewind` over `already` (read by the HTTP/1.1 loop) and
    /// `socket` (trickled), asking for `want` bytes at a time.
    fn read_all(already: &[u8], socket: &[u8], want: usize) -> Vec<u8> {
        use tokio::io::AsyncRead;
        let socket = Trickle {
            bytes: socket.to_vec(),
            at: 0,
            ready: false,
        };
        let mut rewind = super::super::h2::Rewind::new(
            Bytes::copy_from_slice(already),
            socket,
            Some(stream_one()),
        );
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        let mut pendings = 0;
        loop {
            let mut space = vec![0u8; want];
            let mut buf = tokio::io::ReadBuf::new(&mut space);
            match std::pin::Pin::new(&mut rewind).poll_read(&mut cx, &mut buf) {
                std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => return out,
                std::task::Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                std::task::Poll::Ready(Err(err)) => panic!("{err}"),
                std::task::Poll::Pending => {
                    pendings += 1;
                    assert!(pendings < 100_000);
                }
            }
        }
    }

    #[test]
    fn rewind_injects_after_settings_delivered_byte_by_byte() {
        let start = [
            &PREFACE[..],
            &settings(&[0, 3, 0, 0, 0, 100, 0, 2, 0, 0, 0, 0]),
        ]
        .concat();
        let rest = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingpong";
        let client = [&start[..], rest].concat();
        let want = spliced(&start, rest);
        // The HTTP/1.1 loop may have read none, part or all of it (with the request).
        for already in [0, 1, 23, 24, 30, 33, 34, start.len(), client.len()] {
            for read in [1, 7, 4096] {
                let got = read_all(&client[..already], &client[already..], read);
                assert_eq!(got, want, "{already} already read, reads of {read}");
            }
        }
    }

    #[test]
    fn rewind_without_an_upgrade_passes_everything() {
        use tokio::io::AsyncRead;
        let mut rewind = super::super::h2::Rewind::new(
            Bytes::from_static(b"PRI * HTTP/2.0\r\n\r\n"),
            Trickle {
                bytes: b"SM\r\n\r\n".to_vec(),
                at: 0,
                ready: true,
            },
            None,
        );
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        loop {
            let mut space = [0u8; 64];
            let mut buf = tokio::io::ReadBuf::new(&mut space);
            match std::pin::Pin::new(&mut rewind).poll_read(&mut cx, &mut buf) {
                std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                std::task::Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
                std::task::Poll::Ready(Err(err)) => panic!("{err}"),
                std::task::Poll::Pending => {}
            }
        }
        assert_eq!(out, PREFACE);
    }

    #[test]
    fn prior_knowledge_passes_everything() {
        let splice = Splice::none();
        assert_eq!(splice.pass_limit(), None);
    }
}
