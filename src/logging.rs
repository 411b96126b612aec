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
//! (one physical line). `time` is when the line was written, RFC 3339 UTC with milliseconds.
//! JSON lines rather than a combined-log text format: log pipelines parse them without a grok
//! pattern, and every value is escaped (a decoded path may hold quotes or control characters).
//!
//! This module must not touch the request path: the middleware only emits events.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
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
    let diagnostics = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .with_filter(diagnostics_filter());
    let registry = tracing_subscriber::registry().with(diagnostics);
    // Two types rather than an `Option` layer: a `None` layer counts as a layer that wants
    // every callsite, which turns the access callsites' cached "never" into "sometimes" and
    // costs every request a full filter evaluation (measured: ~170 ns with the log off).
    let installed = match &access_log {
        Some(target) => {
            let access = AccessLogLayer::open(target)?.with_filter(AccessLogLayer::filter());
            tracing::subscriber::set_global_default(registry.with(access))
        }
        None => tracing::subscriber::set_global_default(registry),
    };
    installed.map_err(|_| LogError::AlreadyInstalled)?;
    Ok(LogGuard { _private: () })
}

/// The diagnostics filter: `RUST_LOG` (e.g. `percore=debug`; default `info`), never access
/// events, whatever `RUST_LOG` says (they have their own destination).
pub fn diagnostics_filter<S: Subscriber>() -> impl Filter<S> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let not_access = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target(ACCESS_LOG_TARGET, LevelFilter::OFF);
    // The cheap target check first: `And` stops at the first "no", so access events (one per
    // request) never reach the `EnvFilter` directive walk.
    not_access.and(env)
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

/// A tracing layer writing each event it sees as one JSON line to the access log. Give it
/// [`AccessLogLayer::filter`] as its per-layer filter.
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

    /// The per-layer filter: access events only.
    pub fn filter() -> Targets {
        Targets::new().with_target(ACCESS_LOG_TARGET, LevelFilter::INFO)
    }
}

impl<S: Subscriber> Layer<S> for AccessLogLayer {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        let now_ms = unix_millis(SystemTime::now());
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
                    buffer.push(event, now_ms);
                }
                true
            })
            .unwrap_or(false);
        if !buffered {
            // The thread is exiting (its buffer is gone) or re-entered: write this line alone.
            let mut line = Vec::with_capacity(256);
            format_line(&mut line, &mut Timestamp::default(), now_ms, event);
            self.sink.write(&line);
        }
    }
}

thread_local! {
    static BUFFER: RefCell<Option<ThreadBuffer>> = const { RefCell::new(None) };
}

/// One thread's pending lines for one sink.
struct ThreadBuffer {
    sink: Arc<Sink>,
    lines: Vec<u8>,
    /// When the oldest pending line was written (Unix ms); meaningless while `lines` is empty.
    oldest_ms: u64,
    stamp: Timestamp,
}

impl ThreadBuffer {
    fn new(sink: Arc<Sink>) -> Self {
        ThreadBuffer {
            sink,
            lines: Vec::with_capacity(FLUSH_BYTES + 1024),
            oldest_ms: 0,
            stamp: Timestamp::default(),
        }
    }

    fn push(&mut self, event: &Event<'_>, now_ms: u64) {
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
        out.extend_from_slice(&self.text);
        let ms = (unix_ms % 1000) as u16;
        out.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
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
    out.extend_from_slice(b"{\"time\":\"");
    stamp.write(out, now_ms);
    out.push(b'"');
    event.record(&mut JsonFields { out });
    out.extend_from_slice(b"}\n");
}

/// Writes each field as `,"name":value`. Field names are Rust identifiers (or string literals
/// in the macro, which we escape too).
struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        let name = field.name().as_bytes();
        // Room for the key and a typical value, so the pushes below do not reallocate.
        self.out.reserve(name.len() + 64);
        self.out.push(b',');
        self.out.push(b'"');
        escape_json(self.out, name);
        self.out.push(b'"');
        self.out.push(b':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.out.push(b'"');
        escape_json(self.out, value.as_bytes());
        self.out.push(b'"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            // Display for f64 never uses an exponent, so it is a valid JSON number.
            let _ = write!(self.out, "{value}");
        } else {
            self.out.extend_from_slice(b"null");
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here too, their Debug being their Display.
        self.key(field);
        self.out.push(b'"');
        let _ = fmt::write(&mut JsonEscaper(self.out), format_args!("{value:?}"));
        self.out.push(b'"');
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
fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    // Values are short (a method, a path, an address): a plain scan to the first byte needing
    // an escape beats a vectorised pass, whose set-up costs more than these strings (measured).
    let Some(first) = bytes.iter().position(|&b| JSON_ESCAPE[usize::from(b)]) else {
        out.extend_from_slice(bytes);
        return;
    };
    out.extend_from_slice(&bytes[..first]);
    let mut start = first;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
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
        let diagnostics = tracing_subscriber::fmt::layer()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_filter(diagnostics_filter());
        let access = AccessLogLayer::open(&AccessLogTarget::File(path.clone()))
            .unwrap()
            .with_filter(AccessLogLayer::filter());
        let subscriber = tracing_subscriber::registry()
            .with(diagnostics)
            .with(access);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: ACCESS_LOG_TARGET, marker = "access-only");
            tracing::warn!(marker = "diagnostic-only", "something to fix");
            flush_thread_buffer();
        });
        let diagnostics = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(diagnostics.contains("diagnostic-only"), "{diagnostics}");
        assert!(!diagnostics.contains("access-only"), "{diagnostics}");
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["marker"], "access-only");
        let _ = std::fs::remove_file(&path);
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
