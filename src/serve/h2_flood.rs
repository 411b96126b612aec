//! The control-frame budget of one HTTP/2 connection: bounds the frames that make the server
//! work without carrying a request (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, RST_STREAM, unknown
//! types; CVE-2019-9512 ping flood, CVE-2019-9515 settings flood and their kin).
//!
//! h2 answers every PING and SETTINGS one at a time and discards PRIORITY and unknown frames, so
//! a flood costs bounded memory but unbounded CPU (measured: 0.11–0.16 µs of the shard per
//! frame, PING answered or PRIORITY dropped) and, for stray PING ACKs, one warning line each in
//! h2's log. h2 already bounds what DATA and CONTINUATION can do (empty and small DATA frames,
//! CONTINUATIONs per header block), so those are left to it.
//!
//! [`FloodGuard`] sits under h2, on the connection's byte stream, and reads only frame heads as
//! the bytes pass (it never copies or holds a payload). Every control frame the peer sends costs
//! a unit; units come back with work that carries requests and responses — a request's HEADERS,
//! each DATA frame we send (more for a large one) — and with time, so that a connection pinged
//! every few seconds for days (gRPC keep-alive) never runs dry. A connection that does run dry is
//! flagged; from the frame that did it on, h2 gets no more bytes, and the connection loop closes
//! with GOAWAY ENHANCE_YOUR_CALM. This module decides; it does not close anything itself.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::h2_wire::{FrameHead, ACK, CONTINUATION, DATA, FRAME_HEAD_LEN, HEADERS, PING, PREFACE};
use super::shard::ShardCtx;

/// The client preface precedes the first frame.
const PREFACE_LEN: u32 = PREFACE.len() as u32;
const HEAD_LEN: usize = FRAME_HEAD_LEN;

/// Units a connection starts with and saves up to: the largest burst of control frames it may
/// send with nothing earned. Real clients send a handful at a time (a SETTINGS and a
/// WINDOW_UPDATE on connecting, a PING now and then, a PRIORITY or an RST_STREAM per request);
/// a thousand PINGs cost the shard about 0.1 ms.
const BURST: u32 = 1000;
/// Units given back per second: 100× a gRPC keep-alive at its shortest (one PING per 10 s), so
/// a connection that does nothing but ping, even once a second, keeps its budget for days; a
/// flood is held to ten frames a second once the burst is spent.
const REFILL_PER_SEC: u32 = 10;
/// Units a request's HEADERS earns: room for every control frame a client sends around one
/// request (PRIORITY, PRIORITY_UPDATE, RST_STREAM when it cancels, WINDOW_UPDATE, a PING), so a
/// client cancelling streams, or pinging between requests, stays in credit. A flood that mixes
/// in requests gets at most a few cheap frames per request, each far cheaper than the request.
const REQUEST_CREDIT: u32 = 8;
/// A DATA frame we send earns one unit, plus one per this many bytes of it. The unit answers a
/// gRPC client's BDP PING (one per burst of response data, however small); the bytes answer a
/// download's WINDOW_UPDATEs: Go's client sends one for the stream and one for the connection
/// per 4 KiB it reads (the smallest step we know of), two units where this gives eight.
const SENT_BYTES_PER_UNIT: u32 = 512;
/// A PING ACK costs this much: h2 sends a PING only to close gracefully, so a real client acks
/// at most one per connection, and h2 logs a warning for each ACK of a PING it did not send.
const PING_ACK_COST: u32 = 16;

/// Where frames begin in one direction of a connection, followed as the bytes pass in pieces of
/// any size. Only frame heads are looked at; payloads are counted past.
#[derive(Debug)]
pub(crate) struct FrameHeads {
    /// Bytes of the current payload (or of the preface) still to pass.
    skip: u32,
    /// A head cut by the end of a piece: its first `partial` bytes.
    head: [u8; HEAD_LEN],
    partial: u8,
}

impl FrameHeads {
    /// What a server reads: the client preface, then frames.
    fn inbound() -> Self {
        FrameHeads {
            skip: PREFACE_LEN,
            head: [0; HEAD_LEN],
            partial: 0,
        }
    }

