//! `[audit]`: the journey of every alert, one small record per event and
//! route outcome in a Kafka topic (`relay::audit`), read by `kbridge
//! trace`. Off unless `topic` is set.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use super::de::duration_opt;
use crate::error::UsageError;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditConfig {
    /// The audit topic; none: no audit. Created at start when missing.
    #[serde(default)]
    pub topic: Option<String>,
    /// Its partitions when kbridge creates it (default 6).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Its replication factor when kbridge creates it (-1, the default:
    /// the brokers' `default.replication.factor`).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// How long it keeps a journey when kbridge creates it (default 7d).
    #[serde(default, deserialize_with = "duration_opt")]
    pub retention: Option<Duration>,
}

impl AuditConfig {
    pub(crate) fn partitions(&self) -> i32 {
        self.partitions.unwrap_or(6)
    }

    pub(crate) fn replication_factor(&self) -> i32 {
        self.replication_factor.unwrap_or(-1)
    }

    pub(crate) fn retention(&self) -> Duration {
        self.retention.unwrap_or(Duration::from_secs(7 * 24 * 3600))
    }

    pub(crate) fn check(&self) -> Result<()> {
        if let Some(t) = &self.topic
            && !super::topic_name_ok(t)
        {
            bail!(UsageError(format!(
                "[audit] topic '{t}' is not a valid topic name: use only ASCII letters, digits, '.', '_' and '-'"
            )));
        }
        if !(1..=10_000).contains(&self.partitions()) {
            bail!(UsageError(format!(
                "[audit] partitions must be between 1 and 10000 (got {})",
                self.partitions()
            )));
        }
        let rf = self.replication_factor();
        if rf == 0 || rf < -1 {
            bail!(UsageError(format!(
                "[audit] replication_factor must be -1 (the brokers' default) or above 0 (got {rf})"
            )));
        }
        if self.retention().is_zero() {
            bail!(UsageError("[audit] retention must be above 0".into()));
        }
        Ok(())
    }
}
