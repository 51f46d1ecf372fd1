//! What the types of `schema` cannot say: required values, ranges,
//! conflicts between keys, and the librdkafka properties the relay must
//! own. `layers` runs [`RelayConfig::check`] once the layers are merged;
//! every mistake is a `UsageError` (exit 2) that says what to change.

use anyhow::{Result, bail};

use super::schema::RelayConfig;
use crate::error::UsageError;

impl RelayConfig {
    /// The routes' own checks: names, mapping, topics, webhook (a
    /// `rate_limit` was parsed as it was read).
    fn check_routes(&self) -> Result<()> {
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
        }
        Ok(())
    }

    /// Checks what the types cannot: required values, ranges, conflicts.
    pub(super) fn check(&self) -> Result<()> {
        self.retry.status_policy()?;
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
        if self.concurrency == 0 || self.max_pending == 0 {
            bail!(UsageError(
                "concurrency and max_pending must be at least 1".into()
            ));
        }
        if self
            .dead_letter_topic
            .as_deref()
            .is_some_and(|d| self.topics.iter().any(|t| t == d))
        {
            bail!(UsageError(
                "the dead-letter topic must not be one of the consumed topics".into()
            ));
        }
        Ok(())
    }
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