    /// What a server writes: frames from the first byte (RFC 9113 §3.4: its preface is a
    /// SETTINGS frame).
    fn outbound() -> Self {
        FrameHeads {
            skip: 0,
            ..Self::inbound()
        }
    }

    /// The next head in `piece` from `*pos` on, and where in `piece` it begins (0 when it began
    /// in an earlier piece); `*pos` moves past it. `None` when the piece ends first.
    fn next(&mut self, piece: &[u8], pos: &mut usize) -> Option<(usize, FrameHead)> {
        let left = piece.len() - *pos;
        if self.skip as usize >= left {
            // Fits: `left` is at most `skip`, a u32.
            self.skip -= left as u32;
            *pos = piece.len();
            return None;
        }
        *pos += self.skip as usize;
        self.skip = 0;
        let rest = &piece[*pos..];
        let (at, head) = if self.partial == 0 && rest.len() >= HEAD_LEN {
            let raw = rest[..HEAD_LEN].try_into().expect("HEAD_LEN bytes");
            let at = *pos;
            *pos += HEAD_LEN;
            (at, FrameHead::parse(raw))
        } else {
            let have = usize::from(self.partial);
            let take = (HEAD_LEN - have).min(rest.len());
            self.head[have..have + take].copy_from_slice(&rest[..take]);
            *pos += take;
            if have + take < HEAD_LEN {
                // Fits: fewer than HEAD_LEN.
                self.partial = (have + take) as u8;
                return None;
            }
            self.partial = 0;
            // Completed here, so it began in an earlier piece: a head that begins in this one
            // with all its bytes here takes the branch above.
            (0, FrameHead::parse(&self.head))
        };
        self.skip = head.len;
        Some((at, head))
    }
}

/// The peer ran out of control-frame budget at the frame that begins at `at` in the piece just
/// read (0: it began in an earlier piece).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flood {
    pub(crate) at: usize,
}

/// One connection's control-frame budget: what it read and wrote so far, and the units left.
#[derive(Debug)]
pub(crate) struct ControlBudget {
    inbound: FrameHeads,
    outbound: FrameHeads,
    units: u32,
    /// The shard tick of the last refill.
    refilled_at: u64,
}

impl ControlBudget {
    pub(crate) fn new(now: u64) -> Self {
        ControlBudget {
            inbound: FrameHeads::inbound(),
            outbound: FrameHeads::outbound(),
            units: BURST,
            refilled_at: now,
        }
    }

    /// Bytes the peer sent, in order; `now` is the shard tick. On a flood the frame at
    /// [`Flood::at`] and all after it are to be dropped, unread.
    pub(crate) fn received(&mut self, piece: &[u8], now: u64) -> Result<(), Flood> {
        self.refill(now);
        let mut pos = 0;
        while let Some((at, head)) = self.inbound.next(piece, &mut pos) {
            let cost = match head.kind {
                // h2 bounds these: 100 empty DATA frames per connection and a budget for small
                // ones, and CONTINUATIONs per header block (CVE-2024-27316).
                DATA | CONTINUATION => continue,
                // An empty header block is malformed; h2 resets it and counts that.
                HEADERS if head.len > 0 => {
                    self.earn(REQUEST_CREDIT);
                    continue;
                }
                PING if head.flags & ACK != 0 => PING_ACK_COST,
                _ => 1,
            };
            match self.units.checked_sub(cost) {
                Some(left) => self.units = left,
                None => return Err(Flood { at }),
            }
        }
        Ok(())
    }

    /// Bytes we wrote, in order.
    pub(crate) fn sent(&mut self, piece: &[u8]) {
        let mut pos = 0;
        while let Some((_, head)) = self.outbound.next(piece, &mut pos) {
            if head.kind == DATA {
                self.earn(1 + head.len / SENT_BYTES_PER_UNIT);
            }
        }
    }

    fn earn(&mut self, units: u32) {
        self.units = self.units.saturating_add(units).min(BURST);
    }

    fn refill(&mut self, now: u64) {
        if now > self.refilled_at {
            let secs = (now - self.refilled_at).min(u64::from(BURST));
            // Fits: at most BURST × REFILL_PER_SEC.
            self.earn(secs as u32 * REFILL_PER_SEC);
            self.refilled_at = now;
        }
    }
}

