//! How tests start `kbridge run`: its options, so that a test can start
//! the same relay again (a restart) or a second one in the same group; the
//! running process is `relay_process::Relay`.

use std::sync::Arc;
use std::time::Duration;

use crate::broker;
use crate::kafka::wait_fully_committed;
use crate::kbridge::kbridge_via;
use crate::relay_process::Relay;

/// The Idempotency-Key the relay sends for each produced record
/// (`topic-partition-offset`).
pub fn event_keys(topic: &str, coords: &[(i32, i64)]) -> Vec<String> {
    coords
        .iter()
        .map(|(p, o)| format!("{topic}-{p}-{o}"))
        .collect()
}

/// How to start the relay; `start` may be called again (restart).
#[derive(Clone)]
pub struct RelayCmd {
    /// The shared test broker when `None`.
    pub brokers: Option<String>,
    pub topic: String,
    pub group: String,
    pub webhook: String,
    pub offset_reset: String,
    pub dead_letter_topic: Option<String>,
    /// TOML text written to a temp file and passed with --config.
    config: Option<Arc<tempfile::NamedTempFile>>,
    pub env: Vec<(String, String)>,
    /// Global options before `run` (e.g. `-X k=v`).
    pub global: Vec<String>,
    /// A command that runs kbridge (e.g. `taskset -c 0`).
    pub wrapper: Vec<String>,
}

impl RelayCmd {
    pub fn new(topic: &str, group: &str, webhook: &str) -> Self {
        Self {
            brokers: None,
            topic: topic.to_string(),
            group: group.to_string(),
            webhook: webhook.to_string(),
            offset_reset: "earliest".to_string(),
            dead_letter_topic: None,
            config: None,
            env: vec![("KBRIDGE_LOG".into(), "info".into())],
            global: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    /// Runs against these brokers instead of the shared test broker.
    pub fn brokers(mut self, brokers: &str) -> Self {
        self.brokers = Some(brokers.to_string());
        self
    }

    pub fn dead_letters(mut self, topic: &str) -> Self {
        self.dead_letter_topic = Some(topic.to_string());
        self
    }

    pub fn offset_reset(mut self, v: &str) -> Self {
        self.offset_reset = v.to_string();
        self
    }

    pub fn config(mut self, toml: &str) -> Self {
        let f = tempfile::Builder::new()
            .prefix("kbridge-relay-test-")
            .suffix(".toml")
            .tempfile()
            .expect("cannot create a config file");
        std::fs::write(f.path(), toml).expect("cannot write the config file");
        self.config = Some(Arc::new(f));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// A librdkafka property for every client of the relay (`-X k=v`).
    pub fn property(mut self, kv: &str) -> Self {
        self.global.push("-X".into());
        self.global.push(kv.into());
        self
    }

    /// Runs kbridge through this command (e.g. `["taskset", "-c", "0"]`).
    pub fn wrapped(mut self, wrapper: &[&str]) -> Self {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn start(&self) -> Relay {
        self.start_with(&[])
    }

    /// Starts the relay (again, after a stop or a crash) and waits until it
    /// owns partitions and its group committed every offset of its topic.
    pub fn start_until_committed(&self, timeout: Duration) -> Relay {
        let mut relay = self.start();
        relay.wait_assigned();
        wait_fully_committed(&self.group, &self.topic, timeout);
        relay
    }

    /// Starts with extra `run` options.
    pub fn start_with(&self, extra: &[&str]) -> Relay {
        let brokers = self.brokers.clone().unwrap_or_else(broker::brokers);
        let mut c = kbridge_via(&self.wrapper, &brokers);
        c.args(&self.global).arg("run").args(extra);
        c.args(["--topic", &self.topic, "--group", &self.group]);
        c.args([
            "--webhook",
            &self.webhook,
            "--offset-reset",
            &self.offset_reset,
        ]);
        if let Some(d) = &self.dead_letter_topic {
            c.args(["--dead-letter-topic", d]);
        }
        if let Some(f) = &self.config {
            c.arg("--config").arg(f.path());
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        Relay::spawn(c, self.config.clone())
    }
}
