//! The HTTP/1.1 connection loop: the only code that reads and writes an HTTP/1.1 socket.
//!
//! It drives the sans-IO core in `crate::http1` (parse a head, frame a body, encode a response)
//! and owns the buffers, the batching of pipelined responses into one write, the timeouts (through
//! the shard's connection registry), parking of idle connections, and the lingering close after a
//! rejected request.

use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use super::body::BodyJoiner;
use super::h2_wire::PREFACE;
use super::h2c_upgrade::StreamOne;
use super::registry::{CancelReason, SlotGuard};
use super::shard::{ShardCtx, READ_BUF_SIZE};
use super::transport::Transport;
use crate::http1::{
    body_allowed, wants_h2c, write_response_head, BodyDecoder, BodyEvent, BodyKind, DefaultFields,
    Framing, HeadParser, Headers, ParseError, RequestHead, ResponseMeta, Status, Version,
};
use crate::service::{Body, Chunk, Request, RequestParts, Response, Service};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

/// Below this much free space the read buffer grows (or is compacted) before the next read.
const MIN_READ_SPACE: usize = 1024;
/// Response bodies larger than this are written from their own `Bytes`, not copied.
const DIRECT_WRITE_THRESHOLD: usize = 16 * 1024;
/// A response body written after the head rather than copied into the write buffer.
enum LargeBody {
    Bytes(Bytes),
    Chunks(Vec<Chunk>),
}

/// The start of the HTTP/2 connection preface (RFC 9113 §3.4) as an HTTP/1.1 parser sees it: a
/// request line and an empty line (`PRI * HTTP/2.0\r\n\r\n`, its first 18 bytes). On a cleartext
/// listener it means "prior knowledge" h2c.
const H2_PREFACE_HEAD: &[u8] = PREFACE.split_at(18).0;

/// RFC 7540 §3.2: the answer that takes up `Upgrade: h2c`; HTTP/2 starts right after it.
const SWITCHING_TO_H2C: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// Bytes read from a file per write when the transport must see them (TLS).
const COPY_CHUNK: usize = 64 * 1024;

/// Most bytes one `sendfile` call moves; the connection yields to others on its shard after
/// each such amount (an uncapped call moved 64 MiB in one go, holding the shard for 40 ms).
const SENDFILE_CAP: usize = 1 << 20;

/// Returns `Pending` once (after asking to be polled again), so other tasks of the shard run:
/// monoio 0.2.4 has no `yield_now`.
#[derive(Default)]
struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
/// After rejecting a request, how long we keep reading (and discarding) before the close, so the
/// kernel does not answer the client's unread bytes with a RST that destroys our error response
/// before the client read it. Bounded by time only, as nginx's `lingering_close` is: a proxy in
/// front (nginx) sends the whole request body before it reads our 413, and reports a 502 if the
/// connection is reset under it, however large the body.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the connection stops waiting on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The peer closed its side.
    Eof,
    /// A deadline passed.
    Timeout,
    /// The shard is shutting down and the connection was idle.
    Shutdown,
    /// Idle for a whole tick: give the buffers back and wait small (see `serve_h1`).
    Park,
    /// The socket failed.
    Io,
}

/// How a wait on the socket ended.
enum Wake {
    Data,
    /// The sweep cancelled an idle read so the connection can wait small.
    Park,
    End(End),
}

/// What to do with the connection after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    KeepAlive,
    Close,
    /// Close after draining the peer's unread bytes (the request was rejected).
    Linger,
}

/// How an HTTP/1.1 connection ended.
pub(crate) enum H1Exit<T, S> {
    Closed,
    /// The client opened with the HTTP/2 preface, or its request asked for `Upgrade: h2c` and got
    /// a 101 (only where `h2c` was allowed): the stream, every byte read and not yet served
    /// (preface included), the upgraded request if there was one, and what the connection was
    /// served with, for the HTTP/2 server to take over.
    Http2 {
        stream: T,
        read: BytesMut,
        stream_one: Option<StreamOne>,
        peer: SocketAddr,
        ctx: Rc<ShardCtx>,
        app: Rc<S>,
    },
}

