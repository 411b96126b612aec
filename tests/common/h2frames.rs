//! A raw HTTP/2 peer for the error-handling tests (RFC 9113): a frame writer (the client
//! preface, SETTINGS, HEADERS with a hand-made HPACK block, DATA, RST_STREAM, PING,
//! WINDOW_UPDATE, CONTINUATION, PRIORITY) and a frame reader that parses frame heads and the
//! error codes of GOAWAY and RST_STREAM. Deliberately independent of the h2 crate the server
//! uses: every byte here is written from the RFC, so it can send what h2 would never send.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// RFC 9113 §3.4.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const FLOW_CONTROL_ERROR: u32 = 0x3;
pub const STREAM_CLOSED: u32 = 0x5;
pub const FRAME_SIZE_ERROR: u32 = 0x6;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

// SETTINGS identifiers (RFC 9113 §6.5.2).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

pub fn code_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// One frame: the 9-byte head (RFC 9113 §4.1) and `payload`. The length is the payload's,
/// whatever it is (the tests send oversized frames on purpose).
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24, "a frame length has 24 bits");
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

pub fn continuation(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(CONTINUATION, flags, stream, block)
}

pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(DATA, flags, stream, payload)
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(flags: u8, opaque: [u8; 8]) -> Vec<u8> {
    frame(PING, flags, 0, &opaque)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(
        WINDOW_UPDATE,
        0,
        stream,
        &(increment & 0x7fff_ffff).to_be_bytes(),
    )
}

/// PRIORITY (RFC 9113 §6.3, deprecated but still a valid frame): exclusive bit, dependency,
/// weight.
pub fn priority(stream: u32, depends_on: u32, weight: u8) -> Vec<u8> {
    let mut payload = (depends_on & 0x7fff_ffff).to_be_bytes().to_vec();
    payload.push(weight);
    frame(PRIORITY, 0, stream, &payload)
}

/// An HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix, the prefix's other bits `first`.
pub fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK string literal, no Huffman coding (RFC 7541 §5.2).
pub fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// "Literal Header Field without Indexing — New Name" (RFC 7541 §6.2.2): names and values are
/// written as given, byte for byte (so uppercase names and repeated pseudo-headers can be sent).
pub fn hpack_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    hpack_str(out, name);
    hpack_str(out, value);
}

/// A header block of literal fields, in order.
pub fn hpack_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        hpack_literal(&mut out, name.as_bytes(), value.as_bytes());
    }
    out
}

/// The pseudo-headers of a well-formed request, then `extra`.
pub fn request_block(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ];
    fields.extend_from_slice(extra);
    hpack_block(&fields)
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Debug, Clone)]
pub struct Frame {
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a GOAWAY or RST_STREAM.
    pub fn error_code(&self) -> u32 {
        let at = match self.ty {
            GOAWAY => 4,
            RST_STREAM => 0,
            other => panic!("frame type {other} has no error code"),
        };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"))
    }

    /// GOAWAY's last stream id.
    pub fn last_stream_id(&self) -> u32 {
        assert_eq!(self.ty, GOAWAY);
        u32::from_be_bytes(self.payload[0..4].try_into().expect("4 bytes")) & 0x7fff_ffff
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag == flag
    }

    /// The data of a DATA frame, padding removed.
    pub fn data(&self) -> &[u8] {
        assert_eq!(self.ty, DATA);
        if self.flags & 0x8 != 0 {
            let pad = self.payload[0] as usize;
            &self.payload[1..self.payload.len() - pad]
        } else {
            &self.payload
        }
    }
}

/// A raw HTTP/2 connection: a blocking socket with a read timeout (a failure bound only).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// What a read ended with.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing within the read timeout.
    Timeout,
}

impl Conn {
    /// Connects and sends the preface and an empty SETTINGS, without waiting for anything.
    pub fn open(addr: SocketAddr) -> Conn {
        Self::open_with(addr, &[])
    }

    /// HTTP/2 on a socket that spoke HTTP/1.1 until a 101 (`Upgrade: h2c`): `read` holds the
    /// bytes already read after the 101. Sends nothing.
    pub fn upgraded(stream: TcpStream, read: Vec<u8>) -> Conn {
        Conn { stream, buf: read }
    }

