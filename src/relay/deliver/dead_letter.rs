//! Dead letters: events that can never be delivered go to a Kafka topic,
//! unchanged, with headers that say why (and on which route: an event that
//! fails on two routes is two dead letters) — so nothing is lost silently and
//! an operator can fix and replay them (`kbridge consume DLQ -f json`).
//!
//! An offset is committed only after its dead letter was acknowledged by
//! the brokers, so a failing dead-letter topic stalls the partition instead
//! of dropping the event — said at error level, and in `/readyz`.
//!
//! Everything kbridge adds is bounded (a reason is cut at
//! [`MAX_REASON_BYTES`]), and a dead letter the topic refuses as too large
//! is made smaller step by step — without the value, then without the
//! original headers, then without the key, each step said in a header — so
//! the only record left to refuse is one of kbridge's own headers, a few
//! hundred bytes: a topic that refuses even that is misconfigured, which
//! the log says, and the partition waits for the fix.

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
use crate::relay::dlq::names;
use crate::relay::source::Origin;
use crate::relay::stage::Stage;

/// The longest reason a dead letter carries (`kbridge.error`): jq
/// messages and multi-output failure lists can be any length.
pub(crate) const MAX_REASON_BYTES: usize = 4096;

pub(crate) struct DeadLetters {
    /// Rebuilt after a fatal error (an idempotent producer that lost its
    /// sequence cannot send again).
    producer: std::sync::Mutex<std::sync::Arc<FutureProducer<KafkaContext>>>,
    kafka: KafkaOpts,
    totals: std::sync::Arc<crate::relay::telemetry::Totals>,
    /// Sends failing now (for readiness): a count, as several tasks may be
    /// retrying at once.
    failing: std::sync::atomic::AtomicI64,
}

/// One dead letter: where it goes, and why (on which route, at which
/// stage).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Letter<'a> {
    pub topic: &'a str,
    pub route: &'a str,
    pub stage: Stage,
    pub reason: &'a str,
    /// What the target answered, if it was asked.
    pub answer: super::Answered,
}

/// Where a dead letter was written: its partition and offset.
pub(crate) type Written = (i32, i64);

/// What a dead letter leaves out, step by step, when the topic says it is
/// too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Trimmed {
    Nothing,
    Value,
    Headers,
    Key,
}

impl DeadLetters {
    /// The dead-letter producer: idempotent, acknowledged by all in-sync
    /// replicas, with the user's `[kafka]` settings.
    pub(crate) fn new(
        kafka: &KafkaOpts,
        totals: std::sync::Arc<crate::relay::telemetry::Totals>,
    ) -> Result<Self> {
        Ok(Self {
            producer: std::sync::Mutex::new(std::sync::Arc::new(Self::producer(kafka)?)),
            kafka: kafka.clone(),
            totals,
            failing: std::sync::atomic::AtomicI64::new(0),
        })
    }

    fn producer(kafka: &KafkaOpts) -> Result<FutureProducer<KafkaContext>> {
        kafka
            .client()
            .set_default("client.id", "kbridge-dead-letters")
            .set_default("enable.idempotence", "true")
            .set_default("acks", "all")
            .set_default("linger.ms", "5")
            // A dead letter carries the original value, however large it
            // was; the topic's own limit decides, and a value it refuses is
            // left out (see `send`).
            .set_default("message.max.bytes", "100000000")
            // A dead letter that cannot be written within this is said at
            // error level, counted in /readyz and sent again (librdkafka's
            // 5 minutes would keep a missing topic or a refusing ACL silent).
            .set_default("message.timeout.ms", "30000")
            .build(KafkaContext::default(), "the dead-letter producer")
    }

