//! A route's pace toward its target: its rate limit, and its pauses.
//!
//! The rate limit (`rate_limit = "20/min"`), in this process: each request
//! waits until at least period / N has passed since the previous one
//! started — 3 s for 20/min, a burst of one (GCRA) — so no window of the
//! period sees more than N from this process, the way chat robots count
//! (DingTalk and WeCom refuse the 21st message of a minute, and DingTalk
//! then blocks the robot for minutes). Several instances in one group each
//! keep their own pace: the limit is per process, not per fleet. Retries
//! count too: the target counts every request it receives.
//!
//! A pause: when the target says it is throttling (HTTP 429, or the
//! route's `webhook.throttled` rule), no request of the route starts until
//! the pause ends — one "too fast" answer slows the whole route, rather
//! than every alert spending its attempts against a robot that refuses
//! them all (and whose block each refused request may prolong).
//!
//! An event over the rate or in a pause waits, holding its processing
//! slot; when the window fills, consumption pauses (`source::Backpressure`):
//! nothing is dropped.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::relay::config::RateLimit;

pub(crate) struct Pace {
    limiter: Option<(DefaultDirectRateLimiter, DefaultClock)>,
    /// The end of the current pause, in milliseconds since `epoch`; 0 or a
    /// time past: no pause.
    paused_until: AtomicU64,
    epoch: Instant,
}

impl Pace {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        let limiter = limit.map(|limit| {
            // A cell every period / requests, and no burst beyond one: a
            // burst would let a full period's share out at once after a
            // quiet time, and the next period's share right after.
            let spacing = limit.per / limit.requests.max(1);
            let quota = Quota::with_period(spacing.max(Duration::from_nanos(1)))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
                .allow_burst(NonZeroU32::MIN);
            let clock = DefaultClock::default();
            (RateLimiter::direct_with_clock(quota, clock.clone()), clock)
        });
        Self {
            limiter,
            paused_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Pauses the route for `d` from now (a pause already running longer
    /// stands). True when the route was not paused before: the caller says
    /// so once, not once per refused request.
    pub(crate) fn pause(&self, d: Duration) -> bool {
        let now = self.now_ms();
        let until = now.saturating_add(d.as_millis().min(u64::MAX as u128) as u64);
        let before = self.paused_until.fetch_max(until, Ordering::Relaxed);
        before <= now
    }

    /// How long the current pause still runs, if there is one.
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        let left = self
            .paused_until
            .load(Ordering::Relaxed)
            .saturating_sub(self.now_ms());
        (left > 0).then(|| Duration::from_millis(left))
    }

    /// Waits until the next request may go: the pause over, then the
    /// route's turn. Cancel-safe: a wait dropped before it returns takes no
    /// request's turn.
    pub(crate) async fn ready(&self) {
        loop {
            while let Some(left) = self.paused_for() {
                tokio::time::sleep(left).await;
            }
            let Some((limiter, clock)) = &self.limiter else {
                return;
            };
            match limiter.check() {
                // A pause may have begun while this request waited its turn.
                Ok(()) if self.paused_for().is_none() => return,
                Ok(()) => {}
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(clock.now())).await,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_spaced_evenly() {
        let pace = Pace::new(Some(RateLimit {
            requests: 20,
            per: Duration::from_secs(1),
        }));
        let start = Instant::now();
        for _ in 0..6 {
            pace.ready().await;
        }
        // The first at once, then one every 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_of_the_route() {
        let pace = Pace::new(None);
        pace.ready().await;
        assert!(pace.pause(Duration::from_millis(300)), "newly paused");
        assert!(!pace.pause(Duration::from_millis(100)), "already paused");
        let start = Instant::now();
        pace.ready().await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert_eq!(pace.paused_for(), None);
    }
}
