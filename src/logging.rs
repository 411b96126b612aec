//! The binary's tracing set-up: diagnostics go to stderr (tracing-subscriber's fmt layer, filtered
//! by `RUST_LOG`, default `info`); access events (target [`ACCESS_LOG_TARGET`], emitted by the
//! [`AccessLog`](crate::middleware::AccessLog) layer) go only to the access log, as JSON lines.
//!
//! The access log is written through a buffer per thread. Each shard is one thread, so the buffer
//! is a per-shard buffer with no lock; it is written to the file with one `write` when it holds
//! 32 KiB, when its oldest line is a second old (checked on each event, and by
//! [`flush_thread_buffer`] from the shard's once-a-second tick), when its thread exits, and when
//! the [`LogGuard`] is dropped (for the thread that holds it). The file is opened with
//! `O_APPEND`, so the whole-buffer writes of several shards never interleave inside a line.
//!
//! One line per request, keys in this order (`query` only when configured, `request_id` only
//! when the request-id layer ran):
//!
//! ```text
//! {"time":"2025-06-01T12:00:00.123Z","method":"GET","path":"/users/7","status":200,"bytes":13,
//!  "duration_us":42,"shard":1,"peer":"10.0.0.5:51234","client_ip":"10.0.0.5",
//!  "request_id":"9f...","protocol":"HTTP/1.1"}
//! ```
//!
//! (one physical line). `time` is when the response was ready (the middleware's clock reading
//! that ends `duration_us`; for other events, when the line was written), RFC 3339 UTC with
//! milliseconds. JSON lines rather than a combined-log text format: log pipelines parse them
//! without a grok pattern, and every value is escaped (a decoded path may hold quotes or
//! control characters).
//!
//! Cost (callgrind, `/plaintext`, per request): the access-log layer and this module together
//! ~2,700 instructions, of which about half is tracing's own dispatch and field visiting. What
//! keeps it there: one routing layer, so the access callsites' interest is "always" and no filter
//! runs per event (`EventRouter`); the middleware's keys written as precomputed constants
//! (`ACCESS_KEYS`); values checked for escapes eight bytes at a time; the wall clock read once
//! a second (`WallClock`).
//!
//! This module must not touch the request path: the middleware only emits events.

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::EnvFilter;

pub use crate::middleware::ACCESS_LOG_TARGET;

/// A thread's buffer is written out once it holds this much.
const FLUSH_BYTES: usize = 32 * 1024;
/// ... or once its oldest line is this old.
const FLUSH_AGE_MS: u64 = 1000;

/// Where access events go (`--access-log PATH`, `-` for stdout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    File(PathBuf),
}

impl AccessLogTarget {
    /// `-` is stdout; anything else a file path.
    pub fn from_arg(arg: &OsStr) -> Self {
        if arg == "-" {
            AccessLogTarget::Stdout
        } else {
            AccessLogTarget::File(PathBuf::from(arg))
        }
    }
}

impl std::str::FromStr for AccessLogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the access log path is empty (use - for stdout)".to_owned());
        }
        Ok(AccessLogTarget::from_arg(OsStr::new(s)))
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the access log {}: {source}", path.display())]
    OpenAccessLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the process-wide subscriber: diagnostics to stderr, and access events to
/// `access_log` when given (dropped otherwise: the access-log layer then costs one atomic load
/// per request). Keep the guard until the end of `main`: dropping it writes out the calling
/// thread's buffered lines (shard threads write theirs when they exit).
pub fn init(access_log: Option<AccessLogTarget>) -> Result<LogGuard, LogError> {
    let access = access_log.as_ref().map(AccessLogLayer::open).transpose()?;
    let subscriber = subscriber(access, io::stderr, io::stderr().is_terminal());
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadyInstalled)?;
    Ok(LogGuard { _private: () })
}

/// The process's subscriber: the registry under one [`EventRouter`] that sends access events
/// to `access` and everything else through the diagnostics filter to `diagnostics`.
fn subscriber<W>(
    access: Option<AccessLogLayer>,
    diagnostics: W,
    ansi: bool,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = diagnostics_filter();
    let diagnostics_level = filter.max_level_hint();
    let diagnostics = filter.and_then(
        tracing_subscriber::fmt::layer()
            .with_writer(diagnostics)
            .with_ansi(ansi)
            .with_target(false),
    );
    tracing_subscriber::registry().with(EventRouter {
        diagnostics,
        diagnostics_level,
        access,
    })
}

/// The diagnostics filter: `RUST_LOG` (e.g. `percore=debug`; default `info`). Access events
/// never reach it, whatever it says ([`EventRouter`] takes them first).
fn diagnostics_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn is_access(metadata: &Metadata<'_>) -> bool {
    metadata.target() == ACCESS_LOG_TARGET
}

