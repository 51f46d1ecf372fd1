//! The client context every kbridge client uses: librdkafka's logs into
//! `tracing`, and the last error remembered for the one-line diagnosis.

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::ProducerContext;

use super::connect_failure::Failure;

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
