//! Command-line interface: flags → a validated [`ServeConfig`].
//!
//! Every flag is documented in the README. A bad flag is one line on stderr naming the flag and
//! the value, and a non-zero exit (see `main.rs`), never a panic. `--config FILE` settings come
//! in as flags too (`config_file.rs`).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use http::{HeaderName, HeaderValue, Method};

use crate::config::{H2Config, MiddlewareConfig, ServeConfig, Timeouts, DEFAULT_PIPELINE_BATCH};
use crate::config_file::{self, ConfigFileError};
use crate::http1::Limits;
use crate::logging::AccessLogTarget;
use crate::middleware::{
    AccessLogConfig, AllowedHeaders, AllowedOrigins, Cors, CorsConfig, ForwardedHeader,
    FrameOptions, Hsts, RateLimitConfig, RateLimitConfigError, SecurityHeaders,
    SecurityHeadersConfig, SecurityHeadersError, TimingConfig, TrustedProxies,
};
use crate::static_files::cache::FileCacheLimits;
use crate::static_files::resolve::{canonical_root, FollowSymlinks};
use crate::static_files::{StaticConfig, StaticFiles};
use crate::tls::{CertSource, TlsConfig};

#[derive(Debug, Parser)]
#[command(
    name = "percore",
    version,
    about = "A thread-per-core HTTP server on io_uring"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP on every listen address, one shard per core.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file of settings: keys are these flags' long names (`header-timeout = 10`). The
    /// command line and PERCORE_* variables win over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the flags and config file (roots, certificate files, values), print "config ok"
    /// and exit without serving.
    #[arg(long)]
    pub check: bool,

    /// Address to serve plain HTTP on: IP:PORT, [IPv6]:PORT or a bare PORT (127.0.0.1). Repeat
    /// for more. Default: 127.0.0.1:8080, unless --tls-listen is given (then HTTPS only).
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Vec<SocketAddr>,

    /// Number of shards (threads, one per core); 0 = every core this process may run on.
    #[arg(long, value_name = "N", default_value_t = 0, env = "PERCORE_SHARDS")]
    pub shards: usize,

    /// Do not pin shard threads to cores (for tests or shared machines).
    #[arg(long)]
    pub no_pin: bool,

    /// I/O driver: auto (io_uring, epoll where io_uring is refused), io_uring, or epoll.
    #[arg(long, value_name = "DRIVER", default_value = "auto", value_parser = parse_driver, env = "PERCORE_IO_DRIVER")]
    pub io_driver: shards::DriverChoice,

    /// io_uring setup flags: auto (single_issuer+defer_taskrun, then coop_taskrun, then none), or a
    /// fixed comma list of single, defer, coop, taskrun, or none. For experiments.
    #[arg(long, value_name = "FLAGS", default_value = "auto", value_parser = parse_uring_flags, env = "PERCORE_URING_FLAGS")]
    pub uring_flags: shards::UringFlags,

    /// io_uring submission queue entries per shard.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub ring_entries: u32,

    /// Listen backlog per listener.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub backlog: i32,

    /// Most open connections per shard; default: derived from RLIMIT_NOFILE.
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,

    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub grace: Duration,

    /// Seconds from a request head's first byte to its end.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub header_timeout: Duration,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub idle_timeout: Duration,

    /// Seconds without progress while reading a body or writing a response.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub body_timeout: Duration,

    /// Longest request line (414 above it). Sizes take K/KiB/M/MiB suffixes.
    #[arg(long, value_name = "BYTES", default_value = "8KiB", value_parser = parse_size)]
    pub max_request_line: u64,

    /// Most bytes of header fields (431 above it).
    #[arg(long, value_name = "BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,

    /// Most header fields per request (431 above it).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_headers: usize,

    /// Largest request body (413 above it).
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Pipelined requests answered per read before the connection yields to others.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PIPELINE_BATCH, value_parser = parse_batch)]
    pub pipeline_batch: usize,

    /// Address to serve HTTPS on (same forms as --listen). Repeat for more. Without --cert, a
    /// self-signed development certificate for localhost is made at start-up.
    #[arg(long = "tls-listen", value_name = "ADDR", value_parser = parse_listen)]
    pub tls_listen: Vec<SocketAddr>,

    /// PEM certificate chain (leaf first) for the TLS listeners; reloaded on SIGHUP.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of --cert; reloaded on SIGHUP.
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Write the self-signed development certificate (made when --cert is absent) to FILE, for
    /// clients to trust (`curl --cacert FILE`).
    #[arg(long, value_name = "FILE", conflicts_with = "cert")]
    pub dev_cert_out: Option<PathBuf>,

    /// The plain listeners answer every request with a 308 to the same URL over HTTPS.
    #[arg(long)]
    pub redirect_https: bool,

    /// TLS sessions each shard keeps for resumption by session ID (tickets need none).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub tls_session_cache: usize,

    /// Turn HTTP/2 off: no `h2` in ALPN, no prior-knowledge h2c on plain listeners.
    #[arg(long)]
    pub no_h2: bool,

    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub h2_max_streams: u32,

    /// HTTP/2 initial stream window (bytes a client may send on a stream before we read them).
    #[arg(long, value_name = "BYTES", default_value = "256KiB", value_parser = parse_size)]
    pub h2_initial_window: u64,

    /// HTTP/2 receive window of a whole connection.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub h2_connection_window: u64,

    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE (decoded header bytes per request; h2 refuses more
    /// itself). Within it, --max-header-bytes and --max-headers apply as on HTTP/1.1.
    #[arg(long, value_name = "BYTES", default_value = "128KiB", value_parser = parse_size)]
    pub h2_max_header_list: u64,

    /// Streams a client may reset before we accept them, at once, before its connection is
    /// closed with ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub h2_max_pending_resets: usize,

    /// Streams we may have to reset for a client's protocol errors before its connection is
    /// closed with ENHANCE_YOUR_CALM ("MadeYouReset", CVE-2025-8671).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub h2_max_error_resets: usize,

    /// Directory served at `/` for every path no route takes (the bundled site by default).
    #[arg(long, value_name = "DIR", default_value = "site/public")]
    pub root: PathBuf,

    /// Serve DIR under the URL prefix PREFIX as well (`/assets=/srv/assets`). Repeat for more.
    #[arg(long = "mount", value_name = "PREFIX=DIR")]
    pub mounts: Vec<String>,

    /// File served for a directory; empty for none.
    #[arg(long, value_name = "NAME", default_value = "index.html")]
    pub index: String,

    /// HTML listing of directories that have no index file.
    #[arg(long)]
    pub listing: bool,

    /// File (relative to the root) served with 200 for paths that name nothing: for
    /// single-page apps.
    #[arg(long, value_name = "FILE")]
    pub spa_fallback: Option<String>,

    /// Serve files and directories whose names start with a dot.
    #[arg(long)]
    pub dotfiles: bool,

    /// Symbolic links to follow: never, within-root (targets inside the root), or always.
    #[arg(long, value_name = "POLICY", default_value = "within-root")]
    pub follow_symlinks: String,

    /// Cache-Control for files whose path (from the root) matches PATTERN: `*.css=max-age=3600`,
    /// `assets/**=public, max-age=31536000, immutable`. First match wins; repeat for more.
    #[arg(long = "cache-control", value_name = "PATTERN=VALUE")]
    pub cache_control: Vec<String>,

    /// Cache-Control for files no pattern matches, or off.
    #[arg(long, value_name = "VALUE|off", default_value = "no-cache")]
    pub default_cache_control: String,

    /// Most byte ranges served in one response (after merging); more get the whole file.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_ranges: usize,

    /// Do not compress text files on the fly (precompressed .br/.zst/.gz siblings are still used).
    #[arg(long)]
    pub no_compress: bool,

    /// Smallest body compressed on the fly.
    #[arg(long, value_name = "BYTES", default_value = "1KiB", value_parser = parse_size)]
    pub compress_min_length: u64,

    /// Compressed copies kept per shard.
    #[arg(long, value_name = "BYTES", default_value = "32MiB", value_parser = parse_size)]
    pub compress_cache: u64,

    /// Files up to this size are kept in memory (per shard) and sent with the head in one write;
    /// larger ones go with sendfile (measured cheaper from about 16 KiB up).
    #[arg(long, value_name = "BYTES", default_value = "16KiB", value_parser = parse_size)]
    pub small_file_max: u64,

    /// Bytes of small files kept in memory per shard.
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub file_cache_bytes: u64,

    /// Paths whose lookup is cached per shard (revalidated once a second).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub file_cache_entries: usize,

    /// Run the routes bare, without any middleware (to measure what the layers cost).
    #[arg(long)]
    pub no_middleware: bool,

    /// Do not add or echo X-Request-Id.
    #[arg(long)]
    pub no_request_id: bool,

    /// Write one JSON line per request to PATH (`-`: stdout). Default: no access log.
    #[arg(long, value_name = "PATH|-")]
    pub access_log: Option<AccessLogTarget>,

    /// Include the query string in access-log lines (off: queries often carry tokens).
    #[arg(long)]
    pub access_log_query: bool,

    /// Keep a request-duration histogram, served at `GET /metrics` (Prometheus text format), and
    /// add `Server-Timing: app;dur=MS` to responses.
    #[arg(long)]
    pub timing: bool,

    /// With --timing: keep /metrics but leave the Server-Timing header off.
    #[arg(long)]
    pub no_server_timing: bool,

    /// Allow cross-origin requests from ORIGIN (scheme://host[:port]) or `*`. Repeat, or give a
    /// comma list. No origin: no CORS headers at all.
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Methods a CORS preflight may ask for (GET, HEAD and POST are always allowed).
    #[arg(
        long,
        value_name = "M,...",
        value_delimiter = ',',
        default_value = "GET,HEAD,POST,PUT,PATCH,DELETE"
    )]
    pub cors_methods: Vec<String>,

    /// Request headers a CORS preflight may ask for, or `mirror` to allow whatever is asked.
    #[arg(long, value_name = "H,...|mirror", value_delimiter = ',')]
    pub cors_headers: Vec<String>,

    /// Response headers cross-origin scripts may read (Access-Control-Expose-Headers).
    #[arg(long, value_name = "H,...", value_delimiter = ',')]
    pub cors_expose: Vec<String>,

    /// Allow credentials (cookies, HTTP auth) on cross-origin requests; the origin is echoed.
    #[arg(long)]
    pub cors_credentials: bool,

    /// Seconds a browser may cache a preflight answer (0: omit Access-Control-Max-Age).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub cors_max_age: u64,

    /// Do not add the security headers (nosniff, X-Frame-Options, Referrer-Policy, HSTS).
    #[arg(long)]
    pub no_security_headers: bool,

    /// X-Frame-Options: deny, sameorigin or off.
    #[arg(long, value_name = "deny|sameorigin|off", default_value = "deny")]
    pub frame_options: String,

    /// Referrer-Policy token, or off.
    #[arg(
        long,
        value_name = "POLICY|off",
        default_value = "strict-origin-when-cross-origin"
    )]
    pub referrer_policy: String,

    /// Strict-Transport-Security max-age in seconds on TLS responses, or off.
    #[arg(long, value_name = "SECS|off", default_value = "31536000")]
    pub hsts_max_age: String,

    /// Add includeSubDomains to Strict-Transport-Security.
    #[arg(long)]
    pub hsts_include_subdomains: bool,

    /// Add preload to Strict-Transport-Security (needs includeSubDomains and a year or more).
    #[arg(long)]
    pub hsts_preload: bool,

    /// Content-Security-Policy to send, as written (default: none).
    #[arg(long, value_name = "POLICY")]
    pub csp: Option<String>,

    /// Cross-Origin-Opener-Policy token (default: none).
    #[arg(long, value_name = "POLICY")]
    pub coop: Option<String>,

    /// Requests per second allowed per client IP (token bucket, held across all shards);
    /// 0 = no rate limit.
    #[arg(long, value_name = "REQ_PER_SEC", default_value_t = 0.0)]
    pub rate_limit: f64,

    /// Requests a client may make at once (the bucket's size; RateLimit-Limit).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// IPv6 clients are limited per prefix of this many bits.
    #[arg(long, value_name = "BITS", default_value_t = 64)]
    pub rate_limit_ipv6_prefix: u8,

    /// Most clients tracked per shard; beyond it the buckets nearest to full are dropped.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub rate_limit_max_clients: usize,

    /// Leave RateLimit-* headers off allowed responses (429s keep them).
    #[arg(long)]
    pub no_rate_limit_headers: bool,

    /// Proxies (IPs or CIDRs, comma list) whose forwarding header names the client, for rate
    /// limiting and the access log. Default: none (the peer is the client).
    #[arg(long, value_name = "IP|CIDR,...")]
    pub trusted_proxies: Option<String>,

    /// Which header trusted proxies set: xff (X-Forwarded-For) or forwarded (RFC 7239).
    #[arg(long, value_name = "xff|forwarded", default_value = "xff")]
    pub forwarded_header: String,
}

