//! The HTTP/2 connection loop (RFC 9113) on the h2 crate: h2 owns framing, HPACK, flow control,
//! stream states and the stream-level flood limits (rapid reset, CONTINUATION, empty DATA);
//! `h2_flood` bounds control frames under it. This module owns the connection's lifetime
//! (handshake deadline, idle timeout, GOAWAY on shutdown or flood), turns each stream into the
//! same `Request` the HTTP/1.1 loop builds, and writes the `Response` back within flow control
//! and a memory bound.
//!
//! Each stream runs in its own task on the shard, so a slow handler or a stalled download on one
//! stream does not hold the others; the connection task keeps polling h2, which moves every
//! stream's bytes.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Wake, Waker};

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{RecvStream, SendStream};
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::BodyJoiner;
use super::h2_flood::FloodGuard;
use super::h2c_upgrade::{Splice, StreamOne};
use super::shard::ShardCtx;
use super::write_batch::{batched, BatchedIo};
use crate::http1::{body_allowed, Framing, Headers, Limits, RequestHead, Target, Version};
use crate::service::{Body, Chunk, Request, RequestParts, Response, Service};

/// Bytes read from a file per DATA write at most (h2 splits them into frames).
const FILE_CHUNK: usize = 64 * 1024;

/// Serves one HTTP/2 connection (the client preface not yet read) until it closes.
pub(crate) async fn serve_h2<IO, S>(
    io: IO,
    peer: SocketAddr,
    tls: bool,
    ctx: Rc<ShardCtx>,
    app: Rc<S>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service,
{
    let slot = ctx.conns.register();
    let settings = ctx.config.h2;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(settings.max_concurrent_streams)
        .initial_window_size(settings.initial_window)
        .initial_connection_window_size(settings.connection_window)
        .max_header_list_size(settings.max_header_list_size)
        .max_pending_accept_reset_streams(settings.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(settings.max_local_error_reset_streams))
        .max_send_buffer_size(settings.max_send_buffer);

    // The preface and the first SETTINGS must arrive within the header timeout.
    slot.arm_in_request(ctx.deadline(ctx.config.timeouts.header));
    let (io, out) = batched(FloodGuard::new(io, ctx.clone()));
    let mut handshake = pin!(builder.handshake::<_, Bytes>(io));
    let handshake = slot
        .interruptible(poll_fn(|cx| {
            let done = handshake.as_mut().poll(cx);
            // Our SETTINGS go out now; a write error shows up as the handshake's read error.
            let _ = out.poll_drain(cx);
            done
        }))
        .await;
    slot.disarm();
    let mut conn: Connection<BatchedIo<FloodGuard<IO>>, Bytes> = match handshake {
        Some(Ok(conn)) => conn,
        Some(Err(err)) => {
            tracing::debug!(%peer, "h2 handshake failed: {err}");
            return;
        }
        None => return,
    };

    let streams = Streams {
        peer,
        tls,
        ctx: ctx.clone(),
        app,
        permits: Rc::new(SendPermits::new(settings.max_sending_streams)),
        count: Rc::new(StreamCount::default()),
        spare_waker: Cell::new(None),
    };
    let mut shutdown = pin!(ctx.shutdown.triggered());
    let mut goaway_sent = false;
    let mut armed_idle = false;
    let mut calmed = false;
    let end = poll_fn(|cx| {
        if !calmed && out.io().flooded() {
            tracing::warn!(%peer, "HTTP/2 control-frame flood: GOAWAY ENHANCE_YOUR_CALM");
            // h2 sends the GOAWAY and closes without reading again (the guard would give it
            // nothing more anyway); the streams in flight are reset.
            conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            calmed = true;
            goaway_sent = true;
            // A peer that floods and does not read gets the write timeout to take the GOAWAY.
            let _ = slot.take_reason();
            slot.arm_in_request(ctx.deadline(ctx.config.timeouts.body));
        }
        if calmed && slot.take_reason().is_some() {
            return Poll::Ready(End::Closed);
        }
        if !goaway_sent {
            let stop = shutdown.as_mut().poll(cx).is_ready()
                || (slot.interrupted() && slot.take_reason().is_some());
            if stop {
                // RFC 9113 §6.8: GOAWAY, then the streams already begun are finished.
                conn.graceful_shutdown();
                goaway_sent = true;
                slot.disarm();
                armed_idle = false;
            }
        }
        streams.count.watch(cx.waker());
        slot.watch(cx.waker());
        // Every stream h2 has ready, in this one poll: most are answered on the spot, and what
        // they write goes out with the rest of the poll's writes in the drain below.
        let mut started = 0;
        let end = loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    streams.start(request, respond);
                    started += 1;
                    if started == STREAMS_PER_POLL {
                        // Let the shard's other connections run; back for the rest right away.
                        cx.waker().wake_by_ref();
                        break Poll::Pending;
                    }
                }
                Poll::Ready(Some(Err(err))) => break Poll::Ready(End::Failed(err.to_string())),
                Poll::Ready(None) => break Poll::Ready(End::Closed),
                Poll::Pending => break Poll::Pending,
            }
        };
        // The idle timeout runs only while no stream is open, from the last stream's end: a
        // stream answered within this poll was never counted as open, so it restarts the clock.
        if started > 0 && armed_idle {
            slot.disarm();
            armed_idle = false;
        }
        if !goaway_sent {
            match (streams.count.open() == 0, armed_idle) {
                (true, false) => {
                    slot.arm_in_request(ctx.deadline(ctx.config.timeouts.idle));
                    armed_idle = true;
                }
                (false, true) => {
                    slot.disarm();
                    armed_idle = false;
                }
                _ => {}
            }
        }
        // Everything this poll produced, in one write.
        if let Poll::Ready(Err(err)) = out.poll_drain(cx) {
            return Poll::Ready(End::Failed(err.to_string()));
        }
        end
    })
    .await;
    if let End::Failed(err) = end {
        // h2 has already sent the GOAWAY the error calls for.
        tracing::debug!(%peer, "h2 connection error: {err}");
    }
    slot.disarm();
}

