//! The `percore` binary: flags → configuration → shards. Errors end here as one line on stderr
//! and a non-zero exit status.

use std::process::ExitCode;

use clap::error::ErrorKind;

use percore::cli::{ArgsError, Cli, Command};
use percore::config::ServeConfig;
use percore::tls::{CertSource, TlsShared};

mod allocator;

// mimalloc: per-thread heaps without a global lock suit one allocator user per core.
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;

fn main() -> ExitCode {
    // Before the heap grows: pages faulted in as huge pages would stay huge.
    let small_pages = allocator::keep_small_pages();
    let cli = match Cli::parse_with_config_file(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(ArgsError::Flags(err)) => return flag_error(err),
        Err(ArgsError::ConfigFile(err)) => {
            eprintln!("percore: {err}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            let access_log = args.access_log.clone();
            let check = args.check;
            let mut config = match args.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("percore: {err}");
                    return ExitCode::from(2);
                }
            };
            if check {
                return check_only(&config);
            }
            // Kept to the end of `main`: dropping it writes what the access log still buffers.
            let _logs = match percore::logging::init(access_log) {
                Ok(guard) => guard,
                Err(err) => {
                    eprintln!("percore: {err}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(err) = small_pages {
                tracing::warn!(error = %err, "could not turn transparent huge pages off; idle connections will take more memory");
            }
            config.shard_tick_hook = Some(every_second_on_each_shard);
            match shards::raise_nofile_limit() {
                Ok(limit) => tracing::debug!(limit, "raised RLIMIT_NOFILE"),
                Err(err) => tracing::warn!(error = %err, "could not raise RLIMIT_NOFILE"),
            }
            match percore::serve::run(config) {
                Ok(()) => {
                    tracing::info!("percore stopped");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("percore: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `serve --check`: the flags and file were valid enough for a `ServeConfig` (roots exist, values
/// parse); the certificate files are loaded too, as start-up would. Nothing is bound, written or
/// started, so it can run beside the live server (`nginx -t`).
fn check_only(config: &ServeConfig) -> ExitCode {
    if let Some(tls) = &config.tls {
        // A self-signed certificate is made at start-up and may be written out: not a check.
        if matches!(tls.cert, CertSource::Files { .. }) {
            if let Err(err) = TlsShared::new(tls) {
                eprintln!("percore: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("config ok");
    ExitCode::SUCCESS
}

/// Once a second on every shard: give freed memory back, and write out access-log lines a quiet
/// shard would otherwise hold until its next request.
fn every_second_on_each_shard() {
    return_freed_memory();
    percore::logging::flush_thread_buffer();
}

/// mimalloc returns emptied pages to the OS only when the owning thread next allocates, so a
/// shard that went quiet after a burst (10,000 connections parked, say) would keep the burst's
/// RSS. Each shard calls this once a second: a non-forced collect that frees what is already
/// free, cheap when there is nothing to do.
fn return_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it works on the calling thread's heap, and
    // mimalloc is this process's global allocator.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Help and version go to stdout as clap prints them; a bad flag is one line naming it.
fn flag_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = err.to_string();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let mut line = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" lists them on the indented
            // lines below; they belong on the one line too.
            if line.ends_with(':') {
                let listed: Vec<&str> = lines
                    .take_while(|l| l.starts_with(' '))
                    .map(str::trim)
                    .collect();
                line = format!("{line} {}", listed.join(", "));
            }
            eprintln!("percore: {line} (see percore --help)");
            ExitCode::from(2)
        }
    }
}
