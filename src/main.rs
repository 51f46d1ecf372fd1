//! kbridge: relay monitoring alerts from Kafka to an ops platform's webhook,
//! and run the everyday Kafka operations beside it.
//!
//! Imports run one way: `main` → `cli` (what the user can type) →
//! `commands` (the operator commands), `relay` (`kbridge run`; its module
//! doc walks one event through it) and `demo` → the shared ground: `client`
//! (every Kafka client), `build_info`, `headers`, `logging`, `output`, `time_spec`,
//! `topic_partition`, `error`. Nothing imports `cli` but `main`.

mod build_info;
mod cli;
mod client;
mod commands;
mod demo;
mod error;
mod headers;
mod logging;
mod output;
mod redact;
mod relay;
mod time_spec;
mod topic_partition;
mod truncate;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;
use error::UsageError;

/// What ships uses jemalloc (the `jemalloc` feature; Cargo.toml says why).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // No panic message or backtrace for the user: one line, and a request to
    // report it. Panics are bugs; errors go through `Result`.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        eprintln!("kbridge: internal error{at}: {msg}; please report this");
    }));

    let cli = Cli::parse();
    // The relay sets up its own logging from its configuration.
    let _log_guard = match cli.log_quietness() {
        Some(quietness) => match logging::init_cli(cli.verbose, quietness) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("kbridge: error: {e:#}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kbridge: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.execute());
    // librdkafka clients were dropped by now; do not wait for stray
    // blocking tasks (a consume loop blocked on stdin, say).
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): nothing left to say to it.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbridge: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("Run `kbridge --help` for usage.");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
