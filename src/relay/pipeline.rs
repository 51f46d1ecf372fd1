//! The relay's loop: Kafka in → decide (decode, validate, map) → deliver or
//! dead-letter → store the commit point.
//!
//! One task reads from Kafka and decides; deliveries run as tasks, at most
//! one per alert id and partition at a time (the rest wait in order behind
//! it). A semaphore of `max_pending` permits bounds the events in
//! processing: when it is exhausted the loop pauses the assigned partitions
//! and seeks back to the first event it could not take, but keeps polling,
//! so the group membership stays alive while the target is down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::commits;
use super::config::{Preset, RelayConfig, RetryConfig};
use super::consumer::{self, RelayConsumer};
use super::dead_letter::{DeadLetters, Origin, Stage};
use super::partitions::{Partitions, Tp};
use super::preset::{Decision, decide};
use super::response::Rejection;
use super::retry::{self, AttemptObserver, Delivery};
use super::shutdown::Shutdown;
use super::systemd::Heartbeat;
use super::telemetry::Totals;
use super::webhook::Webhook;

/// How long a full processing window waits for a free slot before the
/// message's partition is paused (the target is slow or down).
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// One event in processing. Holding the permit is what bounds memory.
pub(crate) struct Job {
    tp: Tp,
    epoch: u64,
    origin: Origin,
    work: Work,
    _permit: OwnedSemaphorePermit,
}

enum Work {
    Deliver { alert_id: String, body: Bytes },
    DeadLetter { stage: Stage, reason: String },
}

/// What happened to one event; sent to an optional observer (the demo
/// prints these).
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub coordinates: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Delivered {
        alert_id: String,
        body: Bytes,
        attempts: u32,
    },
    Skipped {
        reason: String,
    },
    DeadLettered {
        stage: Stage,
        reason: String,
    },
    /// Invalid or rejected with no dead-letter topic configured: logged and
    /// committed.
    Dropped {
        stage: Stage,
        reason: String,
    },
}

/// Everything the delivery tasks share.
pub(crate) struct Relay {
    pub consumer: Arc<RelayConsumer<Job>>,
    pub partitions: Arc<Partitions<Job>>,
    pub webhook: Webhook,
    pub retry: RetryConfig,
    pub dead_letters: Option<DeadLetters>,
    pub observer: Arc<dyn AttemptObserver>,
    pub totals: Arc<Totals>,
    pub reports: Option<mpsc::UnboundedSender<Report>>,
    pub preset: Preset,
    pub max_message_bytes: usize,
    /// Set when the drain timeout expires: retries stop waiting.
    pub abort: watch::Receiver<bool>,
}

impl Relay {
    /// Sends an outcome to the observer, if there is one; `outcome` is only
    /// built then (the service has none, and this runs once per event).
    fn report(&self, origin: &Origin, outcome: impl FnOnce() -> Outcome) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(Report {
                coordinates: origin.coordinates(),
                outcome: outcome(),
            });
        }
    }

    /// Marks an offset handled and stores the new commit point.
    fn finish(&self, tp: &Tp, epoch: u64, offset: i64, key: Option<&String>) -> Option<Job> {
        self.partitions.finish(tp, epoch, offset, key, |tp, point| {
            consumer::store(&*self.consumer, tp, point)
        })
    }
}

