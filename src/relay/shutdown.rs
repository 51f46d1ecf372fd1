//! Graceful shutdown as a first-class idea.
//!
//! The first SIGTERM or SIGINT asks the relay to stop: it stops fetching,
//! lets in-flight deliveries finish within the drain timeout, commits and
//! leaves the group. A second signal exits at once with a non-zero status.
//! (The seed closed its consumer from inside the signal handler, racing its
//! own poll loop.)

use tokio::sync::watch;

/// Exit status after a second signal: 128 + SIGINT, as shells report it.
const FORCED_EXIT: i32 = 130;

/// Becomes `true` when shutdown was requested.
pub(crate) type Shutdown = watch::Receiver<bool>;

/// Installs the signal handlers; the returned sender also lets code (the
/// demo, a fatal error) request shutdown.
pub(crate) fn install(drain_timeout: std::time::Duration) -> (watch::Sender<bool>, Shutdown) {
    let (tx, rx) = watch::channel(false);
    let trigger = tx.clone();
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            tracing::error!("cannot listen for signals; stop kbridge with SIGKILL");
            return;
        }
        tracing::info!(
            "stopping: no new events; finishing in-flight deliveries for up to {drain_timeout:?} (signal again to exit at once)"
        );
        let _ = trigger.send(true);
        if wait_for_signal().await.is_ok() {
            tracing::error!(
                "second signal: exiting now without draining; uncommitted events will be read again"
            );
            std::process::exit(FORCED_EXIT);
        }
    });
    (tx, rx)
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