/// What the connection loop needs to know about where a connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct H1Options {
    /// The connection is TLS (`Request::tls`).
    pub(crate) tls: bool,
    /// A first request that is the HTTP/2 preface, or any request asking for `Upgrade: h2c`, hands
    /// the connection to HTTP/2.
    pub(crate) h2c: bool,
}

/// Serve one accepted HTTP/1.1 connection until it closes (or turns out to be HTTP/2).
///
/// Not an `async fn`: the connection is built here and the `async` block works on it in place,
/// so the future holds each of its parts once. An `async fn` keeps its arguments in its state
/// for as long as it lives (beside the connection they were moved into, here; or beside its own
/// copy of them: an `async fn` moves its arguments into locals first), paid by every idle
/// connection.
pub(crate) fn serve_h1<S: Service, T: Transport>(
    stream: T,
    peer: SocketAddr,
    ctx: Rc<ShardCtx>,
    app: Rc<S>,
    options: H1Options,
) -> impl Future<Output = H1Exit<T, S>> {
    let mut conn = H1Connection {
        rbuf: ctx.take_read_buf(),
        wbuf: ctx.take_write_buf(),
        header_deadline: None,
        idle_deadline: 0,
        nonblocking: false,
        fresh: options.h2c,
        h2c: options.h2c,
        tls: options.tls,
        slot: ctx.conns.register(),
        stream,
        peer,
        ctx,
        app,
    };
    async move {
        // The active loop's future is large (about 2.5 KiB: it holds a request, a response and
        // the I/O futures), so it lives in a box while the connection is busy and is freed when
        // the connection parks. A parked connection holds only `H1Connection` and a readiness
        // wait, which is what keeps 10,000 idle keep-alive connections cheap. One allocation per
        // busy period, not per request.
        loop {
            // The wait while parked comes after the `match`: a match keeps its scrutinee until
            // its end, and `Active` (which may own an upgraded request) held across that wait
            // made every connection's task 40 bytes larger (measured).
            match Box::pin(conn.run()).await {
                Active::Parked => {}
                Active::Closed => break,
                Active::Http2(stream_one) => {
                    let read = mem::take(&mut conn.rbuf);
                    conn.release_buffers();
                    let H1Connection {
                        stream,
                        peer,
                        ctx,
                        app,
                        ..
                    } = conn;
                    return H1Exit::Http2 {
                        stream,
                        read,
                        stream_one,
                        peer,
                        ctx,
                        app,
                    };
                }
            }
            if conn.read_parked().await.is_err() {
                break;
            }
        }
        conn.release_buffers();
        H1Exit::Closed
    }
}

/// How the active loop ended.
enum Active {
    Closed,
    Parked,
    /// The HTTP/2 preface arrived where a first request was expected (`None`), or a request was
    /// upgraded to h2c (the request, to be HTTP/2's stream 1) and the 101 written.
    Http2(Option<StreamOne>),
}

struct H1Connection<S, T> {
    stream: T,
    peer: SocketAddr,
    ctx: Rc<ShardCtx>,
    app: Rc<S>,
    slot: SlotGuard,
    /// Bytes read and not yet parsed. Empty with no capacity while parked.
    rbuf: BytesMut,
    /// Responses encoded and not yet written. Empty with no capacity while parked.
    wbuf: Vec<u8>,
    /// Tick by which the request head now arriving must be complete.
    header_deadline: Option<u64>,
    /// Tick by which an idle connection must have sent its next request.
    idle_deadline: u64,
    /// `O_NONBLOCK` is set on the socket (done before the first `sendfile`).
    nonblocking: bool,
    /// No request has been served yet and h2c is allowed: watch for the HTTP/2 preface.
    fresh: bool,
    /// `H1Options::h2c`: `Upgrade: h2c` is taken up.
    h2c: bool,
    tls: bool,
}