/// The process's one layer: access events (target [`ACCESS_LOG_TARGET`]) go to the access log
/// when there is one and nowhere else; every other event and span goes to `diagnostics` (the
/// `RUST_LOG` filter then the stderr formatter), as if it were the only layer.
///
/// One layer that routes, rather than two layers with per-layer filters: with per-layer
/// filters an access callsite is wanted by one layer and not the other, which tracing records
/// as "sometimes", so every access event (one per request) ran both filters again, twice (the
/// middleware's `enabled!` and the event itself; measured: ~600 instructions a request). Here an
/// access callsite is "always" (or "never" without an access log), decided once per callsite.
struct EventRouter<D> {
    diagnostics: D,
    /// The most verbose level `RUST_LOG` lets through, taken from the filter itself: the
    /// filter-then-formatter stack reports no hint of its own, which tracing reads as TRACE, and
    /// every `trace!` and `trace_span!` in h2's hot paths then reached `enabled` (2.5 % of the
    /// CPU serving HTTP/2, measured with perf).
    diagnostics_level: Option<LevelFilter>,
    access: Option<AccessLogLayer>,
}

impl<S: Subscriber, D: Layer<S>> Layer<S> for EventRouter<D> {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.diagnostics.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.diagnostics.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if !is_access(metadata) {
            return self.diagnostics.register_callsite(metadata);
        }
        match &self.access {
            Some(access) => {
                access.note_callsite(metadata);
                Interest::always()
            }
            None => Interest::never(),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        if is_access(metadata) {
            self.access.is_some()
        } else {
            self.diagnostics.enabled(metadata, cx)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let diagnostics = self.diagnostics_level;
        // Access events are INFO: a quieter `RUST_LOG` must not raise the global maximum level
        // above it (the macros check that level before anything else). `None` is "no hint".
        match (diagnostics, &self.access) {
            (Some(level), Some(_)) => Some(level.max(LevelFilter::INFO)),
            (hint, _) => hint,
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: Context<'_, S>) -> bool {
        is_access(event.metadata()) || self.diagnostics.event_enabled(event, cx)
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        if !is_access(event.metadata()) {
            self.diagnostics.on_event(event, cx);
        } else if let Some(access) = &self.access {
            access.write_event(event);
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, cx: Context<'_, S>) {
        self.diagnostics.on_record(id, values, cx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_follows_from(id, follows, cx);
    }

    fn on_enter(&self, id: &span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_enter(id, cx);
    }

    fn on_exit(&self, id: &span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_exit(id, cx);
    }

    fn on_close(&self, id: span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_close(id, cx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, cx: Context<'_, S>) {
        self.diagnostics.on_id_change(old, new, cx);
    }
}

/// Writes out the calling thread's buffered access-log lines now. For the shards' once-a-second
/// tick (so a shard that went quiet does not keep its last lines) and for tests.
pub fn flush_thread_buffer() {
    let _ = BUFFER.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            if let Some(buffer) = slot.as_mut() {
                buffer.flush();
            }
        }
    });
}

/// Returned by [`init`]; dropping it writes out the calling thread's buffered lines.
#[must_use = "dropping the guard at once loses nothing, but its purpose is to flush at exit"]
#[derive(Debug)]
pub struct LogGuard {
    _private: (),
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush_thread_buffer();
    }
}

/// A tracing layer writing each access event it sees (target [`ACCESS_LOG_TARGET`]) as one JSON
/// line to the access log, and ignoring every other event. [`init`] routes access events to it
/// directly; as a layer of its own it may also be given [`AccessLogLayer::filter`].
#[derive(Debug, Clone)]
pub struct AccessLogLayer {
    sink: Arc<Sink>,
}

impl AccessLogLayer {
    /// Opens (creates, appends to) the target. An unopenable file is an error naming the path.
    pub fn open(target: &AccessLogTarget) -> Result<Self, LogError> {
        let out = match target {
            AccessLogTarget::Stdout => SinkOut::Stdout,
            AccessLogTarget::File(path) => {
                // O_APPEND: every write lands at the end, whole, whatever other shards write.
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| LogError::OpenAccessLog {
                        path: path.clone(),
                        source,
                    })?;
                SinkOut::File(file)
            }
        };
        let name = match target {
            AccessLogTarget::Stdout => "stdout".to_owned(),
            AccessLogTarget::File(path) => path.display().to_string(),
        };
        Ok(AccessLogLayer {
            sink: Arc::new(Sink {
                out,
                name,
                failing: AtomicBool::new(false),
            }),
        })
    }

    /// A per-layer filter passing access events only.
    pub fn filter() -> Targets {
        Targets::new().with_target(ACCESS_LOG_TARGET, LevelFilter::INFO)
    }