/// Runs until shutdown is requested or a fatal error, then drains and
/// commits. Returns the fatal error, if any.
pub(crate) async fn run(
    relay: Arc<Relay>,
    cfg: &RelayConfig,
    mut shutdown: Shutdown,
    abort: watch::Sender<bool>,
    heartbeat: Heartbeat,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(cfg.max_pending));
    let resume_threshold = (cfg.max_pending / 2).max(1);
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Partitions paused for backpressure, each rewound to the first event
    // it could not take.
    let mut paused: HashMap<Tp, i64> = HashMap::new();
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let committer = commits::spawn_periodic(Arc::downgrade(&relay.consumer), cfg.commit_interval);

    let stopped_by: Result<()> = loop {
        heartbeat.beat();
        // Also seen here: the wait for a free slot may have consumed the
        // change notification.
        if *shutdown.borrow() {
            break Ok(());
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break Ok(());
                }
            }
            Some(res) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = res && e.is_panic() {
                    tracing::error!("a delivery task panicked: {e}; its event will be read again after restart");
                }
            }
            _ = tick.tick() => {
                if let Some(f) = relay.consumer.context().fatal.lock().ok().and_then(|f| f.clone()) {
                    break Err(anyhow!("Kafka refused this client: {f}; check the credentials and ACLs in [kafka]"));
                }
                if !paused.is_empty() && permits.available_permits() >= resume_threshold {
                    resume(&relay, &mut paused);
                }
                relay.totals.in_flight(cfg.max_pending - permits.available_permits());
            }
            msg = relay.consumer.recv() => match msg {
                Ok(m) => {
                    let topic = match topics.get(m.topic()) {
                        Some(t) => t.clone(),
                        None => {
                            let t: Arc<str> = Arc::from(m.topic());
                            topics.insert(m.topic().to_string(), t.clone());
                            t
                        }
                    };
                    let tp: Tp = (topic, m.partition());
                    if paused.contains_key(&tp) {
                        // Fetched before the pause took effect; the rewind
                        // reads it again after resuming.
                        continue;
                    }
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            if let Some(job) = on_message(&relay, &m, tp, permit) {
                                tasks.spawn(run_chain(relay.clone(), job));
                            }
                        }
                        Err(_) => {
                            // Pausing purges librdkafka's prefetch, and its
                            // fetcher may then sleep up to a second: first
                            // wait a little for a free slot, and pause only
                            // when the target is really slow or down.
                            let owned = m.detach();
                            drop(m);
                            let freed = tokio::select! {
                                p = permits.clone().acquire_owned() => p.ok(),
                                _ = tokio::time::sleep(PAUSE_AFTER) => None,
                                _ = shutdown.changed() => None,
                            };
                            if let Some(permit) = freed {
                                if let Some(job) = on_message(&relay, &owned, tp, permit) {
                                    tasks.spawn(run_chain(relay.clone(), job));
                                }
                                continue;
                            }
                            // Pause only a partition that has delivered a
                            // message: one still resolving its start offset
                            // must not be paused (librdkafka can then reset
                            // it behind our back).
                            if paused.is_empty() {
                                tracing::info!(
                                    max_pending = cfg.max_pending,
                                    "backpressure: {} events in processing; pausing partitions until deliveries catch up",
                                    cfg.max_pending
                                );
                            }
                            pause(&relay, &tp, owned.offset());
                            paused.insert(tp, owned.offset());
                            relay.totals.paused_partitions(paused.len());
                        }
                    }
                }
                Err(e) => {
                    if let Err(fatal) = on_error(&relay, cfg, e) {
                        break Err(fatal);
                    }
                }
            }
        }
    };

    drain(&relay, cfg, tasks, abort).await;
    committer.abort();
    let _ = committer.await;
    stopped_by
}