/// Streams started in one poll of the connection at most, before it yields to the shard's other
/// connections: a client that keeps requests coming as fast as they are answered would
/// otherwise keep this poll going.
const STREAMS_PER_POLL: usize = 128;

/// How the connection loop ended.
enum End {
    Failed(String),
    Closed,
}

/// What every stream of one connection shares.
struct Streams<S> {
    peer: SocketAddr,
    tls: bool,
    ctx: Rc<ShardCtx>,
    app: Rc<S>,
    permits: Rc<SendPermits>,
    count: Rc<StreamCount>,
    /// A [`ForwardWaker`] no future kept, for the next stream.
    spare_waker: Cell<Option<Arc<ForwardWaker>>>,
}

impl<S: Service> Streams<S> {
    /// Starts one stream, from the connection task. A request without a body whose service
    /// answers on its first poll (`/plaintext`, a cached small file, most errors) is answered
    /// here and then: no task, no new waker, nothing moved to the heap but the service's own
    /// future.
    /// Measured on h2c `/plaintext` (h2load -c16 -m100): A/B figures in bench/RESULTS.md. The
    /// rest (a body to read, a service that waits, a large or file body to send within flow
    /// control) continues in a task of its own, so it holds up no other stream.
    fn start(&self, incoming: http::Request<RecvStream>, mut respond: SendResponse<Bytes>) {
        let (parts, body) = incoming.into_parts();
        if !body.is_end_stream() {
            monoio::spawn(self.task().run(parts, body, respond));
            return;
        }
        drop(body);
        let head_request = parts.method == Method::HEAD;
        let head = match request_head(parts, &self.ctx.config.limits) {
            Ok(head) => head,
            Err(status) => return send_error(&mut respond, status, &self.ctx),
        };
        // h2 resets an END_STREAM request with a non-zero length, except a HEAD request's.
        if declared_too_large(&head.headers, self.ctx.config.limits.max_body) {
            return send_error(&mut respond, StatusCode::PAYLOAD_TOO_LARGE, &self.ctx);
        }
        let req = request(head, Bytes::new(), self.peer, self.tls, &self.ctx);
        // Boxed before the first poll: if it is not ready, it moves into a task as a pointer.
        let app = self.app.clone();
        let tls = self.tls;
        let mut call = Box::pin(async move {
            let mut res = app.call(req).await;
            app.default_fields(tls).fill(res.headers_mut());
            res
        });
        let forward = self.spare_waker.take().unwrap_or_default();
        let waker = Waker::from(forward.clone());
        let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
        drop(waker);
        match polled {
            Poll::Ready(res) => {
                // Nothing kept the waker: the next stream may use it.
                if Arc::strong_count(&forward) == 1 {
                    self.spare_waker.set(Some(forward));
                }
                if let Ok(Some((send, body))) =
                    send_head(res, head_request, &mut respond, &self.ctx)
                {
                    let reply = self.reply();
                    monoio::spawn(async move { reply.send_body(send, body).await });
                }
            }
            Poll::Pending => {
                let reply = self.reply();
                monoio::spawn(async move {
                    let res = poll_fn(|cx| {
                        forward.follow(cx.waker());
                        call.as_mut().poll(cx)
                    })
                    .await;
                    reply.finish(res, head_request, respond).await
                });
            }
        }
    }

