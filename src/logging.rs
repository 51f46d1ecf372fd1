//! Log output: stderr for the operator commands (quiet unless `-v`), and
//! text or JSON, to stderr and optionally a file, for the relay service.
//! `KBRIDGE_LOG` (a tracing filter like `kbridge=debug,librdkafka=trace`)
//! overrides the level of both.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::error::UsageError;

/// Held for the process lifetime; flushes a non-blocking log file on drop.
pub(crate) type Guard = Option<tracing_appender::non_blocking::WorkerGuard>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// What a command logs by default, before `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quietness {
    /// Warnings of kbridge only.
    Warnings,
    /// Errors only: the demo narrates on stdout, and its relay's own retry
    /// warnings would only repeat that.
    Errors,
}

fn env_filter() -> Option<EnvFilter> {
    std::env::var("KBRIDGE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
}

/// The commands' logging: stderr, warnings only by default, more with `-v`.
pub(crate) fn init_cli(verbose: u8, quietness: Quietness) -> Result<Guard> {
    let default = match quietness {
        Quietness::Warnings => "kbridge=warn,librdkafka=off",
        Quietness::Errors => "kbridge=error,librdkafka=off",
    };
    let level = match verbose {
        0 => default,
        1 => "kbridge=info,librdkafka=warn",
        2 => "kbridge=debug,librdkafka=debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(env_filter().unwrap_or_else(|| EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow!("cannot set up logging: {e}"))?;
    Ok(None)
}

/// The service's logging: stderr (journald captures it) as text or JSON at
/// `level`, and also `file` when given.
pub(crate) fn init_service(
    format: LogFormat,
    level: &str,
    file: Option<&PathBuf>,
) -> Result<Guard> {
    let filter = match env_filter() {
        Some(f) => f,
        None => EnvFilter::try_new(level)
            .map_err(|e| UsageError(format!("log.level '{level}' is invalid: {e}")))?,
    };
    let stderr_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (file_layer, guard) = match file {
        Some(path) => {
            let (writer, guard) = file_writer(path)?;
            let layer = match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .boxed(),
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .map_err(|e| anyhow!("cannot set up logging: {e}"))?;
    Ok(guard)
}

/// A non-blocking writer appending to `path`, its directory created.
fn file_writer(
    path: &Path,
) -> Result<(
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("log.file '{}' has no file name", path.display()))?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    Ok(tracing_appender::non_blocking(
        tracing_appender::rolling::never(dir, name),
    ))
}
