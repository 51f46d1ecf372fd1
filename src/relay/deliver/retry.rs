//! Retries: how long to wait between attempts and when to give up.
//!
//! Kept apart from request building (`webhook.rs`): exponential backoff
//! with jitter from `backon`, stretched to honour the target's
//! `Retry-After`, without end by default, because an alert that is late is
//! better than one that is lost. When the partition's ownership ends (a
//! revoke, the drain's abort) no attempt starts and the wait stops; when it
//! is revoked, the attempt on the wire is dropped too.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;

use super::answer::{Rejection, Trouble, Verdict};
use super::http::AttemptObserver;
use super::poison::{Evidence, FailureRun};
use super::target::Target;
use crate::relay::commit::Ownership;
use crate::relay::config::RetryConfig;

/// The longest `Retry-After` we honour; a target asking for more is
/// probably misconfigured, and the backoff cap applies again.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Delivery {
    Delivered {
        attempts: u32,
        status: Option<u16>,
    },
    Rejected {
        kind: Rejection,
        status: Option<u16>,
        reason: String,
    },
    /// `max_attempts` reached: the event goes to the dead-letter topic.
    GaveUp {
        attempts: u32,
        /// The last answer's HTTP status, if it had one.
        status: Option<u16>,
        reason: String,
    },
    /// It kept failing past `poison_after` where the route's other
    /// requests got through (`poison`): dead-lettered so it cannot pin its
    /// partition.
    Poison {
        attempts: u32,
        status: Option<u16>,
        evidence: Evidence,
        reason: String,
    },
    /// The partition's ownership ended first (a revoke, the drain's
    /// abort): not handled, not committed.
    Interrupted,
}

pub(crate) fn backoff(cfg: &RetryConfig) -> impl Iterator<Item = Duration> + use<> {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(cfg.initial_backoff)
        .with_max_delay(cfg.max_backoff)
        .without_max_times()
        .build()
}

/// The wait before the next attempt: the backoff, or longer when the target
/// said so.
pub(crate) fn next_delay(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(ra) => backoff.max(ra.min(MAX_RETRY_AFTER)),
        None => backoff,
    }
}

/// Delivers one request of an alert to its route's target, at the route's
/// pace, retrying transient failures. `can_dead_letter`: whether the route
/// has a dead-letter topic; without one, an alert past `max_attempts` or
/// found poison is parked rather than given up.
pub(crate) async fn deliver(
    target: &Target,
    cfg: &RetryConfig,
    body: Bytes,
    idempotency_key: &str,
    ownership: &Ownership,
    can_dead_letter: bool,
) -> Delivery {
    let webhook = &target.webhook;
    let observer: &dyn AttemptObserver = target;
    let mut delays = backoff(cfg);
    let mut attempts = 0u32;
    // Attempts the target answered "too fast" (see Trouble::Throttled).
    let mut throttled = 0u32;
    // This alert's failures, judged against the route's other requests.
    let mut run: Option<FailureRun> = None;
    // Set once the alert is parked (see `Parked`).
    let mut parked: Option<Parked<'_>> = None;
    loop {
        // The route's turn (`rate_limit`), then a request slot
        // (`concurrency`); neither is taken once the ownership ends.
        tokio::select! {
            biased;
            _ = ownership.ending() => return Delivery::Interrupted,
            _ = target.pace.ready() => {}
        }
        let slot = tokio::select! {
            biased;
            _ = ownership.ending() => return Delivery::Interrupted,
            slot = webhook.slot() => slot,
        };
        attempts += 1;
        let started = std::time::Instant::now();
        let attempt = tokio::select! {
            biased;
            _ = ownership.revoked() => return Delivery::Interrupted,
            // Boxed: an attempt's state (hyper's request and answer) is
            // most of a delivery task's size, and a task's whole state is
            // copied when it is spawned and when it ends.
            attempt = Box::pin(webhook.post(slot, body.clone(), idempotency_key)) => attempt,
        };
        observer.attempt(&attempt, started.elapsed());
        let status = attempt.status();
        let (reason, after, trouble) = match attempt.verdict {
            Verdict::Delivered => return Delivery::Delivered { attempts, status },
            Verdict::Rejected { kind, reason } => {
                return Delivery::Rejected {
                    kind,
                    status,
                    reason,
                };
            }
            Verdict::Retry {
                reason,
                after,
                trouble,
            } => (reason, after, trouble),
        };
        if trouble == Trouble::Throttled {
            // The target's state, not this alert's: neither `max_attempts`
            // nor the poison count sees it. A robot's "too fast" rule, or
            // 429s to most requests, pause the route; a 429 here and there
            // paces its own request (see `throttling`).
            throttled += 1;
            let pause = after
                .map(|a| a.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| delays.next().unwrap_or(cfg.max_backoff));
            if status != Some(429) || target.throttling.widely() {
                if target.pace.pause(pause) {
                    tracing::warn!(
                        route = %target.name,
                        pause = ?pause,
                        "the target is throttling; the route pauses: {reason}"
                    );
                    observer.paused();
                }
                continue;
            }
            tracing::debug!(
                key = idempotency_key,
                attempt = attempts,
                retry_in = ?pause,
                "the target asks this request to wait: {reason}"
            );
            if !wait_turn(observer, ownership, pause).await {
                return Delivery::Interrupted;
            }
            continue;
        }
        let failures = match &mut run {
            None => run.insert(FailureRun::start(target.tally(), started)),
            Some(r) => {
                r.failed();
                r
            }
        };
        if parked.is_none() {
            let give_up = if cfg.max_attempts > 0 && attempts - throttled >= cfg.max_attempts {
                Some(Delivery::GaveUp {
                    attempts,
                    status,
                    reason: reason.clone(),
                })
            } else {
                failures
                    .poison(target.tally(), &cfg.poison_after)
                    .map(|evidence| Delivery::Poison {
                        attempts,
                        status,
                        evidence,
                        reason: reason.clone(),
                    })
            };
            match give_up {
                Some(given_up) if can_dead_letter => return given_up,
                // Without a dead-letter topic, giving up would lose the
                // alert for a failure that may pass: parked instead.
                Some(given_up) => {
                    let why = parked_because(&given_up);
                    parked = Some(Parked::new(target, idempotency_key, &why));
                }
                None => {}
            }
        }
        // A parked alert is tried at the slowest pace, the others' turn
        // first.
        let wait = if parked.is_some() {
            next_delay(cfg.max_backoff, after)
        } else {
            next_delay(delays.next().unwrap_or(cfg.max_backoff), after)
        };
        match trouble {
            Trouble::Unavailable | Trouble::Throttled => tracing::warn!(
                key = idempotency_key,
                attempt = attempts,
                retry_in = ?wait,
                "webhook delivery failed, will retry: {reason}"
            ),
            // Nothing recovers by itself here: an error, saying what to fix.
            Trouble::Misconfigured => tracing::error!(
                key = idempotency_key,
                attempt = attempts,
                retry_in = ?wait,
                "the webhook refuses the relay, not this alert: {reason}"
            ),
        }
        if !wait_turn(observer, ownership, wait).await {
            return Delivery::Interrupted;
        }
    }
}

