//! Tests synchronise by polling for a condition under a bound, never by
//! bare sleeps: a sleep is either too short (flaky) or too long (slow).

use std::time::{Duration, Instant};

/// How long conditions on the broker (group membership, state) are awaited.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
