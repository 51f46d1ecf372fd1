//! Graceful shutdown as a first-class idea, in two steps.
//!
//! [`Shutdown`]: the first SIGTERM or SIGINT (or the demo, when it is done)
//! asks the relay to stop. It stops fetching, lets in-flight deliveries
//! finish within the drain timeout, commits and leaves the group. A second
//! signal exits at once with a non-zero status. (The seed closed its
//! consumer from inside the signal handler, racing its own poll loop.)
//!
//! [`Abort`]: when the drain timeout expires, the deliveries still waiting
//! to retry (or to write a dead letter) stop waiting; their events stay
//! uncommitted and are read again after the restart.
//!
//! Both are a `watch` channel of one flag, as in mini-redis's
//! `shutdown.rs`: cheap to clone into every task, and a task that starts
//! listening late still sees a flag already raised.

use std::time::Duration;

use tokio::sync::watch;

/// Exit status after a second signal: 128 + SIGINT, as shells report it.
const FORCED_EXIT: i32 = 130;

/// A one-way flag: raised once, seen by every listener.
#[derive(Clone)]
struct Flag(watch::Receiver<bool>);

impl Flag {
    fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

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

/// Listens for the end of the drain: deliveries stop waiting.
#[derive(Clone)]
pub(crate) struct Abort(Flag);

impl Abort {
    pub(crate) fn is_set(&self) -> bool {
        self.0.is_raised()
    }

    /// Resolves once the abort fired. Cancel-safe, for `select!`.
    pub(crate) async fn fired(&self) {
        self.0.clone().raised().await
    }

    /// A new abort, and the trigger that fires it.
    pub(crate) fn new() -> (Trigger, Abort) {
        let (trigger, flag) = flag();
        (trigger, Abort(flag))
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
        if wait_for_signal().await.is_ok() {
            tracing::error!(
                "second signal: exiting now without draining; uncommitted events will be read again"
            );
            std::process::exit(FORCED_EXIT);
        }
    });
    (handle, shutdown)
}

async fn wait_for_signal() -> std::io::Result<()> {
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

    #[tokio::test]
    async fn abort_wakes_every_waiter() {
        let (handle, abort) = Abort::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let abort = abort.clone();
                tokio::spawn(async move { abort.fired().await })
            })
            .collect();
        handle.raise();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("woken")
                .expect("task");
        }
        assert!(abort.is_set());
    }
}
