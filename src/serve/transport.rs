//! What the HTTP/1.1 loop reads from and writes to: a plain TCP stream (monoio's completion I/O,
//! and `sendfile` for file bodies) or a TLS stream (rustls through tokio-rustls, over monoio's
//! readiness-based "poll I/O" for the same socket).
//!
//! The loop is written once against [`Transport`]; the two implementations differ only in how a
//! wait is interrupted by the shard's sweep (a plain read is cancelled through monoio's
//! `Canceller` and hands its buffer back; a TLS read is a poll that checks the slot before every
//! poll and is simply dropped) and in whether a file can go to the socket without passing
//! through this process.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::TcpStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::registry::ConnSlot;

/// A TLS connection after its handshake: rustls over the socket in poll-I/O mode.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStreamPoll>;

/// The byte stream under one HTTP/1.1 connection.
pub(crate) trait Transport: 'static {
    /// Reads into the spare capacity of `buf` (which has some). The shard's sweep may interrupt
    /// the wait through `slot`: the read then fails and `slot.take_reason()` says why.
    async fn read(&mut self, buf: BytesMut, slot: &ConnSlot) -> (io::Result<usize>, BytesMut);

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
        let (res, slice) = self
            .cancelable_read(buf.slice_mut(len..), slot.handle())
            .await;
        (res, slice.into_inner())
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