/// What keeps the command line from becoming a [`Cli`].
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// Clap's own error (also help and version, which are not failures).
    #[error(transparent)]
    Flags(#[from] clap::Error),
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
}

impl Cli {
    /// Parses `argv` (program name first), reading `serve --config FILE` into it: the file's
    /// settings go in as flags, below the command line and the environment.
    pub fn parse_with_config_file(argv: Vec<OsString>) -> Result<Cli, ArgsError> {
        let command = Cli::command();
        // A first, lenient pass only to learn the file and what the command line and the
        // environment set; whatever it misses, the real parse below reports.
        let first = command
            .clone()
            .ignore_errors(true)
            .try_get_matches_from(&argv);
        let Some(serve) = command.find_subcommand("serve") else {
            return Ok(Cli::try_parse_from(argv)?);
        };
        let found = first.ok().and_then(|m| {
            let matches = m.subcommand_matches("serve")?;
            let path = matches.get_one::<PathBuf>("config")?.clone();
            Some((path, config_file::given_elsewhere(serve, matches)))
        });
        // `serve` is the first bare word: the top level takes no option with a value.
        let serve_at = argv
            .iter()
            .skip(1)
            .position(|a| a == "serve")
            .map(|i| i + 1);
        let (Some((path, given)), Some(serve_at)) = (found, serve_at) else {
            return Ok(Cli::try_parse_from(argv)?);
        };
        let text = config_file::read(&path)?;
        let file = config_file::to_args(&path, &text, serve)?;
        let merged = config_file::merge(&argv, serve_at, file, &given);
        Ok(Cli::try_parse_from(merged)?)
    }
}

