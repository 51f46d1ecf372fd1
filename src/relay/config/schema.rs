//! What the relay's configuration holds: every key, its type and default
//! (the seed's: group `omp`, offset reset `latest`), and the checks types
//! cannot express. `Debug` redacts secrets; nothing here is logged in full.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Deserializer, Serialize};

use super::audit::AuditConfig;
use super::de::{duration, one_or_many};
use super::preset::Preset;
use super::route::RouteConfig;
use super::secret::redacted;
use super::status_policy::{StatusPolicy, StatusSpec, default_reject_on, default_retry_on};
use super::storm::StormConfig;
use super::webhook::WebhookConfig;
use crate::client::{KafkaOpts, PropertySource};
use crate::error::UsageError;
use crate::logging::LogFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OffsetReset {
    Earliest,
    Latest,
    /// Fail when the group has no committed offset.
    None,
}

impl OffsetReset {
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "error",
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelayConfig {
    #[serde(default = "defaults::brokers")]
    pub brokers: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub topics: Vec<String>,
    #[serde(default = "defaults::group")]
    pub group: String,
    /// Static membership (KIP-345): a stable id per instance (`%H`, `%i`
    /// under systemd), so that an instance restarted within the session
    /// timeout takes its partitions back without a rebalance.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    #[serde(default = "defaults::offset_reset")]
    pub offset_reset: OffsetReset,
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    #[serde(default)]
    pub preset: Preset,
    /// librdkafka properties for the consumer and dead-letter producer.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
    #[serde(default)]
    pub webhook: WebhookConfig,
    /// `[[route]]`: pipelines of their own; none means one route,
    /// `default`, of `preset` and `webhook` (see `config::route`).
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Deliveries in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Events taken from Kafka and not yet handled; past it consumption
    /// pauses, which bounds memory while the target is down.
    #[serde(default = "defaults::max_pending")]
    pub max_pending: usize,
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    /// The bytes of the messages in processing (key, value, headers); past
    /// it consumption pauses, as for `max_pending`.
    #[serde(default = "defaults::max_pending_bytes")]
    pub max_pending_bytes: usize,
    #[serde(default = "defaults::drain_timeout", deserialize_with = "duration")]
    pub drain_timeout: Duration,
    #[serde(default = "defaults::commit_interval", deserialize_with = "duration")]
    pub commit_interval: Duration,
    /// How long to wait at start for the topics to exist.
    #[serde(default = "defaults::topic_wait", deserialize_with = "duration")]
    pub topic_wait: Duration,
    /// `[jq]`: the budget of every jq program (routes' filter, map, key,
    /// answer rules).
    #[serde(default)]
    pub jq: JqConfig,
    /// `[storm]`: where storm-controlled routes keep their memory (and
    /// the `default` route's storm keys).
    #[serde(default)]
    pub storm: StormConfig,
    /// `[audit]`: a record per event and route outcome, for `kbridge
    /// trace` (off unless its topic is set).
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Warnings found while loading, for the log once it is set up.
    #[serde(skip)]
    pub notices: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryConfig {
    #[serde(default = "defaults::initial_backoff", deserialize_with = "duration")]
    pub initial_backoff: Duration,
    #[serde(default = "defaults::max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Attempts before an event is dead-lettered; 0 retries without end.
    #[serde(default)]
    pub max_attempts: u32,
    /// Answers that keep the alert and are retried: about the target (its
    /// address, kbridge's credentials) or its availability.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<StatusSpec>,
    /// Answers about this alert: it is dead-lettered.
    #[serde(default = "default_reject_on")]
    pub reject_on: Vec<StatusSpec>,
    /// When a failing alert is poison rather than caught in an outage.
    #[serde(default)]
    pub poison_after: PoisonAfter,
}

/// An alert that keeps failing where the route's other requests get
/// through is *poison*: once its run of failures passes this many attempts
/// or this long (whichever comes first), *and* a healthy alert would fail
/// that often with a chance below one in a thousand at the rate the other
/// requests failed meanwhile (`deliver::poison`), it is dead-lettered — or,
/// without a dead-letter topic, parked — so it cannot pin its partition. An
/// outage (everything fails) or a brownout (most requests fail at random)
/// makes nothing poison.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoisonAfter {
    /// 0: no limit by attempts.
    #[serde(default = "defaults::poison_attempts")]
    pub attempts: u32,
    /// 0s: no limit by time (two failures at least).
    #[serde(default = "defaults::poison_time", deserialize_with = "duration")]
    pub time: Duration,
}

impl Default for PoisonAfter {
    fn default() -> Self {
        Self {
            attempts: defaults::poison_attempts(),
            time: defaults::poison_time(),
        }
    }
}

impl RetryConfig {
    /// `retry_on` and `reject_on`, checked (a status in both lists is a
    /// configuration error).
    pub(crate) fn status_policy(&self) -> Result<StatusPolicy> {
        StatusPolicy::new(&self.retry_on, &self.reject_on).map_err(|e| UsageError(e).into())
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: defaults::initial_backoff(),
            max_backoff: defaults::max_backoff(),
            max_attempts: 0,
            retry_on: default_retry_on(),
            reject_on: default_reject_on(),
            poison_after: PoisonAfter::default(),
        }
    }
}

