//! The validated configuration of a running server: what `percore serve` was asked to do.
//!
//! Built from command-line flags (see `cli.rs`); everything here has already been checked, so the
//! server code never re-validates. Cloned once per shard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http1::Limits;
use crate::middleware::{
    AccessLogConfig, CorsConfig, RateLimitConfig, SecurityHeadersConfig, TimingConfig,
    TrustedProxies,
};
use crate::static_files::StaticConfig;

/// Connection timeouts (RFC 9112 §9.8 leaves them to the server; these follow nginx's spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request head to its end. A client trickling one byte a second
    /// is cut off after this long while others are served normally.
    pub header: Duration,
    /// Between requests on a keep-alive connection.
    pub idle: Duration,
    /// Without progress while reading a request body or writing a response.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(30),
        }
    }
}

/// Everything `percore serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: Vec<SocketAddr>,
    pub root: PathBuf,
    /// The site served as the fallback for every path no route takes (`--root`); `None`: 404.
    pub site: Option<StaticConfig>,
    /// More directories under their own URL prefixes (`--mount PREFIX=DIR`).
    pub mounts: Vec<StaticConfig>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Pipelined requests answered per read before the connection yields to others on its shard.
    pub max_pipeline_batch: usize,
    pub runtime: shards::Config,
    /// Which middleware the built-in app runs.
    pub middleware: MiddlewareConfig,
    /// HTTP/2: on TLS through ALPN, on cleartext by prior knowledge.
    pub h2: H2Config,
    /// TLS listeners (`--tls-listen`), if any.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Called on every shard once a second, on the shard's thread (the binary uses it to let its
    /// allocator return freed memory to the OS; see `main.rs`).
    pub shard_tick_hook: Option<fn()>,
}

impl ServeConfig {
    /// The default configuration with the given listen addresses.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        ServeConfig {
            runtime: shards::Config {
                listen: listen.clone(),
                ..shards::Config::default()
            },
            listen,
            root: PathBuf::from("site/public"),
            site: Some(StaticConfig::new("site/public")),
            mounts: Vec::new(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            max_pipeline_batch: DEFAULT_PIPELINE_BATCH,
            shard_tick_hook: None,
            middleware: MiddlewareConfig::default(),
            h2: H2Config::default(),
            tls: None,
        }
    }
}

/// HTTP/2 settings (RFC 9113 §6.5.2) and the limits that keep one connection from taking more
/// than its share. Defaults follow nginx and h2o where they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Config {
    /// `false` (`--no-h2`): HTTP/1.1 only (no `h2` in ALPN, no prior-knowledge h2c).
    pub enabled: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on one stream before we read it.
    pub initial_window: u32,
    /// The connection's receive window (all streams together).
    pub connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (decoded size, RFC 9113 §6.5.2): past it h2 itself refuses
    /// the request with a bare 431. Twice HTTP/1.1's field limit by default, so that within it
    /// `Limits::max_header_bytes` decides, with the same answer as over HTTP/1.1.
    pub max_header_list_size: u32,
    /// Streams the client opened and cancelled before we accepted them, allowed at once
    /// (CVE-2023-44487, rapid reset); over it: GOAWAY ENHANCE_YOUR_CALM.
    pub max_pending_accept_reset_streams: usize,
    /// Streams we had to reset because of the client's protocol errors, allowed per connection
    /// (CVE-2025-8671, "MadeYouReset"); over it: GOAWAY ENHANCE_YOUR_CALM.
    pub max_local_error_reset_streams: usize,
    /// Response bytes queued per stream (h2's send buffer): what one stream may hold in memory.
    pub max_send_buffer: usize,
    /// Streams of one connection sending a large body at the same time; the others wait their
    /// turn, so 100 concurrent downloads on a connection hold a few buffers, not 100.
    pub max_sending_streams: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            enabled: true,
            max_concurrent_streams: 256,
            initial_window: 256 * 1024,
            connection_window: 1024 * 1024,
            max_header_list_size: 128 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_send_buffer: 64 * 1024,
            max_sending_streams: 4,
        }
    }
}

/// Measured with wrk pipelining 16 deep: a batch of 32 keeps one write per wrk batch while bounding
/// how long one client can hold its shard (about 32 × 0.3 µs of work per turn).
pub const DEFAULT_PIPELINE_BATCH: usize = 32;

/// The middleware of the built-in app (`percore serve`), validated. Library users compose their
/// own stack with `App::layer`.
#[derive(Debug, Clone)]
pub struct MiddlewareConfig {
    /// `false` (`--no-middleware`): bare routes, for measuring what the layers cost.
    pub enabled: bool,
    /// Keep or mint `X-Request-Id`.
    pub request_id: bool,
    /// One access-log event per request (where events go is `logging::init`'s business).
    pub access_log: Option<AccessLogConfig>,
    /// The request-duration histogram (`/metrics`) and `Server-Timing`.
    pub timing: Option<TimingConfig>,
    pub cors: Option<CorsConfig>,
    pub security_headers: Option<SecurityHeadersConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    /// Whose forwarding headers name the client (rate limiting, access log).
    pub trusted_proxies: TrustedProxies,
}

impl Default for MiddlewareConfig {
    fn default() -> Self {
        MiddlewareConfig {
            enabled: true,
            request_id: true,
            access_log: None,
            timing: None,
            cors: None,
            security_headers: Some(SecurityHeadersConfig::default()),
            rate_limit: None,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}
