//! A route's delivery side: its webhook client (with the route's answer
//! rules), its pace (`rate_limit`), and what its attempts tell the
//! operator — metrics labelled with the route's name, and the route's share
//! of readiness. Built once per route at start; every job of the route
//! reaches it through its `LiveRoute`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::answer::{Trouble, Verdict};
use super::answer_rules::AnswerRules;
use super::http::{Attempt, AttemptObserver, Webhook};
use super::pace::Pace;
use super::poison::{Counts, Tally};
use super::throttling::Throttling;
use crate::relay::config::{RateLimit, RouteConfig, StatusPolicy};
use crate::relay::telemetry::Totals;

pub(crate) struct Target {
    /// The route's name: logs, metrics labels, the dead letter's
    /// `kbridge.route` header.
    pub name: Arc<str>,
    pub webhook: Webhook,
    pub pace: Pace,
    /// Whether idempotency keys name the route: with `[[route]]`, one event
    /// may go to several routes, each its own request.
    keyed_by_route: bool,
    /// For `kbridge check`: the rate limit, the rules, the URL.
    description: String,
    /// The last attempt failed as the target's fault (not ready).
    failing: AtomicBool,
    /// What the route's attempts came to: the evidence poison detection
    /// weighs an alert's failures against.
    tally: Tally,
    /// Whether the target throttles the route or a few requests.
    pub throttling: Throttling,
    totals: Arc<Totals>,
}

/// What every route's target shares: the relay-wide settings that shape a
/// webhook client.
pub(crate) struct TargetSettings {
    /// `concurrency`: requests in flight at once, per route.
    pub concurrency: usize,
    /// `retry.retry_on` / `retry.reject_on`.
    pub policy: StatusPolicy,
    /// Whether the config has `[[route]]`s (idempotency keys name the route).
    pub keyed_by_route: bool,
}

impl Target {
    /// The route's HTTP client: its headers, secrets, TLS files and answer
    /// rules, read and built now (`run`, and `check` to validate them).
    pub(crate) fn new(
        route: &RouteConfig,
        settings: &TargetSettings,
        totals: Arc<Totals>,
    ) -> Result<Self> {
        let name = &route.name;
        let webhook = &route.webhook;
        let rules = answer_rules(route)?;
        let client = Webhook::new(
            webhook,
            settings.concurrency,
            settings.policy.clone(),
            Arc::new(rules),
        )
        .map_err(|e| e.context(format!("route '{name}'")))?;
        Ok(Self {
            name: Arc::from(name.as_str()),
            pace: Pace::new(route.rate_limit),
            keyed_by_route: settings.keyed_by_route,
            description: describe(route.rate_limit, webhook, client.proxy()),
            webhook: client,
            failing: AtomicBool::new(false),
            tally: Tally::default(),
            throttling: Throttling::default(),
            totals,
        })
    }

    /// The route's attempts so far (see `poison`).
    pub(crate) fn tally(&self) -> Counts {
        self.tally.now()
    }

    /// Where the route's requests go, for `kbridge check`: the URL (its
    /// credentials redacted), with the rate limit and the answer rules.
    pub(crate) fn describe(&self) -> &str {
        &self.description
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

/// The route's answer rules (`success`, `reject`), compiled; an error
/// names the route. `run` calls it before anything starts, so that a
/// mistake in a rule is a configuration error.
pub(crate) fn answer_rules(route: &RouteConfig) -> Result<AnswerRules> {
    AnswerRules::new(&route.webhook).map_err(|e| anyhow!("route '{}': {e}", route.name))
}

fn describe(
    rate_limit: Option<RateLimit>,
    webhook: &crate::relay::config::WebhookConfig,
    proxy: Option<&super::http::Proxy>,
) -> String {
    let mut extras = Vec::new();
    if let Some(p) = proxy {
        extras.push(format!("through the proxy {} from {}", p.shown, p.source));
    }
    if let Some(r) = rate_limit {
        extras.push(format!("at most {} requests per {:?}", r.requests, r.per));
    }
    if webhook.success.is_some() {
        extras.push("success rule".to_string());
    }
    if webhook.reject.is_some() {
        extras.push("reject rule".to_string());
    }
    if webhook.throttled.is_some() {
        extras.push(format!(
            "throttled rule, pausing {}",
            crate::time_spec::show_duration(webhook.throttle_pause)
        ));
    }
    let url = crate::redact::url(&webhook.url);
    if extras.is_empty() {
        url
    } else {
        format!("{url} ({})", extras.join(", "))
    }
}

/// Attempts feed the metrics (with the route's label) and readiness: the
/// relay is not ready while any route's target fails as a target.
impl AttemptObserver for Target {
    fn attempt(&self, attempt: &Attempt, elapsed: Duration) {
        if attempt.status().is_some() {
            self.throttling.answered(matches!(
                attempt.verdict,
                Verdict::Retry {
                    trouble: Trouble::Throttled,
                    ..
                }
            ));
        }
        match &attempt.verdict {
            Verdict::Delivered | Verdict::Rejected { .. } => self.tally.record(true),
            Verdict::Retry {
                trouble: Trouble::Throttled,
                ..
            } => {}
            Verdict::Retry { .. } => self.tally.record(false),
        }
        let target_failing = self.totals.attempt(&self.name, attempt, elapsed);
        let was = self.failing.swap(target_failing, Ordering::Relaxed);
        if was != target_failing {
            self.totals.target_failing(target_failing);
        }
    }

    fn waiting(&self, delta: i64) {
        self.totals.waiting(delta);
    }

    fn paused(&self) {
        self.totals.paused(&self.name);
    }

    fn parked(&self, delta: i64) {
        self.totals.parked(delta);
    }
}