impl<S: Service, T: Transport> H1Connection<S, T> {
    /// Serves requests until the connection closes or parks.
    async fn run(&mut self) -> Active {
        // Empty field storage for the next request head. A local, not a field: it lives in the
        // boxed active future, so a parked connection does not carry it.
        let mut spare_headers = Headers::default();
        // Likewise the parser: between requests it holds nothing but scratch space.
        let mut parser = HeadParser::new(self.ctx.config.limits);
        loop {
            // Answer every complete request already buffered, holding the responses back so a
            // pipelined batch goes out in one write.
            let mut served = 0;
            loop {
                if self.fresh {
                    let n = self.rbuf.len().min(H2_PREFACE_HEAD.len());
                    if self.rbuf[..n] == H2_PREFACE_HEAD[..n] {
                        if n == H2_PREFACE_HEAD.len() {
                            return Active::Http2(None);
                        }
                        // Could still be the preface: wait for more before parsing.
                        break;
                    }
                    self.fresh = false;
                }
                if spare_headers.capacity() == 0 {
                    spare_headers = crate::header_pool::take_request_headers();
                }
                match parser.parse(&mut self.rbuf, &mut spare_headers) {
                    Ok(Status::Complete(head)) => {
                        // Only requests whose `Connection` said `upgrade` look any further.
                        if head.connection_upgrade && self.h2c {
                            if let Some(stream_one) = self.switch_to_h2c(&head) {
                                crate::header_pool::give_request_headers(head.headers);
                                // The responses before it, then the 101, in one write.
                                if self.flush().await.is_err() {
                                    return Active::Closed;
                                }
                                return Active::Http2(Some(stream_one));
                            }
                        }
                        match self.serve_request(head).await {
                            Flow::KeepAlive => {}
                            Flow::Close => {
                                self.close().await;
                                return Active::Closed;
                            }
                            Flow::Linger => {
                                self.linger_close().await;
                                return Active::Closed;
                            }
                        }
                        served += 1;
                        if served == self.ctx.config.max_pipeline_batch {
                            // One client must not hold the shard: write what we have and let the
                            // other connections run before parsing further.
                            if self.flush().await.is_err() {
                                return Active::Closed;
                            }
                            YieldOnce::default().await;
                            served = 0;
                        }
                    }
                    Ok(Status::Partial) => break,
                    Err(err) => {
                        self.push_error(err.status());
                        self.linger_close().await;
                        return Active::Closed;
                    }
                }
            }
            if self.flush().await.is_err() {
                return Active::Closed;
            }

            // A read interrupted on epoll drops the buffer: decide on the 408 before it.
            let head_begun = !self.rbuf.is_empty();
            let waited = if !head_begun {
                self.header_deadline = None;
                self.read_idle().await
            } else {
                let deadline = *self
                    .header_deadline
                    .get_or_insert_with(|| self.ctx.deadline(self.ctx.config.timeouts.header));
                self.read_in_request(deadline).await
            };
            match waited {
                Ok(()) => {}
                Err(End::Park) => return Active::Parked,
                Err(End::Timeout) if head_begun => {
                    // RFC 9110 §15.5.9: 408 tells the client the head took too long.
                    self.push_error(StatusCode::REQUEST_TIMEOUT);
                    self.close().await;
                    return Active::Closed;
                }
                Err(_) => return Active::Closed,
            }
        }
    }

    /// Takes up `Upgrade: h2c` if `head` asks for it in a form we serve (`wants_h2c`) and can be
    /// HTTP/2's stream 1: the 101 joins the responses waiting in the write buffer, and the request
    /// is returned as the HEADERS frame HTTP/2 will read. Otherwise the request is served over
    /// HTTP/1.1, as if it had not asked (RFC 9110 §7.8 lets a server ignore `Upgrade`).
    fn switch_to_h2c(&mut self, head: &RequestHead) -> Option<StreamOne> {
        if self.ctx.is_shutting_down() || !wants_h2c(head) {
            return None;
        }
        let stream_one = StreamOne::encode(head)?;
        self.wbuf.extend_from_slice(SWITCHING_TO_H2C);
        Some(stream_one)
    }

