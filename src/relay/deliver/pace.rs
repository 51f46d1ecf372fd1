//! A route's rate limit toward its target (`rate_limit = "20/min"`), in
//! this process: each request waits until at least period / N has passed
//! since the previous one started — 3 s for 20/min, a burst of one (GCRA) —
//! so no window of the period sees more than N from this process, the way
//! chat robots count (DingTalk and WeCom refuse the 21st message of a
//! minute, and DingTalk then blocks the robot for minutes). Several
//! instances in one group each keep their own pace: the limit is per
//! process, not per fleet. An event over the rate waits, holding its
//! processing slot; when the window fills, consumption pauses
//! (`source::Backpressure`): nothing is dropped.
//!
//! Retries count too: the target counts every request it receives.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::relay::config::RateLimit;

pub(crate) struct Pace {
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl Pace {
    pub(crate) fn new(limit: RateLimit) -> Self {
        // A cell every period / requests, and no burst beyond one: a burst
        // would let a full period's share out at once after a quiet time,
        // and the next period's share right after.
        let spacing = limit.per / limit.requests.max(1);
        let quota = Quota::with_period(spacing.max(std::time::Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(NonZeroU32::MIN);
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Waits until the next request may go. Cancel-safe: a wait dropped
    /// before it returns takes no request's turn.
    pub(crate) async fn ready(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn requests_are_spaced_evenly() {
        let pace = Pace::new(RateLimit {
            requests: 20,
            per: Duration::from_secs(1),
        });
        let start = Instant::now();
        for _ in 0..6 {
            pace.ready().await;
        }
        // The first at once, then one every 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
    }
}
