//! Why a connection to Kafka failed, in words that say what to fix.
//!
//! librdkafka knows the real cause — a refused SASL password, a broker
//! certificate nobody trusts, a client certificate the broker refuses, a
//! TLS listener spoken to in plaintext — and says so in its logs and error
//! callback, in its own words and among much chatter. [`Failure::of`] tells
//! these messages apart; [`Failure::explain`] turns one into a line for a
//! person, naming the settings involved (never a secret's value).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The SASL credentials were refused.
    Authentication,
    /// The broker's certificate was not trusted, or is not for this name.
    BrokerCertificate,
    /// The broker refused (or wanted and did not get) a client certificate.
    ClientCertificate,
    /// The listener speaks TLS or SASL and the client does not, or the
    /// other way round.
    Protocol,
}

impl Failure {
    /// The failure a librdkafka message describes, if it is one of these.
    pub(crate) fn of(message: &str) -> Option<Self> {
        let m = message.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
        if has(&[
            "sasl authentication error",
            "authentication failed",
            "sasl authentication failed",
            "invalid credentials",
        ]) {
            Some(Failure::Authentication)
        } else if has(&[
            "certificate required",
            "alert bad certificate",
            "alert unknown ca",
            "alert certificate unknown",
            "sslv3 alert handshake failure",
            "tlsv13 alert",
        ]) {
            Some(Failure::ClientCertificate)
        } else if has(&[
            "certificate verify failed",
            "broker certificate could not be verified",
        ]) {
            Some(Failure::BrokerCertificate)
        } else if has(&[
            "incorrect security.protocol",
            "connecting to a ssl listener",
            "connecting to a plaintext",
            "wrong version number",
            "packet length too large",
        ]) || (m.contains("disconnected") && m.contains("in state apiversion_query"))
        {
            Some(Failure::Protocol)
        } else {
            None
        }
    }

    /// Whether waiting cannot cure it: a refused password or certificate
    /// stays refused, while a connection closed during the protocol
    /// handshake may also be a broker restarting.
    pub(crate) fn is_permanent(self) -> bool {
        self != Failure::Protocol
    }

    /// One line for a person: what failed at `brokers`, librdkafka's words,
    /// and what to set. `properties` are the client's (`-X`, `[kafka]`);
    /// only the names of the mechanism and the user are taken from them.
    pub(crate) fn explain(
        self,
        brokers: &str,
        cause: &str,
        properties: &BTreeMap<String, String>,
    ) -> String {
        let cause = cause.trim();
        match self {
            Failure::Authentication => {
                let mechanism = properties
                    .get("sasl.mechanisms")
                    .or_else(|| properties.get("sasl.mechanism"))
                    .map_or("GSSAPI", String::as_str);
                let user = properties
                    .get("sasl.username")
                    .map_or("(none)", String::as_str);
                format!(
                    "Kafka at {brokers}: SASL authentication failed for user '{user}' with {mechanism} ({cause}); check sasl.username and sasl.password, and that the broker enables {mechanism}"
                )
            }
            Failure::BrokerCertificate => format!(
                "Kafka at {brokers}: the broker's TLS certificate was not accepted ({cause}); set ssl.ca.location to the CA that signed it, and address the broker by a name or IP address its certificate lists"
            ),
            Failure::ClientCertificate => format!(
                "Kafka at {brokers}: the broker refused the TLS handshake, most likely this client certificate ({cause}); set ssl.certificate.location and ssl.key.location to a client certificate signed by a CA the broker trusts"
            ),
            Failure::Protocol => format!(
                "Kafka at {brokers}: the listener speaks another protocol ({cause}); set security.protocol to what the listener expects (SSL, SASL_SSL or SASL_PLAINTEXT) with the matching ssl.* and sasl.* settings"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka 2.12's words, as seen against the test broker's listeners.
    #[test]
    fn librdkafka_messages_are_told_apart() {
        let cases = [
            (
                "sasl_ssl://127.0.0.1:19094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 310ms in state AUTH_REQ)",
                Some(Failure::Authentication),
            ),
            (
                "ssl://127.0.0.1:19094/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 4ms in state SSL_HANDSHAKE)",
                Some(Failure::BrokerCertificate),
            ),
            (
                "ssl://127.0.0.1:19095/bootstrap: SSL handshake failed: ssl/record/rec_layer_s3.c:1605: error:0A00045C:SSL routines::tlsv13 alert certificate required: SSL alert number 116 (after 5ms in state SSL_HANDSHAKE)",
                Some(Failure::ClientCertificate),
            ),
            (
                "127.0.0.1:19094/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 2ms in state APIVERSION_QUERY)",
                Some(Failure::Protocol),
            ),
            (
                "127.0.0.1:19094/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 1ms in state APIVERSION_QUERY)",
                Some(Failure::Protocol),
            ),
            (
                "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
                None,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(Failure::of(message), expected, "{message}");
        }
    }

    #[test]
    fn an_explanation_names_the_user_and_mechanism_never_the_password() {
        let props: BTreeMap<String, String> = [
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "hunter2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let line = Failure::Authentication.explain("b:9094", "Authentication failed", &props);
        assert!(
            line.contains("'alice'") && line.contains("SCRAM-SHA-512"),
            "{line}"
        );
        assert!(!line.contains("hunter2"), "{line}");
    }
}
