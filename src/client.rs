//! Every Kafka client kbridge creates is built here — the operator
//! commands', the relay's consumer and dead-letter producer, the demo's —
//! so that the brokers, the user's librdkafka properties (`-X` or `[kafka]`)
//! and `--timeout` mean the same thing everywhere, librdkafka's logs reach
//! `tracing` the same way, and an unreachable cluster or a missing topic
//! produces one clear line instead of a wall of connection errors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{ClientConfig, Offset};

use crate::connect_failure::Failure;
use crate::topic_partition::TopicPartition;

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

    /// Why `client` could not reach the cluster, in librdkafka's words.
    ///
    /// librdkafka queues its logs and errors for the client's next poll,
    /// which a metadata request never makes, and a group consumer's queue
    /// may not be polled at all here (it would take messages). So when the
    /// client has nothing to say, a short-lived producer with the same
    /// settings connects and is polled for up to 3 s, or until librdkafka
    /// names a cause (a refused password or certificate shows within a
    /// round trip).
    pub(crate) fn why_unreachable<C: ClientContext + LastError>(
        &self,
        client: &Client<C>,
    ) -> Option<String> {
        client.context().last_error().or_else(|| self.diagnose())
    }

    fn diagnose(&self) -> Option<String> {
        let producer: BaseProducer<KafkaContext> = self
            .client()
            .set("client.id", "kbridge-diagnosis")
            .build(
                KafkaContext::new(LibrdkafkaLogs::Quiet),
                "a diagnosis client",
            )
            .ok()?;
        let deadline = Instant::now() + self.timeout.min(Duration::from_secs(3));
        // A metadata request makes the producer connect.
        let _ = producer
            .client()
            .fetch_metadata(None, Duration::from_millis(1));
        while Instant::now() < deadline {
            producer.poll(Duration::from_millis(50));
            if let Some(e) = producer.context().last_error()
                && Failure::of(&e).is_some()
            {
                return Some(e);
            }
        }
        producer.context().last_error()
    }

    /// The explanation of a connection refused for a cause that waiting
    /// does not cure (credentials, certificates, protocol).
    fn refused(&self, cause: Option<&str>) -> Option<String> {
        let cause = cause?;
        let failure = Failure::of(cause)?;
        Some(failure.explain(&self.brokers, cause, &self.property_map()))
    }

    /// The user's properties by name (the last of a repeated one wins).
    fn property_map(&self) -> std::collections::BTreeMap<String, String> {
        self.properties.iter().cloned().collect()
    }

    /// The one-line error for "the cluster did not answer".
    pub(crate) fn unreachable(&self, err: KafkaError, last: Option<String>) -> anyhow::Error {
        // librdkafka reports its connection errors on a queue that not every
        // client type polls; when none was seen, look at the sockets.
        if let Some(line) = self.refused(last.as_deref()) {
            return anyhow!(line);
        }
        let cause = last
            .or_else(|| probe(&self.brokers, self.timeout))
            .unwrap_or_else(|| err.to_string());
        anyhow!(
            "no Kafka broker answered at {} within {:?} ({cause}); check the address (-b or KBRIDGE_BROKERS), that the broker is running and reachable, and -X security.protocol/sasl.* if it needs TLS or SASL (--timeout waits longer)",
            self.brokers,
            self.timeout
        )
    }

    /// Checks that every named topic exists, with a message saying so.
    pub(crate) fn require_topics(&self, metadata: &Metadata, topics: &[String]) -> Result<()> {
        match missing_topics(metadata, topics).first() {
            None => Ok(()),
            Some(t) => Err(anyhow!(
                "topic '{t}' does not exist; create it with `kbridge topics create {t}` or list topics with `kbridge topics list`"
            )),
        }
    }

    /// Waits (at most `wait`) until every topic exists, so that a typo fails
    /// a service's start with a clear message instead of leaving it idle.
    /// Blocking: call it off the async workers.
    pub(crate) fn wait_for_topics<C: ClientContext + LastError>(
        &self,
        client: &Client<C>,
        topics: &[String],
        wait: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + wait;
        loop {
            let missing: Vec<&String> = match client.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(md) => missing_topics(&md, topics),
                Err(e) => {
                    let cause = self.why_unreachable(client);
                    // A refused password or certificate does not get
                    // better by waiting for the topics.
                    let permanent = cause
                        .as_deref()
                        .and_then(Failure::of)
                        .is_some_and(Failure::is_permanent);
                    if permanent || Instant::now() >= deadline {
                        if let Some(line) = self.refused(cause.as_deref()) {
                            bail!(line);
                        }
                        let cause = cause.unwrap_or_else(|| e.to_string());
                        bail!(
                            "no Kafka broker answered at {} within {wait:?} ({cause}); check `brokers` and the [kafka] security settings",
                            self.brokers
                        );
                    }
                    topics.iter().collect()
                }
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let names = missing
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (what, verb) = if missing.len() == 1 {
                    ("topic", "does")
                } else {
                    ("topics", "do")
                };
                bail!(
                    "{what} {names} {verb} not exist (waited {wait:?}); create it with `kbridge topics create` or fix `topics`"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The first offset at or after `ms` for each partition; the log end
    /// when no message is that recent.
    pub(crate) fn offsets_for_time<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        all: &[TopicPartition],
        ms: i64,
    ) -> Result<Vec<Offset>> {
        let tpl = TopicPartition::list_at(all.iter().map(|tp| (tp, Offset::Offset(ms))));
        let found = consumer
            .offsets_for_times(tpl, self.timeout)
            .context("cannot look up offsets by time")?;
        all.iter()
            .map(|tp| {
                let e = found
                    .find_partition(&tp.topic, tp.partition)
                    .ok_or_else(|| anyhow!("no offset returned for {tp}"))?;
                Ok(match e.offset() {
                    Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                    _ => Offset::End,
                })
            })
            .collect()
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

/// The topics of `wanted` that the metadata does not show as usable.
fn missing_topics<'a>(metadata: &Metadata, wanted: &'a [String]) -> Vec<&'a String> {
    wanted
        .iter()
        .filter(|t| {
            !metadata.topics().iter().any(|m| {
                m.name() == t.as_str() && m.error().is_none() && !m.partitions().is_empty()
            })
        })
        .collect()
}

/// Tries a TCP connection to each bootstrap address and says what
/// happened, e.g. `127.0.0.1:1: connection refused`.
fn probe(brokers: &str, timeout: Duration) -> Option<String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let wait = timeout.min(Duration::from_secs(2));
    let findings: Vec<String> = brokers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| {
            let addr = b.split_once("://").map_or(b, |(_, a)| a);
            let resolved = match addr.to_socket_addrs() {
                Ok(mut it) => it.next(),
                Err(e) => return format!("{addr}: cannot resolve ({e})"),
            };
            let Some(sock) = resolved else {
                return format!("{addr}: no address");
            };
            match TcpStream::connect_timeout(&sock, wait) {
                Ok(_) => format!(
                    "{addr}: accepts connections but did not answer as a Kafka broker (another service, or TLS/SASL needed)"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    format!("{addr}: connection refused")
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    format!("{addr}: no answer (host down or filtered)")
                }
                Err(e) => format!("{addr}: {e}"),
            }
        })
        .collect();
    (!findings.is_empty()).then(|| findings.join("; "))
}

