//! A route's delivery side: its webhook client, its pace (`rate_limit`),
//! and what its attempts tell the operator — metrics labelled with the
//! route's name, and the route's share of readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::pace::Pace;
use super::webhook::{Attempt, AttemptObserver, Webhook};
use crate::relay::telemetry::Totals;

pub(crate) struct Target {
    /// The route's index: what its jobs are ordered by (`OrderKey`).
    pub id: usize,
    /// The route's name: logs, metrics labels, the dead letter's
    /// `kbridge.route` header.
    pub name: Arc<str>,
    pub webhook: Webhook,
    pub pace: Option<Pace>,
    /// Whether idempotency keys name the route: with `[[route]]`, one event
    /// may go to several routes, each its own request.
    keyed_by_route: bool,
    /// The last attempt failed as the target's fault (not ready).
    failing: AtomicBool,
    totals: Arc<Totals>,
}

impl Target {
    pub(crate) fn new(
        id: usize,
        name: &str,
        webhook: Webhook,
        pace: Option<Pace>,
        keyed_by_route: bool,
        totals: Arc<Totals>,
    ) -> Self {
        Self {
            id,
            name: Arc::from(name),
            webhook,
            pace,
            keyed_by_route,
            failing: AtomicBool::new(false),
            totals,
        }
    }

    /// The `Idempotency-Key` of one request: the event's coordinates
    /// (`topic-partition-offset`), then, with routes, the route's name, and
    /// for a map of several outputs the output's number (1-based) — stable
    /// across retries and restarts, distinct per request.
    pub(crate) fn idempotency_key(
        &self,
        coordinates: &str,
        output: usize,
        outputs: usize,
    ) -> String {
        let mut key = coordinates.to_string();
        if self.keyed_by_route {
            key.push('/');
            key.push_str(&self.name);
        }
        if outputs > 1 {
            key.push('#');
            key.push_str(&(output + 1).to_string());
        }
        key
    }
}

/// Attempts feed the metrics (with the route's label) and readiness: the
/// relay is not ready while any route's target fails as a target.
impl AttemptObserver for Target {
    fn attempt(&self, attempt: &Attempt, elapsed: Duration) {
        let target_failing = self.totals.attempt(&self.name, attempt, elapsed);
        let was = self.failing.swap(target_failing, Ordering::Relaxed);
        if was != target_failing {
            self.totals.target_failing(target_failing);
        }
    }

    fn waiting(&self, delta: i64) {
        self.totals.waiting(delta);
    }
}
