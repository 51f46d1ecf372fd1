//! `[[route]]`: one pipeline from the relay's topics to one target —
//! which events (`topics`, a jq `filter`), how each becomes requests (the
//! native `preset`, or a jq `map` / `map_file`), the ordering `key`, a
//! `rate_limit`, and the target (`[route.webhook]`, with jq `success` /
//! `reject` rules for its answers). A config without routes is one route,
//! `default`: its top-level `preset` and `webhook`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use super::de::one_or_many_opt;
use super::preset::Preset;
use super::schema::{PoisonAfter, RetryConfig};
use super::status_policy::StatusSpec;
use super::storm::StormConfig;
use super::webhook::WebhookConfig;

/// The name of the one route of a configuration without `[[route]]`.
pub(crate) const DEFAULT_ROUTE: &str = "default";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// In logs, metrics labels and dead-letter headers.
    pub name: String,
    /// The relay's topics this route takes; all of them when unset.
    #[serde(default, deserialize_with = "one_or_many_opt")]
    pub topics: Option<Vec<String>>,
    /// jq: false or null skips the event for this route.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub preset: Option<Preset>,
    /// jq producing the request bodies (0, 1 or many).
    #[serde(default)]
    pub map: Option<String>,
    #[serde(default)]
    pub map_file: Option<PathBuf>,
    /// jq: the ordering key (events with one key are sent in order).
    #[serde(default)]
    pub key: Option<String>,
    /// `N/s`, `N/min` or `N/h`: requests to the target spaced at least
    /// period / N apart (`deliver::pace`), per relay process.
    #[serde(default, deserialize_with = "rate_limit")]
    pub rate_limit: Option<RateLimit>,
    /// This route's dead letters go here instead of the relay's
    /// `dead_letter_topic` (a robot's and an intake's failures apart).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// `[route.retry]`: keys that replace the relay's `[retry]` ones for
    /// this route (a robot gives up sooner than the ops platform).
    #[serde(default)]
    pub retry: RetryOverride,
    /// `[route.storm]`: dedupe, flap damping, a maximum age (see
    /// `config::storm`); none set, no storm stage.
    #[serde(default)]
    pub storm: StormConfig,
    pub webhook: WebhookConfig,
}

/// `[route.retry]`: any key of `[retry]`; those left out are the relay's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryOverride {
    #[serde(default, deserialize_with = "super::de::duration_opt")]
    pub initial_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "super::de::duration_opt")]
    pub max_backoff: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub retry_on: Option<Vec<StatusSpec>>,
    pub reject_on: Option<Vec<StatusSpec>>,
    pub poison_after: Option<PoisonAfter>,
}

impl RetryOverride {
    /// The relay's `[retry]` with this route's keys in place.
    pub(crate) fn over(&self, relay: &RetryConfig) -> RetryConfig {
        RetryConfig {
            initial_backoff: self.initial_backoff.unwrap_or(relay.initial_backoff),
            max_backoff: self.max_backoff.unwrap_or(relay.max_backoff),
            max_attempts: self.max_attempts.unwrap_or(relay.max_attempts),
            retry_on: self
                .retry_on
                .clone()
                .unwrap_or_else(|| relay.retry_on.clone()),
            reject_on: self
                .reject_on
                .clone()
                .unwrap_or_else(|| relay.reject_on.clone()),
            poison_after: self
                .poison_after
                .clone()
                .unwrap_or_else(|| relay.poison_after.clone()),
        }
    }
}

/// How a route turns an event into requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mapping {
    Preset(Preset),
    /// jq source, and where it came from (for errors).
    Jq {
        code: String,
        origin: String,
    },
}

impl RouteConfig {
    /// The one route of a configuration without `[[route]]`: every topic,
    /// the top-level `preset` and `[webhook]`.
    pub(crate) fn default_route(
        preset: Preset,
        webhook: &WebhookConfig,
        storm: StormConfig,
    ) -> Self {
        Self {
            name: DEFAULT_ROUTE.to_string(),
            topics: None,
            filter: None,
            preset: Some(preset),
            map: None,
            map_file: None,
            key: None,
            rate_limit: None,
            dead_letter_topic: None,
            retry: RetryOverride::default(),
            storm,
            webhook: webhook.clone(),
        }
    }

    /// This route's retries: the relay's `[retry]`, with `[route.retry]`.
    pub(crate) fn retry(&self, relay: &RetryConfig) -> RetryConfig {
        self.retry.over(relay)
    }

    /// Where this route's dead letters go: its own topic, or the relay's.
    pub(crate) fn dead_letter_topic<'a>(&'a self, relay: Option<&'a str>) -> Option<&'a str> {
        self.dead_letter_topic.as_deref().or(relay)
    }

    /// The route's mapping, reading `map_file`; exactly one of `preset`,
    /// `map`, `map_file` must be set.
    pub(crate) fn mapping(&self) -> Result<Mapping> {
        let name = &self.name;
        match (&self.preset, &self.map, &self.map_file) {
            (Some(p), None, None) => Ok(Mapping::Preset(*p)),
            (None, Some(code), None) => Ok(Mapping::Jq {
                code: code.clone(),
                origin: format!("route '{name}': map"),
            }),
            (None, None, Some(path)) => {
                let code = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "route '{name}': cannot read map_file {}: {e}",
                        path.display()
                    )
                })?;
                Ok(Mapping::Jq {
                    code,
                    origin: format!("route '{name}': map_file {}", path.display()),
                })
            }
            _ => bail!("route '{name}': set exactly one of preset, map and map_file"),
        }
    }
}

/// `rate_limit = "20/min"`, parsed once, when the config is read.
fn rate_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RateLimit>, D::Error> {
    let text = String::deserialize(d)?;
    RateLimit::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A rate limit: so many requests per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// `20/min`, `5/s`, `100/minute`, `1000/h`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("rate_limit '{s}': expected N/s, N/min or N/h (say \"20/min\")");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if requests == 0 {
            return Err(bad());
        }
        Ok(Self { requests, per })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            RateLimit::parse("20/min"),
            Ok(RateLimit {
                requests: 20,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(
            RateLimit::parse("5/s").map(|r| r.per),
            Ok(Duration::from_secs(1))
        );
        for bad in ["20", "0/min", "x/min", "20/fortnight"] {
            assert!(RateLimit::parse(bad).unwrap_err().contains("N/s"), "{bad}");
        }
    }
}
