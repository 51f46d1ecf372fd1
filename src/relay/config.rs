//! The relay's configuration, layered: built-in defaults (the seed's: group
//! `omp`, offset reset `latest`) < TOML file < `KBRIDGE_*` environment
//! variables < command-line flags.
//!
//! Secrets never need to sit in the file: any string value may say
//! `${VAR}` and is filled from the environment after parsing (so a
//! commented-out line never demands a variable). The `Debug` output of the
//! config redacts secrets, and nothing here is ever logged in full.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Deserializer, Serialize};

use crate::time_spec::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub(crate) enum Preset {
    /// Guance Cloud events → EasyOps-style alert webhook.
    #[default]
    #[serde(rename = "guance-easyops")]
    GuanceEasyops,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
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
    #[serde(default = "defaults::drain_timeout", deserialize_with = "duration")]
    pub drain_timeout: Duration,
    #[serde(default = "defaults::commit_interval", deserialize_with = "duration")]
    pub commit_interval: Duration,
    /// How long to wait at start for the topics to exist.
    #[serde(default = "defaults::topic_wait", deserialize_with = "duration")]
    pub topic_wait: Duration,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookConfig {
    #[serde(default)]
    pub url: String,
    /// Extra request headers, e.g. Authorization (use `${VAR}` for secrets).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "defaults::webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            headers: BTreeMap::new(),
            timeout: defaults::webhook_timeout(),
        }
    }
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
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: defaults::initial_backoff(),
            max_backoff: defaults::max_backoff(),
            max_attempts: 0,
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
    /// Serve /metrics, /healthz and /readyz here; off when unset.
    #[serde(default)]
    pub addr: Option<SocketAddr>,
}

mod defaults {
    use std::time::Duration;

    pub(super) fn brokers() -> String {
        crate::cli::DEFAULT_BROKERS.to_string()
    }
    pub(super) fn group() -> String {
        "omp".to_string()
    }
    pub(super) fn offset_reset() -> super::OffsetReset {
        super::OffsetReset::Latest
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
    pub(super) fn drain_timeout() -> Duration {
        Duration::from_secs(20)
    }
    pub(super) fn commit_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub(super) fn topic_wait() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn webhook_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn initial_backoff() -> Duration {
        Duration::from_millis(200)
    }
    pub(super) fn max_backoff() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn log_level() -> String {
        "info".to_string()
    }
}

/// Values given on the command line; `None` leaves lower layers alone.
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
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub webhook: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub log: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, String>,
}

/// Top-level keys a `KBRIDGE_*` variable may set (nested with `__`, e.g.
/// `KBRIDGE_WEBHOOK__URL`). Others, like `KBRIDGE_LOG` (the CLI's log
/// filter) or test variables, are not config.
const ENV_KEYS: &[&str] = &[
    "brokers",
    "topics",
    "group",
    "offset_reset",
    "dead_letter_topic",
    "preset",
    "kafka",
    "webhook",
    "retry",
    "concurrency",
    "max_pending",
    "max_message_bytes",
    "drain_timeout",
    "commit_interval",
    "topic_wait",
    "metrics",
];