/// Waits `wait` before the alert's next attempt, counted as waiting;
/// false when the ownership ended meanwhile.
async fn wait_turn(observer: &dyn AttemptObserver, ownership: &Ownership, wait: Duration) -> bool {
    observer.waiting(1);
    let ended = tokio::select! {
        biased;
        _ = ownership.ending() => true,
        _ = tokio::time::sleep(wait) => false,
    };
    observer.waiting(-1);
    !ended
}

/// An alert parked: past `max_attempts` or found poison on a route
/// without a dead-letter topic, where giving up would lose it for a
/// failure that may pass. It is retried every `max_backoff` while the
/// others flow, and holds what any event in processing holds: its
/// partition's commit point, its `max_pending` slot, and its alert id's
/// queue (later events of that id wait behind it, in order). Counted in
/// `kbridge_parked_alerts` and `/readyz` while it lasts, however it ends.
pub(super) struct Parked<'a> {
    observer: &'a dyn AttemptObserver,
}

impl<'a> Parked<'a> {
    /// Parks an alert of `target`'s route: says so (`why`: what it was
    /// past) and counts it until dropped.
    pub(super) fn new(target: &'a Target, key: &str, why: &str) -> Self {
        tracing::error!(
            event = key,
            route = %target.name,
            "alert parked: {why}; without a dead-letter topic it is not given up, but retried every retry.max_backoff while the others flow (it holds its partition's commit point and its alert id's queue): fix the target or the alert, or set dead_letter_topic"
        );
        let observer: &dyn AttemptObserver = target;
        observer.parked(1);
        Self { observer }
    }
}

/// Why a delivery that would have been given up is parked instead.
fn parked_because(given_up: &Delivery) -> String {
    match given_up {
        Delivery::GaveUp {
            attempts, reason, ..
        } => {
            format!("retry.max_attempts ({attempts}) reached: {reason}")
        }
        Delivery::Poison {
            evidence, reason, ..
        } => format!("a poison alert ({evidence}): {reason}"),
        _ => String::new(),
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.observer.parked(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let cfg = RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_attempts: 0,
            ..RetryConfig::default()
        };
        let delays: Vec<Duration> = backoff(&cfg).take(20).collect();
        assert_eq!(delays.len(), 20, "without end");
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(4)),
            "{delays:?}"
        );
        assert!(delays[19] >= Duration::from_secs(2));
    }

    #[test]
    fn retry_after_stretches_the_wait() {
        let b = Duration::from_millis(300);
        assert_eq!(next_delay(b, None), b);
        assert_eq!(
            next_delay(b, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(next_delay(b, Some(Duration::ZERO)), b);
        assert_eq!(
            next_delay(b, Some(Duration::from_secs(86400))),
            MAX_RETRY_AFTER
        );
    }
}
