//! Dead letters: events that can never be delivered go to a Kafka topic,
//! unchanged, with headers that say why (and on which route: an event that
//! fails on two routes is two dead letters) — so nothing is lost silently and
//! an operator can fix and replay them (`kbridge consume DLQ -f json`).
//!
//! An offset is committed only after its dead letter was acknowledged by
//! the brokers, so a failing dead-letter topic stalls the partition instead
//! of dropping the event.

use std::time::Duration;

use anyhow::Result;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::Interrupted;
use super::retry::backoff;
use crate::client::{KafkaContext, KafkaOpts};
use crate::relay::commit::Ownership;
use crate::relay::config::RetryConfig;
use crate::relay::source::Origin;
use crate::relay::stage::Stage;

pub(crate) struct DeadLetters {
    producer: FutureProducer<KafkaContext>,
    topic: String,
}

impl DeadLetters {
    /// The dead-letter producer: idempotent, acknowledged by all in-sync
    /// replicas, with the user's `[kafka]` settings.
    pub(crate) fn new(kafka: &KafkaOpts, topic: String) -> Result<Self> {
        let producer = kafka
            .client()
            .set_default("client.id", "kbridge-dead-letters")
            .set_default("enable.idempotence", "true")
            .set_default("acks", "all")
            .set_default("linger.ms", "5")
            // A dead letter carries the original value, however large it
            // was; the topic's own limit decides, and a value it refuses is
            // left out (see `send`).
            .set_default("message.max.bytes", "100000000")
            .build(KafkaContext::default(), "the dead-letter producer")?;
        Ok(Self { producer, topic })
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Builds the dead letter's headers: the original ones plus ours.
    pub(crate) fn headers(
        origin: &Origin,
        route: &str,
        stage: Stage,
        reason: &str,
    ) -> OwnedHeaders {
        // A native copy: the original keys and values stay the bytes they
        // were, UTF-8 or not.
        let mut headers = origin.headers.clone().unwrap_or_default();
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let now = jiff::Timestamp::now().to_string();
        for (k, v) in [
            ("kbridge.error", reason),
            ("kbridge.stage", stage.as_str()),
            ("kbridge.route", route),
            ("kbridge.topic", &origin.topic),
            ("kbridge.partition", &partition),
            ("kbridge.offset", &offset),
            ("kbridge.time", &now),
        ] {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        headers
    }

    /// Sends one dead letter and waits for its acknowledgement, retrying
    /// until it is acknowledged or the partition's `ownership` ends (then
    /// `Interrupted`: the event stays uncommitted and is read again by the
    /// next owner or after the restart).
    pub(crate) async fn send(
        &self,
        origin: &Origin,
        route: &str,
        stage: Stage,
        reason: &str,
        retry: &RetryConfig,
        ownership: &Ownership,
    ) -> Result<(), Interrupted> {
        let mut headers = Self::headers(origin, route, stage, reason);
        let mut omit_value = false;
        let mut delays = backoff(retry);
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers.clone());
            if let Some(k) = &origin.key {
                record = record.key(k.as_slice());
            }
            if let Some(p) = origin.payload.as_ref().filter(|_| !omit_value) {
                record = record.payload(p.as_slice());
            }
            if ownership.is_ending() {
                return Err(Interrupted);
            }
            let sent = tokio::select! {
                sent = self.producer.send(record, Timeout::Never) => sent,
                _ = ownership.revoked() => return Err(Interrupted),
            };
            match sent {
                Ok(_) => return Ok(()),
                // Too large for the producer or the topic: retrying cannot
                // help, so keep the event's coordinates and reason but not
                // its value (the original stays readable in its topic until
                // retention removes it).
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))
                    if !omit_value =>
                {
                    omit_value = true;
                    let size = origin.payload.as_ref().map_or(0, Vec::len).to_string();
                    headers = headers
                        .insert(Header {
                            key: "kbridge.value_omitted",
                            value: Some("too large for the dead-letter topic".as_bytes()),
                        })
                        .insert(Header {
                            key: "kbridge.value_size",
                            value: Some(size.as_bytes()),
                        });
                    tracing::warn!(
                        event = %origin.coordinates(),
                        size,
                        "the event is too large for the dead-letter topic; writing its dead letter without the value"
                    );
                }
                Err((e, _)) => {
                    let wait = delays.next().unwrap_or(retry.max_backoff);
                    tracing::error!(
                        topic = %self.topic,
                        event = %origin.coordinates(),
                        retry_in = ?wait,
                        "cannot write the dead letter: {e}; the partition waits until it succeeds"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = ownership.ending() => return Err(Interrupted),
                    }
                }
            }
        }
    }

    /// Waits for every queued dead letter (shutdown).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout)?;
        Ok(())
    }
}
