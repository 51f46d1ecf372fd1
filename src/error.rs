//! Two kinds of failure that every layer may return besides a plain error:
//! a mistake in how kbridge was called, which `main` turns into exit status
//! 2 (and a pointer to `--help`), and a failure whose details were already
//! printed, which exits 1 like any failure but with its short message only.

/// A mistake in how kbridge was called or configured (exit status 2, like
/// clap's own; the systemd unit does not restart on it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// A failure whose details were already printed (per line, per message):
/// its text is the one summary line `main` adds (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(pub String);