/// `[jq]`: what one evaluation of a program may take (`route::jq_budget`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JqConfig {
    /// Time per evaluation; past it the event is invalid on its route.
    #[serde(default = "defaults::jq_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Outputs per evaluation; more is an error (a map of `range(1e9)`).
    #[serde(default = "defaults::jq_max_outputs")]
    pub max_outputs: usize,
    /// Evaluator threads (0: the number of CPUs, 2 to 8).
    #[serde(default)]
    pub threads: usize,
}

impl Default for JqConfig {
    fn default() -> Self {
        Self {
            timeout: defaults::jq_timeout(),
            max_outputs: defaults::jq_max_outputs(),
            threads: 0,
        }
    }
}

impl JqConfig {
    pub(crate) fn budget(&self) -> crate::relay::route::jq_budget::Budget {
        let default = crate::relay::route::jq_budget::Budget::default();
        crate::relay::route::jq_budget::Budget {
            timeout: self.timeout,
            max_outputs: self.max_outputs,
            threads: if self.threads == 0 {
                default.threads
            } else {
                self.threads
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `kbridge=debug,librdkafka=info`.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    /// Also write logs to this file (for hosts without journald).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: defaults::log_level(),
            file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Serve /metrics, /healthz and /readyz here; off when unset. A bare
    /// port (`9464` or `:9464`) listens on 127.0.0.1 only.
    #[serde(default, deserialize_with = "listen_addr")]
    pub addr: Option<SocketAddr>,
}

/// `HOST:PORT`, or a bare port for 127.0.0.1: the metrics say how the
/// relay is doing, which is nobody else's business unless asked for.
fn listen_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Port(u16),
    }
    let bad = |s: &str| {
        serde::de::Error::custom(format!(
            "'{s}' is not an address to listen on; use HOST:PORT (127.0.0.1:9464) or a port (9464, on 127.0.0.1)"
        ))
    };
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Port(p)) => Ok(Some(SocketAddr::from(([127, 0, 0, 1], p)))),
        Some(Raw::Text(s)) => {
            let port_only = s.strip_prefix(':').unwrap_or(&s);
            if let Ok(p) = port_only.parse::<u16>() {
                return Ok(Some(SocketAddr::from(([127, 0, 0, 1], p))));
            }
            s.parse().map(Some).map_err(|_| bad(&s))
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub(super) fn brokers() -> String {
        crate::client::DEFAULT_BROKERS.to_string()
    }
    pub(super) fn group() -> String {
        "omp".to_string()
    }
    pub(super) fn offset_reset() -> crate::relay::config::schema::OffsetReset {
        crate::relay::config::schema::OffsetReset::Latest
    }
    pub(super) fn concurrency() -> usize {
        64
    }
    pub(super) fn max_pending() -> usize {
        1024
    }
    pub(super) fn max_message_bytes() -> usize {
        1 << 20
    }
    pub(super) fn max_pending_bytes() -> usize {
        64 << 20
    }
    pub(super) fn drain_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub(super) fn commit_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub(super) fn topic_wait() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn initial_backoff() -> Duration {
        Duration::from_millis(200)
    }
    pub(super) fn max_backoff() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn poison_attempts() -> u32 {
        10
    }
    pub(super) fn poison_time() -> Duration {
        Duration::from_secs(300)
    }
    pub(super) fn jq_timeout() -> Duration {
        Duration::from_secs(1)
    }
    pub(super) fn jq_max_outputs() -> usize {
        1000
    }
    pub(super) fn log_level() -> String {
        "info".to_string()
    }
}

impl RelayConfig {
    /// The routes as configured, or the one `default` route of a config
    /// without `[[route]]` (its top-level `preset` and `[webhook]`).
    pub(crate) fn route_configs(&self) -> std::borrow::Cow<'_, [RouteConfig]> {
        if self.routes.is_empty() {
            vec![RouteConfig::default_route(
                self.preset,
                &self.webhook,
                self.storm.default_route(),
            )]
            .into()
        } else {
            self.routes.as_slice().into()
        }
    }

