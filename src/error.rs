//! The two kinds of failure that decide an exit status besides "it failed"
//! (1): a mistake in how kbridge was called, and a failure whose details
//! were already printed. Every layer may return them; only `main` maps them
//! to exit codes.

/// A mistake in how kbridge was called or configured (exit status 2, like
/// clap's own; the systemd unit does not restart on it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// A failure whose details were already printed (exit status 1, and only a
/// short summary line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(pub String);
