//! A route as the relay runs it: what it does with an event (`route::Route`,
//! pure) beside where its requests go (`deliver::Target`: webhook client,
//! pace, readiness). Built once at start; every job holds its route's
//! `LiveRoute`, so nothing is looked up by index and per-route state (a
//! throttle pause, a share of a fleet-wide limit) has one home.

use std::sync::Arc;

use anyhow::Result;

use crate::relay::config::{RelayConfig, RetryConfig};
use crate::relay::deliver::{Target, TargetSettings, answer_rules};
use crate::relay::route::Route;
use crate::relay::storm::StormRoute;
use crate::relay::telemetry::Totals;

pub(crate) struct LiveRoute {
    /// The route's place in the configuration: what its jobs are ordered
    /// by (`commit::OrderKey`), with the alert's key.
    pub id: usize,
    pub route: Route,
    pub target: Target,
    /// The relay's `[retry]` with the route's `[route.retry]`.
    pub retry: RetryConfig,
    /// Where the route's dead letters go (its own, or the relay's); none:
    /// what cannot be delivered is dropped after its log line, and what
    /// may pass is parked.
    pub dead_letter_topic: Option<Arc<str>>,
    /// The relay's topics it takes (its `topics`, or all of them).
    sources: Vec<String>,
    /// Its storm stage (`[route.storm]`), if it has one.
    pub storm: Option<Arc<StormRoute>>,
}

/// What a route does with a message of a topic it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leg {
    /// Decide and deliver: a route without a storm stage.
    Direct,
    /// A storm route's source: re-keyed into its repartition topic.
    Forward,
    /// A storm route's repartition topic: decided against the alert's
    /// memory, then delivered.
    Storm,
}

impl LiveRoute {
    /// Every route of the configuration, compiled, with its webhook client
    /// built (header secrets and TLS files read now).
    pub(crate) fn build_all(cfg: &RelayConfig, totals: &Arc<Totals>) -> Result<Vec<Arc<Self>>> {
        cfg.route_configs()
            .iter()
            .enumerate()
            .map(|(id, rc)| {
                let retry = rc.retry(&cfg.retry);
                let settings = TargetSettings {
                    concurrency: cfg.concurrency,
                    policy: retry.status_policy()?,
                    keyed_by_route: !cfg.routes.is_empty(),
                };
                Ok(Arc::new(Self {
                    id,
                    sources: rc.topics.clone().unwrap_or_else(|| cfg.topics.clone()),
                    storm: StormRoute::compile(cfg, rc)?,
                    route: Route::compile(rc)?,
                    target: Target::new(rc, &settings, totals.clone())?,
                    dead_letter_topic: rc
                        .dead_letter_topic(cfg.dead_letter_topic.as_deref())
                        .map(Arc::from),
                    retry,
                }))
            })
            .collect()
    }

    /// Compiles what can be wrong in a configuration without reading a
    /// file or building a client: the routes' jq programs and their answer
    /// rules. `run` calls it first, so that a mistake exits 2.
    pub(crate) fn check_programs(cfg: &RelayConfig) -> Result<()> {
        for rc in cfg.route_configs().iter() {
            Route::compile(rc)?;
            answer_rules(rc)?;
            StormRoute::compile(cfg, rc)?;
        }
        Ok(())
    }

    /// What the route does with a message of `topic`, if it takes it.
    pub(crate) fn leg(&self, topic: &str) -> Option<Leg> {
        match &self.storm {
            Some(s) if *s.repartition == *topic => Some(Leg::Storm),
            _ if !self.sources.iter().any(|t| t == topic) => None,
            Some(_) => Some(Leg::Forward),
            None => Some(Leg::Direct),
        }
    }

    /// Whether its requests to the target come from partitions of
    /// `topic`: what its share of a group-wide rate limit is counted in
    /// (a storm route sends from its repartition topic).
    pub(crate) fn sends_from(&self, topic: &str) -> bool {
        matches!(self.leg(topic), Some(Leg::Direct | Leg::Storm))
    }

    /// The route's name: logs, metrics labels, dead-letter headers.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.route.name
    }

    /// One line about the route, for `kbridge check`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}: {} → {}",
            self.route.name,
            self.route.describe(),
            self.target.describe()
        )
    }
}
