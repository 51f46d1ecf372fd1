//! The settings every Kafka client of one kbridge process shares (`-b`,
//! `-X` or `[kafka]`, `--timeout`) and how a client is built from them:
//! kbridge's defaults, the user's properties over them, and the settings a
//! client needs to work over those.

use std::time::Duration;

use anyhow::{Result, anyhow};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::metadata::Metadata;
use rdkafka::producer::BaseProducer;

use super::context::{KafkaContext, LastError};

/// Bootstrap servers when neither `-b`, `KBRIDGE_BROKERS` nor `brokers` in
/// the relay's config says otherwise.
pub(crate) const DEFAULT_BROKERS: &str = "localhost:9092";

/// Where the user's librdkafka properties came from, so that an error can
/// say what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropertySource {
    /// `-X KEY=VALUE` on the command line.
    CommandLine,
    /// The `[kafka]` table of the relay's config file.
    ConfigFile,
}

impl PropertySource {
    fn hint(self) -> &'static str {
        match self {
            PropertySource::CommandLine => "the -X properties",
            PropertySource::ConfigFile => "the [kafka] settings",
        }
    }
}

/// Connection settings shared by all clients of one kbridge process.
#[derive(Debug, Clone)]
pub(crate) struct KafkaOpts {
    pub brokers: String,
    /// The user's librdkafka properties; they win over kbridge's defaults.
    pub properties: Vec<(String, String)>,
    /// How long to wait for the cluster before giving up.
    pub timeout: Duration,
    pub source: PropertySource,
}

impl KafkaOpts {
    /// The operator commands' settings: `-b` (or the default), `-X`, `--timeout`.
    pub(crate) fn from_command_line(
        brokers: Option<&str>,
        properties: Vec<(String, String)>,
        timeout: Duration,
    ) -> Self {
        Self {
            brokers: brokers.unwrap_or(DEFAULT_BROKERS).to_string(),
            properties,
            timeout,
            source: PropertySource::CommandLine,
        }
    }

    /// Starts a client's configuration: bootstrap servers, client id and
    /// librdkafka's logs routed into `tracing`.
    pub(crate) fn client(&self) -> ClientBuilder<'_> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "kbridge")
            // librdkafka (since 2.10) drops the bootstrap connection once
            // it learns the brokers, and with sparse connections waits
            // reconnect.backoff.ms / 2 before connecting to a learned one:
            // 50 ms added to every command's first request (`topics list`
            // took 60 ms against kcat's 10). Connecting to the learned
            // brokers at once costs a connection each, which the relay and
            // most commands make anyway.
            .set("enable.sparse.connections", "false")
            .set_log_level(RDKafkaLogLevel::Debug);
        ClientBuilder {
            opts: self,
            config,
            fixed: Vec::new(),
        }
    }

    pub(crate) fn admin(&self) -> Result<AdminClient<KafkaContext>> {
        self.client()
            .build(KafkaContext::default(), "the Kafka client")
    }

    /// A client for metadata alone. Not an `AdminClient`: that one polls
    /// its queue on a thread that sleeps up to 100 ms between looks, and
    /// dropping it waits for that thread — a tenth of a second added to
    /// `topics list` (kcat's `-L` takes about 10 ms in all). A producer
    /// with nothing to send has no such thread and closes at once.
    pub(crate) fn metadata_client(&self) -> Result<BaseProducer<KafkaContext>> {
        self.client()
            .build(KafkaContext::default(), "the Kafka client")
    }

    /// Timeouts of an admin request: `--timeout` for both the request and
    /// the operation on the controller.
    pub(crate) fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout))
    }

    /// Fetches cluster metadata (all topics, or one), turning a timeout into
    /// an actionable message naming the brokers tried.
    pub(crate) fn metadata<C: ClientContext + LastError>(
        &self,
        client: &Client<C>,
        topic: Option<&str>,
    ) -> Result<Metadata> {
        client
            .fetch_metadata(topic, self.timeout)
            .map_err(|e| self.unreachable(e, self.why_unreachable(client)))
    }
}

/// One client's configuration on its way to being built. kbridge's own
/// settings come in two kinds: defaults, which the user's properties
/// override, and settings the client needs to work, which win over them.
pub(crate) struct ClientBuilder<'a> {
    opts: &'a KafkaOpts,
    config: ClientConfig,
    fixed: Vec<(String, String)>,
}

impl ClientBuilder<'_> {
    /// A kbridge default; the user's properties override it.
    pub(crate) fn set_default(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.set(key, value);
        self
    }

    /// A setting this client needs to work; it wins over the user's
    /// properties.
    pub(crate) fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fixed.push((key.to_string(), value.into()));
        self
    }

    /// Builds the client with `context`; `what` names it in the error
    /// ("the consumer").
    pub(crate) fn build<T, C>(self, context: C, what: &str) -> Result<T>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C>,
    {
        let mut config = self.config;
        for (k, v) in self.opts.properties.iter().chain(&self.fixed) {
            config.set(k, v);
        }
        T::from_config_and_context(&config, context).map_err(|e| {
            let error = e.to_string();
            anyhow!(
                "cannot create {what}: {error}{}; check {}",
                file_hint(&error),
                self.opts.source.hint()
            )
        })
    }
}

/// What a certificate or key file error from OpenSSL (through librdkafka,
/// as `ssl.key.location failed: …PEM lib`) most likely means.
fn file_hint(error: &str) -> &'static str {
    if error.contains("ssl.key.location failed") {
        " (the client key could not be read: for an encrypted key, ssl.key.password is wrong or \
         missing; otherwise the file is not a PEM private key)"
    } else if error.contains("ssl.certificate.location failed") {
        " (the client certificate could not be read: not a PEM certificate?)"
    } else if error.contains("ssl.ca.location failed") {
        " (the CA file could not be read: not PEM certificates?)"
    } else {
        ""
    }
}