/// A flag whose value cannot be used: names the flag and says why.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct FlagError {
    pub flag: &'static str,
    pub reason: String,
}

fn flag_err(flag: &'static str, reason: impl ToString) -> FlagError {
    FlagError {
        flag,
        reason: reason.to_string(),
    }
}

impl ServeArgs {
    /// Turns parsed flags into the server's configuration; a value no layer can use is an error
    /// naming its flag.
    pub fn into_config(self) -> Result<ServeConfig, FlagError> {
        let middleware = self.middleware_config()?;
        let site = self.static_config("--root", "/", &self.root)?;
        let mut mounts = Vec::with_capacity(self.mounts.len());
        for mount in &self.mounts {
            let (prefix, dir) = mount.split_once('=').ok_or_else(|| {
                flag_err("--mount", format!("expected PREFIX=DIR, got {mount:?}"))
            })?;
            if !prefix.starts_with('/') || prefix.contains(['*', ':']) {
                return Err(flag_err(
                    "--mount",
                    format!("the prefix {prefix:?} must start with / and hold no * or :"),
                ));
            }
            mounts.push(self.static_config("--mount", prefix, &PathBuf::from(dir))?);
        }
        let mut config = ServeConfig::new(self.plain_listen()?);
        config.root = self.root.clone();
        config.site = Some(site);
        config.mounts = mounts;
        config.limits = Limits {
            max_request_line: usize::try_from(self.max_request_line).unwrap_or(usize::MAX),
            max_header_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
            max_headers: self.max_headers,
            max_body: self.max_body,
        };
        config.timeouts = Timeouts {
            header: self.header_timeout,
            idle: self.idle_timeout,
            body: self.body_timeout,
        };
        config.max_pipeline_batch = self.pipeline_batch;
        config.middleware = middleware;
        config.h2 = self.h2_config()?;
        config.tls = self.tls_config();
        let rt = &mut config.runtime;
        rt.shards = self.shards;
        rt.pin = !self.no_pin;
        rt.driver = self.io_driver;
        rt.uring_flags = self.uring_flags;
        rt.ring_entries = self.ring_entries;
        rt.backlog = self.backlog;
        rt.max_conns_per_shard = self.max_conns;
        rt.grace = self.grace;
        rt.handle_signals = true;
        Ok(config)
    }