    /// Whether the relay has a storm stage: a storm route, or silences
    /// asked for (`[storm] silences = true`); it then has a state topic.
    pub(crate) fn has_storm(&self) -> bool {
        self.storm_routes() > 0 || self.storm.silences == Some(true)
    }

    /// How many routes have a storm stage.
    pub(crate) fn storm_routes(&self) -> usize {
        self.route_configs()
            .iter()
            .filter(|r| r.storm.is_active())
            .count()
    }

    /// The compacted topic that holds the storm stages' memory.
    pub(crate) fn storm_state_topic(&self) -> String {
        format!("{}state", self.storm.prefix(&self.group))
    }

    /// The topic a storm route's events are re-keyed into by alert id.
    pub(crate) fn repartition_topic(&self, route: &str) -> String {
        format!("{}{route}-repartition", self.storm.prefix(&self.group))
    }

    /// What the relay subscribes to: its topics, and each storm route's
    /// repartition topic.
    pub(crate) fn subscribed_topics(&self) -> Vec<String> {
        let mut all = self.topics.clone();
        for r in self.route_configs().iter().filter(|r| r.storm.is_active()) {
            all.push(self.repartition_topic(&r.name));
        }
        all
    }

    /// What happens to an event that cannot be delivered, in words (for
    /// `kbridge check` and the start of `run`).
    pub(crate) fn dead_letter_policy(&self) -> String {
        let routes = self.route_configs();
        let own: Vec<String> = routes
            .iter()
            .filter_map(|r| {
                r.dead_letter_topic
                    .as_ref()
                    .map(|t| format!("route {} → {t}", r.name))
            })
            .collect();
        if own.is_empty() {
            return self.relay_dead_letter_policy(self.dead_letter_topic.as_deref());
        }
        let what = "invalid events, alerts the target refuses, and alerts past retry.max_attempts or found poison";
        if own.len() == routes.len() {
            return format!("dead letters: per route ({}): {what}", own.join(", "));
        }
        format!(
            "dead letters per route: {}. The other routes: {}",
            own.join(", "),
            self.relay_dead_letter_policy(self.dead_letter_topic.as_deref())
        )
    }

    /// The policy of the routes without a topic of their own.
    fn relay_dead_letter_policy(&self, topic: Option<&str>) -> String {
        match topic {
            Some(t) => format!(
                "dead letters: topic {t} (invalid events, alerts the target refuses, and alerts past retry.max_attempts or found poison)"
            ),
            None => "dead letters: none (no dead_letter_topic). Bad input and alerts the target refuses are dropped after their log line; an alert failing for a reason that may pass (5xx, 429, timeouts, connection errors, 401/403/404) is never given up: past retry.max_attempts or found poison it is parked, retried every retry.max_backoff, holding its partition's commit point. Set dead_letter_topic to keep what is dropped and set parked alerts aside".to_string(),
        }
    }

    /// The Kafka connection settings of the relay's clients: `brokers`,
    /// the `[kafka]` properties, and `topic_wait` as the cluster timeout.
    pub(crate) fn kafka_opts(&self) -> KafkaOpts {
        KafkaOpts {
            brokers: self.brokers.clone(),
            properties: self
                .kafka
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: self.topic_wait,
            source: PropertySource::ConfigFile,
        }
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kafka: BTreeMap<_, _> = self
            .kafka
            .iter()
            .map(|(k, v)| (k, redacted(k, v)))
            .collect();
        f.debug_struct("RelayConfig")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("offset_reset", &self.offset_reset)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("kafka", &kafka)
            .field("webhook", &self.webhook)
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}