    /// Remembers the access-log middleware's callsite when it registers, so its lines are
    /// written with precomputed keys (`ACCESS_KEYS`).
    fn note_callsite(&self, metadata: &'static Metadata<'static>) {
        let fields = metadata.fields();
        let is_middleware = fields.len() == ACCESS_KEYS.len()
            && fields
                .iter()
                .zip(ACCESS_KEYS)
                .all(|(field, key)| key.name() == field.name().as_bytes());
        if is_middleware {
            let _ = ACCESS_CALLSITE.set(metadata.callsite());
        }
    }

    fn write_event(&self, event: &Event<'_>) {
        let at = EVENT_INSTANT.get();
        let buffered = BUFFER
            .try_with(|slot| {
                // Busy only if formatting a value logged an access event itself.
                let Ok(mut slot) = slot.try_borrow_mut() else {
                    return false;
                };
                if !slot
                    .as_ref()
                    .is_some_and(|b| Arc::ptr_eq(&b.sink, &self.sink))
                {
                    // Replacing a buffer for another sink (tests use several) writes it out.
                    *slot = Some(ThreadBuffer::new(self.sink.clone()));
                }
                if let Some(buffer) = slot.as_mut() {
                    buffer.push(event, at.unwrap_or_else(Instant::now));
                }
                true
            })
            .unwrap_or(false);
        if !buffered {
            // The thread is exiting (its buffer is gone) or re-entered: write this line alone.
            let mut line = Vec::with_capacity(256);
            let now_ms = unix_millis(SystemTime::now());
            format_line(&mut line, &mut Timestamp::default(), now_ms, event);
            self.sink.write(&line);
        }
    }
}

impl<S: Subscriber> Layer<S> for AccessLogLayer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_access(metadata) {
            self.note_callsite(metadata);
        }
        // Not a filter: other layers decide about the other callsites.
        Interest::always()
    }

    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if is_access(event.metadata()) {
            self.write_event(event);
        }
    }
}

/// Runs `emit`, which emits one access event, with `at` as that event's time: the access-log
/// middleware has just read the clock for the request's duration, and passing that reading on
/// saves the line a clock read of its own.
pub(crate) fn emit_at<R>(at: Instant, emit: impl FnOnce() -> R) -> R {
    let outer = EVENT_INSTANT.replace(Some(at));
    let emitted = emit();
    EVENT_INSTANT.set(outer);
    emitted
}

/// The access-log middleware's event fields, in its callsite's order, as the JSON text written
/// before each value: constants, so its lines copy them rather than escape field names.
const ACCESS_KEYS: [PaddedKey; 11] = [
    PaddedKey::new(",\"method\":"),
    PaddedKey::new(",\"path\":"),
    PaddedKey::new(",\"query\":"),
    PaddedKey::new(",\"status\":"),
    PaddedKey::new(",\"bytes\":"),
    PaddedKey::new(",\"duration_us\":"),
    PaddedKey::new(",\"shard\":"),
    PaddedKey::new(",\"peer\":"),
    PaddedKey::new(",\"client_ip\":"),
    PaddedKey::new(",\"request_id\":"),
    PaddedKey::new(",\"protocol\":"),
];

/// [`ACCESS_KEYS`] with the opening quote of a string value.
const ACCESS_KEYS_QUOTED: [PaddedKey; 11] = {
    let mut quoted = ACCESS_KEYS;
    let mut i = 0;
    while i < quoted.len() {
        quoted[i] = quoted[i].quoted();
        i += 1;
    }
    quoted
};

/// A key's text (`,"name":`) in 16 bytes, padded: appended as one 16-byte copy and a truncation
/// rather than a `memcpy` call of its length.
#[derive(Clone, Copy)]
struct PaddedKey {
    bytes: [u8; 16],
    len: usize,
}

impl PaddedKey {
    const fn new(text: &str) -> Self {
        let text = text.as_bytes();
        assert!(text.len() <= 16, "a key longer than 16 bytes");
        let mut bytes = [0u8; 16];
        let mut i = 0;
        while i < text.len() {
            bytes[i] = text[i];
            i += 1;
        }
        PaddedKey {
            bytes,
            len: text.len(),
        }
    }

    /// The key and a `"`.
    const fn quoted(self) -> Self {
        assert!(self.len < 16, "no room for the quote");
        let mut quoted = self;
        quoted.bytes[self.len] = b'"';
        quoted.len += 1;
        quoted
    }

    #[cfg(test)]
    fn text(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The field name inside `,"name":`.
    fn name(&self) -> &[u8] {
        self.bytes.get(2..self.len - 2).unwrap_or_default()
    }

    #[inline]
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
        out.truncate(out.len() - (self.bytes.len() - self.len));
    }
}

