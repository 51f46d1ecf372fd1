//! Storm control: `[route.storm]` (what a route absorbs — repeated alerts,
//! flapping recoveries, stale alerts) and `[storm]` (where that memory is
//! kept in Kafka, and the `default` route's own keys in a configuration
//! without `[[route]]`).
//!
//! A route with any of `dedupe`, `hold_resolved` or `max_age` runs its
//! events through the storm stage (`relay::storm`): re-keyed by alert id
//! into a topic of its own, so that one instance holds each alert's
//! memory, which lives in a compacted state topic.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use super::de::duration_opt;
use crate::error::UsageError;

/// `[route.storm]`: every key optional; none set, the route has no storm
/// stage and runs exactly as before. `[storm]` is one too: the `default`
/// route's keys in a configuration without `[[route]]`, and the keys of
/// the storm topics, which only it may set (one set per relay).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct StormConfig {
    /// jq: the alert's state, as text; `"resolved"` (or `"ok"`) is a
    /// recovery. Default: Guance's `df_status` (`ok` → resolved, anything
    /// else → firing).
    #[serde(default)]
    pub state: Option<String>,
    /// An alert whose state repeats the last one *delivered* within this
    /// window is skipped (counted, with its reason).
    #[serde(default, deserialize_with = "duration_opt")]
    pub dedupe: Option<Duration>,
    /// A recovery waits this long before it is sent; if the alert fires
    /// again meanwhile, both are absorbed and the target never sees the
    /// flap.
    #[serde(default, deserialize_with = "duration_opt")]
    pub hold_resolved: Option<Duration>,
    /// An event older than this (its Kafka timestamp) is skipped with its
    /// age as the reason: after a long outage, a robot gets today's alerts,
    /// not hours of old ones.
    #[serde(default, deserialize_with = "duration_opt")]
    pub max_age: Option<Duration>,
    /// The route's alert memory in this instance, in bytes; past it the
    /// oldest delivered states are forgotten (a repeat may then be sent
    /// again) and recoveries are sent without a hold — never dropped.
    #[serde(default)]
    pub max_state_bytes: Option<usize>,
    /// Absorbed events (dedupe, flap, max_age) are also written to the
    /// route's dead-letter topic, `kbridge.stage` saying why — an audit of
    /// what the target was spared.
    #[serde(default)]
    pub dead_letter_absorbed: bool,
    /// jq: the group an alert belongs to (`.service`); the route then
    /// sends digests of groups — its `map` receives a group, not an
    /// event — on Alertmanager's schedule.
    #[serde(default)]
    pub group_by: Option<String>,
    /// A new group's first digest waits this long for more alerts
    /// (default 30s).
    #[serde(default, deserialize_with = "duration_opt")]
    pub group_wait: Option<Duration>,
    /// After a digest, what changes waits this long (default 5m).
    #[serde(default, deserialize_with = "duration_opt")]
    pub group_interval: Option<Duration>,
    /// A group still firing, unchanged, is told again after this (default
    /// 4h).
    #[serde(default, deserialize_with = "duration_opt")]
    pub repeat_interval: Option<Duration>,
    /// `[storm]` only: the storm topics' names start with this:
    /// `<prefix>state` (the compacted memory) and
    /// `<prefix><route>-repartition` (each storm route's events, keyed by
    /// alert id). Default `kbridge-<group>-`.
    #[serde(default)]
    pub topic_prefix: Option<String>,
    /// `[storm]` only: partitions of every storm topic kbridge creates
    /// (default 6; all the same: partition N of the state belongs to
    /// partition N of each repartition topic).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// `[storm]` only: their replication factor (-1, the default: the
    /// brokers' `default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// `[storm]` only: how long an instance may take to read a
    /// partition's memory back when it is assigned (default 20s).
    #[serde(default, deserialize_with = "duration_opt")]
    pub restore_timeout: Option<Duration>,
    /// `[storm]` only: honour silences (`kbridge silence`) on every route
    /// even without a storm route (which has them on anyway).
    #[serde(default)]
    pub silences: Option<bool>,
}