    fn reply(&self) -> Reply {
        Reply {
            ctx: self.ctx.clone(),
            permits: self.permits.clone(),
            _open: self.count.opened(),
        }
    }

    fn task(&self) -> StreamTask<S> {
        StreamTask {
            peer: self.peer,
            tls: self.tls,
            app: self.app.clone(),
            reply: self.reply(),
        }
    }
}

fn request(head: RequestHead, body: Bytes, peer: SocketAddr, tls: bool, ctx: &ShardCtx) -> Request {
    Request::new(RequestParts {
        head,
        body,
        peer,
        shard: ctx.shard_id,
        tls,
        request_id: None,
        extensions: http::Extensions::new(),
    })
}

/// The waker a stream's service future is first polled with, in the connection task. A future
/// should keep the waker of its latest poll, but monoio's timers keep the first one they are
/// given; so if the future is not ready, the task it continues in points this waker at its own
/// on every poll, and a wake reaches that task whichever waker the future kept. (Polled with the
/// connection task's waker instead, a handler sleeping on a monoio timer would wake only the
/// connection, and its own task, referenced by no waker, would be freed mid-request: tested in
/// tests/h2_streams.rs.)
#[derive(Default)]
struct ForwardWaker(Mutex<Option<Waker>>);

impl ForwardWaker {
    fn follow(&self, waker: &Waker) {
        let mut target = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !target.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *target = Some(waker.clone());
        }
    }
}

impl Wake for ForwardWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(target) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            target.wake_by_ref();
        }
    }
}

/// A stream's response, once it continues in a task of its own: holds the stream open for the
/// connection's idle timeout.
struct Reply {
    ctx: Rc<ShardCtx>,
    permits: Rc<SendPermits>,
    _open: StreamOpen,
}

impl Reply {
    async fn finish(self, res: Response, head_request: bool, mut respond: SendResponse<Bytes>) {
        if let Ok(Some((send, body))) = send_head(res, head_request, &mut respond, &self.ctx) {
            self.send_body(send, body).await;
        }
    }

    /// A body that may have to wait for flow control: a large one takes a send turn.
    async fn send_body(self, mut send: SendStream<Bytes>, body: Body) {
        let _ = match body {
            Body::Empty => Ok(()),
            Body::Full(bytes) => {
                let _permit = self.permits.acquire().await;
                send_bytes(&mut send, bytes, true).await
            }
            Body::Chunks(chunks) => {
                let _permit = self.permits.acquire().await;
                send_chunks(&mut send, chunks).await
            }
        };
    }
}

/// A stream whose request has a body: read it, then on as any other.
struct StreamTask<S> {
    peer: SocketAddr,
    tls: bool,
    app: Rc<S>,
    reply: Reply,
}

