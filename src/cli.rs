//! Command-line interface: flags → a validated [`ServeConfig`].
//!
//! Every flag is documented in the README. A bad flag is one line on stderr naming the flag and
//! the value, and a non-zero exit (see `main.rs`), never a panic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{ServeConfig, Timeouts, DEFAULT_PIPELINE_BATCH};
use crate::http1::Limits;

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
    /// Address to listen on: IP:PORT, [IPv6]:PORT or a bare PORT (127.0.0.1). Repeat for more.
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_listen, default_value = "127.0.0.1:8080")]
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

    /// Directory of the bundled site (static files arrive with the static-file issue).
    #[arg(long, value_name = "DIR", default_value = "site/public")]
    pub root: PathBuf,
}

impl ServeArgs {
    /// Turns parsed flags into the server's configuration.
    pub fn into_config(self) -> ServeConfig {
        let mut config = ServeConfig::new(self.listen);
        config.root = self.root;
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
        config
    }
}

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

    #[test]
    fn seconds_reject_negative_and_nan() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_secs("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
    }
}
