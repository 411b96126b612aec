//! The `percore` binary: flags → configuration → shards. Errors end here as one line on stderr
//! and a non-zero exit status.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use percore::cli::{Cli, Command};

// mimalloc: per-thread heaps without a global lock suit one allocator user per core.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return flag_error(err),
    };
    match cli.command {
        Command::Serve(args) => {
            let access_log = args.access_log.clone();
            let mut config = match args.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("percore: {err}");
                    return ExitCode::from(2);
                }
            };
            // Kept to the end of `main`: dropping it writes what the access log still buffers.
            let _logs = match percore::logging::init(access_log) {
                Ok(guard) => guard,
                Err(err) => {
                    eprintln!("percore: {err}");
                    return ExitCode::FAILURE;
                }
            };
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
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("percore: {line} (see percore --help)");
            ExitCode::from(2)
        }
    }
}