impl<S: Service> StreamTask<S> {
    async fn run(
        self,
        parts: http::request::Parts,
        body: RecvStream,
        mut respond: SendResponse<Bytes>,
    ) {
        let ctx = &self.reply.ctx;
        let head_request = parts.method == Method::HEAD;
        let head = match request_head(parts, &ctx.config.limits) {
            Ok(head) => head,
            Err(status) => return send_error(&mut respond, status, ctx),
        };
        let body = match read_body(body, &head.headers, ctx).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return send_error(&mut respond, StatusCode::PAYLOAD_TOO_LARGE, ctx)
            }
            Err(BodyError::Timeout) => {
                return send_error(&mut respond, StatusCode::REQUEST_TIMEOUT, ctx)
            }
            Err(BodyError::Stream) => return,
        };
        let req = request(head, body, self.peer, self.tls, ctx);
        let mut res = self.app.call(req).await;
        self.app.default_fields(self.tls).fill(res.headers_mut());
        self.reply.finish(res, head_request, respond).await;
    }
}

/// The request as the rest of the server sees it. h2 has already refused what RFC 9113 §8.2–8.3
/// calls malformed (missing or repeated pseudo-headers, connection-specific fields, uppercase
/// names, `te` other than `trailers`) with a stream error; what is left to check is what our
/// own request type asks of a target, and the same size limits HTTP/1.1 applies (414 for a
/// target whose request line would be too long, 431 for too many or too large fields), so a
/// request is refused or served alike over both protocols.
fn request_head(parts: http::request::Parts, limits: &Limits) -> Result<RequestHead, StatusCode> {
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    // RFC 9113 §8.3.1: a Host that names another entity than :authority is malformed.
    if let (Some(authority), Some(host)) = (authority, parts.headers.get(header::HOST)) {
        if !host.as_bytes().eq_ignore_ascii_case(authority) {
            return Err(StatusCode::BAD_REQUEST);
        }
    }
    let raw_target = if parts.method == Method::CONNECT {
        authority.map(Bytes::copy_from_slice)
    } else {
        parts
            .uri
            .path_and_query()
            .map(|pq| Bytes::copy_from_slice(pq.as_str().as_bytes()))
    };
    // The request line HTTP/1.1 would have carried: METHOD SP target SP "HTTP/1.1".
    let line = raw_target.as_ref().map_or(0, Bytes::len) + parts.method.as_str().len() + 10;
    if line > limits.max_request_line {
        return Err(StatusCode::URI_TOO_LONG);
    }
    let target = raw_target
        .and_then(|raw| Target::parse(raw, &parts.method).ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let host = match parts.headers.contains_key(header::HOST) {
        true => None,
        false => authority,
    };
    // Counted as HTTP/1.1 counts its field lines ("name: value\r\n"), Host included.
    let fields = parts.headers.len() + usize::from(host.is_some());
    let field_bytes = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + host.map_or(0, |h| h.len() + 10);
    if fields > limits.max_headers || field_bytes > limits.max_header_bytes {
        return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let storage = crate::header_pool::take_request_headers();
    let headers = Headers::from_fields(storage, field_bytes, host, parts.headers.iter())
        .ok_or(StatusCode::BAD_REQUEST)?;
    Ok(RequestHead {
        method: parts.method,
        target,
        version: Version::Http2,
        headers,
        // The body is read by this module, never framed by the HTTP/1.1 core.
        framing: Framing::None,
        keep_alive: true,
        expect_continue: false,
        connection_upgrade: false,
    })
}

enum BodyError {
    TooLarge,
    Timeout,
    /// The stream was reset or the connection ended.
    Stream,
}

/// Reads the whole request body, within the body size limit and the body timeout, giving the
/// flow-control window back as bytes arrive.
async fn read_body(
    mut body: RecvStream,
    headers: &Headers,
    ctx: &ShardCtx,
) -> Result<Bytes, BodyError> {
    let max = ctx.config.limits.max_body;
    if declared_too_large(headers, max) {
        return Err(BodyError::TooLarge);
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut joined = BodyJoiner::default();
    loop {
        let next = monoio::time::timeout(ctx.config.timeouts.body, body.data()).await;
        let data = match next {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Stream),
            Ok(Some(Ok(data))) => data,
        };
        if (joined.len() + data.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        let _ = body.flow_control().release_capacity(data.len());
        joined.push(data);
    }
    Ok(joined.finish())
}

/// Whether the request's Content-Length is over the body limit.
fn declared_too_large(headers: &Headers, max: u64) -> bool {
    headers
        .get("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > max)
}

/// A short plain-text error response on this stream.
fn send_error(respond: &mut SendResponse<Bytes>, status: StatusCode, ctx: &ShardCtx) {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    let headers = head.headers_mut();
    add_server_fields(headers, ctx);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = Bytes::from(format!("{reason}\n"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if let Ok(mut send) = respond.send_response(head, false) {
        // Small enough for any initial window: no need to wait for capacity.
        let _ = send.send_data(body, true);
    }
}

fn connection_specific(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

fn add_server_fields(headers: &mut HeaderMap, ctx: &ShardCtx) {
    headers.insert(header::SERVER, HeaderValue::from_static("percore"));
    headers.insert(header::DATE, ctx.date().header_value().clone());
}

/// Sends the response's head, and its body too when that can be handed to h2 at once: none, or
/// bytes within h2's send buffer (h2 holds them and sends them as the peer's windows open, so
/// nothing has to wait here). Otherwise returns the stream and the body for [`Reply::send_body`].
fn send_head(
    res: Response,
    head_request: bool,
    respond: &mut SendResponse<Bytes>,
    ctx: &ShardCtx,
) -> Result<Option<(SendStream<Bytes>, Body)>, h2::Error> {
    let (parts, body) = res.into_parts();
    let status = parts.status;
    let mut head = http::Response::from_parts(parts, ());
    let headers = head.headers_mut();
    // RFC 9113 §8.2.2: connection-specific fields must not appear in HTTP/2 (h2 refuses to send
    // them). Rare in a response, so looked for in one pass over the names rather than removed
    // one hash lookup at a time.
    if headers.keys().any(connection_specific) {
        for name in [
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
            HeaderName::from_static("keep-alive"),
            HeaderName::from_static("proxy-connection"),
        ] {
            headers.remove(&name);
        }
    }
    add_server_fields(headers, ctx);
    let has_body = body_allowed(status, false);
    if has_body {
        // As HTTP/1.1 does: the length of the body, also for HEAD (RFC 9110 §9.3.2).
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
    } else {
        headers.remove(header::CONTENT_LENGTH);
    }
    let send_body = has_body && !head_request && !body.is_empty();
    let mut send = respond.send_response(head, !send_body)?;
    if !send_body {
        return Ok(None);
    }
    match body {
        Body::Full(bytes) if bytes.len() <= ctx.config.h2.max_send_buffer => {
            send.send_data(bytes, true)?;
            Ok(None)
        }
        body => Ok(Some((send, body))),
    }
}

async fn send_chunks(send: &mut SendStream<Bytes>, chunks: Vec<Chunk>) -> Result<(), h2::Error> {
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.into_iter().enumerate() {
        match chunk {
            Chunk::Bytes(bytes) => send_bytes(send, bytes, i == last).await?,
            Chunk::File { file, offset, len } => {
                send_file(send, &file, offset, len, i == last).await?
            }
        }
    }
    Ok(())
}

/// Waits until the stream may send at least one byte (flow control and h2's send buffer), and
/// says how many (at most `want`).
async fn capacity(send: &mut SendStream<Bytes>, want: usize) -> Result<usize, h2::Error> {
    send.reserve_capacity(want);
    loop {
        match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => return Ok(n.min(want)),
            Some(Err(err)) => return Err(err),
            // The stream is gone (reset by the peer).
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
        }
    }
}

async fn send_bytes(
    send: &mut SendStream<Bytes>,
    mut bytes: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if bytes.is_empty() {
        if end {
            send.send_data(bytes, true)?;
        }
        return Ok(());
    }
    while !bytes.is_empty() {
        let n = capacity(send, bytes.len()).await?;
        let piece = bytes.split_to(n);
        send.send_data(piece, end && bytes.is_empty())?;
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `offset`, one chunk read at a time as the window allows, so
/// a stream holds at most one chunk however large the file. A file that shrank resets the
/// stream (its length is already promised in the head).
async fn send_file(
    send: &mut SendStream<Bytes>,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    end: bool,
) -> Result<(), h2::Error> {
    use std::os::unix::fs::FileExt;
    let mut pos = offset;
    let stop = offset.saturating_add(len);
    if len == 0 && end {
        send.send_data(Bytes::new(), true)?;
    }
    while pos < stop {
        let left = usize::try_from(stop - pos).unwrap_or(FILE_CHUNK);
        let n = capacity(send, left.min(FILE_CHUNK)).await?;
        let mut buf = vec![0u8; n];
        let read = match file.read_at(&mut buf, pos) {
            Ok(0) | Err(_) => {
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return Err(h2::Error::from(h2::Reason::INTERNAL_ERROR));
            }
            Ok(read) => read,
        };
        buf.truncate(read);
        pos += read as u64;
        send.send_data(Bytes::from(buf), end && pos >= stop)?;
    }
    Ok(())
}

/// Open streams of one connection, and the connection task's waker, woken when the last one
/// ends (so the idle timeout starts).
#[derive(Default)]
struct StreamCount {
    open: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

impl StreamCount {
    fn open(&self) -> usize {
        self.open.get()
    }

    fn watch(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn opened(self: &Rc<Self>) -> StreamOpen {
        self.open.set(self.open.get() + 1);
        StreamOpen(self.clone())
    }
}

/// One open stream; dropping it closes it.
struct StreamOpen(Rc<StreamCount>);

impl Drop for StreamOpen {
    fn drop(&mut self) {
        let count = &self.0;
        count.open.set(count.open.get() - 1);
        if count.open.get() == 0 {
            if let Some(waker) = count.waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}

/// Turns to send a large body, first come first served: bounds the response bytes one connection
/// holds to `max_sending_streams` × h2's send buffer, however many streams it opens.
struct SendPermits {
    free: Cell<usize>,
    waiting: RefCell<VecDeque<Waker>>,
}

impl SendPermits {
    fn new(n: usize) -> Self {
        SendPermits {
            free: Cell::new(n.max(1)),
            waiting: RefCell::new(VecDeque::new()),
        }
    }

    async fn acquire(&self) -> SendPermit<'_> {
        poll_fn(|cx| {
            if self.free.get() > 0 {
                self.free.set(self.free.get() - 1);
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        SendPermit(self)
    }
}

struct SendPermit<'a>(&'a SendPermits);

impl Drop for SendPermit<'_> {
    fn drop(&mut self) {
        let permits = self.0;
        permits.free.set(permits.free.get() + 1);
        // All of them: a waiter may have gone (its stream reset) and would swallow a lone wake.
        for waker in permits.waiting.borrow_mut().drain(..) {
            waker.wake();
        }
    }
}

/// A cleartext connection as HTTP/2 reads it: the bytes the HTTP/1.1 loop already read (the
/// preface, or whatever followed an `Upgrade: h2c` request) before the socket's own, and, for an
/// upgrade, the request as stream 1 where its [`Splice`] puts it.
pub(crate) struct Rewind<IO> {
    read: Bytes,
    io: IO,
    splice: Splice,
}

impl<IO> Rewind<IO> {
    /// `stream_one`: the upgraded request, if the connection was upgraded (none for prior
    /// knowledge).
    pub(crate) fn new(read: Bytes, io: IO, stream_one: Option<StreamOne>) -> Self {
        let splice = stream_one.map_or_else(Splice::none, Splice::stream_one);
        Rewind { read, io, splice }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(piece) = this.splice.take_injected(buf.remaining()) {
            buf.put_slice(&piece);
            return Poll::Ready(Ok(()));
        }
        let limit = this.splice.pass_limit();
        if !this.read.is_empty() {
            let n = this
                .read
                .len()
                .min(buf.remaining())
                .min(limit.unwrap_or(usize::MAX));
            let head = this.read.split_to(n);
            this.splice.passed(&head);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        let Some(limit) = limit else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        // Until the splice is done, no more than it may look at: the bytes after its limit stay in
        // the socket, so nothing needs to be held back here. (Zeroes at most a SETTINGS frame's
        // worth of `buf`, once per upgraded connection, to avoid `unsafe` `assume_init`.)
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(limit.min(buf.remaining())));
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        this.splice.passed(part.filled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
