//! The top layer of the configuration: what was given on the command line.

use std::collections::BTreeMap;

use serde::Serialize;

use super::schema::OffsetReset;
use crate::logging::LogFormat;

/// Values given on the command line, the top layer; `None` leaves the lower
/// layers alone. Serialized into the layering with the same key names as
/// the file (an empty table merges as nothing).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// librdkafka properties (`-X`), merged into `[kafka]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, String>,
    pub webhook: WebhookOverrides,
    pub log: LogOverrides,
    pub metrics: MetricsOverrides,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct WebhookOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct LogOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct MetricsOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
}