    /// Reads the body (if any), calls the app, and encodes the response into the write buffer.
    async fn serve_request(&mut self, head: RequestHead) -> Flow {
        self.header_deadline = None;
        let version = head.version;
        let head_request = head.method == Method::HEAD;
        let body = match head.framing {
            Framing::None => Bytes::new(),
            // Boxed: bodies are the exception, and the body reader's futures would otherwise make
            // this future (copied once per request) several times larger.
            framing => match Box::pin(self.read_body(framing, head.expect_continue, version)).await
            {
                Ok(body) => body,
                Err(BodyError::Parse(err)) => {
                    self.push_error(err.status());
                    return Flow::Linger;
                }
                Err(BodyError::End(End::Timeout)) => {
                    self.push_error(StatusCode::REQUEST_TIMEOUT);
                    return Flow::Close;
                }
                Err(BodyError::End(_)) => return Flow::Close,
            },
        };
        let keep_alive = head.keep_alive;
        let req = Request::new(RequestParts {
            head,
            body,
            peer: self.peer,
            shard: self.ctx.shard_id,
            tls: self.tls,
            request_id: None,
            extensions: http::Extensions::new(),
        });
        let res = self.app.call(req).await;
        // RFC 9112 §9.6: `Connection: close` from either side ends the connection after this
        // response (the response's is found as its head is written); so does shutdown.
        let keep_alive = keep_alive && !self.ctx.is_shutting_down();
        let (large, keep_alive) = self.push_response(res, version, head_request, keep_alive);
        if let Some(large) = large {
            if Box::pin(self.write_large_body(large)).await.is_err() {
                return Flow::Close;
            }
        }
        if keep_alive {
            Flow::KeepAlive
        } else {
            Flow::Close
        }
    }

    async fn read_body(
        &mut self,
        framing: Framing,
        expect_continue: bool,
        version: Version,
    ) -> Result<Bytes, BodyError> {
        let mut decoder = BodyDecoder::new(framing, self.ctx.config.limits.max_body);
        // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` may wait for this before
        // sending the body; one that already sent some of it did not wait.
        if expect_continue && version == Version::Http11 && self.rbuf.is_empty() {
            self.wbuf
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.flush().await.map_err(BodyError::End)?;
        }
        let mut body = BodyJoiner::default();
        loop {
            match decoder.decode(&mut self.rbuf) {
                Ok(Status::Complete(BodyEvent::Data(data))) => body.push(data),
                Ok(Status::Complete(BodyEvent::End)) => break,
                Ok(Status::Partial) => {
                    let deadline = self.ctx.deadline(self.ctx.config.timeouts.body);
                    self.read_in_request(deadline)
                        .await
                        .map_err(BodyError::End)?;
                }
                Err(err) => return Err(BodyError::Parse(err)),
            }
        }
        Ok(body.finish())
    }

    /// Encodes `res` after the responses already waiting in the write buffer. A body too large to
    /// copy is returned, to be written from its own buffer after the head; with it, whether the
    /// connection stays open (`keep_alive`, unless the response says `Connection: close`).
    fn push_response(
        &mut self,
        res: Response,
        version: Version,
        head_request: bool,
        keep_alive: bool,
    ) -> (Option<LargeBody>, bool) {
        let (parts, body) = res.into_parts();
        let meta = ResponseMeta {
            status: parts.status,
            body: BodyKind::Length(body.len() as u64),
            keep_alive,
            head_request,
            version,
        };
        let keep_alive = write_response_head(
            &mut self.wbuf,
            &meta,
            &parts.headers,
            self.app.default_fields(self.tls),
            &self.ctx.date(),
        );
        crate::header_pool::give(parts.headers);
        if !body_allowed(parts.status, head_request) {
            return (None, keep_alive);
        }
        let large = match body {
            Body::Empty => None,
            Body::Full(bytes) if bytes.len() > DIRECT_WRITE_THRESHOLD => {
                Some(LargeBody::Bytes(bytes))
            }
            Body::Full(bytes) => {
                self.wbuf.extend_from_slice(&bytes);
                None
            }
            Body::Chunks(chunks) => Some(LargeBody::Chunks(chunks)),
        };
        (large, keep_alive)
    }

    /// Writes the pending responses, then `body` without copying it into the write buffer.
    async fn write_large_body(&mut self, body: LargeBody) -> Result<(), End> {
        match body {
            LargeBody::Bytes(bytes) => {
                self.flush().await?;
                self.write_bytes(bytes).await
            }
            LargeBody::Chunks(chunks) => {
                for chunk in chunks {
                    match chunk {
                        // Small pieces (multipart delimiters) join the buffered head.
                        Chunk::Bytes(bytes) if bytes.len() <= DIRECT_WRITE_THRESHOLD => {
                            self.wbuf.extend_from_slice(&bytes);
                        }
                        Chunk::Bytes(bytes) => {
                            self.flush().await?;
                            self.write_bytes(bytes).await?;
                        }
                        Chunk::File { file, offset, len } => {
                            self.send_file(&file, offset, len).await?;
                        }
                    }
                }
                self.flush().await
            }
        }
    }

