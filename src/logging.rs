//! Log output: stderr for the operator commands (quiet unless `-v`), and
//! text or JSON for the relay service (see `relay::config`).

use anyhow::Result;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;

/// Held for the process lifetime; flushes a non-blocking log file on drop.
pub(crate) type Guard = Option<tracing_appender::non_blocking::WorkerGuard>;

/// The CLI's filter: warnings only by default, more with -v; `KBRIDGE_LOG`
/// (a tracing filter like `kbridge=debug,librdkafka=trace`) overrides both.
pub(crate) fn cli_filter(verbose: u8, default: &str) -> EnvFilter {
    if let Ok(f) = std::env::var("KBRIDGE_LOG")
        && let Ok(filter) = EnvFilter::try_new(f)
    {
        return filter;
    }
    let level = match verbose {
        0 => default,
        1 => "kbridge=info,librdkafka=warn",
        2 => "kbridge=debug,librdkafka=debug",
        _ => "trace",
    };
    EnvFilter::new(level)
}

pub(crate) fn init_for_cli(cli: &Cli) -> Result<Guard> {
    if matches!(cli.command, crate::cli::Command::Run(_)) {
        // The relay sets up its own logging from its config.
        return Ok(None);
    }
    // The demo narrates on stdout; its relay's own retry warnings would
    // only repeat that.
    let default = if matches!(cli.command, crate::cli::Command::Demo(_)) {
        "kbridge=error,librdkafka=off"
    } else {
        "kbridge=warn,librdkafka=off"
    };
    tracing_subscriber::fmt()
        .with_env_filter(cli_filter(cli.verbose, default))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    Ok(None)
}