/// What a storm stage keeps per route by default: 64 MiB.
pub(crate) const DEFAULT_MAX_STATE_BYTES: usize = 64 << 20;

/// The longest `dedupe`, `hold_resolved` or `max_age` kbridge takes.
const LONGEST: Duration = Duration::from_secs(30 * 24 * 3600);

impl StormConfig {
    /// Whether the route has a storm stage at all.
    pub(crate) fn is_active(&self) -> bool {
        self.dedupe.is_some()
            || self.hold_resolved.is_some()
            || self.max_age.is_some()
            || self.group_by.is_some()
    }

    /// `group_wait`, `group_interval`, `repeat_interval` with their
    /// defaults (Alertmanager's).
    pub(crate) fn timing(&self) -> (Duration, Duration, Duration) {
        (
            self.group_wait.unwrap_or(Duration::from_secs(30)),
            self.group_interval.unwrap_or(Duration::from_secs(300)),
            self.repeat_interval
                .unwrap_or(Duration::from_secs(4 * 3600)),
        )
    }

    pub(crate) fn max_state_bytes(&self) -> usize {
        self.max_state_bytes.unwrap_or(DEFAULT_MAX_STATE_BYTES)
    }

    /// Ranges, naming the key: `where_` is `[route.storm]` of route X or
    /// `[storm]`.
    pub(crate) fn check(&self, where_: &str) -> Result<()> {
        for (key, d) in [
            ("dedupe", self.dedupe),
            ("hold_resolved", self.hold_resolved),
            ("max_age", self.max_age),
            ("group_wait", self.group_wait),
            ("group_interval", self.group_interval),
            ("repeat_interval", self.repeat_interval),
        ] {
            if let Some(d) = d
                && (d.is_zero() || d > LONGEST)
            {
                bail!(UsageError(format!(
                    "{where_}: {key} must be between 1s and 30 days (got {})",
                    crate::time_spec::show_duration(d)
                )));
            }
        }
        if self.max_state_bytes == Some(0) {
            bail!(UsageError(format!(
                "{where_}: max_state_bytes must be above 0 (default {DEFAULT_MAX_STATE_BYTES})"
            )));
        }
        if self.topic_prefix.is_some()
            || self.partitions.is_some()
            || self.replication_factor.is_some()
            || self.restore_timeout.is_some()
            || self.silences.is_some()
        {
            bail!(UsageError(format!(
                "{where_}: topic_prefix, partitions, replication_factor, restore_timeout and silences belong in [storm] (one set of storm topics per relay)"
            )));
        }
        if self.group_by.is_none()
            && (self.group_wait.is_some()
                || self.group_interval.is_some()
                || self.repeat_interval.is_some())
        {
            bail!(UsageError(format!(
                "{where_}: group_wait, group_interval and repeat_interval need group_by"
            )));
        }
        if self.group_by.is_some() && (self.dedupe.is_some() || self.hold_resolved.is_some()) {
            bail!(UsageError(format!(
                "{where_}: dedupe and hold_resolved are for routes that send each alert; a digest route (group_by) already tells only what changed since its last digest (a repeat is no news; a recovery and a re-trigger between two digests cancel out): set group_interval instead"
            )));
        }
        if self.state.is_some() && !self.is_active() {
            bail!(UsageError(format!(
                "{where_}: state is set but nothing uses it; set dedupe, hold_resolved, max_age or group_by"
            )));
        }
        Ok(())
    }
}

/// The topic keys' defaults.
const PARTITIONS: i32 = 6;
const REPLICATION: i32 = -1;
const RESTORE_TIMEOUT: Duration = Duration::from_secs(20);

impl StormConfig {
    /// The `default` route's storm keys (the topic keys left out).
    pub(crate) fn default_route(&self) -> StormConfig {
        StormConfig {
            topic_prefix: None,
            partitions: None,
            replication_factor: None,
            restore_timeout: None,
            silences: None,
            ..self.clone()
        }
    }