    fn current(&self) -> std::sync::Arc<FutureProducer<KafkaContext>> {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A producer with a fatal error sends nothing ever again: a new one.
    fn renew_if_fatal(&self, used: &std::sync::Arc<FutureProducer<KafkaContext>>, topic: &str) {
        let Some((code, reason)) = used.client().fatal_error() else {
            return;
        };
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if !std::sync::Arc::ptr_eq(&slot, used) {
            return; // another task renewed it
        }
        match Self::producer(&self.kafka) {
            Ok(p) => {
                tracing::error!(
                    topic,
                    "the dead-letter producer failed for good ({code:?}: {reason}); starting a new one"
                );
                *slot = std::sync::Arc::new(p);
            }
            Err(e) => {
                tracing::error!(
                    topic,
                    "the dead-letter producer failed for good ({code:?}: {reason}) and a new one cannot start: {e:#}"
                )
            }
        }
    }

    /// Counts a task whose dead letter fails (+1) or no longer does (-1);
    /// the relay is not ready while any does.
    fn set_failing(&self, failing: &mut bool, now: bool) {
        if *failing != now {
            *failing = now;
            let n = self.failing.fetch_add(
                if now { 1 } else { -1 },
                std::sync::atomic::Ordering::Relaxed,
            );
            let after = n + if now { 1 } else { -1 };
            self.totals.dead_letters_failing(after > 0);
        }
    }

    /// Builds the dead letter's headers: the original ones (unless left
    /// out) plus ours.
    fn headers(origin: &Origin, with_original: bool, letter: &Letter<'_>) -> OwnedHeaders {
        let Letter {
            route,
            stage,
            reason,
            answer,
            ..
        } = *letter;
        // A native copy: the original keys and values stay the bytes they
        // were, UTF-8 or not.
        let mut headers = origin
            .headers
            .clone()
            .filter(|_| with_original)
            .unwrap_or_default();
        let reason = crate::truncate::truncate(reason, MAX_REASON_BYTES);
        let partition = origin.partition.to_string();
        let offset = origin.offset.to_string();
        let now = jiff::Timestamp::now().to_string();
        let status = answer.status.map(|s| s.to_string());
        let attempts = (answer.attempts > 0).then(|| answer.attempts.to_string());
        // A re-drive's count goes with the dead letter whatever it leaves
        // out: `kbridge dlq redrive` refuses it after `--max-redrives`.
        let count = origin
            .redrive_count
            .as_deref()
            .filter(|_| !with_original)
            .and_then(|c| std::str::from_utf8(c).ok());
        for (k, v) in [
            (names::REDRIVE_COUNT, count),
            (names::ERROR, Some(reason.as_str())),
            (names::STAGE, Some(stage.as_str())),
            (names::ROUTE, Some(route)),
            (names::TOPIC, Some(&*origin.topic)),
            (names::PARTITION, Some(partition.as_str())),
            (names::OFFSET, Some(offset.as_str())),
            (names::TIME, Some(now.as_str())),
            (names::STATUS, status.as_deref()),
            (names::ATTEMPTS, attempts.as_deref()),
        ] {
            if let Some(v) = v {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        headers
    }

    /// Sends one dead letter and waits for its acknowledgement, retrying
    /// until it is acknowledged or the partition's `ownership` ends (then
    /// `Interrupted`: the event stays uncommitted and is read again by the
    /// next owner or after the restart); where it was written.
    pub(crate) async fn send(
        &self,
        letter: Letter<'_>,
        origin: &Origin,
        retry: &RetryConfig,
        ownership: &Ownership,
    ) -> Result<Written, Interrupted> {
        let mut failing = false;
        let sent = self
            .send_trimmed(&letter, origin, retry, ownership, &mut failing)
            .await;
        self.set_failing(&mut failing, false);
        sent
    }

    async fn send_trimmed(
        &self,
        letter: &Letter<'_>,
        origin: &Origin,
        retry: &RetryConfig,
        ownership: &Ownership,
        failing: &mut bool,
    ) -> Result<Written, Interrupted> {
        let topic = letter.topic;
        let mut trimmed = Trimmed::Nothing;
        let mut delays = backoff(retry);
        loop {
            let with_original = trimmed < Trimmed::Headers;
            let headers = Self::headers(origin, with_original, letter);
            let headers = trim_notes(headers, origin, trimmed);
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(k) = origin.key.as_ref().filter(|_| trimmed < Trimmed::Key) {
                record = record.key(k.as_slice());
            }
            if let Some(p) = origin.payload.as_ref().filter(|_| trimmed < Trimmed::Value) {
                record = record.payload(p.as_slice());
            }
            if ownership.is_ending() {
                return Err(Interrupted);
            }
            let producer = self.current();
            let sent = tokio::select! {
                sent = producer.send(record, Timeout::Never) => sent,
                _ = ownership.revoked() => return Err(Interrupted),
            };
            let e = match sent {
                Ok(d) => return Ok((d.partition, d.offset)),
                Err((e, _)) => e,
            };
            // Too large for the producer or the topic: retrying the same
            // record cannot help; a smaller one may.
            let too_large = matches!(
                e,
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord
                )
            );
            if too_large && trimmed < Trimmed::Key {
                trimmed = match trimmed {
                    Trimmed::Nothing => Trimmed::Value,
                    Trimmed::Value => Trimmed::Headers,
                    _ => Trimmed::Key,
                };
                tracing::warn!(
                    event = %origin.coordinates(),
                    "the dead letter is too large for the dead-letter topic; writing it without {}",
                    match trimmed {
                        Trimmed::Value => "the value",
                        Trimmed::Headers => "the value and the original headers",
                        _ => "the value, the original headers and the key",
                    }
                );
                continue;
            }
            self.set_failing(failing, true);
            self.renew_if_fatal(&producer, topic);
            let wait = delays.next().unwrap_or(retry.max_backoff);
            if too_large {
                tracing::error!(
                    topic,
                    event = %origin.coordinates(),
                    retry_in = ?wait,
                    "the dead-letter topic refuses even kbridge's own headers as too large: raise its max.message.bytes (a few KiB is enough); the partition waits until it succeeds"
                );
            } else {
                tracing::error!(
                    topic,
                    event = %origin.coordinates(),
                    retry_in = ?wait,
                    "cannot write the dead letter: {e}; the partition waits until it succeeds (check the topic exists and kbridge may write to it)"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ownership.ending() => return Err(Interrupted),
            }
        }
    }

    /// Waits for every queued dead letter (shutdown).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        self.current().flush(timeout)?;
        Ok(())
    }
}

/// The headers that say what a trimmed dead letter left out.
fn trim_notes(headers: OwnedHeaders, origin: &Origin, trimmed: Trimmed) -> OwnedHeaders {
    let mut headers = headers;
    let mut note = |key: &'static str, value: String| {
        headers = std::mem::take(&mut headers).insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    };
    if trimmed >= Trimmed::Value {
        note(
            "kbridge.value_omitted",
            "too large for the dead-letter topic".into(),
        );
        note(
            "kbridge.value_size",
            origin.payload.as_ref().map_or(0, Vec::len).to_string(),
        );
    }
    if trimmed >= Trimmed::Headers {
        let n = origin
            .headers
            .as_ref()
            .map_or(0, rdkafka::message::Headers::count);
        note("kbridge.headers_omitted", n.to_string());
    }
    if trimmed >= Trimmed::Key {
        note(
            "kbridge.key_size",
            origin.key.as_ref().map_or(0, Vec::len).to_string(),
        );
    }
    headers
}
