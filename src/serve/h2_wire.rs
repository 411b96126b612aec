//! The few HTTP/2 wire facts (RFC 9113) that code under h2 reads or writes by hand: the client
//! preface, the 9-byte frame head, and the frame types and flags it looks at. The `Upgrade: h2c`
//! splice writes a frame and reads the client's first one; the flood guard reads every frame
//! head as bytes pass. h2 itself owns all other framing.

/// RFC 9113 §3.4: the client connection preface.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// RFC 9113 §4.1: length (24 bits), type, flags, stream identifier (31 bits).
pub(crate) const FRAME_HEAD_LEN: usize = 9;
/// RFC 9113 §6.5.2: the initial SETTINGS_MAX_FRAME_SIZE, which `serve_h2` leaves as it is.
pub(crate) const MAX_FRAME_SIZE: usize = 16_384;

// Frame types (RFC 9113 §6).
pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const CONTINUATION: u8 = 0x9;

// Flags (RFC 9113 §6.1, §6.2, §6.5, §6.7).
pub(crate) const END_STREAM: u8 = 0x1;
/// SETTINGS and PING.
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// A frame head, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub(crate) len: u32,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    /// The reserved bit cleared.
    pub(crate) stream: u32,
}

impl FrameHead {
    pub(crate) fn parse(raw: &[u8; FRAME_HEAD_LEN]) -> Self {
        FrameHead {
            len: u32::from_be_bytes([0, raw[0], raw[1], raw[2]]),
            kind: raw[3],
            flags: raw[4],
            stream: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff,
        }
    }

    /// `len` must fit 24 bits (callers hold frames to [`MAX_FRAME_SIZE`]).
    pub(crate) fn encode(self) -> [u8; FRAME_HEAD_LEN] {
        let len = self.len.to_be_bytes();
        let stream = self.stream.to_be_bytes();
        [
            len[1], len[2], len[3], self.kind, self.flags, stream[0], stream[1], stream[2],
            stream[3],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_head_round_trips_and_drops_the_reserved_bit() {
        let head = FrameHead {
            len: 0x01_02_03,
            kind: HEADERS,
            flags: END_STREAM | END_HEADERS,
            stream: 0x7fff_fffe,
        };
        let raw = head.encode();
        assert_eq!(raw, [1, 2, 3, 1, 5, 0x7f, 0xff, 0xff, 0xfe]);
        assert_eq!(FrameHead::parse(&raw), head);
        let mut reserved = raw;
        reserved[5] |= 0x80;
        assert_eq!(FrameHead::parse(&reserved), head);
    }
}
