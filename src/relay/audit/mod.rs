//! The journey of every alert: with `[audit] topic`, one small record per
//! event and route outcome (delivered, skipped, invalid, rejected,
//! dead-lettered, and the storm stage's deduped, grouped, held, silenced,
//! absorbed), keyed by the alert's id, in a Kafka topic that `kbridge
//! trace` reads.
//!
//! Written before the event's offset is committed, without a wait per
//! event: a record is handed to the producer when the outcome is known
//! (`Shared::report`), and a commit goes only once every record handed
//! over before its offsets were taken is acknowledged ([`Audit::durable`],
//! asked by the committer: `ledger`, a count per epoch, without a lock). A record the brokers refuse is sent
//! again before the next commit; the commit waits for it.
//!
//! What it offers: [`Audit`] (the writer), [`AuditRecord`] (the format,
//! for `trace`), [`ensure_topic`], and [`partition_of`] (the partitioner's
//! choice for a key, for `trace`).

mod ledger;
mod record;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

use crate::client::KafkaContext;
use crate::relay::config::RelayConfig;
use crate::relay::report::Outcome;
use crate::relay::source::Origin;
pub(crate) use ledger::Ledger;
use ledger::Unsent;
pub(crate) use record::{AuditRecord, Place, partition_of};

/// The audit writer: one producer for the relay.
pub(crate) struct Audit {
    producer: ThreadedProducer<AuditContext>,
    topic: String,
    instance: String,
    ledger: Arc<Ledger>,
    totals: Arc<crate::relay::telemetry::Totals>,
    /// The mark a commit waited for in vain ([`NO_MARK`]: none).
    open_mark: std::sync::atomic::AtomicU64,
}

const NO_MARK: u64 = u64::MAX;

thread_local! {
    /// The epoch of the [`Hold`] this thread is in, if any.
    static HELD: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Keeps the commits that come while it is held from passing the records
/// written under it: taken at intake before an offset is accepted, so that
/// the outcomes of the routes finished at once — a skip, a silence, an
/// invalid event without a dead-letter topic — are counted before their
/// offset can be committed (they are reported only after the accept).
/// Records written on this thread while it is held count in its epoch.
pub(crate) struct Hold<'a> {
    audit: &'a Audit,
    epoch: u64,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(None));
        self.audit.ledger.settle(self.epoch);
    }
}

struct AuditContext {
    base: KafkaContext,
    ledger: Arc<Ledger>,
}

crate::client::wraps_kafka_context!(AuditContext);

impl ProducerContext for AuditContext {
    /// The record's epoch (`ledger`): a number, no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, epoch: Self::DeliveryOpaque) {
        let epoch = epoch as u64;
        let ledger = &self.ledger;
        match result {
            Ok(_) => ledger.settle(epoch),
            Err((e, m)) => {
                metrics::counter!("kbridge_audit_failures_total").increment(1);
                let kept = ledger.failed(Unsent {
                    epoch,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
                if kept {
                    tracing::warn!(
                        "an audit record was not written ({e}); it is sent again, and offsets are committed once it is written"
                    );
                } else {
                    metrics::counter!("kbridge_audit_lost_total").increment(1);
                    tracing::error!(
                        "an audit record was not written ({e}) and more than {} MiB of them wait already: this one is given up (the alert itself is not affected); check the audit topic exists and kbridge may write to it",
                        ledger::MAX_UNSENT_BYTES >> 20
                    );
                }
            }
        }
    }
}

/// What one outcome's record says beyond the event's coordinates.
struct Said<'a> {
    outcome: &'static str,
    stage: Option<&'a str>,
    reason: Option<&'a str>,
    attempts: Option<u32>,
    status: Option<u16>,
    dead_letter: Option<Place<'a>>,
}

