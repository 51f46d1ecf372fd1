//! systemd integration (`Type=notify`): READY once consuming, STOPPING on
//! shutdown, and WATCHDOG pings only while the consume loop is alive, so a
//! wedged relay is restarted. Outside systemd every call is a no-op.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

pub(crate) fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub(crate) fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

pub(crate) fn status(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(status)]);
}

/// The consume loop's heartbeat: milliseconds since `start` at its last turn.
#[derive(Clone)]
pub(crate) struct Heartbeat {
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Heartbeat {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn beat(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Pings the watchdog at half its interval while the heartbeat is fresh.
pub(crate) fn spawn_watchdog(heartbeat: Heartbeat) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            if heartbeat.age() < interval {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    "consume loop stalled for {:?}; not pinging the watchdog",
                    heartbeat.age()
                );
            }
        }
    });
}