    /// The plain listeners: as given; 127.0.0.1:8080 when none and no TLS listener either.
    fn plain_listen(&self) -> Result<Vec<SocketAddr>, FlagError> {
        if !self.listen.is_empty() {
            return Ok(self.listen.clone());
        }
        if self.redirect_https {
            return Err(flag_err(
                "--redirect-https",
                "needs a plain listener to redirect from (--listen)",
            ));
        }
        if self.tls_listen.is_empty() {
            return Ok(vec![DEFAULT_LISTEN]);
        }
        Ok(Vec::new())
    }

    fn h2_config(&self) -> Result<H2Config, FlagError> {
        // RFC 9113 §6.5.2 / §6.9.1: windows are at most 2^31-1; below 65,535 a client stalls.
        let window = |flag: &'static str, bytes: u64| match u32::try_from(bytes) {
            Ok(w) if (65_535..=0x7fff_ffff).contains(&w) => Ok(w),
            _ => Err(flag_err(flag, "must be between 65535 and 2147483647 bytes")),
        };
        if self.h2_max_streams == 0 {
            return Err(flag_err("--h2-max-streams", "must be at least 1"));
        }
        Ok(H2Config {
            enabled: !self.no_h2,
            max_concurrent_streams: self.h2_max_streams,
            initial_window: window("--h2-initial-window", self.h2_initial_window)?,
            connection_window: window("--h2-connection-window", self.h2_connection_window)?,
            max_header_list_size: u32::try_from(self.h2_max_header_list)
                .map_err(|_| flag_err("--h2-max-header-list", "must be below 4 GiB"))?,
            max_pending_accept_reset_streams: self.h2_max_pending_resets,
            max_local_error_reset_streams: self.h2_max_error_resets,
            ..H2Config::default()
        })
    }

    fn tls_config(&self) -> Option<TlsConfig> {
        if self.tls_listen.is_empty() {
            return None;
        }
        let cert = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertSource::SelfSigned {
                write_pem: self.dev_cert_out.clone(),
            },
        };
        let mut tls = TlsConfig::new(self.tls_listen.clone(), cert);
        tls.h2 = !self.no_h2;
        tls.session_cache = self.tls_session_cache;
        tls.redirect_plain = self.redirect_https;
        Some(tls)
    }

    /// A static mount's configuration from the shared flags, its root checked now.
    fn static_config(
        &self,
        flag: &'static str,
        prefix: &str,
        root: &std::path::Path,
    ) -> Result<StaticConfig, FlagError> {
        canonical_root(root).map_err(|e| flag_err(flag, format!("{}: {e}", root.display())))?;
        let mut config = StaticConfig::new(root);
        config.prefix = prefix.to_owned();
        config.index = (!self.index.is_empty()).then(|| self.index.clone());
        config.listing = self.listing;
        config.spa_fallback = self.spa_fallback.clone();
        config.allow_dotfiles = self.dotfiles;
        config.follow_symlinks = match self.follow_symlinks.as_str() {
            "never" => FollowSymlinks::Never,
            "within-root" => FollowSymlinks::WithinRoot,
            "always" => FollowSymlinks::Always,
            _ => {
                return Err(flag_err(
                    "--follow-symlinks",
                    "expected never, within-root or always",
                ))
            }
        };
        for rule in &self.cache_control {
            let (pattern, value) = rule.split_once('=').ok_or_else(|| {
                flag_err(
                    "--cache-control",
                    format!("expected PATTERN=VALUE, got {rule:?}"),
                )
            })?;
            let value = HeaderValue::from_str(value.trim()).map_err(|_| {
                flag_err(
                    "--cache-control",
                    format!("{value:?} is not a header value"),
                )
            })?;
            config
                .cache_control
                .push((pattern.trim().to_owned(), value));
        }
        config.default_cache_control = match self.default_cache_control.as_str() {
            "off" => None,
            value => Some(HeaderValue::from_str(value).map_err(|_| {
                flag_err(
                    "--default-cache-control",
                    format!("{value:?} is not a header value"),
                )
            })?),
        };
        if self.max_ranges == 0 {
            return Err(flag_err("--max-ranges", "must be at least 1"));
        }
        config.max_ranges = self.max_ranges;
        config.compress = !self.no_compress;
        config.compress_min_len = self.compress_min_length;
        config.compressed_cache_bytes = usize::try_from(self.compress_cache).unwrap_or(usize::MAX);
        config.file_cache = FileCacheLimits {
            max_entries: self.file_cache_entries.max(1),
            max_bytes: self.file_cache_bytes,
            small_file_max: self.small_file_max,
            ..FileCacheLimits::default()
        };
        // Built once here only to report a bad pattern now, naming the flag.
        StaticFiles::new(config.clone()).map_err(|e| flag_err("--cache-control", e))?;
        Ok(config)
    }

    fn middleware_config(&self) -> Result<MiddlewareConfig, FlagError> {
        let trusted_proxies = match &self.trusted_proxies {
            Some(list) => list
                .parse::<TrustedProxies>()
                .map_err(|e| flag_err("--trusted-proxies", e))?,
            None => TrustedProxies::none(),
        };
        let trusted_proxies = trusted_proxies.with_header(match self.forwarded_header.as_str() {
            "xff" | "x-forwarded-for" => ForwardedHeader::XForwardedFor,
            "forwarded" => ForwardedHeader::Forwarded,
            _ => return Err(flag_err("--forwarded-header", "expected xff or forwarded")),
        });
        Ok(MiddlewareConfig {
            enabled: !self.no_middleware,
            request_id: !self.no_request_id,
            timing: self.timing.then_some(TimingConfig {
                server_timing: !self.no_server_timing,
            }),
            access_log: self.access_log.is_some().then(|| AccessLogConfig {
                query: self.access_log_query,
                trusted_proxies: trusted_proxies.clone(),
            }),
            cors: self.cors_config()?,
            security_headers: self.security_headers_config()?,
            rate_limit: self.rate_limit_config(&trusted_proxies)?,
            trusted_proxies,
        })
    }

    fn cors_config(&self) -> Result<Option<CorsConfig>, FlagError> {
        if self.cors_origins.is_empty() {
            return Ok(None);
        }
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(self.cors_origins.clone())
        };
        let methods = self
            .cors_methods
            .iter()
            .map(|m| Method::from_bytes(m.trim().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| flag_err("--cors-methods", e))?;
        let header_names = |flag: &'static str, list: &[String]| {
            list.iter()
                .map(|h| HeaderName::from_bytes(h.trim().as_bytes()).map_err(|e| flag_err(flag, e)))
                .collect::<Result<Vec<_>, _>>()
        };
        let allowed_headers = if self.cors_headers.iter().any(|h| h == "mirror") {
            AllowedHeaders::Mirror
        } else {
            AllowedHeaders::List(header_names("--cors-headers", &self.cors_headers)?)
        };
        let config = CorsConfig {
            allowed_origins: origins,
            allowed_methods: methods,
            allowed_headers,
            exposed_headers: header_names("--cors-expose", &self.cors_expose)?,
            allow_credentials: self.cors_credentials,
            max_age: (self.cors_max_age > 0).then(|| Duration::from_secs(self.cors_max_age)),
        };
        // Built once here only to report a bad origin now, naming the flag.
        Cors::new(config.clone()).map_err(|e| flag_err("--cors-origin", e))?;
        Ok(Some(config))
    }

    fn security_headers_config(&self) -> Result<Option<SecurityHeadersConfig>, FlagError> {
        if self.no_security_headers {
            return Ok(None);
        }
        let frame_options = match self.frame_options.as_str() {
            "off" => FrameOptions::Off,
            other => other.parse().map_err(|e| flag_err("--frame-options", e))?,
        };
        let referrer_policy = match self.referrer_policy.as_str() {
            "off" => None,
            other => Some(
                other
                    .parse()
                    .map_err(|e| flag_err("--referrer-policy", e))?,
            ),
        };
        let hsts = match self.hsts_max_age.as_str() {
            "off" => None,
            secs => Some(Hsts {
                max_age: Duration::from_secs(
                    secs.parse()
                        .map_err(|_| flag_err("--hsts-max-age", "expected seconds or off"))?,
                ),
                include_subdomains: self.hsts_include_subdomains,
                preload: self.hsts_preload,
            }),
        };
        let cross_origin_opener_policy = match &self.coop {
            Some(token) => Some(token.parse().map_err(|e| flag_err("--coop", e))?),
            None => None,
        };
        let config = SecurityHeadersConfig {
            nosniff: true,
            frame_options,
            referrer_policy,
            hsts,
            content_security_policy: self.csp.clone(),
            cross_origin_opener_policy,
        };
        SecurityHeaders::new(&config).map_err(|e| {
            let flag = match e {
                SecurityHeadersError::HstsPreloadRequirements => "--hsts-preload",
                _ => "--csp",
            };
            flag_err(flag, e)
        })?;
        Ok(Some(config))
    }

    fn rate_limit_config(
        &self,
        trusted: &TrustedProxies,
    ) -> Result<Option<RateLimitConfig>, FlagError> {
        if self.rate_limit == 0.0 {
            return Ok(None);
        }
        let config = RateLimitConfig {
            rate: self.rate_limit,
            burst: self.rate_limit_burst,
            trusted_proxies: trusted.clone(),
            ipv6_prefix: self.rate_limit_ipv6_prefix,
            max_clients: self.rate_limit_max_clients,
            headers_on_allowed: !self.no_rate_limit_headers,
            ..RateLimitConfig::default()
        };
        config.validate().map_err(|e| {
            let flag = match e {
                RateLimitConfigError::Rate(_) => "--rate-limit",
                RateLimitConfigError::Burst(_) => "--rate-limit-burst",
                RateLimitConfigError::Ipv6Prefix(_) => "--rate-limit-ipv6-prefix",
                RateLimitConfigError::MaxClients => "--rate-limit-max-clients",
            };
            flag_err(flag, e)
        })?;
        Ok(Some(config))
    }
}

