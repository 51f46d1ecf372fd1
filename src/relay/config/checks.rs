//! What the types of `schema` cannot say: required values, ranges,
//! conflicts between keys, and the librdkafka properties the relay must
//! own. `layers` runs [`RelayConfig::check`] once the layers are merged;
//! every mistake is a `UsageError` (exit 2) that says what to change.

use anyhow::{Result, bail};

use super::schema::{RelayConfig, RetryConfig};
use crate::error::UsageError;

impl RelayConfig {
    /// The routes' own checks: names, mapping, topics, webhook (a
    /// `rate_limit` was parsed as it was read).
    fn check_routes(&self) -> Result<()> {
        let max = crate::relay::commit::MAX_ROUTES;
        if self.routes.len() > max {
            bail!(UsageError(format!(
                "{} routes: a relay takes at most {max}; split them over several `kbridge run`s (each its own group)",
                self.routes.len()
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for r in &self.routes {
            if r.name.trim().is_empty() {
                bail!(UsageError("every [[route]] needs a name".into()));
            }
            if !names.insert(r.name.as_str()) {
                bail!(UsageError(format!("two routes are named '{}'", r.name)));
            }
            r.mapping().map_err(|e| UsageError(format!("{e:#}")))?;
            for t in r.topics.iter().flatten() {
                if !self.topics.contains(t) {
                    bail!(UsageError(format!(
                        "route '{}' takes topic '{t}', which the relay does not consume (topics: {})",
                        r.name,
                        self.topics.join(", ")
                    )));
                }
            }
            r.webhook.check(&format!("route '{}' webhook", r.name))?;
            r.storm
                .check(&format!("route '{}' [route.storm]", r.name))?;
            if r.storm.group_by.is_some() && (r.preset.is_some() || r.key.is_none()) {
                bail!(UsageError(format!(
                    "route '{}' groups alerts (group_by): it needs a jq map, which receives each group (README, \"Storm control\"), and a key, the alert id of each event",
                    r.name
                )));
            }
            if r.storm.is_active() && !super::topic_name_ok(&r.name) {
                bail!(UsageError(format!(
                    "route '{}' has a storm stage, whose topic is named after the route: use only ASCII letters, digits, '.', '_' and '-' in its name",
                    r.name
                )));
            }
        }
        Ok(())
    }

    /// Checks what the types cannot: required values, ranges, conflicts.
    pub(super) fn check(&self) -> Result<()> {
        self.retry.status_policy()?;
        self.check_ranges()?;
        self.storm.check_relay(!self.routes.is_empty())?;
        self.audit.check()?;
        let prefix = self.storm.prefix(&self.group);
        if self.has_storm() && !super::topic_name_ok(&prefix) {
            bail!(UsageError(format!(
                "[storm] topic_prefix '{prefix}' (by default kbridge-<group>-) is not a valid start of a topic name: use only ASCII letters, digits, '.', '_' and '-', or set [storm] topic_prefix"
            )));
        }
        for (key, instead) in OWNED_KAFKA_KEYS {
            if self.kafka.contains_key(*key) {
                bail!(UsageError(format!(
                    "[kafka] (or -X) sets {key}, which kbridge must own: {instead}; remove it"
                )));
            }
        }
        if self.topics.is_empty() {
            bail!(UsageError(
                "no topic to consume: give --topic, `topics` in the config file, or KBRIDGE_TOPICS"
                    .into()
            ));
        }
        if self.routes.is_empty() {
            self.webhook.check("webhook")?;
        } else {
            self.check_routes()?;
        }
        let dead_letter_topics = self.dead_letter_topic.iter().chain(
            self.routes
                .iter()
                .filter_map(|r| r.dead_letter_topic.as_ref()),
        );
        for d in dead_letter_topics {
            if self.topics.iter().any(|t| t == d) {
                bail!(UsageError(format!(
                    "the dead-letter topic '{d}' must not be one of the consumed topics"
                )));
            }
        }
        Ok(())
    }
}

impl RelayConfig {
    /// Every duration and number, against its range: a value outside it
    /// either cannot work (`commit_interval = "0s"` stops the commits, a
    /// `timeout` of 0 fails every attempt, a zero backoff is a tight
    /// retry loop) or overflows a clock (`drain_timeout = "1e18"`).
    fn check_ranges(&self) -> Result<()> {
        use std::time::Duration as D;
        let ms = D::from_millis;
        let s = D::from_secs;
        within("commit_interval", self.commit_interval, ms(10), s(3600))?;
        within("drain_timeout", self.drain_timeout, ms(0), s(3600))?;
        within("topic_wait", self.topic_wait, s(1), s(3600))?;
        check_retry("retry", &self.retry)?;
        for r in &self.routes {
            let what = format!("route '{}' retry", r.name);
            let retry = r.retry(&self.retry);
            check_retry(&what, &retry)?;
            retry
                .status_policy()
                .map_err(|e| UsageError(format!("{what}: {e:#}")))?;
        }
        within("jq.timeout", self.jq.timeout, ms(10), s(60))?;
        count("jq.max_outputs", self.jq.max_outputs, 1, 100_000)?;
        count("jq.threads", self.jq.threads, 0, 64)?;
        count("concurrency", self.concurrency, 1, 4096)?;
        count("max_pending", self.max_pending, 1, 1 << 20)?;
        count("max_message_bytes", self.max_message_bytes, 1024, 1 << 30)?;
        count(
            "max_pending_bytes",
            self.max_pending_bytes,
            1 << 20,
            u32::MAX as usize,
        )?;
        for r in self.route_configs().iter() {
            let what = if self.routes.is_empty() {
                "webhook".to_string()
            } else {
                format!("route '{}' webhook", r.name)
            };
            within(
                &format!("{what}.timeout"),
                r.webhook.timeout,
                ms(100),
                // A revoke waits this long for requests on the wire, within
                // the group's rebalance timeout (max.poll.interval.ms, 300 s).
                s(120),
            )?;
            within(
                &format!("{what}.throttle_pause"),
                r.webhook.throttle_pause,
                s(1),
                s(3600),
            )?;
        }
        Ok(())
    }
}

/// A `[retry]` table's (the relay's, or a route's with its own keys).
fn check_retry(what: &str, retry: &RetryConfig) -> Result<(), UsageError> {
    use std::time::Duration as D;
    let (ms, s) = (D::from_millis, D::from_secs);
    within(
        &format!("{what}.initial_backoff"),
        retry.initial_backoff,
        ms(10),
        s(3600),
    )?;
    within(
        &format!("{what}.max_backoff"),
        retry.max_backoff,
        retry.initial_backoff.max(ms(10)),
        s(3600),
    )
    .map_err(|e| UsageError(format!("{} (and at least {what}.initial_backoff)", e.0)))?;
    if !retry.poison_after.time.is_zero() {
        within(
            &format!("{what}.poison_after.time"),
            retry.poison_after.time,
            s(1),
            s(7 * 86400),
        )?;
    }
    Ok(())
}

/// `key`'s duration within `[min, max]`, or an error that gives the range.
fn within(
    key: &str,
    value: std::time::Duration,
    min: std::time::Duration,
    max: std::time::Duration,
) -> Result<(), UsageError> {
    if value < min || value > max {
        return Err(UsageError(format!(
            "{key} = {} is out of range: it must be from {} to {}",
            crate::time_spec::show_duration(value),
            crate::time_spec::show_duration(min),
            crate::time_spec::show_duration(max)
        )));
    }
    Ok(())
}

/// `key`'s number within `[min, max]`.
fn count(key: &str, value: usize, min: usize, max: usize) -> Result<(), UsageError> {
    if value < min || value > max {
        return Err(UsageError(format!(
            "{key} = {value} is out of range: it must be from {min} to {max}"
        )));
    }
    Ok(())
}

/// librdkafka properties the relay must own, and why: an offset is stored
/// and committed only after its event was handled (at-least-once).
const OWNED_KAFKA_KEYS: &[(&str, &str)] = &[
    (
        "enable.auto.commit",
        "kbridge commits an offset only after its event was delivered, dead-lettered or skipped (commit_interval sets how often)",
    ),
    (
        "auto.commit.enable",
        "kbridge commits an offset only after its event was delivered, dead-lettered or skipped (commit_interval sets how often)",
    ),
    (
        "enable.auto.offset.store",
        "kbridge stores an offset only after its event and every earlier one were handled",
    ),
    ("group.id", "set `group` (or --group) instead"),
    ("group.instance.id", "set `group_instance_id` instead"),
    ("bootstrap.servers", "set `brokers` (or -b) instead"),
];