/// The callsite whose fields are [`ACCESS_KEYS`] (the access-log middleware's), once seen.
static ACCESS_CALLSITE: OnceLock<Identifier> = OnceLock::new();

thread_local! {
    static BUFFER: RefCell<Option<ThreadBuffer>> = const { RefCell::new(None) };
    /// The time of the access event being emitted, when its emitter read the clock already.
    static EVENT_INSTANT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// One thread's pending lines for one sink.
struct ThreadBuffer {
    sink: Arc<Sink>,
    lines: Vec<u8>,
    /// When the oldest pending line was written (Unix ms); meaningless while `lines` is empty.
    oldest_ms: u64,
    clock: WallClock,
    stamp: Timestamp,
}

impl ThreadBuffer {
    fn new(sink: Arc<Sink>) -> Self {
        ThreadBuffer {
            sink,
            lines: Vec::with_capacity(FLUSH_BYTES + 1024),
            oldest_ms: 0,
            clock: WallClock::default(),
            stamp: Timestamp::default(),
        }
    }

    fn push(&mut self, event: &Event<'_>, at: Instant) {
        let now_ms = self.clock.unix_ms(at);
        if self.lines.is_empty() {
            self.oldest_ms = now_ms;
        }
        format_line(&mut self.lines, &mut self.stamp, now_ms, event);
        self.flush_if_due(now_ms);
    }

    fn flush_if_due(&mut self, now_ms: u64) {
        // `abs_diff`: a wall clock stepped backwards must not hold lines back until it catches up.
        if self.lines.len() >= FLUSH_BYTES || now_ms.abs_diff(self.oldest_ms) >= FLUSH_AGE_MS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.lines.is_empty() {
            self.sink.write(&self.lines);
            self.lines.clear();
        }
    }
}

impl Drop for ThreadBuffer {
    fn drop(&mut self) {
        self.flush();
    }
}

#[derive(Debug)]
enum SinkOut {
    File(File),
    Stdout,
}

#[derive(Debug)]
struct Sink {
    out: SinkOut,
    /// For the error message.
    name: String,
    /// A failure was reported and no write has succeeded since: report once, not per buffer.
    failing: AtomicBool,
}

impl Sink {
    /// Writes whole lines. On a file this is one `write(2)` for the whole buffer (a regular
    /// file takes it whole unless the disk is full); stdout goes through std's lock so that
    /// buffers from several threads do not interleave on a pipe either.
    fn write(&self, bytes: &[u8]) {
        let result = match &self.out {
            SinkOut::File(file) => (&*file).write_all(bytes),
            SinkOut::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
        };
        match result {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(err) => {
                // Not through tracing: this runs inside the subscriber. Lines are dropped.
                if !self.failing.swap(true, Ordering::Relaxed) {
                    eprintln!("percore: cannot write the access log {}: {err}", self.name);
                }
            }
        }
    }
}

fn unix_millis(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix time in milliseconds from a monotonic [`Instant`]: the wall clock is read once a second
/// (per thread) and paired with the instant it was read at; in between, times are that reading
/// plus the monotonic time elapsed. So an event whose instant is handed over ([`emit_at`])
/// costs no clock read, and a wall clock step shows within a second.
#[derive(Default)]
struct WallClock {
    base: Option<(Instant, u64)>,
}

impl WallClock {
    fn unix_ms(&mut self, at: Instant) -> u64 {
        if let Some((base_at, base_ms)) = self.base {
            if let Some(since) = at.checked_duration_since(base_at) {
                if since < Duration::from_secs(1) {
                    return base_ms + u64::from(since.subsec_millis());
                }
            }
        }
        let now_ms = unix_millis(SystemTime::now());
        self.base = Some((at, now_ms));
        now_ms
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of the last second formatted, so each line formats only milliseconds.
#[derive(Default)]
struct Timestamp {
    secs: Option<u64>,
    text: [u8; 19],
}

impl Timestamp {
    /// Appends `"YYYY-MM-DDTHH:MM:SS.mmmZ"` (RFC 3339, UTC) for `unix_ms`.
    fn write(&mut self, out: &mut Vec<u8>, unix_ms: u64) {
        let secs = unix_ms / 1000;
        if self.secs != Some(secs) {
            self.text = format_utc_seconds(secs);
            self.secs = Some(secs);
        }
        let ms = (unix_ms % 1000) as u16;
        let mut stamp = [0u8; 24];
        stamp[..19].copy_from_slice(&self.text);
        stamp[19..].copy_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
        out.extend_from_slice(&stamp);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch (years past 9999 are clamped there).
fn format_utc_seconds(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let year = year.min(9999);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut t = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            t[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, h, 2);
    put(14, m, 2);
    put(17, s, 2);
    t
}

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian: Howard Hinnant's
/// `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html), for days >= 0.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends one JSON line for `event`: `{"time":...,<fields in callsite order>}\n`.
fn format_line(out: &mut Vec<u8>, stamp: &mut Timestamp, now_ms: u64, event: &Event<'_>) {
    // Room for a typical line, so the pushes below do not reallocate one by one.
    out.reserve(512);
    out.extend_from_slice(b"{\"time\":\"");
    stamp.write(out, now_ms);
    out.push(b'"');
    let known = ACCESS_CALLSITE.get() == Some(&event.metadata().callsite());
    event.record(&mut JsonFields { out, known });
    out.extend_from_slice(b"}\n");
}

/// Writes each field as `,"name":value`. Field names are Rust identifiers (or string literals
/// in the macro, which we escape too), except for the middleware's event, whose keys are
/// precomputed.
struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
    /// The event is the middleware's: its keys are [`ACCESS_KEYS`], by field index.
    known: bool,
}

impl JsonFields<'_> {
    /// `,"name":`, and the opening quote of a string value when `quoted`.
    #[inline]
    fn key(&mut self, field: &Field, quoted: bool) {
        let keys = if quoted {
            &ACCESS_KEYS_QUOTED
        } else {
            &ACCESS_KEYS
        };
        match keys.get(field.index()) {
            Some(key) if self.known => key.append_to(self.out),
            _ => self.escaped_key(field, quoted),
        }
    }

    #[inline(never)]
    fn escaped_key(&mut self, field: &Field, quoted: bool) {
        self.out.extend_from_slice(b",\"");
        escape_json(self.out, field.name().as_bytes());
        self.out
            .extend_from_slice(if quoted { b"\":\"" } else { b"\":" });
    }

    #[inline(always)]
    fn number(&mut self, field: &Field, value: u64) {
        self.key(field, false);
        append_decimal(self.out, value);
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field, true);
        escape_json(self.out, value.as_bytes());
        self.out.push(b'"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if value < 0 {
            self.key(field, false);
            self.out.push(b'-');
            append_decimal(self.out, value.unsigned_abs());
        } else {
            self.number(field, value.unsigned_abs());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field, false);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field, false);
        if value.is_finite() {
            // Display for f64 never uses an exponent, so it is a valid JSON number.
            let _ = write!(self.out, "{value}");
        } else {
            self.out.extend_from_slice(b"null");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here too, their Debug being their Display.
        self.key(field, true);
        let _ = fmt::write(&mut JsonEscaper(self.out), format_args!("{value:?}"));
        self.out.push(b'"');
    }
}

/// Appends `value` in decimal. Up to three digits (a status, a small duration, a shard) as one
/// fixed-size copy; beyond, through `itoa` and a copy of its length.
#[inline(always)]
fn append_decimal(out: &mut Vec<u8>, value: u64) {
    let digit = |v: u64| b'0' + (v % 10) as u8;
    match value {
        0..=9 => out.push(digit(value)),
        10..=99 => out.extend_from_slice(&[digit(value / 10), digit(value)]),
        100..=999 => out.extend_from_slice(&[digit(value / 100), digit(value / 10), digit(value)]),
        _ => out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes()),
    }
}

/// A `fmt::Write` that JSON-escapes what it is given.
struct JsonEscaper<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_json(self.0, s.as_bytes());
        Ok(())
    }
}