    /// Encodes a short plain-text error response that closes the connection.
    fn push_error(&mut self, status: StatusCode) {
        let reason = status.canonical_reason().unwrap_or("Error");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let meta = ResponseMeta {
            status,
            body: BodyKind::Length(reason.len() as u64 + 1),
            keep_alive: false,
            head_request: false,
            version: Version::Http11,
        };
        // `keep_alive: false` above: this response always closes.
        let _ = write_response_head(
            &mut self.wbuf,
            &meta,
            &headers,
            DefaultFields::none(),
            &self.ctx.date(),
        );
        self.wbuf.extend_from_slice(reason.as_bytes());
        self.wbuf.push(b'\n');
    }

    /// Waits for the first bytes of a next request, with nothing buffered. Parks the connection
    /// when the sweep says it has been idle for a while.
    async fn read_idle(&mut self) -> Result<(), End> {
        if self.ctx.is_shutting_down() {
            return Err(End::Shutdown);
        }
        self.idle_deadline = self.ctx.deadline(self.ctx.config.timeouts.idle);
        self.slot.take_reason();
        self.slot.arm_idle(self.ctx.now(), self.idle_deadline);
        let res = self.read_into_rbuf().await;
        self.slot.disarm();
        match self.settle(res) {
            Wake::Data => Ok(()),
            Wake::Park => Err(End::Park),
            Wake::End(end) => Err(end),
        }
    }

    /// Waits small: gives the buffers back to the shard, waits without a read buffer
    /// (`Transport::wait_parked`), and takes full buffers again only once bytes arrive.
    async fn read_parked(&mut self) -> Result<(), End> {
        self.release_buffers();
        self.slot.mark_parked();
        self.slot.arm_idle(self.ctx.now(), self.idle_deadline);
        let res = self.stream.wait_parked(&self.slot).await;
        self.slot.disarm();
        let reason = self.slot.take_reason();
        let early = match res {
            // An interruption that raced with the bytes' arrival changes nothing.
            Ok(early) => early,
            Err(_) => {
                return Err(match reason {
                    Some(CancelReason::Timeout) => End::Timeout,
                    Some(CancelReason::Shutdown) => End::Shutdown,
                    Some(CancelReason::Park) | None => End::Io,
                })
            }
        };
        self.rbuf = self.ctx.take_read_buf();
        self.rbuf.extend_from_slice(&early);
        self.wbuf = self.ctx.take_write_buf();
        Ok(())
    }

    /// Waits for more bytes of a request already begun (head or body), until `deadline`.
    async fn read_in_request(&mut self, deadline: u64) -> Result<(), End> {
        self.slot.take_reason();
        self.slot.arm_in_request(deadline);
        let res = self.read_into_rbuf().await;
        self.slot.disarm();
        match self.settle(res) {
            Wake::Data => Ok(()),
            // Only idle connections are parked.
            Wake::Park => Err(End::Io),
            Wake::End(end) => Err(end),
        }
    }

    /// Turns a read's result into "got bytes" or why the wait ended: a cancelled read reports the
    /// sweep's reason.
    fn settle(&self, res: io::Result<usize>) -> Wake {
        match res {
            Ok(0) => Wake::End(End::Eof),
            Ok(_) => {
                // A cancel that raced with a completed read changes nothing.
                self.slot.take_reason();
                Wake::Data
            }
            Err(_) => match self.slot.take_reason() {
                Some(CancelReason::Timeout) => Wake::End(End::Timeout),
                Some(CancelReason::Shutdown) => Wake::End(End::Shutdown),
                Some(CancelReason::Park) => Wake::Park,
                None => Wake::End(End::Io),
            },
        }
    }

    async fn read_into_rbuf(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() == 0 {
            self.rbuf = self.ctx.take_read_buf();
        } else if self.rbuf.capacity() - self.rbuf.len() < MIN_READ_SPACE {
            // Compacts in place when the parsed requests are gone, else grows.
            self.rbuf.reserve(READ_BUF_SIZE);
        }
        let buf = mem::take(&mut self.rbuf);
        let (res, buf) = self.stream.read(buf, &self.slot).await;
        self.rbuf = buf;
        res
    }