    /// The prefix of the storm topics' names.
    pub(crate) fn prefix(&self, group: &str) -> String {
        self.topic_prefix
            .clone()
            .unwrap_or_else(|| format!("kbridge-{group}-"))
    }

    pub(crate) fn partitions(&self) -> i32 {
        self.partitions.unwrap_or(PARTITIONS)
    }

    pub(crate) fn replication_factor(&self) -> i32 {
        self.replication_factor.unwrap_or(REPLICATION)
    }

    pub(crate) fn restore_timeout(&self) -> Duration {
        self.restore_timeout.unwrap_or(RESTORE_TIMEOUT)
    }

    /// `[storm]` itself: the topic keys' ranges, and its route keys only
    /// without `[[route]]`.
    pub(crate) fn check_relay(&self, has_routes: bool) -> Result<()> {
        if !(1..=10_000).contains(&self.partitions()) {
            bail!(UsageError(format!(
                "[storm] partitions must be between 1 and 10000 (got {})",
                self.partitions()
            )));
        }
        let rf = self.replication_factor();
        if rf == 0 || rf < -1 {
            bail!(UsageError(format!(
                "[storm] replication_factor must be -1 (the brokers' default) or above 0 (got {rf})"
            )));
        }
        let restore = self.restore_timeout();
        if restore.is_zero() || restore > Duration::from_secs(120) {
            bail!(UsageError(
                "[storm] restore_timeout must be between 1s and 2m".into()
            ));
        }
        let own = self.default_route();
        if !has_routes && own.group_by.is_some() {
            bail!(UsageError(
                "[storm] group_by: digests need a [[route]] with a jq map (which receives each group) and a key; the preset maps single events".into()
            ));
        }
        if has_routes && own != StormConfig::default() {
            bail!(UsageError(
                "[storm] sets a route's keys (state, dedupe, hold_resolved, max_age, max_state_bytes) in a configuration with [[route]]: set them in each route's [route.storm]".into()
            ));
        }
        own.check("[storm]")
    }
}

/// Whether `name` may be part of a topic name (Kafka allows ASCII letters,
/// digits, `.`, `_` and `-`, at most 249 characters).
pub(crate) fn topic_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c_hold() -> StormConfig {
        StormConfig {
            hold_resolved: Some(Duration::from_secs(120)),
            ..Default::default()
        }
    }

    #[test]
    fn a_route_without_keys_has_no_storm_stage() {
        assert!(!StormConfig::default().is_active());
        let c = StormConfig {
            hold_resolved: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        assert!(c.is_active());
        assert!(c.check("x").is_ok());
    }

    #[test]
    fn ranges_are_checked_naming_the_key() {
        let c = StormConfig {
            dedupe: Some(Duration::ZERO),
            ..Default::default()
        };
        let e = format!("{:#}", c.check("route 'r'").unwrap_err());
        assert!(e.contains("route 'r': dedupe"), "{e}");
        let c = StormConfig {
            state: Some(".s".into()),
            ..Default::default()
        };
        assert!(format!("{:#}", c.check("x").unwrap_err()).contains("nothing uses it"));
    }

    #[test]
    fn route_keys_in_storm_with_routes_are_refused() {
        let s = StormConfig {
            dedupe: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert!(s.check_relay(false).is_ok());
        assert!(
            format!("{:#}", s.check_relay(true).unwrap_err()).contains("[route.storm]"),
            "with routes"
        );
        let route = StormConfig {
            partitions: Some(3),
            ..c_hold()
        };
        assert!(format!("{:#}", route.check("r").unwrap_err()).contains("belong in [storm]"));
        let relay = StormConfig {
            partitions: Some(3),
            ..Default::default()
        };
        assert!(relay.check_relay(true).is_ok());
    }

    #[test]
    fn topic_names() {
        assert!(topic_name_ok("pay-api_robot.1"));
        assert!(!topic_name_ok("pay api"));
        assert!(!topic_name_ok("机器人"));
        assert!(!topic_name_ok(""));
    }
}