/// Decides what to do with one message; returns a job to start now.
fn on_message(
    relay: &Relay,
    m: &impl Message,
    tp: Tp,
    permit: OwnedSemaphorePermit,
) -> Option<Job> {
    relay.totals.consumed();
    let offset = m.offset();
    let Some(epoch) = relay.partitions.accept(&tp, offset) else {
        tracing::warn!(
            topic = %tp.0, partition = tp.1, offset,
            "offset seen again within this assignment; not handled twice"
        );
        return None;
    };
    let origin = Origin::of(m, tp.0.clone());
    let work = match decide(relay.preset, m.payload(), relay.max_message_bytes) {
        Decision::Skip(reason) => {
            relay.totals.skipped();
            tracing::debug!(event = %origin.coordinates(), "skipped: {reason}");
            relay.finish(&tp, epoch, offset, None);
            relay.report(&origin, || Outcome::Skipped { reason });
            return None;
        }
        Decision::Reject { stage, reason } => {
            relay.totals.invalid(stage);
            tracing::warn!(
                topic = %tp.0, partition = tp.1, offset, stage = stage.as_str(),
                "invalid event: {reason}"
            );
            if relay.dead_letters.is_none() {
                relay.finish(&tp, epoch, offset, None);
                relay.report(&origin, || Outcome::Dropped { stage, reason });
                return None;
            }
            Work::DeadLetter { stage, reason }
        }
        Decision::Deliver {
            alert_id,
            body,
            warning,
        } => {
            if let Some(w) = warning {
                tracing::warn!(event = %origin.coordinates(), alert_id, "{w}");
            }
            let job = Job {
                tp: tp.clone(),
                epoch,
                origin,
                work: Work::Deliver {
                    alert_id: alert_id.clone(),
                    body,
                },
                _permit: permit,
            };
            return relay.partitions.submit(&tp, epoch, alert_id, job);
        }
    };
    Some(Job {
        tp,
        epoch,
        origin,
        work,
        _permit: permit,
    })
}

/// Handles a job, then the jobs queued behind it for the same alert.
async fn run_chain(relay: Arc<Relay>, mut job: Job) {
    loop {
        if !handle(&relay, &job).await {
            // Interrupted by shutdown: not handled, so not committed.
            return;
        }
        let key = match &job.work {
            Work::Deliver { alert_id, .. } => Some(alert_id),
            Work::DeadLetter { .. } => None,
        };
        let next = relay.finish(&job.tp, job.epoch, job.origin.offset, key);
        match next {
            Some(n) => job = n,
            None => return,
        }
    }
}

/// Delivers or dead-letters one event; false if interrupted.
async fn handle(relay: &Relay, job: &Job) -> bool {
    match &job.work {
        Work::DeadLetter { stage, reason } => dead_letter(relay, job, *stage, reason).await,
        Work::Deliver { alert_id, body } => {
            let key = job.origin.coordinates();
            let delivery = retry::deliver(
                &relay.webhook,
                &relay.retry,
                body.clone(),
                &key,
                &*relay.observer,
                relay.abort.clone(),
            )
            .await;
            match delivery {
                Delivery::Delivered { attempts } => {
                    relay.totals.delivered(job.origin.timestamp_ms);
                    tracing::debug!(event = %key, alert_id, attempts, "delivered");
                    relay.report(&job.origin, || Outcome::Delivered {
                        alert_id: alert_id.clone(),
                        body: body.clone(),
                        attempts,
                    });
                    true
                }
                Delivery::Rejected {
                    kind,
                    status,
                    reason,
                } => {
                    relay.totals.rejected(kind.label(), status);
                    if kind == Rejection::NoCmdbMatch {
                        tracing::warn!(event = %key, alert_id, "no CMDB instance matches this alert's dimensions: {reason}");
                    } else {
                        tracing::error!(event = %key, alert_id, "the webhook rejected the alert: {reason}");
                    }
                    dead_letter(relay, job, Stage::Deliver, &reason).await
                }
                Delivery::GaveUp { attempts, reason } => {
                    relay.totals.rejected("retries_exhausted", None);
                    tracing::error!(event = %key, alert_id, attempts, "giving up after {attempts} attempts: {reason}");
                    dead_letter(
                        relay,
                        job,
                        Stage::Deliver,
                        &format!("gave up after {attempts} attempts: {reason}"),
                    )
                    .await
                }
                Delivery::Interrupted => false,
            }
        }
    }
}