    /// Writes every encoded response in one write.
    async fn flush(&mut self) -> Result<(), End> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let buf = mem::take(&mut self.wbuf);
        let mut buf = self.write_with_deadline(buf).await?;
        buf.clear();
        self.wbuf = buf;
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` with `sendfile(2)`: from the page cache to the
    /// socket, no copy through this process and no buffer held, however large the file
    /// (measured against splice through a pipe and read+write: 130 vs 189 vs 530 µs of CPU per
    /// 1 MiB file; see the issue #5 notes).
    ///
    /// `sendfile` needs a non-blocking socket to return instead of waiting for buffer space;
    /// sockets accepted under io_uring start blocking, so the first file body sets `O_NONBLOCK`
    /// (monoio's io_uring reads and writes behave the same with it: tested). A full socket
    /// buffer waits for writability under the write deadline, re-armed at every wait so a slow
    /// but moving client is not cut off. Each call is capped and the task yields after each cap's
    /// worth, so one fast download does not hold the shard. A file that shrank below what the
    /// head promised ends the connection: the length is on the wire, so closing is the only
    /// honest signal (RFC 9112 §8).
    async fn send_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> Result<(), End> {
        use rustix::io::Errno;
        let Some(socket) = self.stream.plain_socket() else {
            return self.copy_file(file, offset, len).await;
        };
        if !self.nonblocking {
            rustix::io::ioctl_fionbio(shards::sock_fd(socket), true).map_err(|_| End::Io)?;
            self.nonblocking = true;
        }
        // The head (and any responses before it) goes out with MSG_MORE, so the kernel sends it
        // in the same segments as the file's first bytes instead of a packet of its own (what
        // nginx gets from `tcp_nopush`).
        let mut done = 0;
        while done < self.wbuf.len() {
            let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
            match rustix::net::send(shards::sock_fd(socket), &self.wbuf[done..], flags) {
                Ok(n) => done += n,
                Err(Errno::AGAIN) => self.wait_writable(socket).await?,
                Err(Errno::INTR) => {}
                Err(_) => return Err(End::Io),
            }
        }
        self.wbuf.clear();
        let mut pos = offset;
        let end = offset.saturating_add(len);
        let mut since_yield = 0usize;
        while pos < end {
            let want = usize::try_from(end - pos)
                .unwrap_or(SENDFILE_CAP)
                .min(SENDFILE_CAP);
            let sent = rustix::fs::sendfile(shards::sock_fd(socket), file, Some(&mut pos), want);
            match sent {
                Ok(0) => return Err(End::Io),
                Ok(n) => {
                    since_yield += n;
                    if since_yield >= SENDFILE_CAP {
                        since_yield = 0;
                        YieldOnce::default().await;
                    }
                }
                Err(Errno::AGAIN) => {
                    since_yield = 0;
                    self.wait_writable(socket).await?;
                }
                Err(Errno::INTR) => {}
                Err(_) => return Err(End::Io),
            }
        }
        Ok(())
    }

    /// Sends a file through a transport that must see the bytes (TLS encrypts them): read into a
    /// pooled buffer a slice at a time and write it, so memory stays one buffer however large the
    /// file. Like `send_file`, a file that shrank ends the connection.
    async fn copy_file(&mut self, file: &std::fs::File, offset: u64, len: u64) -> Result<(), End> {
        use std::os::unix::fs::FileExt;
        self.flush().await?;
        let mut buf = self.ctx.take_write_buf();
        let mut pos = offset;
        let end = offset.saturating_add(len);
        while pos < end {
            let want = usize::try_from(end - pos)
                .unwrap_or(COPY_CHUNK)
                .min(COPY_CHUNK);
            buf.resize(want, 0);
            let n = match file.read_at(&mut buf, pos) {
                Ok(0) | Err(_) => return Err(End::Io),
                Ok(n) => n,
            };
            buf.truncate(n);
            buf = self.write_with_deadline(buf).await?;
            pos += n as u64;
        }
        self.ctx.give_write_buf(buf);
        Ok(())
    }

    /// Waits until the socket takes more bytes, or the write deadline passes.
    async fn wait_writable(&self, socket: &monoio::net::TcpStream) -> Result<(), End> {
        self.slot.take_reason();
        self.slot
            .arm_in_request(self.ctx.deadline(self.ctx.config.timeouts.body));
        let slot = &*self.slot;
        // `relaxed = false`: on epoll a relaxed wait returns at once on the readiness monoio
        // cached before our own EAGAIN, and the loop would spin (measured: 270,000 calls in
        // 0.5 s); io_uring ignores the flag.
        let mut ready = pin!(socket.writable(false));
        let done = poll_fn(|cx| {
            if slot.interrupted() {
                return Poll::Ready(None);
            }
            slot.watch(cx.waker());
            ready.as_mut().poll(cx).map(Some)
        })
        .await;
        self.slot.disarm();
        match done {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(End::Io),
            None if self.slot.take_reason() == Some(CancelReason::Timeout) => Err(End::Timeout),
            None => Err(End::Io),
        }
    }

    async fn write_bytes(&mut self, bytes: Bytes) -> Result<(), End> {
        self.write_with_deadline(bytes).await.map(drop)
    }

    /// Writes all of `buf`, unless the sweep times the write out first.
    ///
    /// A write never needs its buffer back, so a timed-out write is simply dropped (monoio
    /// cancels it and frees the buffer when the kernel is done with it) and the connection
    /// closes.
    async fn write_with_deadline<B: monoio::buf::IoBuf + AsRef<[u8]> + 'static>(
        &mut self,
        buf: B,
    ) -> Result<B, End> {
        self.slot.take_reason();
        self.slot
            .arm_in_request(self.ctx.deadline(self.ctx.config.timeouts.body));
        let slot = &*self.slot;
        let mut write = pin!(self.stream.write_all(buf));
        let done = poll_fn(|cx| {
            if slot.interrupted() {
                return Poll::Ready(None);
            }
            slot.watch(cx.waker());
            write.as_mut().poll(cx).map(Some)
        })
        .await;
        self.slot.disarm();
        match done {
            Some((Ok(()), buf)) => Ok(buf),
            Some((Err(_), _)) => Err(End::Io),
            None if self.slot.take_reason() == Some(CancelReason::Timeout) => Err(End::Timeout),
            None => Err(End::Io),
        }
    }

    /// Writes what is pending; dropping the stream then closes it. No `shutdown(SHUT_WR)` first:
    /// the kernel sends the FIN after the queued bytes either way, and the extra syscall is a
    /// measurable share of a one-request connection. (A rejected request, whose peer may still be
    /// sending, goes through `linger_close` instead.)
    async fn close(&mut self) {
        let _ = self.flush().await;
    }

    /// Writes the error response, closes our side, then drains the peer's unread bytes for a
    /// short while before the socket is closed.
    async fn linger_close(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = self.ctx.deadline(LINGER);
        loop {
            self.rbuf.clear();
            if self.read_in_request(deadline).await.is_err() {
                return;
            }
        }
    }

    /// Hands the buffers back to the shard's pool (parking, or the end of the connection).
    fn release_buffers(&mut self) {
        let rbuf = mem::take(&mut self.rbuf);
        if rbuf.capacity() > 0 {
            self.ctx.give_read_buf(rbuf);
        }
        self.ctx.give_write_buf(mem::take(&mut self.wbuf));
    }
}

enum BodyError {
    Parse(ParseError),
    End(End),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain connection's task holds this future inline (`ConnFuture::Plain`), so what it
    /// keeps across the parked wait is paid by every idle connection: 888 bytes measured (rustc
    /// 1.95, x86-64) before and after h2c upgrades; 600 since a parked connection waits for
    /// readiness instead of reading (`Transport::wait_parked`: that wait's future is 152 bytes,
    /// a read's 472); 424 since the connection is built before the future and worked on in
    /// place (an `async fn` kept its five arguments beside the connection they were moved into).
    /// Growing it should be a choice, not an accident.
    #[test]
    fn serve_h1_future_stays_small() {
        fn output_size<A, B, C, D, E, R>(_: fn(A, B, C, D, E) -> R) -> usize {
            std::mem::size_of::<R>()
        }
        let size = output_size(serve_h1::<crate::app::App<()>, monoio::net::TcpStream>);
        assert!(size <= 424, "serve_h1's future is {size} bytes");
    }
}
