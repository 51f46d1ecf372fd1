//! Whether a target throttles the route, or paces a few requests.
//!
//! A 429 can mean either. A chat robot over its quota, or an API gateway
//! over a tenant's limit, refuses everything for a while: every alert
//! waiting on its own would keep asking, so the whole route pauses (and a
//! robot's "too fast" code in an HTTP 200, the route's `throttled` rule,
//! always means that). A small in-house target that answers 429 with
//! `Retry-After: 1` to one request in ten while it takes the others is
//! pacing *that* request: pausing the route for each would cut the relay
//! to a tenth of its rate (seen: 300 alerts/s became 7/s, delays of
//! minutes). So a 429 pauses the route only when most of the route's
//! recent answers are throttled; otherwise only its alert waits its
//! `Retry-After`.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many recent answers are weighed.
const WINDOW: u32 = 32;

/// How many answers a route needs before a 429 may pause it: the first
/// 429 after a start says nothing about the others.
const SAMPLE: u64 = 4;

/// The route's last [`WINDOW`] answers, one bit each (1: throttled), and
/// how many there were (up to the window) in the top byte.
#[derive(Default)]
pub(crate) struct Throttling {
    recent: AtomicU64,
}

const BITS: u64 = (1 << WINDOW) - 1;

impl Throttling {
    /// Records an answer (any answer: a failure too).
    pub(crate) fn answered(&self, throttled: bool) {
        let _ = self
            .recent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let seen = ((v >> 56) + 1).min(u64::from(WINDOW));
                let bits = ((v << 1) | u64::from(throttled)) & BITS;
                Some(seen << 56 | bits)
            });
    }

    /// Whether at least half the recent answers — of [`SAMPLE`] at least —
    /// were throttled: the target throttles the route, not a request here
    /// and there. (Before that, a throttled alert waits on its own.)
    pub(crate) fn widely(&self) -> bool {
        let v = self.recent.load(Ordering::Relaxed);
        let seen = v >> 56;
        let throttled = u64::from((v & BITS).count_ones());
        seen >= SAMPLE && throttled * 2 >= seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_ten_is_pacing_and_most_is_throttling() {
        let t = Throttling::default();
        assert!(!t.widely(), "nothing seen");
        for i in 0..100 {
            t.answered(i % 10 == 9);
            assert!(!t.widely(), "answer {i}");
        }
        // The last 32: 20 of the one-in-ten (2 throttled) and 12.
        for _ in 0..12 {
            t.answered(true);
        }
        assert!(!t.widely(), "14 of 32");
        for _ in 0..2 {
            t.answered(true);
        }
        assert!(t.widely(), "16 of 32");
        // A fresh route: one 429 says nothing yet; four in a row do.
        let fresh = Throttling::default();
        fresh.answered(true);
        assert!(!fresh.widely());
        for _ in 0..3 {
            fresh.answered(true);
        }
        assert!(fresh.widely());
    }
}
