//! Why a client could not reach the cluster, in one line that says what
//! to fix: librdkafka's own words when it has them (`connect_failure`
//! tells a refused password from an untrusted certificate), else what a
//! plain TCP connection to each bootstrap address finds.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::client::{Client, ClientContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};

use super::connect_failure::Failure;
use super::context::{KafkaContext, LastError, LibrdkafkaLogs};
use super::options::KafkaOpts;

impl KafkaOpts {
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
    pub(super) fn refused(&self, cause: Option<&str>) -> Option<String> {
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
