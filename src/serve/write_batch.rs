//! One write per poll of an HTTP/2 connection, however many frames that poll produced.
//!
//! h2 writes a frame's header and a DATA payload of more than 256 bytes as a chain, and must
//! flush that chain before it can queue the next frame. Straight onto the socket (or TLS) that is
//! one `writev` and one TLS record per response: measured 1.0 `writev` per request serving a
//! 4 KiB file to 100 concurrent streams. Here h2's writes land in a buffer and its flushes are
//! deferred; the connection loop drains the buffer once at the end of each poll
//! ([`WriteBatch::poll_drain`]). A full buffer is written out before taking more, so a slow
//! reader still pushes back on h2.

use std::cell::{Ref, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes gathered before they must be written out: four TLS records' worth.
const BATCH_CAP: usize = 64 * 1024;

struct Batch<IO> {
    io: IO,
    buf: Vec<u8>,
    /// How much of `buf` has been written already.
    written: usize,
}

impl<IO: AsyncWrite + Unpin> Batch<IO> {
    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

/// The stream h2 reads from and writes to.
pub(crate) struct BatchedIo<IO> {
    batch: Rc<RefCell<Batch<IO>>>,
}

/// The connection loop's hold on the same buffer, to drain it after each poll.
pub(crate) struct WriteBatch<IO> {
    batch: Rc<RefCell<Batch<IO>>>,
}

/// Wraps `io`: h2 gets the first, the connection loop the second.
pub(crate) fn batched<IO>(io: IO) -> (BatchedIo<IO>, WriteBatch<IO>) {
    let batch = Rc::new(RefCell::new(Batch {
        io,
        buf: Vec::new(),
        written: 0,
    }));
    (
        BatchedIo {
            batch: batch.clone(),
        },
        WriteBatch { batch },
    )
}

impl<IO: AsyncWrite + Unpin> WriteBatch<IO> {
    /// Writes out (and flushes) everything gathered so far.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.batch.borrow_mut().poll_drain(cx)
    }

    /// The stream under the batch, for a look at its state between polls.
    pub(crate) fn io(&self) -> Ref<'_, IO> {
        Ref::map(self.batch.borrow(), |batch| &batch.io)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for BatchedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.batch.borrow_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for BatchedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut batch = self.batch.borrow_mut();
        if batch.pending() >= BATCH_CAP {
            ready!(batch.poll_drain(cx))?;
        }
        let room = BATCH_CAP - batch.pending();
        let mut taken = 0;
        for slice in slices {
            let n = slice.len().min(room - taken);
            batch.buf.extend_from_slice(&slice[..n]);
            taken += n;
            if taken == room {
                break;
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Deferred: h2 flushes after every chained frame; the connection loop drains once per poll.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = self.batch.borrow_mut();
        ready!(batch.poll_drain(cx))?;
        Pin::new(&mut batch.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Records every write it gets; can be told to refuse (Pending).
    #[derive(Default)]
    struct Sink {
        writes: Vec<Vec<u8>>,
        full: bool,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.full {
                return Poll::Pending;
            }
            self.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn many_writes_and_flushes_become_one_write_at_drain() {
        let (mut io, batch) = batched(Sink::default());
        let mut cx = Context::from_waker(Waker::noop());
        for frame in [&b"head"[..], &[7u8; 4096][..], b"head", &[8u8; 4096]] {
            assert!(
                matches!(Pin::new(&mut io).poll_write(&mut cx, frame), Poll::Ready(Ok(n)) if n == frame.len())
            );
            assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
        }
        assert!(batch.batch.borrow().io.writes.is_empty());
        assert!(matches!(batch.poll_drain(&mut cx), Poll::Ready(Ok(()))));
        let writes = &batch.batch.borrow().io.writes;
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].len(), 4 + 4096 + 4 + 4096);
    }

    #[test]
    fn a_full_batch_pushes_back_when_the_socket_does() {
        let (mut io, batch) = batched(Sink {
            full: true,
            ..Sink::default()
        });
        let mut cx = Context::from_waker(Waker::noop());
        let big = vec![1u8; BATCH_CAP + 10];
        // Takes what fits, then refuses until the socket takes bytes.
        assert!(
            matches!(Pin::new(&mut io).poll_write(&mut cx, &big), Poll::Ready(Ok(n)) if n == BATCH_CAP)
        );
        assert!(Pin::new(&mut io)
            .poll_write(&mut cx, &big[BATCH_CAP..])
            .is_pending());
        batch.batch.borrow_mut().io.full = false;
        assert!(matches!(
            Pin::new(&mut io).poll_write(&mut cx, &big[BATCH_CAP..]),
            Poll::Ready(Ok(10))
        ));
        assert!(matches!(batch.poll_drain(&mut cx), Poll::Ready(Ok(()))));
        let total: usize = batch.batch.borrow().io.writes.iter().map(Vec::len).sum();
        assert_eq!(total, BATCH_CAP + 10);
    }
}