/// The connection's byte stream as h2 sees it, with the control-frame budget kept on the way.
pub(crate) struct FloodGuard<IO> {
    io: IO,
    budget: ControlBudget,
    /// The shard's clock (seconds), read once per read.
    ctx: Rc<ShardCtx>,
    flooded: bool,
}

impl<IO> FloodGuard<IO> {
    pub(crate) fn new(io: IO, ctx: Rc<ShardCtx>) -> Self {
        FloodGuard {
            io,
            budget: ControlBudget::new(ctx.now()),
            ctx,
            flooded: false,
        }
    }

    /// The peer ran out of budget. From then on reads stay pending: the connection loop is to
    /// close the connection (h2 has had none of the frame that did it, nor any after it).
    pub(crate) fn flooded(&self) -> bool {
        self.flooded
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FloodGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.flooded {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let verdict = this
            .budget
            .received(&buf.filled()[before..], this.ctx.now());
        let Err(Flood { at }) = verdict else {
            return Poll::Ready(Ok(()));
        };
        this.flooded = true;
        buf.set_filled(before + at);
        // The connection task is polled again and finds the flag.
        cx.waker().wake_by_ref();
        // An empty read would be taken for the end of the stream.
        if at == 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FloodGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, data))?;
        this.budget.sent(&data[..n.min(data.len())]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags]);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn ping() -> Vec<u8> {
        frame(PING, 0, 0, b"pingpong")
    }

    fn heads_of(heads: &mut FrameHeads, pieces: &[&[u8]]) -> Vec<FrameHead> {
        let mut found = Vec::new();
        for piece in pieces {
            let mut pos = 0;
            while let Some((_, head)) = heads.next(piece, &mut pos) {
                found.push(head);
            }
            assert_eq!(pos, piece.len());
        }
        found
    }

    /// A preface and frames of several sizes (empty, small, one of 70 000 bytes).
    fn sample() -> (Vec<u8>, Vec<FrameHead>) {
        let frames = [
            frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]),
            frame(0x4, ACK, 0, &[]),
            frame(HEADERS, 0x5, 1, b"\x82\x86\x84"),
            frame(DATA, 0, 1, &[7; 70_000]),
            ping(),
            frame(0x8, 0, 0, &[0, 0, 0, 1]),
            frame(0x2, 0, 3, &[0, 0, 0, 0, 16]),
        ];
        let heads = frames
            .iter()
            .map(|f| FrameHead::parse(f[..HEAD_LEN].try_into().unwrap()))
            .collect();
        ([PREFACE.to_vec(), frames.concat()].concat(), heads)
    }

    #[test]
    fn finds_every_head_whatever_the_split() {
        let (bytes, want) = sample();
        assert_eq!(heads_of(&mut FrameHeads::inbound(), &[&bytes]), want);
        // Split in two at every byte, heads and preface included.
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                heads_of(&mut FrameHeads::inbound(), &[a, b]),
                want,
                "cut at {cut}"
            );
        }
        // Fed one byte at a time.
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(heads_of(&mut FrameHeads::inbound(), &single), want);
    }

    #[test]
    fn a_head_split_across_pieces_is_placed_at_the_start_of_the_piece_that_completes_it() {
        let bytes = [ping(), ping()].concat();
        for cut in 9..26 {
            let mut heads = FrameHeads::outbound();
            let (a, b) = bytes.split_at(cut);
            let mut pos = 0;
            assert!(heads.next(a, &mut pos).is_some());
            assert_eq!(heads.next(a, &mut pos), None, "cut at {cut}");
            let mut pos = 0;
            let (at, head) = heads.next(b, &mut pos).expect("second head");
            assert_eq!(head.kind, PING);
            // Whole in `b` it begins where it begins; cut inside, it began in `a`.
            assert_eq!(at, 17usize.saturating_sub(cut), "cut at {cut}");
        }
    }

    #[test]
    fn a_ping_flood_runs_dry_after_the_burst_at_the_first_frame_over_it() {
        let mut budget = ControlBudget::new(0);
        let pings = ping().repeat(BURST as usize + 10);
        let err = budget
            .received(&[&PREFACE[..], &pings].concat(), 0)
            .expect_err("a flood");
        assert_eq!(err.at, PREFACE.len() + 17 * BURST as usize);
    }

    #[test]
    fn the_flood_is_found_however_the_bytes_are_split() {
        let pings = [PREFACE.to_vec(), ping().repeat(BURST as usize + 1)].concat();
        let over = PREFACE.len() + 17 * BURST as usize;
        for cut in [over - 9, over - 1, over, over + 1, over + 5, over + 9] {
            let mut budget = ControlBudget::new(0);
            let (a, b) = pings.split_at(cut);
            let found = match budget.received(a, 0) {
                Err(flood) => flood.at,
                Ok(()) => a.len() + budget.received(b, 0).expect_err("a flood").at,
            };
            // Cut inside its head, the frame began in the first piece (at 0 of the second).
            let want = if (over + 1..over + 9).contains(&cut) {
                cut
            } else {
                over
            };
            assert_eq!(found, want, "cut at {cut}");
        }
    }

    #[test]
    fn a_burst_of_fifty_pings_and_a_ping_after_each_request_are_fine() {
        let mut budget = ControlBudget::new(0);
        let mut bytes = PREFACE.to_vec();
        bytes.extend(ping().repeat(50));
        for stream in 0..10_000u32 {
            bytes.extend(frame(HEADERS, 0x5, 2 * stream + 1, b"\x82\x86\x84"));
            bytes.extend(ping());
            bytes.extend(frame(0x4, 0, 0, &[0, 4, 0, 1, 0, 0]));
            bytes.extend(frame(0x3, 0, 2 * stream + 1, &[0, 0, 0, 8]));
        }
        assert_eq!(budget.received(&bytes, 0), Ok(()));
    }

    #[test]
    fn a_keepalive_ping_every_second_for_a_day_is_fine() {
        let mut budget = ControlBudget::new(0);
        assert_eq!(budget.received(PREFACE, 0), Ok(()));
        for now in 1..86_400 {
            assert_eq!(budget.received(&ping(), now), Ok(()), "at {now} s");
        }
    }

    #[test]
    fn time_gives_back_ten_units_a_second() {
        let mut budget = ControlBudget::new(0);
        let mut bytes = PREFACE.to_vec();
        bytes.extend(ping().repeat(BURST as usize));
        assert_eq!(budget.received(&bytes, 0), Ok(()));
        assert!(budget.received(&ping(), 0).is_err());
        let mut budget = ControlBudget::new(0);
        assert_eq!(budget.received(&bytes, 0), Ok(()));
        let ten = ping().repeat(REFILL_PER_SEC as usize);
        assert_eq!(budget.received(&ten, 1), Ok(()));
        assert!(budget.received(&ping(), 1).is_err());
    }

    #[test]
    fn data_we_send_pays_for_the_window_updates_of_a_download() {
        let mut budget = ControlBudget::new(0);
        assert_eq!(budget.received(PREFACE, 0), Ok(()));
        // 64 MiB in 16 KiB frames; the client sends two WINDOW_UPDATEs per 4 KiB read.
        let wu = frame(0x8, 0, 1, &[0, 0, 16, 0]).repeat(8);
        let sent = frame(DATA, 0, 1, &[0; 16_384]);
        for _ in 0..4096 {
            budget.sent(&sent);
            assert_eq!(budget.received(&wu, 0), Ok(()));
        }
    }

    #[test]
    fn a_stray_ping_ack_costs_more_than_a_ping() {
        let mut budget = ControlBudget::new(0);
        let acks = frame(PING, ACK, 0, b"pingpong").repeat((BURST / PING_ACK_COST) as usize + 1);
        assert!(budget.received(&[&PREFACE[..], &acks].concat(), 0).is_err());
    }

    #[test]
    fn data_and_continuation_cost_nothing_here() {
        let mut budget = ControlBudget::new(0);
        let mut bytes = PREFACE.to_vec();
        for _ in 0..10 * BURST {
            bytes.extend(frame(DATA, 0, 1, &[]));
            bytes.extend(frame(CONTINUATION, 0, 1, &[]));
        }
        assert_eq!(budget.received(&bytes, 0), Ok(()));
    }
}