impl Audit {
    /// The audit writer of a configuration with `[audit] topic`.
    pub(crate) fn new(
        cfg: &RelayConfig,
        totals: Arc<crate::relay::telemetry::Totals>,
    ) -> Result<Option<Self>> {
        let Some(topic) = cfg.audit.topic.clone() else {
            return Ok(None);
        };
        let ledger = Arc::new(Ledger::default());
        let producer = cfg
            .kafka_opts()
            .client()
            .set_default("client.id", "kbridge-audit")
            .set_default("enable.idempotence", "true")
            .set_default("acks", "all")
            .set_default("linger.ms", "20")
            // Records of one alert repeat their field names, route and
            // instance: lz4 takes most of their bytes off the brokers for
            // little CPU (uncompressed cost more: bench/results.md).
            .set_default("compression.type", "lz4")
            // A record that cannot be written within a minute is said
            // and sent again (librdkafka's 5 minutes would keep a missing
            // topic silent while commits wait).
            .set_default("message.timeout.ms", "60000")
            // `kbridge trace` finds an alert's partition by this choice.
            .set("partitioner", "murmur2_random")
            .build(
                AuditContext {
                    base: KafkaContext::default(),
                    ledger: ledger.clone(),
                },
                "the audit producer",
            )?;
        let instance = cfg.group_instance_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}:{}", std::process::id())
        });
        Ok(Some(Self {
            producer,
            topic,
            instance,
            ledger,
            totals,
            open_mark: std::sync::atomic::AtomicU64::new(NO_MARK),
        }))
    }

    /// Writes the record of one event's outcome on one route (`None`: no
    /// route takes its topic); `key`: the route's key for it, if known.
    pub(crate) fn record(
        &self,
        origin: &Origin,
        route: Option<&str>,
        key: Option<&str>,
        outcome: &Outcome,
    ) {
        let said = said(outcome);
        let now = jiff::Timestamp::now().as_millisecond();
        let alert = match key.filter(|k| !k.is_empty()) {
            Some(k) => Some(Cow::Borrowed(k)),
            None => alert_id(origin).map(Cow::Owned),
        };
        let reason = said
            .reason
            .map(|r| crate::truncate::truncate(r, record::MAX_REASON_BYTES));
        let record = AuditRecord {
            v: AuditRecord::VERSION,
            alert,
            route: route.map(Cow::Borrowed),
            outcome: Cow::Borrowed(said.outcome),
            at: now,
            source: Place {
                topic: Cow::Borrowed(&origin.topic),
                partition: origin.partition,
                offset: origin.offset,
            },
            stage: said.stage.map(Cow::Borrowed),
            reason: reason.map(Cow::Owned),
            attempts: said.attempts,
            status: said.status,
            latency_ms: origin.timestamp_ms.map(|t| now.saturating_sub(t).max(0)),
            instance: Cow::Borrowed(&self.instance),
            dead_letter: said.dead_letter,
            redriven: origin.redriven,
        };
        let Ok(value) = serde_json::to_vec(&record) else {
            return;
        };
        let key = record.alert.as_deref().map(str::as_bytes);
        let epoch = match HELD.with(std::cell::Cell::get) {
            // Its epoch cannot be settled while the hold counts in it.
            Some(held) => {
                self.ledger.begin_in(held);
                held
            }
            None => self.ledger.begin(),
        };
        self.send(epoch, key, &value);
    }

    /// A [`Hold`] on this thread, until it drops.
    pub(crate) fn hold(&self) -> Hold<'_> {
        let epoch = self.ledger.begin();
        HELD.with(|h| h.set(Some(epoch)));
        Hold { audit: self, epoch }
    }

    /// Hands one record to the producer; a refusal (its queue full) keeps
    /// it to be sent again.
    fn send(&self, epoch: u64, key: Option<&[u8]>, value: &[u8]) {
        let mut r = BaseRecord::with_opaque_to(&self.topic, epoch as usize).payload(value);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Err((e, _)) = self.producer.send(r) {
            tracing::debug!(
                "the audit producer refused a record for now ({e}); sent again before the next commit"
            );
            let kept = self.ledger.failed(Unsent {
                epoch,
                key: key.map(<[u8]>::to_vec),
                value: value.to_vec(),
            });
            if !kept {
                metrics::counter!("kbridge_audit_lost_total").increment(1);
            }
        }
    }

    /// Waits (blocking) until every record handed over before now is
    /// acknowledged, sending again what failed, at most until `deadline`;
    /// whether they all were. Asked before every offset commit: the
    /// commit's offsets were taken before, so their events' records are
    /// among these.
    ///
    /// A mark that was not settled in time stays the one to wait for: no
    /// new epoch is closed until it is, so an outage of any length keeps
    /// two epochs open, not one per commit round (which would make epochs
    /// share their counts, and new records hold up every later commit).
    pub(crate) fn durable(&self, deadline: Instant) -> bool {
        let open = self.open_mark.load(std::sync::atomic::Ordering::SeqCst);
        if open != NO_MARK && !self.settle_by(open, deadline) {
            return false;
        }
        let mark = self.ledger.mark();
        self.open_mark
            .store(mark, std::sync::atomic::Ordering::SeqCst);
        if !self.settle_by(mark, deadline) {
            return false;
        }
        self.open_mark
            .store(NO_MARK, std::sync::atomic::Ordering::SeqCst);
        true
    }

    /// Waits until every epoch up to `mark` is settled, sending again what
    /// failed, at most until `deadline`.
    fn settle_by(&self, mark: u64, deadline: Instant) -> bool {
        loop {
            let unsent = self.ledger.take_unsent();
            for u in unsent {
                self.send(u.epoch, u.key.as_deref(), &u.value);
            }
            if self.ledger.settled(mark) {
                self.totals.audit_failing(false);
                return true;
            }
            if Instant::now() >= deadline {
                self.totals.audit_failing(true);
                tracing::warn!(
                    topic = %self.topic,
                    "the audit records of handled events are not written yet; their offsets are committed once they are"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What a report's outcome is called in the audit, and what it says.
fn said(outcome: &Outcome) -> Said<'_> {
    fn plain<'a>(outcome: &'static str, reason: &'a str) -> Said<'a> {
        Said {
            outcome,
            stage: None,
            reason: Some(reason),
            attempts: None,
            status: None,
            dead_letter: None,
        }
    }
    match outcome {
        Outcome::Delivered {
            attempts, status, ..
        } => Said {
            outcome: "delivered",
            stage: None,
            reason: None,
            attempts: Some(*attempts),
            status: *status,
            dead_letter: None,
        },
        Outcome::Skipped { reason } => plain("skipped", reason),
        Outcome::Absorbed { what, reason } => plain(what, reason),
        Outcome::DeadLettered {
            stage,
            reason,
            answer,
            at,
        } => Said {
            outcome: "dead_lettered",
            stage: Some(stage.as_str()),
            reason: Some(reason),
            attempts: (answer.attempts > 0).then_some(answer.attempts),
            status: answer.status,
            dead_letter: at.as_ref().map(|(topic, partition, offset)| Place {
                topic: Cow::Borrowed(topic),
                partition: *partition,
                offset: *offset,
            }),
        },
        Outcome::Dropped {
            stage,
            reason,
            answer,
        } => Said {
            outcome: if *stage == crate::relay::stage::Stage::Deliver {
                "rejected"
            } else {
                "invalid"
            },
            stage: Some(stage.as_str()),
            reason: Some(reason),
            attempts: (answer.attempts > 0).then_some(answer.attempts),
            status: answer.status,
            dead_letter: None,
        },
    }
}

/// An event's alert id when its route did not get as far as its key (a
/// skip or an invalid event at intake): Guance's `df_fault_id` (else
/// `df_event_id`) when the value is such an event, else its Kafka key as
/// text.
fn alert_id(origin: &Origin) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Ids<'a> {
        #[serde(borrow, default)]
        df_fault_id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        df_event_id: Option<Cow<'a, str>>,
    }
    // serde_json's reader stops at 128 levels: any bytes are safe.
    let ids = origin
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice::<Ids<'_>>(p).ok());
    if let Some(id) = ids.and_then(|i| i.df_fault_id.or(i.df_event_id)) {
        return Some(id.into_owned());
    }
    origin
        .key
        .as_deref()
        .and_then(|k| std::str::from_utf8(k).ok())
        .map(str::to_string)
}

/// Creates the audit topic when it is missing.
pub(crate) async fn ensure_topic(cfg: &RelayConfig) -> Result<()> {
    let Some(name) = cfg.audit.topic.clone() else {
        return Ok(());
    };
    let topic = crate::relay::topics::NeededTopic {
        name,
        partitions: cfg.audit.partitions(),
        replication_factor: cfg.audit.replication_factor(),
        configs: vec![
            ("cleanup.policy", "delete".into()),
            (
                "retention.ms",
                cfg.audit.retention().as_millis().to_string(),
            ),
        ],
    };
    crate::relay::topics::ensure(&cfg.kafka_opts(), &[topic], "audit topic").await
}
