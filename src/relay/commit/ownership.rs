//! One ownership of one partition: from the group assigning it to this
//! instance until it is revoked (or the relay stops).
//!
//! Every event is taken under the ownership current at intake, and its
//! delivery task listens to it. A revoke ends it in two steps, so that an
//! alert of a partition that moved is never sent by two owners at once — an
//! old owner's late retry of a trigger must not land after the new owner
//! sent the recovery:
//!
//! 1. [`Ownership::end`]: no attempt starts any more and every retry wait
//!    stops at once; a request already on the wire may finish. The revoke
//!    waits (bounded) until no delivery task of the ownership runs.
//! 2. [`Ownership::revoke`]: a request still on the wire is dropped. The
//!    revoke callback then returns, and only after that can the group give
//!    the partition to its next owner.
//!
//! The drain's abort ends and revokes every ownership at once: their tokens
//! are children of the relay's abort token.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// Cloned once per event (every job carries its ownership): one `Arc`, so
/// a clone is one atomic increment — a `CancellationToken` clone would
/// take its tree's mutex.
#[derive(Clone)]
pub(crate) struct Ownership {
    /// Changes on every (re)assignment, so that late completions from a
    /// previous ownership are ignored.
    pub epoch: u64,
    signals: Arc<Signals>,
}

struct Signals {
    ending: CancellationToken,
    revoked: CancellationToken,
    /// The delivery tasks of the ownership that are running.
    running: Mutex<usize>,
    idle: Condvar,
}

/// Held by a delivery task while it runs.
pub(crate) struct RunGuard(Arc<Signals>);

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut n = self.0.running.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

impl Ownership {
    /// A new ownership; `abort` ends and revokes it too.
    pub(crate) fn new(epoch: u64, abort: &CancellationToken) -> Self {
        let revoked = abort.child_token();
        Self {
            epoch,
            signals: Arc::new(Signals {
                ending: revoked.child_token(),
                revoked,
                running: Mutex::new(0),
                idle: Condvar::new(),
            }),
        }
    }

    /// Marks a delivery task running until the guard drops. Take it before
    /// looking at [`is_ending`](Self::is_ending): a revoke that ends the
    /// ownership after that look then waits for the task.
    pub(crate) fn run(&self) -> RunGuard {
        *self
            .signals
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner()) += 1;
        RunGuard(self.signals.clone())
    }

    /// Step 1 of a revoke: no new attempt, no more retry waits.
    pub(crate) fn end(&self) {
        self.signals.ending.cancel();
    }

    /// Step 2 of a revoke: requests on the wire are dropped.
    pub(crate) fn revoke(&self) {
        self.signals.revoked.cancel();
    }

    pub(crate) fn is_ending(&self) -> bool {
        self.signals.ending.is_cancelled()
    }

    /// Whether step 2 of a revoke happened: nothing may be sent any more.
    pub(crate) fn is_revoked(&self) -> bool {
        self.signals.revoked.is_cancelled()
    }

    /// Resolves once the ownership is ending. Cancel-safe.
    pub(crate) async fn ending(&self) {
        self.signals.ending.cancelled().await
    }

    /// Resolves once the ownership is revoked. Cancel-safe.
    pub(crate) async fn revoked(&self) {
        self.signals.revoked.cancelled().await
    }

    /// Waits until no delivery task of this ownership runs, or `deadline`;
    /// true if none runs. Blocking: for the revoke callback.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut n = self
            .signals
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .signals
                .idle
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_abort_ends_and_revokes_every_ownership() {
        let abort = CancellationToken::new();
        let o = Ownership::new(1, &abort);
        assert!(!o.is_ending());
        abort.cancel();
        assert!(o.is_ending());
        assert!(o.signals.revoked.is_cancelled());
    }

    #[test]
    fn ending_does_not_revoke_but_revoking_ends() {
        let abort = CancellationToken::new();
        let a = Ownership::new(1, &abort);
        a.end();
        assert!(!a.signals.revoked.is_cancelled());
        let b = Ownership::new(2, &abort);
        b.revoke();
        assert!(b.is_ending());
        assert!(!abort.is_cancelled());
    }

    #[test]
    fn wait_idle_returns_when_the_last_task_stops() {
        let o = Ownership::new(1, &CancellationToken::new());
        assert!(o.wait_idle(Instant::now()), "nothing runs");
        let guard = o.run();
        assert!(!o.wait_idle(Instant::now() + Duration::from_millis(20)));
        let t = std::thread::spawn(move || drop(guard));
        assert!(o.wait_idle(Instant::now() + Duration::from_secs(10)));
        t.join().expect("thread");
    }
}