/// Bytes a JSON string may not hold as they are (RFC 8259 §7: `"`, `\`, U+0000..U+001F), plus
/// DEL, which is legal JSON but would reach a terminal as a control character.
static JSON_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

/// Appends `bytes` (UTF-8) escaped for the inside of a JSON string.
#[inline(always)]
fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    if needs_escape(bytes) {
        escape_json_slowly(out, bytes);
        return;
    }
    // The common case (a method, a path, an address): copied whole. From 8 to 16 bytes as two
    // overlapping fixed-size words (the second rewrites the overlap with the same bytes) rather
    // than a `memcpy` call of the length.
    match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(first), Some(last)) if bytes.len() <= 16 => {
            out.extend_from_slice(first);
            out.truncate(out.len() - (16 - bytes.len()));
            out.extend_from_slice(last);
        }
        _ => out.extend_from_slice(bytes),
    }
}

/// [`escape_json`] for text with something to escape.
#[cold]
#[inline(never)]
fn escape_json_slowly(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !JSON_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether `bytes` holds a byte that [`JSON_ESCAPE`] marks. Eight bytes at a time: a text of
/// 8 to 16 bytes (most values: a path, an address) is two overlapping words, the first and
/// the last eight bytes; a byte-at-a-time table scan cost ~100 instructions per value
/// (measured), as much as the rest of the line's formatting.
#[inline(always)]
fn needs_escape(bytes: &[u8]) -> bool {
    let word = |w: &[u8; 8]| escape_marks(u64::from_le_bytes(*w));
    let half = |w: &[u8; 4]| u64::from(u32::from_le_bytes(*w));
    let marks = match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(first), Some(last)) if bytes.len() <= 16 => word(first) | word(last),
        (Some(_), Some(last)) => {
            let mut chunks = bytes.chunks_exact(8);
            let mut marks = word(last);
            for chunk in &mut chunks {
                marks |= chunk.first_chunk::<8>().map_or(0, word);
            }
            marks
        }
        _ => match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
            (Some(first), Some(last)) => escape_marks(half(first) | half(last) << 32),
            _ => return bytes.iter().any(|&b| JSON_ESCAPE[usize::from(b)]),
        },
    };
    marks != 0
}

