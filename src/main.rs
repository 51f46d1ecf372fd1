//! kbridge: relay monitoring alerts from Kafka to an ops platform's webhook,
//! and run the everyday Kafka operations beside it.
//!
//! The data flow of the relay is Kafka in → decode → validate → map →
//! deliver → commit (see `relay`); the operator commands live in `commands`,
//! sharing client construction in `client`.

mod cli;
mod client;
mod commands;
mod demo;
mod logging;
mod output;
mod relay;
mod time_spec;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use client::{KafkaOpts, brokers_or_default};

/// A mistake in how kbridge was called (exit status 2, like clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// A failure whose details were already printed (exit status 1, and only a
/// short summary line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(pub String);

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
    let _log_guard = match logging::init_for_cli(&cli) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("kbridge: error: {e:#}");
            return ExitCode::from(2);
        }
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
    let result = runtime.block_on(dispatch(cli));
    // librdkafka clients were dropped in `dispatch`; do not wait for stray
    // blocking tasks (a consume loop blocked on stdin, say).
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): nothing left to say to it.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("kbridge: error: {e:#}");
                eprintln!("Run `kbridge --help` for usage.");
                ExitCode::from(2)
            } else {
                eprintln!("kbridge: error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let opts = KafkaOpts {
        brokers: brokers_or_default(cli.brokers.as_deref()),
        properties: cli.properties.clone(),
        timeout: cli.timeout,
    };
    match cli.command {
        Command::Topics(cmd) => commands::topics::run(&opts, cmd).await?,
        Command::Groups(cmd) => commands::groups::run(&opts, cmd).await?,
        Command::Cluster(cmd) => blocking(move || commands::cluster::run(&opts, cmd)).await?,
        Command::Produce(args) => blocking(move || commands::produce::run(&opts, args)).await?,
        Command::Consume(args) => {
            let stop = Arc::new(AtomicBool::new(false));
            let on_signal = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_signal.store(true, Ordering::Relaxed);
                }
            });
            blocking(move || commands::consume::run(&opts, args, &stop)).await?
        }
        Command::Run(args) => {
            return relay::run(args, cli.brokers, cli.properties).await;
        }
        Command::Demo(args) => demo::run(args).await?,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kbridge", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs synchronous librdkafka work off the async workers.
async fn blocking<F>(f: F) -> Result<()>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("internal error: {e}"))?
}
