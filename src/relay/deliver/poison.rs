//! Poison or brownout: whether an alert that keeps failing is the problem,
//! or the target is.
//!
//! A *poison* alert fails where the other alerts of its route get
//! through: the target chokes on something in it. A *brownout* fails
//! alerts at random — a target answering 503 to 85% of requests lets one
//! in seven through, so every alert fails several times in a row while
//! others are delivered, and "it failed 10 times while others succeeded"
//! would call healthy alerts poison. So an alert's failure run is judged
//! against what the *other* requests of its route got meanwhile: if they
//! fail at rate p, a healthy alert fails n times in a row with chance pⁿ.
//! The alert is poison only when that chance is below
//! [`POISON_CHANCE`] *and* its run passed `retry.poison_after` (attempts,
//! or time). While every request fails (an outage) there is no evidence,
//! and nothing is poison.
//!
//! What becomes of a poison alert is the caller's: dead-lettered, or —
//! without a dead-letter topic — parked (`retry`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::relay::config::PoisonAfter;

/// Below this chance that a healthy alert would fail as often, a failing
/// alert is poison: one in a thousand.
pub(crate) const POISON_CHANCE: f64 = 1e-3;

/// A route's attempts so far: those the target answered as a working
/// target (delivered, or this alert refused) and those that failed
/// (outage, timeout, the target's fault). Throttled ones are neither.
#[derive(Default)]
pub(crate) struct Tally {
    worked: AtomicU64,
    failed: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub worked: u64,
    pub failed: u64,
}

impl Tally {
    pub(crate) fn record(&self, worked: bool) {
        let counter = if worked { &self.worked } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn now(&self) -> Counts {
        Counts {
            worked: self.worked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// One alert's run of failures, from its first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureRun {
    since: Instant,
    /// The route's tally when the run began, this first failure included.
    at_start: Counts,
    failures: u32,
}

/// Why an alert is poison, for its log line and dead letter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evidence {
    pub failures: u32,
    pub failing: Duration,
    /// The others' requests meanwhile: delivered (or answered), failed.
    pub others: Counts,
    pub chance: f64,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.others.worked + self.others.failed;
        write!(
            f,
            "it failed {} times in a row over {:.0?} while {} of the route's {total} other requests got through (a healthy alert fails so often by chance {})",
            self.failures,
            self.failing,
            self.others.worked,
            odds(self.chance)
        )
    }
}

fn odds(chance: f64) -> String {
    if chance <= 0.0 {
        "never".into()
    } else {
        format!("once in {:.0}", (1.0 / chance).min(1e18))
    }
}

impl FailureRun {
    /// The run begins with a failure; `tally` already counts it.
    pub(crate) fn start(tally: Counts, at: Instant) -> Self {
        Self {
            since: at,
            at_start: tally,
            failures: 1,
        }
    }

    /// Another failure of the alert (already in the route's tally).
    pub(crate) fn failed(&mut self) {
        self.failures += 1;
    }

    /// The evidence that the alert is poison, if there is enough of it.
    pub(crate) fn poison(&self, tally: Counts, budget: &PoisonAfter) -> Option<Evidence> {
        let others = Counts {
            worked: tally.worked.saturating_sub(self.at_start.worked),
            // Its own failures after the first are in the tally too.
            failed: tally
                .failed
                .saturating_sub(self.at_start.failed)
                .saturating_sub(u64::from(self.failures - 1)),
        };
        // Every other request failed too: an outage, not this alert.
        if others.worked == 0 {
            return None;
        }
        let failing = self.since.elapsed();
        let by_attempts = budget.attempts > 0 && self.failures >= budget.attempts;
        let by_time = !budget.time.is_zero() && self.failures >= 2 && failing >= budget.time;
        if !by_attempts && !by_time {
            return None;
        }
        let chance = chance_of_run(others, self.failures);
        (chance < POISON_CHANCE).then_some(Evidence {
            failures: self.failures,
            failing,
            others,
            chance,
        })
    }
}

/// The chance that a healthy alert fails `n` times in a row when the other
/// requests failed as `others` did: pⁿ, p estimated with one imagined
/// success and failure each (so a few requests are weak evidence).
pub(crate) fn chance_of_run(others: Counts, n: u32) -> f64 {
    let p = (others.failed as f64 + 1.0) / ((others.worked + others.failed) as f64 + 2.0);
    p.powi(n.min(i32::MAX as u32) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(attempts: u32) -> PoisonAfter {
        PoisonAfter {
            attempts,
            time: Duration::ZERO,
        }
    }

    /// Runs `n` failures of one alert while the others get `worked` and
    /// `failed` answers.
    fn judge(n: u32, worked: u64, failed: u64, b: &PoisonAfter) -> Option<Evidence> {
        let start = Counts {
            worked: 100,
            failed: 7,
        };
        let mut run = FailureRun::start(start, Instant::now());
        for _ in 1..n {
            run.failed();
        }
        let now = Counts {
            worked: start.worked + worked,
            failed: start.failed + failed + u64::from(n - 1),
        };
        run.poison(now, b)
    }

    #[test]
    fn an_alert_failing_where_others_succeed_is_poison_after_its_budget() {
        assert_eq!(judge(9, 40, 0, &budget(10)), None, "within the budget");
        let e = judge(10, 40, 0, &budget(10)).expect("poison");
        assert_eq!(e.failures, 10);
        assert_eq!(
            e.others,
            Counts {
                worked: 40,
                failed: 0
            }
        );
        assert!(
            e.to_string()
                .contains("while 40 of the route's 40 other requests got through"),
            "{e}"
        );
    }

    /// 85% of requests fail at random: every alert has runs of 10 while
    /// others get through, and none of them is poison.
    #[test]
    fn a_brownout_makes_no_alert_poison() {
        for n in [10, 20, 40] {
            assert_eq!(judge(n, 15, 85, &budget(10)), None, "{n} failures");
        }
        // Only a run no healthy alert would have: 0.85^43 < 1/1000.
        assert!(judge(45, 15, 85, &budget(10)).is_some());
    }

    #[test]
    fn an_outage_makes_no_alert_poison() {
        assert_eq!(judge(1000, 0, 500, &budget(2)), None);
        let time = PoisonAfter {
            attempts: 0,
            time: Duration::ZERO,
        };
        assert_eq!(judge(50, 50, 0, &time), None, "no budget: never poison");
    }
}
