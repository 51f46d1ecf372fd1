//! Graceful shutdown as a first-class idea, in two steps.
//!
//! [`Shutdown`]: the first SIGTERM or SIGINT (or the demo, when it is done)
//! asks the relay to stop. It stops fetching, lets in-flight deliveries
//! finish within the drain timeout, commits and leaves the group. A second
//! signal exits at once with a non-zero status. (The Python service kbridge
//! replaces closed its consumer from inside the signal handler, racing its
//! own poll loop.)
//!
//! [`Abort`]: when the drain timeout expires, the deliveries still running
//! stop — waiting to retry, writing a dead letter or on the wire; their
//! events stay uncommitted and are read again after the restart.
//!
//! The stop request is a `watch` channel of one flag. mini-redis's
//! `shutdown.rs` listens on a `broadcast` channel, which a task that
//! subscribes after the send never hears; a `watch` keeps its value, so a
//! task that starts listening late still sees the flag already raised, and
//! it is as cheap to clone into every task.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Exit status after a second signal: 128 + SIGINT, as shells report it.
const FORCED_EXIT: i32 = 130;

/// A one-way flag: raised once, seen by every listener.
#[derive(Clone)]
struct Flag(watch::Receiver<bool>);

impl Flag {
    /// Resolves once the flag is raised (at once if it already is); never,
    /// if whoever could raise it is gone.
    async fn raised(&mut self) {
        if self.0.wait_for(|raised| *raised).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Raises a flag: requests the stop (the signal handler, the demo) or fires
/// the abort (the drain, when its timeout expires).
pub(crate) struct Trigger(watch::Sender<bool>);

impl Trigger {
    pub(crate) fn raise(&self) {
        self.0.send_replace(true);
    }
}

fn flag() -> (Trigger, Flag) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Flag(rx))
}

/// Listens for the request to stop the relay.
#[derive(Clone)]
pub(crate) struct Shutdown(Flag);

impl Shutdown {
    pub(crate) fn new() -> (Trigger, Shutdown) {
        let (trigger, flag) = flag();
        (trigger, Shutdown(flag))
    }

    /// Resolves once a stop was requested. Cancel-safe, for `select!`.
    pub(crate) async fn requested(&mut self) {
        self.0.raised().await
    }
}

/// The end of the drain: every partition's ownership ends at once (see
/// `commit::ownership`), so deliveries stop waiting and requests on the
/// wire are dropped. A cancellation token, since each ownership's token is
/// its child.
#[derive(Clone, Default)]
pub(crate) struct Abort(CancellationToken);

impl Abort {
    pub(crate) fn fire(&self) {
        self.0.cancel();
    }

    /// The token whose children the ownerships are.
    pub(crate) fn token(&self) -> CancellationToken {
        self.0.clone()
    }
}

/// What a stop may take beyond `drain_timeout`: the aborted deliveries'
/// grace, the dead-letter flush, the final commit and leaving the group.
/// With the default 20 s drain timeout a stop ends within 27 s, under
/// systemd's `TimeoutStopSec=30s`.
pub(crate) const STOP_RESERVE: Duration = Duration::from_secs(7);

/// The stop's clock: each step of the stop path (`drain`, then leaving the
/// group in `service`) gets what is left of one budget, so that a stuck
/// broker in one step cannot push the whole stop past systemd's limit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StopClock {
    drained_by: Instant,
    end: Instant,
}

impl StopClock {
    pub(crate) fn start(drain_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            drained_by: now + drain_timeout,
            end: now + drain_timeout + STOP_RESERVE,
        }
    }

    /// When in-flight deliveries must be done.
    pub(crate) fn drained_by(&self) -> Instant {
        self.drained_by
    }

    /// When the whole stop must be over.
    pub(crate) fn end(&self) -> Instant {
        self.end
    }

    /// `keep` before the end of the stop, but not in the past: a step that
    /// runs late still gets a moment.
    pub(crate) fn before_end(&self, keep: Duration) -> Instant {
        self.end
            .checked_sub(keep)
            .unwrap_or(self.end)
            .max(Instant::now() + Duration::from_millis(200))
    }
}

/// Installs the signal handlers: the first signal requests the stop, the
/// second exits at once. The returned handle keeps the listener alive and
/// lets code request the stop too.
pub(crate) fn on_signals(drain_timeout: Duration) -> (Trigger, Shutdown) {
    let (handle, shutdown) = Shutdown::new();
    let trigger = Trigger(handle.0.clone());
    tokio::spawn(async move {
        if wait_for_signal().await.is_err() {
            tracing::error!("cannot listen for signals; stop kbridge with SIGKILL");
            return;
        }
        tracing::info!(
            "stopping: no new events; finishing in-flight deliveries for up to {drain_timeout:?} (signal again to exit at once)"
        );
        trigger.raise();
        // Every step of the stop is bounded; should one not be, exit
        // before systemd's SIGKILL, saying so.
        let limit = drain_timeout + STOP_RESERVE + Duration::from_secs(1);
        let _ = std::thread::Builder::new()
            .name("kbridge-stop-limit".into())
            .spawn(move || {
                std::thread::sleep(limit);
                tracing::error!(
                    "the stop took longer than {limit:?}; exiting without finishing it; uncommitted events will be read again"
                );
                std::process::exit(1);
            });
        if wait_for_signal().await.is_ok() {
            tracing::error!(
                "second signal: exiting now without draining; uncommitted events will be read again"
            );
            std::process::exit(FORCED_EXIT);
        }
    });
    (handle, shutdown)
}

/// Resolves at SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_listener_sees_an_earlier_stop() {
        let (handle, mut shutdown) = Shutdown::new();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), shutdown.requested())
                .await
                .is_err(),
            "not requested yet"
        );
        handle.raise();
        tokio::time::timeout(Duration::from_secs(5), shutdown.requested())
            .await
            .expect("resolves at once");
    }
}