async fn dead_letter(relay: &Relay, job: &Job, stage: Stage, reason: &str) -> bool {
    let reason = reason.to_string();
    match &relay.dead_letters {
        Some(d) => {
            let ok = d
                .send(
                    &job.origin,
                    stage,
                    &reason,
                    &relay.retry,
                    relay.abort.clone(),
                )
                .await;
            if ok {
                relay.totals.dead_lettered(stage);
                relay.report(&job.origin, || Outcome::DeadLettered { stage, reason });
            }
            ok
        }
        None => {
            tracing::warn!(event = %job.origin.coordinates(), stage = stage.as_str(), "no dead-letter topic configured; event dropped: {reason}");
            relay.report(&job.origin, || Outcome::Dropped { stage, reason });
            true
        }
    }
}

fn on_error(relay: &Relay, cfg: &RelayConfig, e: KafkaError) -> Result<()> {
    match e {
        KafkaError::PartitionEOF(_) => Ok(()),
        KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset) => Err(anyhow!(
            "group '{}' has no committed offset for a partition of {} and offset_reset is 'none'; start once with --offset-reset earliest or latest, or set offsets with `kbridge groups reset-offsets {} --topic … --execute`",
            cfg.group,
            cfg.topics.join(", "),
            cfg.group
        )),
        e => {
            relay.totals.consumer_error();
            if let Some((code, reason)) = relay.consumer.client().fatal_error() {
                return Err(anyhow!("fatal Kafka error {code:?}: {reason}"));
            }
            tracing::warn!("Kafka consumer error: {e}");
            Ok(())
        }
    }
}

/// Pauses one partition and rewinds it to `offset`, the first event not
/// taken, so nothing fetched meanwhile is lost.
fn pause(relay: &Relay, tp: &Tp, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&tp.0, tp.1);
    if let Err(e) = relay.consumer.pause(&tpl) {
        tracing::warn!("cannot pause {}/{}: {e}", tp.0, tp.1);
    }
    seek(relay, tp, offset);
}

fn resume(relay: &Relay, paused: &mut HashMap<Tp, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in paused.keys() {
        tpl.add_partition(t, *p);
    }
    if let Err(e) = relay.consumer.resume(&tpl) {
        tracing::debug!("resume: {e}");
    }
    tracing::info!("backpressure released: consumption resumed");
    paused.clear();
    relay.totals.paused_partitions(0);
}

fn seek(relay: &Relay, tp: &Tp, offset: i64) {
    if let Err(e) = relay
        .consumer
        .seek(&tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(5))
    {
        tracing::warn!("cannot rewind {}/{} to {offset}: {e}", tp.0, tp.1);
    }
}

/// Stop fetching, let in-flight deliveries finish within the drain timeout,
/// commit what was handled, leave the group.
async fn drain(
    relay: &Relay,
    cfg: &RelayConfig,
    mut tasks: JoinSet<()>,
    abort: watch::Sender<bool>,
) {
    super::systemd::stopping();
    if let Ok(assignment) = relay.consumer.assignment() {
        let _ = relay.consumer.pause(&assignment);
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, "waiting for in-flight deliveries");
    }
    let drained = tokio::time::timeout(cfg.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        let _ = abort.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        // Wait for the aborted tasks to drop their handles on the relay, so
        // that the consumer is closed (and leaves the group) when `serve`
        // returns, not never.
        while tasks.join_next().await.is_some() {}
        tracing::warn!(
            unfinished = relay.partitions.pending(),
            "drain timeout ({:?}) reached; unfinished events stay uncommitted and will be read again",
            cfg.drain_timeout
        );
    }
    if let Some(d) = &relay.dead_letters
        && let Err(e) = d.flush(Duration::from_secs(5))
    {
        tracing::warn!("dead letters not flushed: {e}");
    }
    // Forget all partitions (so the revoke that unsubscribing triggers does
    // not wait) and commit their handled prefix synchronously, after any
    // periodic commit still in flight.
    let owned = relay.partitions.owned();
    relay.partitions.revoke(&owned, Duration::ZERO, |points| {
        if consumer::commit_in_turn(&*relay.consumer, points) {
            tracing::info!(committed = ?consumer::shown(points), "offsets committed; leaving the group");
        }
    });
    relay.consumer.unsubscribe();
}