/// Non-zero iff a byte of `word` is below 0x20 or is `"`, `\` or DEL. The classic SWAR test
/// (Hacker's Delight §6-1, "Find First 0-Byte"): `(x - 0x0101..01) & !x & 0x8080..80` is
/// non-zero iff a byte of `x` is 0, and with `n * 0x0101..01` subtracted iff a byte is below
/// `n` (`n <= 0x80`). `x ^ c` for each character `c` makes "is `c`" a zero byte; `c` has no high
/// bit, so `!(x ^ c)` and `!x` agree on the high bits and one mask serves every test. Bytes
/// with the high bit (UTF-8 beyond ASCII) never match.
#[inline]
fn escape_marks(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let spread = |c: u8| ONES * u64::from(c);
    let below_space = word.wrapping_sub(spread(0x20));
    let quote = (word ^ spread(b'"')).wrapping_sub(ONES);
    let backslash = (word ^ spread(b'\\')).wrapping_sub(ONES);
    let del = (word ^ spread(0x7f)).wrapping_sub(ONES);
    (below_space | quote | backslash | del) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;
    use tracing_subscriber::fmt::MakeWriter;

    /// A fresh path in the temp directory (no tempfile crate in the dev-dependencies).
    fn temp_path(name: &str) -> PathBuf {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "percore-logging-{}-{n}-{name}.log",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn access_subscriber(path: &Path) -> impl Subscriber + Send + Sync {
        let layer = AccessLogLayer::open(&AccessLogTarget::File(path.to_owned())).unwrap();
        tracing_subscriber::registry().with(layer.with_filter(AccessLogLayer::filter()))
    }

    fn read_lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn each_access_event_is_one_json_line_with_time_first() {
        let path = temp_path("one-line");
        tracing::subscriber::with_default(access_subscriber(&path), || {
            tracing::info!(target: ACCESS_LOG_TARGET, method = "GET", status = 200u16, peer = %"1.2.3.4:5", ok = true, neg = -3i64);
            flush_thread_buffer();
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"time\":\""), "{text}");
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert_eq!(line["peer"], "1.2.3.4:5");
        assert_eq!(line["ok"], true);
        assert_eq!(line["neg"], -3);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn values_are_escaped_so_a_line_stays_one_line() {
        let mut out = Vec::new();
        escape_json(&mut out, "a\"b\\c\nd\re\tf\u{1}g\u{7f}é".as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007fé"
        );
        let path = temp_path("escape");
        tracing::subscriber::with_default(access_subscriber(&path), || {
            tracing::info!(target: ACCESS_LOG_TARGET, path = "/x\"\n{}", debug = ?"q\"");
            flush_thread_buffer();
        });
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["path"], "/x\"\n{}");
        assert_eq!(lines[0]["debug"], "\"q\\\"\"");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let mut stamp = Timestamp::default();
        let mut out = Vec::new();
        stamp.write(&mut out, 0);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
        for (ms, want) in [
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            out.clear();
            stamp.write(&mut out, ms);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
        // The cached second is reused: only the milliseconds change.
        out.clear();
        stamp.write(&mut out, 4_102_444_799_001);
        assert_eq!(String::from_utf8_lossy(&out), "2099-12-31T23:59:59.001Z");
    }

    #[test]
    fn the_buffer_is_written_when_it_reaches_32_kib() {
        let path = temp_path("size");
        tracing::subscriber::with_default(access_subscriber(&path), || {
            let filler = "x".repeat(1000);
            tracing::info!(target: ACCESS_LOG_TARGET, filler = filler.as_str());
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                0,
                "one line stays buffered"
            );
            for _ in 0..40 {
                tracing::info!(target: ACCESS_LOG_TARGET, filler = filler.as_str());
            }
            let written = std::fs::metadata(&path).unwrap().len() as usize;
            assert!(written >= FLUSH_BYTES, "{written} bytes written");
            flush_thread_buffer();
        });
        assert_eq!(read_lines(&path).len(), 41);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_buffer_is_written_when_its_oldest_line_is_a_second_old() {
        let path = temp_path("age");
        let layer = AccessLogLayer::open(&AccessLogTarget::File(path.clone())).unwrap();
        let mut buffer = ThreadBuffer::new(layer.sink.clone());
        buffer.oldest_ms = 10_000;
        buffer.lines.extend_from_slice(b"{}\n");
        buffer.flush_if_due(10_999);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        buffer.flush_if_due(11_000);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        // A clock stepped back by a second or more flushes too.
        buffer.oldest_ms = 10_000;
        buffer.lines.extend_from_slice(b"{}\n");
        buffer.flush_if_due(9_000);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n{}\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_buffer_is_written_when_its_thread_exits() {
        let path = temp_path("exit");
        let subscriber = Arc::new(access_subscriber(&path));
        let on_thread = subscriber.clone();
        std::thread::spawn(move || {
            tracing::subscriber::with_default(on_thread, || {
                tracing::info!(target: ACCESS_LOG_TARGET, status = 200u16);
            });
        })
        .join()
        .unwrap();
        assert_eq!(read_lines(&path).len(), 1);
        let _ = std::fs::remove_file(&path);
    }

    /// Captures what the diagnostics layer prints.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn diagnostics_never_show_access_events() {
        let path = temp_path("split");
        let captured = Captured::default();
        let access = AccessLogLayer::open(&AccessLogTarget::File(path.clone())).unwrap();
        tracing::subscriber::with_default(
            subscriber(Some(access), captured.clone(), false),
            || {
                tracing::info!(target: ACCESS_LOG_TARGET, marker = "access-only");
                tracing::warn!(marker = "diagnostic-only", "something to fix");
                flush_thread_buffer();
            },
        );
        let diagnostics = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(diagnostics.contains("diagnostic-only"), "{diagnostics}");
        assert!(!diagnostics.contains("access-only"), "{diagnostics}");
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["marker"], "access-only");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn without_an_access_log_access_events_go_nowhere() {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(None, captured.clone(), false), || {
            assert!(!tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO));
            tracing::info!(target: ACCESS_LOG_TARGET, marker = "access-only");
            tracing::info!(marker = "diagnostic-only");
        });
        let diagnostics = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(diagnostics.contains("diagnostic-only"), "{diagnostics}");
        assert!(!diagnostics.contains("access-only"), "{diagnostics}");
    }

    #[test]
    fn the_subscriber_reports_the_filter_level_so_trace_callsites_stay_off() {
        // Without a hint tracing assumes TRACE, and every `trace!` of a dependency (h2 has them
        // on every frame) would ask the filter at run time.
        let sub = subscriber(None, io::sink, false);
        let hint = tracing::Subscriber::max_level_hint(&sub);
        assert!(hint.is_some());
        assert_eq!(hint, diagnostics_filter().max_level_hint());
    }

    #[test]
    fn a_quiet_diagnostics_level_keeps_access_events() {
        type Router = EventRouter<EnvFilter>;
        let quiet = |access| Router {
            diagnostics: EnvFilter::new("error"),
            diagnostics_level: Some(LevelFilter::ERROR),
            access,
        };
        let path = temp_path("quiet");
        let access = AccessLogLayer::open(&AccessLogTarget::File(path.clone())).unwrap();
        let hint = |router: &Router| {
            <Router as Layer<tracing_subscriber::Registry>>::max_level_hint(router)
        };
        assert_eq!(hint(&quiet(Some(access))), Some(LevelFilter::INFO));
        assert_eq!(hint(&quiet(None)), Some(LevelFilter::ERROR));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_wall_clock_follows_the_monotonic_clock_within_a_second() {
        let mut clock = WallClock::default();
        let start = Instant::now();
        let base = clock.unix_ms(start);
        let wall = unix_millis(SystemTime::now());
        assert!(wall.abs_diff(base) < 1000, "{wall} vs {base}");
        assert_eq!(
            clock.unix_ms(start + Duration::from_millis(250)),
            base + 250
        );
        assert_eq!(
            clock.unix_ms(start + Duration::from_millis(999)),
            base + 999
        );
        // A second on, the wall clock is read again (and paired with that instant).
        let later = start + Duration::from_millis(1500);
        let rebased = clock.unix_ms(later);
        assert!(rebased.abs_diff(unix_millis(SystemTime::now())) < 1000);
        assert_eq!(clock.unix_ms(later + Duration::from_millis(5)), rebased + 5);
    }

    #[test]
    fn the_middlewares_event_is_written_with_its_precomputed_keys() {
        use crate::middleware::{AccessLog, DynMiddleware, Endpoint, Layers, Next, RequestIds};
        use crate::service::{Request, Response};
        use crate::shard::LocalBoxFuture;
        use std::rc::Rc;
        struct Hello;
        impl Endpoint for Hello {
            fn call<'a>(&'a self, _req: Request) -> LocalBoxFuture<'a, Response> {
                Box::pin(async { crate::response::IntoResponse::into_response("hello") })
            }
        }
        let path = temp_path("middleware");
        let layers: Layers = Rc::from(vec![
            Rc::new(RequestIds::new(0)) as Rc<dyn DynMiddleware>,
            Rc::new(AccessLog::default()),
        ]);
        tracing::subscriber::with_default(access_subscriber(&path), || {
            let req = crate::testing::request("GET /a%22b HTTP/1.1\r\nX-Request-Id: r-1\r\n\r\n");
            crate::testing::block_on(Next::new(&layers, &Hello).run(req));
            flush_thread_buffer();
        });
        assert!(
            ACCESS_CALLSITE.get().is_some(),
            "the middleware's callsite was recognised"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let mut at = 0;
        for key in ACCESS_KEYS.iter().filter(|k| k.name() != b"query") {
            let key = std::str::from_utf8(key.text()).unwrap();
            let found = text[at..]
                .find(key)
                .unwrap_or_else(|| panic!("{key} in order: {text}"));
            at += found + key.len();
        }
        let line = &read_lines(&path)[0];
        assert_eq!(line["path"], "/a\"b");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["bytes"], 5);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_word_test_marks_every_byte_that_needs_an_escape() {
        for needs in (0u8..0x20).chain([b'"', b'\\', 0x7f]) {
            for filler in [b'a', b' ', 0x80, 0xff, 0x21, 0x5d, 0x7e] {
                for at in 0..8 {
                    let mut word = [filler; 8];
                    word[at] = needs;
                    assert_ne!(escape_marks(u64::from_le_bytes(word)), 0, "{word:?}");
                }
            }
        }
        for clean in (0x20u8..=0xff).filter(|&b| !JSON_ESCAPE[usize::from(b)]) {
            assert_eq!(
                escape_marks(u64::from_le_bytes([clean; 8])),
                0,
                "{clean:#x}"
            );
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for (value, text) in [
            (0, "0"),
            (7, "7"),
            (10, "10"),
            (200, "200"),
            (1_000_001, "1000001"),
        ] {
            let mut out = b"x".to_vec();
            append_decimal(&mut out, value);
            assert_eq!(out, format!("x{text}").as_bytes());
        }
        let mut out = Vec::new();
        append_decimal(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
        let mut line = Vec::new();
        let mut fields = JsonFields {
            out: &mut line,
            known: false,
        };
        let field =
            tracing::field::FieldSet::new(&["n"], tracing::callsite::Identifier(&NO_CALLSITE))
                .field("n")
                .unwrap();
        fields.record_i64(&field, i64::MIN);
        fields.record_i64(&field, 42);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            ",\"n\":-9223372036854775808,\"n\":42"
        );
    }

    struct NoCallsite;
    static NO_CALLSITE: NoCallsite = NoCallsite;
    impl tracing::Callsite for NoCallsite {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unimplemented!("never registered")
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_byte_by_byte_escape(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                16 => b'a'..=b'z',
                4 => 0x80u8..=0xff,
                2 => 0x20u8..0x7f,
                1 => 0u8..0x20,
                1 => proptest::strategy::Just(b'"'),
                1 => proptest::strategy::Just(b'\\'),
                1 => proptest::strategy::Just(0x7f),
            ], 0..70)
        ) {
            let naive = bytes.iter().any(|&b| JSON_ESCAPE[usize::from(b)]);
            proptest::prop_assert_eq!(needs_escape(&bytes), naive);
            // And the fast copy writes what the byte-by-byte escape writes.
            let (mut fast, mut slow) = (b"{".to_vec(), b"{".to_vec());
            escape_json(&mut fast, &bytes);
            escape_json_slowly(&mut slow, &bytes);
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn an_unopenable_access_log_is_an_error_naming_the_path() {
        let path = PathBuf::from("/nonexistent-percore-dir/access.log");
        let err = AccessLogLayer::open(&AccessLogTarget::File(path)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("cannot open the access log /nonexistent-percore-dir/access.log: "),
            "{message}"
        );
    }

    #[test]
    fn a_dash_means_stdout() {
        assert_eq!("-".parse(), Ok(AccessLogTarget::Stdout));
        assert_eq!(
            "logs/a.log".parse(),
            Ok(AccessLogTarget::File(PathBuf::from("logs/a.log")))
        );
        assert!("".parse::<AccessLogTarget>().is_err());
    }
}