/// Gives access to the last error librdkafka reported for a client.
pub(crate) trait LastError {
    fn last_error(&self) -> Option<String>;
}

/// How loudly librdkafka's own warnings are logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum LibrdkafkaLogs {
    /// The commands: a person sees them with `-vv`, and one clear summary
    /// line otherwise.
    #[default]
    Quiet,
    /// The relay service: its operator needs librdkafka's warnings.
    Service,
}

/// The client context used everywhere: routes librdkafka's logs into
/// `tracing` (target `librdkafka`) and remembers the last global error, which
/// usually says *why* a broker cannot be reached ("Connection refused",
/// "SSL handshake failed", "SASL authentication failed").
#[derive(Default)]
pub(crate) struct KafkaContext {
    logs: LibrdkafkaLogs,
    last_error: Mutex<Option<String>>,
}

impl KafkaContext {
    pub(crate) fn new(logs: LibrdkafkaLogs) -> Self {
        Self {
            logs,
            last_error: Mutex::new(None),
        }
    }
}

impl LastError for KafkaContext {
    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl ClientContext for KafkaContext {
    /// Maps librdkafka's syslog levels onto tracing's. Connection chatter is
    /// debug for the commands, a warning for the service.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        // The cause of a failed connection (a refused password, an
        // untrusted certificate) is logged at once from librdkafka's
        // threads, while its error callback waits for a poll that a
        // metadata request never makes: remember it from here.
        if Failure::of(msg).is_some() {
            self.remember(msg, true);
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => match self.logs {
                LibrdkafkaLogs::Quiet => tracing::debug!(target: "librdkafka", fac, "{msg}"),
                LibrdkafkaLogs::Service => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            },
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::trace!(target: "librdkafka", fac, "{msg}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
        // "N/N brokers are down" says less than the connection error that
        // preceded it, so it never replaces one.
        let all_down = matches!(
            error,
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        );
        if !all_down {
            self.remember(reason, Failure::of(reason).is_some());
        } else if let Ok(mut g) = self.last_error.lock()
            && g.is_none()
        {
            *g = Some(reason.to_string());
        }
    }
}

impl KafkaContext {
    /// Keeps `reason` as the last error, unless it is a passing one and the
    /// last error names a cause (a refused password outlives the
    /// disconnection it leads to).
    fn remember(&self, reason: &str, names_a_cause: bool) {
        if let Ok(mut g) = self.last_error.lock()
            && (names_a_cause || g.as_deref().and_then(Failure::of).is_none())
        {
            *g = Some(reason.to_string());
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// For the short-lived diagnosis producer, which sends nothing.
impl ProducerContext for KafkaContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Implements `ClientContext` (logs into tracing, errors remembered) and
/// `LastError` for a context that wraps a [`KafkaContext`] in a field named
/// `base`, for clients that need callbacks of their own.
macro_rules! wraps_kafka_context {
    ($t:ty) => {
        impl rdkafka::client::ClientContext for $t {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
                rdkafka::client::ClientContext::log(&self.base, level, fac, msg);
            }
            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                rdkafka::client::ClientContext::error(&self.base, error, reason);
            }
        }

        impl $crate::client::LastError for $t {
            fn last_error(&self) -> Option<String> {
                $crate::client::LastError::last_error(&self.base)
            }
        }
    };
}
pub(crate) use wraps_kafka_context;

/// The partitions of `topic` from metadata, in order.
pub(crate) fn partitions_of(metadata: &Metadata, topic: &str) -> Result<Vec<TopicPartition>> {
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic '{topic}' does not exist"))?;
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|p| TopicPartition::new(topic, p))
        .collect())
}