    pub fn open_with(addr: SocketAddr, params: &[(u16, u32)]) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(params));
        conn.send(&hello);
        conn
    }

    /// Opens, and completes the SETTINGS exchange: reads up to the server's SETTINGS and
    /// acknowledges it.
    pub fn handshake(addr: SocketAddr) -> Conn {
        Self::handshake_with(addr, &[])
    }

    pub fn handshake_with(addr: SocketAddr, params: &[(u16, u32)]) -> Conn {
        let mut conn = Self::open_with(addr, params);
        loop {
            match conn.next() {
                Next::Frame(f) if f.ty == SETTINGS && !f.has(ACK) => break,
                Next::Frame(_) => continue,
                other => panic!("no SETTINGS from the server: {other:?}"),
            }
        }
        conn.send(&settings_ack());
        conn
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Writes, tolerating a server that has already closed (the flood tests).
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn set_read_timeout(&self, limit: Duration) {
        self.stream.set_read_timeout(Some(limit)).unwrap();
    }

    /// The next frame, or why there is none.
    pub fn next(&mut self) -> Next {
        loop {
            if self.buf.len() >= 9 {
                let len = (self.buf[0] as usize) << 16
                    | (self.buf[1] as usize) << 8
                    | self.buf[2] as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes(self.buf[5..9].try_into().unwrap())
                            & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    return Next::Frame(f);
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Next::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Next::Timeout
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Closed,
            }
        }
    }

    /// Reads until `stop` says so (returning that frame), the connection closes or `limit`
    /// passes; every frame read is kept in `seen`. PINGs are acknowledged as they come.
    pub fn read_until(
        &mut self,
        limit: Duration,
        seen: &mut Vec<Frame>,
        mut stop: impl FnMut(&Frame) -> bool,
    ) -> Next {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Timeout;
            }
            self.set_read_timeout(left);
            match self.next() {
                Next::Frame(f) => {
                    if f.ty == PING && !f.has(ACK) {
                        let opaque: [u8; 8] = f.payload[..8].try_into().unwrap();
                        let _ = self.try_send(&ping(ACK, opaque));
                    }
                    seen.push(f.clone());
                    if stop(&f) {
                        return Next::Frame(f);
                    }
                }
                other => return other,
            }
        }
    }

    /// How the server answered a misbehaving frame: the first RST_STREAM on `stream` or GOAWAY
    /// (whichever comes first), then — as a barrier — a PING round trip (when the connection
    /// is still open) so that any HEADERS the server sent on `stream` before it are seen too.
    pub fn outcome(&mut self, stream: u32) -> Outcome {
        let mut seen = Vec::new();
        let end = self.read_until(Duration::from_secs(10), &mut seen, |f| {
            f.ty == GOAWAY || (f.ty == RST_STREAM && f.stream == stream)
        });
        let verdict = match end {
            Next::Frame(f) if f.ty == GOAWAY => Verdict::GoAway(f.error_code()),
            Next::Frame(f) => Verdict::Reset(f.error_code()),
            Next::Closed => Verdict::Closed,
            Next::Timeout => Verdict::Nothing,
        };
        if let Verdict::Reset(_) = verdict {
            let opaque = *b"barrier!";
            if self.try_send(&ping(0, opaque)).is_ok() {
                self.read_until(Duration::from_secs(10), &mut seen, |f| {
                    f.ty == GOAWAY || (f.ty == PING && f.has(ACK) && f.payload == opaque)
                });
            }
        }
        let answered = seen.iter().any(|f| f.ty == HEADERS && f.stream == stream);
        Outcome {
            verdict,
            answered,
            frames: seen
                .iter()
                .map(|f| (f.ty, f.flags, f.stream, f.payload.len()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// RST_STREAM on the stream in question, with this code: a stream error (§5.4.2).
    Reset(u32),
    /// GOAWAY with this code: a connection error (§5.4.1).
    GoAway(u32),
    /// Closed without either.
    Closed,
    /// Nothing within the bound.
    Nothing,
}

#[derive(Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The server sent a HEADERS frame (a response) on the stream in question.
    pub answered: bool,
    /// (type, flags, stream, length) of every frame read, for failure messages.
    pub frames: Vec<(u8, u8, u32, usize)>,
}
