//! What the HTTP/1.1 loop reads from and writes to: a plain TCP stream (monoio's completion I/O,
//! and `sendfile` for file bodies) or a TLS stream (rustls through tokio-rustls, over monoio's
//! readiness-based "poll I/O" for the same socket).
//!
//! The loop is written once against [`Transport`]; the two implementations differ only in how a
//! wait is interrupted by the shard's sweep (a plain read as `registry.rs` describes; a TLS read
//! is a poll that checks the slot before every poll and is simply dropped) and in whether a file
//! can go to the socket without passing through this process.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::registry::ConnSlot;

pin_project_lite::pin_project! {
    /// One of the two ways a plain read is issued (`registry.rs`), as one future: an `async`
    /// `match` over the two would keep room for both in every connection's task (+96 bytes).
    #[project = EitherProj]
    enum Either<C, D> {
        Cancelable { #[pin] read: C },
        Droppable { #[pin] read: D },
    }
}

/// The buffer a parked TLS connection reads into.
const PARK_BUF_SIZE: usize = 16;

/// A TLS connection after its handshake: rustls over the socket in poll-I/O mode.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStreamPoll>;

/// The byte stream under one HTTP/1.1 connection.
pub(crate) trait Transport: 'static {
    /// Reads into the spare capacity of `buf` (which has some). The shard's sweep may interrupt
    /// the wait through `slot`: the read then fails and `slot.take_reason()` says why. An
    /// interrupted read may come back with an empty `buf` (the bytes it held before are gone,
    /// none from the socket are).
    async fn read(&mut self, buf: BytesMut, slot: &ConnSlot) -> (io::Result<usize>, BytesMut);

    /// Waits, holding no read buffer, until the connection has bytes to read (a parked
    /// connection). Returns the bytes it had to take from the stream to find out, to be parsed
    /// first (none on plain TCP, which waits for readiness). Interrupted by the sweep through
    /// `slot` like `read`; the end of the stream is an error.
    async fn wait_parked(&mut self, slot: &ConnSlot) -> io::Result<BytesMut>;

    /// Writes all of `buf`. A caller that must give up (a deadline) drops the future.
    async fn write_all<B: IoBuf + AsRef<[u8]> + 'static>(&mut self, buf: B) -> (io::Result<()>, B);

    /// Ends our side of the connection after what was written.
    async fn shutdown(&mut self) -> io::Result<()>;

    /// The socket itself, when bytes written to it reach the peer as they are (no TLS record
    /// layer in between), so a file can be sent with `sendfile`.
    fn plain_socket(&self) -> Option<&TcpStream>;
}

impl Transport for TcpStream {
    async fn read(&mut self, buf: BytesMut, slot: &ConnSlot) -> (io::Result<usize>, BytesMut) {
        let len = buf.len();
        let mut read = pin!(match slot.read_handle() {
            Some(handle) => Either::Cancelable {
                read: self.cancelable_read(buf.slice_mut(len..), handle),
            },
            None => Either::Droppable {
                read: AsyncReadRent::read(self, buf.slice_mut(len..)),
            },
        });
        let done = poll_fn(|cx| match read.as_mut().project() {
            EitherProj::Cancelable { read } => read.poll(cx).map(Some),
            // On epoll the read syscall runs only inside a poll that returns its result, so a
            // read dropped while pending has taken nothing from the socket.
            EitherProj::Droppable { read } => slot.poll_interruptible(cx, read),
        })
        .await;
        match done {
            Some((res, slice)) => (res, slice.into_inner()),
            None => (Err(io::ErrorKind::Interrupted.into()), BytesMut::new()),
        }
    }

    async fn wait_parked(&mut self, slot: &ConnSlot) -> io::Result<BytesMut> {
        // Readiness only: a poll takes nothing from the socket, so the sweep can drop it on
        // io_uring as on epoll, and it holds no buffer. Its future is 152 bytes against a read's
        // 472, and every parked connection holds it. `false`: on epoll, confirm with poll(2)
        // rather than trust a readiness bit left from the last read.
        let mut ready = pin!(self.readable(false));
        match poll_fn(|cx| slot.poll_interruptible(cx, ready.as_mut())).await {
            Some(Ok(())) => Ok(BytesMut::new()),
            Some(Err(err)) => Err(err),
            None => Err(io::ErrorKind::Interrupted.into()),
        }
    }

    async fn write_all<B: IoBuf + AsRef<[u8]> + 'static>(&mut self, buf: B) -> (io::Result<()>, B) {
        let (res, buf) = AsyncWriteRentExt::write_all(self, buf).await;
        (res.map(drop), buf)
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        AsyncWriteRent::shutdown(self).await
    }

    fn plain_socket(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Transport for TlsStream {
    async fn read(&mut self, mut buf: BytesMut, slot: &ConnSlot) -> (io::Result<usize>, BytesMut) {
        let res = {
            // rustls may hold decrypted bytes already; otherwise this waits for the socket.
            let mut read = pin!(self.read_buf(&mut buf));
            poll_fn(|cx| {
                if slot.interrupted() {
                    return Poll::Ready(Err(io::ErrorKind::Interrupted.into()));
                }
                slot.watch(cx.waker());
                read.as_mut().poll(cx)
            })
            .await
        };
        (res, buf)
    }

    async fn wait_parked(&mut self, slot: &ConnSlot) -> io::Result<BytesMut> {
        // rustls may hold decrypted bytes already, which socket readiness would not show: read
        // into a tiny buffer instead.
        let small = BytesMut::with_capacity(PARK_BUF_SIZE);
        let (res, small) = Transport::read(self, small, slot).await;
        match res {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(small),
            Err(err) => Err(err),
        }
    }

    async fn write_all<B: IoBuf + AsRef<[u8]> + 'static>(&mut self, buf: B) -> (io::Result<()>, B) {
        let res = match AsyncWriteExt::write_all(self, buf.as_ref()).await {
            // tokio-rustls keeps records it could not send yet: push them out now.
            Ok(()) => self.flush().await,
            Err(err) => Err(err),
        };
        (res, buf)
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        // Sends close_notify, then shuts the socket's write side.
        AsyncWriteExt::shutdown(self).await
    }

    fn plain_socket(&self) -> Option<&TcpStream> {
        None
    }
}

/// Plaintext handed to rustls in pieces of at most this many bytes: rustls copies each piece
/// into its record with one `memcpy`, and glibc (2.36) copies more than 2,112 bytes with
/// `rep movsb` on CPUs with "fast short rep mov", which on this machine's AMD EPYC (Zen 4) runs at
/// 2.5–3.3 GB/s instead of 50–90 when the destination lies a few bytes past the source modulo
/// 4 KiB, as a record's payload (5 bytes into its buffer) does against a page-aligned batch. At
/// 2 KiB per copy glibc uses vector loads and stores at any alignment (measured 54 GB/s).
const RECORD_COPY_PIECE: usize = 2 * 1024;

/// Pieces per write: a 64 KiB write batch in one call.
const RECORD_COPY_PIECES: usize = 32;

/// A TLS stream whose writes reach rustls as vectored writes of [`RECORD_COPY_PIECE`]-byte
/// slices (rustls fills a record from several slices, so records stay full size).
pub(crate) struct SplitWrites<T>(pub(crate) T);

/// Writes `data` to `io` as slices of at most [`RECORD_COPY_PIECE`] bytes, in one vectored write.
pub(crate) fn poll_write_split<T: AsyncWrite + Unpin>(
    io: &mut T,
    cx: &mut Context<'_>,
    data: &[u8],
) -> Poll<io::Result<usize>> {
    if data.len() <= RECORD_COPY_PIECE {
        return Pin::new(io).poll_write(cx, data);
    }
    let mut slices = [IoSlice::new(&[]); RECORD_COPY_PIECES];
    let mut n = 0;
    for (slot, piece) in slices.iter_mut().zip(data.chunks(RECORD_COPY_PIECE)) {
        *slot = IoSlice::new(piece);
        n += 1;
    }
    Pin::new(io).poll_write_vectored(cx, &slices[..n])
}

impl<T: AsyncRead + Unpin> AsyncRead for SplitWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SplitWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write_split(&mut self.0, cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Takes at most `limit` bytes per call and records the slices it was given.
    struct Recorder {
        calls: Vec<Vec<usize>>,
        bytes: Vec<u8>,
        limit: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(data)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            slices: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.calls.push(slices.iter().map(|s| s.len()).collect());
            let mut taken = 0;
            for slice in slices {
                let n = slice.len().min(self.limit - taken);
                self.bytes.extend_from_slice(&slice[..n]);
                taken += n;
            }
            Poll::Ready(Ok(taken))
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_large_write_reaches_the_stream_as_one_vectored_write_of_small_pieces() {
        let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut io = SplitWrites(Recorder {
            calls: Vec::new(),
            bytes: Vec::new(),
            limit: usize::MAX,
        });
        let mut cx = Context::from_waker(Waker::noop());
        let written = Pin::new(&mut io).poll_write(&mut cx, &data);
        assert!(matches!(written, Poll::Ready(Ok(40_000))));
        assert_eq!(io.0.calls.len(), 1);
        assert!(io.0.calls[0].iter().all(|&n| n <= RECORD_COPY_PIECE));
        assert_eq!(io.0.calls[0].len(), 40_000usize.div_ceil(RECORD_COPY_PIECE));
        assert_eq!(io.0.bytes, data);
    }

    #[test]
    fn a_write_past_the_pieces_of_one_call_is_taken_in_part() {
        let data = vec![7u8; RECORD_COPY_PIECE * RECORD_COPY_PIECES + 100];
        let mut rec = Recorder {
            calls: Vec::new(),
            bytes: Vec::new(),
            limit: usize::MAX,
        };
        let mut cx = Context::from_waker(Waker::noop());
        let written = poll_write_split(&mut rec, &mut cx, &data);
        assert!(
            matches!(written, Poll::Ready(Ok(n)) if n == RECORD_COPY_PIECE * RECORD_COPY_PIECES)
        );
        // And a stream that takes less reports less, as a short write.
        rec.limit = 3000;
        let written = poll_write_split(&mut rec, &mut cx, &data[..5000]);
        assert!(matches!(written, Poll::Ready(Ok(3000))));
        // Small writes pass as they are.
        let written = poll_write_split(&mut rec, &mut cx, &data[..10]);
        assert!(matches!(written, Poll::Ready(Ok(10))));
        assert_eq!(rec.calls.last().unwrap(), &[10]);
    }
}
