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
        }
        Ok(())
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
