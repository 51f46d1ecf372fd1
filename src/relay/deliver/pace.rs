//! A route's pace toward its target: its rate limit, and its pauses.
//!
//! The rate limit (`rate_limit = "20/min"`) holds for the whole consumer
//! group, not per process: each instance takes the share of it that its
//! assigned partitions are of the route's partitions — two of six, a third
//! — re-shared on every assignment and revoke. Kafka's assignment is the
//! coordination: no instance talks to another, and because a cooperative
//! rebalance revokes a partition before it assigns it elsewhere, the shares
//! never add up to more than the whole. An instance's share is a whole
//! number of requests per period, rounded down (20/min over three
//! instances with two partitions each: 6 each, 18 in all) but at least one,
//! so a limit smaller than the number of instances can be passed (kbridge
//! warns).
//!
//! Within a process the requests are spaced evenly: each waits until
//! period / share has passed since the previous one started (a burst of
//! one), so no window of the period sees more than the share — the way chat
//! robots count (DingTalk and WeCom refuse the 21st message of a minute,
//! and DingTalk then blocks the robot for minutes). Retries count too: the
//! target counts every request it receives.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::relay::config::RateLimit;

pub(crate) struct Pace {
    limit: Option<RateLimit>,
    /// The gap between two requests of this process, in nanoseconds (0:
    /// no limit); follows the share.
    spacing_ns: AtomicU64,
    /// When the next request may start, in nanoseconds since `epoch`.
    next_ns: AtomicU64,
    /// The end of the current pause, in milliseconds since `epoch`; 0 or a
    /// time past: no pause.
    paused_until: AtomicU64,
    epoch: Instant,
}

impl Pace {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        let pace = Self {
            limit,
            spacing_ns: AtomicU64::new(0),
            next_ns: AtomicU64::new(0),
            paused_until: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        // The whole limit until the first assignment says otherwise.
        pace.set_share(1, 1);
        pace
    }

    /// The route's whole limit, for the group.
    pub(crate) fn limit(&self) -> Option<RateLimit> {
        self.limit
    }

    /// This process's share of the limit: it owns `owned` of the route's
    /// `total` partitions. Returns the requests per period it may send now
    /// (None without a limit).
    pub(crate) fn set_share(&self, owned: u32, total: u32) -> Option<u32> {
        let limit = self.limit?;
        let share = if total == 0 {
            limit.requests
        } else {
            ((u64::from(limit.requests) * u64::from(owned.min(total))) / u64::from(total)) as u32
        }
        .max(1);
        let spacing = limit.per.as_nanos() / u128::from(share);
        self.spacing_ns
            .store(spacing.min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
        Some(share)
    }

    /// Pauses the route for `d` from now (a pause already running longer
    /// stands). True when the route was not paused before: the caller says
    /// so once, not once per refused request.
    pub(crate) fn pause(&self, d: Duration) -> bool {
        let now = self.now_ms();
        let until = now.saturating_add(d.as_millis().min(u128::from(u64::MAX)) as u64);
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
            let spacing = self.spacing_ns.load(Ordering::Relaxed);
            if spacing == 0 {
                return;
            }
            let now = self.epoch.elapsed().as_nanos() as u64;
            let next = self.next_ns.load(Ordering::Relaxed);
            if next > now {
                tokio::time::sleep(Duration::from_nanos(next - now)).await;
                continue;
            }
            // This request's turn, unless another took it first.
            let taken = self.next_ns.compare_exchange(
                next,
                now.saturating_add(spacing),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            // A pause may have begun while this request waited its turn.
            if taken.is_ok() && self.paused_for().is_none() {
                return;
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

    fn limit(requests: u32, per: Duration) -> Option<RateLimit> {
        Some(RateLimit { requests, per })
    }

    #[tokio::test]
    async fn requests_are_spaced_evenly() {
        let pace = Pace::new(limit(20, Duration::from_secs(1)));
        let start = Instant::now();
        for _ in 0..6 {
            pace.ready().await;
        }
        // The first at once, then one every 50 ms.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_millis(600), "{took:?}");
    }

    #[test]
    fn a_share_follows_the_partitions_owned_rounded_down_at_least_one() {
        let pace = Pace::new(limit(20, Duration::from_secs(60)));
        assert_eq!(pace.set_share(2, 6), Some(6), "three instances: 18 in all");
        assert_eq!(pace.set_share(6, 6), Some(20));
        assert_eq!(pace.set_share(0, 6), Some(1));
        assert_eq!(pace.set_share(1, 100), Some(1), "at least one");
        assert_eq!(Pace::new(None).set_share(1, 2), None);
    }

    #[tokio::test]
    async fn a_smaller_share_spaces_requests_further() {
        let pace = Pace::new(limit(20, Duration::from_secs(1)));
        pace.set_share(1, 4); // 5/s: 200 ms apart
        let start = Instant::now();
        for _ in 0..3 {
            pace.ready().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(390), "{took:?}");
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
