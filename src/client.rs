//! Every Kafka client kbridge creates is built here, so that `-b`, `-X` and
//! `--timeout` mean the same thing for every command, and so that an
//! unreachable cluster produces one clear line instead of a wall of
//! librdkafka connection errors.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

/// Connection settings shared by all commands.
#[derive(Debug, Clone)]
pub(crate) struct KafkaOpts {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
    pub timeout: Duration,
}

impl KafkaOpts {
    /// The base configuration: bootstrap servers, a client id, and the
    /// user's `-X` properties last so they win over our defaults.
    pub(crate) fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("client.id", "kbridge")
            // Surface librdkafka's own logs through our tracing subscriber.
            .set_log_level(RDKafkaLogLevel::Debug);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// Builds any client type with the shared context.
    pub(crate) fn build<T>(&self, cfg: &ClientConfig) -> Result<T>
    where
        T: FromClientConfigAndContext<KafkaContext>,
    {
        T::from_config_and_context(cfg, KafkaContext::default())
            .map_err(|e| anyhow!("cannot create the Kafka client: {e}; check the -X properties"))
    }

    pub(crate) fn admin(&self) -> Result<AdminClient<KafkaContext>> {
        self.build(&self.config())
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
            .map_err(|e| self.unreachable(e, client.context().last_error()))
    }

    /// The one-line error for "the cluster did not answer".
    pub(crate) fn unreachable(&self, err: KafkaError, last: Option<String>) -> anyhow::Error {
        // librdkafka reports its connection errors on a queue that not every
        // client type polls; when none was seen, look at the sockets.
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
        for t in topics {
            let found = metadata.topics().iter().find(|m| m.name() == t);
            match found {
                Some(m) if m.error().is_none() && !m.partitions().is_empty() => {}
                _ => {
                    return Err(anyhow!(
                        "topic '{t}' does not exist; create it with `kbridge topics create {t}` or list topics with `kbridge topics list`"
                    ));
                }
            }
        }
        Ok(())
    }
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

/// The client context used everywhere: routes librdkafka's logs into
/// `tracing` (target `librdkafka`) and remembers the last global error, which
/// usually says *why* a broker cannot be reached ("Connection refused",
/// "SSL handshake failed", "SASL authentication failed").
#[derive(Default)]
pub(crate) struct KafkaContext {
    last_error: Mutex<Option<String>>,
}

impl LastError for KafkaContext {
    fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_librdkafka(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
        // "N/N brokers are down" says less than the connection error that
        // preceded it, so it never replaces one.
        let all_down = matches!(
            error,
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        );
        if let Ok(mut g) = self.last_error.lock()
            && (!all_down || g.is_none())
        {
            *g = Some(reason.to_string());
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Implements `ClientContext` (logs into tracing, errors remembered) and
/// `LastError` for a context that wraps a [`KafkaContext`] in a field named
/// `base`, for commands that need callbacks of their own.
macro_rules! wraps_kafka_context {
    ($t:ty) => {
        impl rdkafka::client::ClientContext for $t {
            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
                $crate::client::log_librdkafka(level, fac, msg);
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

/// Maps librdkafka's syslog levels onto tracing's. Connection chatter is
/// debug: a person sees it with `-vv`, and a clear summary otherwise.
pub(crate) fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::trace!(target: "librdkafka", fac, "{msg}")
        }
        RDKafkaLogLevel::Debug => tracing::trace!(target: "librdkafka", fac, "{msg}"),
    }
}

/// Resolves the effective brokers from the CLI value or the default.
pub(crate) fn brokers_or_default(brokers: Option<&str>) -> String {
    brokers.unwrap_or(crate::cli::DEFAULT_BROKERS).to_string()
}

/// Returns the partitions of `topic` from metadata.
pub(crate) fn partitions_of(metadata: &Metadata, topic: &str) -> Result<Vec<i32>> {
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic '{topic}' does not exist"))?;
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}