/// Where `percore serve` listens when no address is given.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| "expected IP:PORT, [IPv6]:PORT or PORT".to_string())
}

fn parse_driver(s: &str) -> Result<shards::DriverChoice, String> {
    match s {
        "auto" => Ok(shards::DriverChoice::Auto),
        "io_uring" | "io-uring" | "uring" => Ok(shards::DriverChoice::IoUring),
        "epoll" | "legacy" => Ok(shards::DriverChoice::Epoll),
        _ => Err("expected auto, io_uring or epoll".to_string()),
    }
}

fn parse_uring_flags(s: &str) -> Result<shards::UringFlags, String> {
    s.parse::<shards::UringFlags>().map_err(|e| e.to_string())
}

fn parse_batch(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err("expected a number from 1 to 1024".to_string()),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| "expected a number of seconds".to_string())?;
    if !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err("expected a number of seconds between 0 and a year".to_string());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `4096`, `8K`, `8KiB`, `1M`, `1MiB`, `1G`, `1GiB` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    const ERR: &str = "expected a size such as 8192, 8KiB or 1MiB";
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| ERR.to_string())?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "k" | "KiB" | "KB" | "kB" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        _ => return Err(ERR.to_string()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| "size too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn listen_accepts_bare_port_and_v6() {
        assert_eq!(parse_listen("9000").unwrap().to_string(), "127.0.0.1:9000");
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert!(parse_listen("localhost:abc").is_err());
    }

    fn config(args: &[&str]) -> Result<ServeConfig, FlagError> {
        let cli = Cli::try_parse_from(["percore", "serve"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Serve(serve) => serve.into_config(),
        }
    }

    #[test]
    fn plain_http_on_8080_unless_only_tls_is_asked_for() {
        let plain = config(&[]).unwrap();
        assert_eq!(plain.listen, vec![DEFAULT_LISTEN]);
        assert!(plain.tls.is_none());
        let tls_only = config(&["--tls-listen", "8443"]).unwrap();
        assert!(tls_only.listen.is_empty());
        assert_eq!(tls_only.tls.unwrap().listen.len(), 1);
        let both = config(&["--tls-listen", "8443", "--listen", "8081"]).unwrap();
        assert_eq!(both.listen.len(), 1);
        let err = config(&["--tls-listen", "8443", "--redirect-https"]).unwrap_err();
        assert!(err.to_string().contains("--redirect-https"), "{err}");
    }

    #[test]
    fn seconds_reject_negative_and_nan() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
    }
}