impl RelayConfig {
    /// Loads and checks the layered configuration.
    pub(crate) fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let mut value: toml::Value = toml::from_str(&text)
                .map_err(|e| anyhow!("{} is not valid TOML: {e}", path.display()))?;
            expand_env(&mut value, &mut Vec::new())
                .with_context(|| format!("in {}", path.display()))?;
            figment = figment.merge(Serialized::defaults(value));
        }
        figment = figment
            .merge(
                Env::prefixed("KBRIDGE_")
                    .split("__")
                    .filter(|k| ENV_KEYS.contains(&k.as_str().split('.').next().unwrap_or(""))),
            )
            .merge(Serialized::defaults(overrides));
        let config: RelayConfig = figment.extract().map_err(|e| {
            anyhow!(
                "invalid configuration: {e}{}",
                file.map(|p| format!(" (file {})", p.display()))
                    .unwrap_or_default()
            )
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.topics.is_empty() {
            bail!(crate::UsageError(
                "no topic to consume: give --topic, `topics` in the config file, or KBRIDGE_TOPICS"
                    .into()
            ));
        }
        if self.webhook.url.is_empty() {
            bail!(crate::UsageError(
                "no webhook URL: give --webhook, `webhook.url` in the config file, or KBRIDGE_WEBHOOK__URL".into()
            ));
        }
        let url = reqwest::Url::parse(&self.webhook.url).map_err(|e| {
            crate::UsageError(format!(
                "webhook URL '{}' is invalid: {e}",
                self.webhook.url
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(crate::UsageError(format!(
                "webhook URL '{}' must be http or https",
                self.webhook.url
            )));
        }
        if self.concurrency == 0 || self.max_pending == 0 {
            bail!(crate::UsageError(
                "concurrency and max_pending must be at least 1".into()
            ));
        }
        if self
            .dead_letter_topic
            .as_deref()
            .is_some_and(|d| self.topics.iter().any(|t| t == d))
        {
            bail!(crate::UsageError(
                "the dead-letter topic must not be one of the consumed topics".into()
            ));
        }
        Ok(())
    }
}

/// Redacts values that look secret (for `Debug`, which tests and error
/// paths may print).
fn redact(key: &str, value: &str) -> String {
    let k = key.to_ascii_lowercase();
    if ["password", "secret", "token", "authorization", "key"]
        .iter()
        .any(|s| k.contains(s))
    {
        "<redacted>".to_string()
    } else {
        value.to_string()
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kafka: BTreeMap<_, _> = self.kafka.iter().map(|(k, v)| (k, redact(k, v))).collect();
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

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<_, _> = self
            .headers
            .iter()
            .map(|(k, v)| (k, redact(k, v)))
            .collect();
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Replaces `${VAR}` in every string of a parsed TOML document.
fn expand_env(value: &mut toml::Value, path: &mut Vec<String>) -> Result<()> {
    match value {
        toml::Value::String(s) => *s = expand_str(s).with_context(|| path.join("."))?,
        toml::Value::Array(items) => {
            for item in items {
                expand_env(item, path)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                path.push(k.clone());
                expand_env(v, path)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("unclosed '${{' in a value"))?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            anyhow!(
                "the value refers to ${{{name}}}, but the environment variable {name} is not set"
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Secs(u64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        Raw::Secs(n) => Ok(Duration::from_secs(n)),
    }
}

/// `topics = "a"`, `topics = ["a", "b"]` or `KBRIDGE_TOPICS=a,b`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Raw::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_are_the_seeds() {
        let f = write("topics = \"event\"\n[webhook]\nurl = \"http://127.0.0.1:1/alerts\"\n");
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.group, "omp");
        assert_eq!(c.offset_reset, OffsetReset::Latest);
        assert_eq!(c.topics, vec!["event"]);
        assert_eq!(c.webhook.timeout, Duration::from_secs(10));
        assert_eq!(c.drain_timeout, Duration::from_secs(20));
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn flags_override_the_file() {
        let f = write("topics = [\"a\"]\ngroup = \"g\"\n[webhook]\nurl = \"http://x/\"\n");
        let o = Overrides {
            group: Some("flag".into()),
            topics: Some(vec!["b".into()]),
            ..Default::default()
        };
        let c = RelayConfig::load(Some(f.path()), &o).unwrap();
        assert_eq!(
            (c.group.as_str(), c.topics),
            ("flag", vec!["b".to_string()])
        );
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_redacted() {
        // SAFETY: a variable name only this test uses.
        unsafe { std::env::set_var("KBRIDGE_TEST_SECRET_TOKEN", "s3cr3t") };
        let f = write(
            "topics = \"t\"\n# ${NOT_SET_ANYWHERE} in a comment is fine\n[webhook]\nurl = \"http://x/\"\n[webhook.headers]\nAuthorization = \"Bearer ${KBRIDGE_TEST_SECRET_TOKEN}\"\n",
        );
        let c = RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap();
        assert_eq!(c.webhook.headers["Authorization"], "Bearer s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_variables_and_typos_are_clear_errors() {
        let f = write("topics = \"t\"\n[webhook]\nurl = \"${KBRIDGE_TEST_UNSET_VAR}\"\n");
        let e = format!(
            "{:#}",
            RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap_err()
        );
        assert!(
            e.contains("KBRIDGE_TEST_UNSET_VAR is not set") && e.contains("webhook.url"),
            "{e}"
        );
        let f = write("topics = \"t\"\nconcurrancy = 3\n[webhook]\nurl = \"http://x/\"\n");
        let e = format!(
            "{:#}",
            RelayConfig::load(Some(f.path()), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("concurrancy"), "{e}");
    }

    #[test]
    fn a_webhook_is_required() {
        let e = RelayConfig::load(
            None,
            &Overrides {
                topics: Some(vec!["t".into()]),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no webhook URL"), "{e}");
    }
}
