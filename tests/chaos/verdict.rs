//! What a scenario's run means: for every alert the stream sent, when it
//! first arrived and how often the target *processed* it (a 2xx applied,
//! whether or not the relay still waited for the answer: a request answered
//! after the relay gave up on it is a duplicate too); lost, duplicated, out
//! of order, worst delay — and one row of the README's Reliability table.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use support::http_target::{Request, Target};
use support::small_target::SmallTarget;
use support::stream::Sent;

/// A target whose processed requests a verdict reads.
pub trait Processed {
    /// Every request, in arrival order.
    fn requests(&self) -> Vec<Request>;
    /// What to print when the verdict fails.
    fn dump(&self) -> String;
}

impl Processed for Target {
    fn requests(&self) -> Vec<Request> {
        Target::requests(self)
    }
    fn dump(&self) -> String {
        Target::dump(self)
    }
}

impl Processed for SmallTarget {
    fn requests(&self) -> Vec<Request> {
        SmallTarget::requests(self)
    }
    fn dump(&self) -> String {
        let rs = SmallTarget::requests(self);
        format!("{} requests processed by the small target", rs.len())
    }
}

/// A 2xx whose effect the target applied.
fn processed(r: &Request) -> bool {
    (200..300).contains(&r.status) && r.applied_at.is_some()
}

#[derive(Debug)]
pub struct Verdict {
    pub events: usize,
    /// Sent, never answered 2xx.
    pub lost: Vec<String>,
    /// 2xx answers beyond the first, over all events.
    pub duplicated: usize,
    /// Alerts whose events first arrived out of offset order.
    pub disorder: Vec<String>,
    /// Alerts whose last 2xx arrival is not their newest event: the
    /// target's final state of the alert is wrong (a trigger landing after
    /// its recovery leaves it open).
    pub stale: Vec<String>,
    /// Arrivals of an older event after a newer one of the same alert, the
    /// first arrivals aside: in-order replays after a crash or a hand-over
    /// (reported; the final state is what must be right).
    pub replayed: usize,
    pub worst_delay: Duration,
}

impl Verdict {
    pub fn of(sent: &[Sent], target: &impl Processed) -> Self {
        let delivered: Vec<Request> = target.requests().into_iter().filter(processed).collect();
        let mut first: HashMap<&str, &Request> = HashMap::new();
        let mut answers: HashMap<&str, usize> = HashMap::new();
        for r in &delivered {
            first.entry(r.key()).or_insert(r);
            *answers.entry(r.key()).or_default() += 1;
        }
        let mut lost = Vec::new();
        let mut duplicated = 0;
        let mut worst_delay = Duration::ZERO;
        // Per alert: (arrival sequence, offset) of each event's first
        // arrival; the same alert's events share a partition.
        let mut per_alert: BTreeMap<&str, Vec<(usize, i64)>> = BTreeMap::new();
        for s in sent {
            let Some(r) = first.get(s.key.as_str()) else {
                lost.push(s.key.clone());
                continue;
            };
            duplicated += answers[s.key.as_str()] - 1;
            worst_delay = worst_delay.max(r.at.saturating_duration_since(s.at));
            per_alert
                .entry(r.alert_id())
                .or_default()
                .push((r.seq, s.offset));
        }
        // Every processed request, in the order the target applied them,
        // by alert: its event's offset.
        let offset_of: HashMap<&str, i64> =
            sent.iter().map(|s| (s.key.as_str(), s.offset)).collect();
        let mut arrivals: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        let mut applied: Vec<&Request> = delivered.iter().collect();
        applied.sort_by_key(|r| r.applied_at);
        for r in applied {
            if let Some(o) = offset_of.get(r.key()) {
                arrivals.entry(r.alert_id()).or_default().push(*o);
            }
        }
        let mut stale = Vec::new();
        let mut replayed = 0;
        for (alert, offsets) in &arrivals {
            let newest = offsets.iter().max().copied().unwrap_or_default();
            if offsets.last() != Some(&newest) {
                stale.push(format!("{alert}: arrivals by offset {offsets:?}"));
            }
            let mut seen = i64::MIN;
            for o in offsets {
                if *o < seen {
                    replayed += 1;
                }
                seen = seen.max(*o);
            }
        }
        let disorder = per_alert
            .into_iter()
            .filter_map(|(alert, mut arrivals)| {
                arrivals.sort();
                let in_order = arrivals.windows(2).all(|w| w[0].1 < w[1].1);
                (!in_order).then(|| format!("{alert}: {arrivals:?}"))
            })
            .collect();
        Self {
            events: sent.len(),
            lost,
            duplicated,
            disorder,
            stale,
            replayed,
            worst_delay,
        }
    }

    /// Asserts nothing lost, no disorder, at most `max_duplicated`
    /// duplicates and a worst delay within `max_delay`; prints the row.
    #[track_caller]
    pub fn assert(
        &self,
        scenario: &str,
        max_duplicated: usize,
        max_delay: Duration,
        target: &impl Processed,
    ) {
        println!(
            "| {scenario} | {} | {} | {} | {:.1} s |",
            self.events,
            self.lost.len(),
            self.duplicated,
            self.worst_delay.as_secs_f64()
        );
        assert!(
            self.lost.is_empty(),
            "{scenario}: {} of {} lost: {:?}\n{}",
            self.lost.len(),
            self.events,
            self.lost,
            target.dump()
        );
        assert!(
            self.disorder.is_empty(),
            "{scenario}: alerts out of order: {:?}",
            self.disorder
        );
        assert!(
            self.stale.is_empty(),
            "{scenario}: the target's last word on an alert is not its newest event: {:?}",
            self.stale
        );
        if self.replayed > 0 {
            println!(
                "{scenario}: {} older events arrived again after newer ones (in-order replays)",
                self.replayed
            );
        }
        assert!(
            self.duplicated <= max_duplicated,
            "{scenario}: {} duplicates (at most {max_duplicated})",
            self.duplicated
        );
        assert!(
            self.worst_delay <= max_delay,
            "{scenario}: worst alert delay {:?} (at most {max_delay:?})",
            self.worst_delay
        );
    }
}
