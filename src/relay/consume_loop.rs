//! The relay's orchestrator: read a message (`source`), take it into
//! processing (`route::take`), start its delivery tasks (`deliver`), until
//! shutdown; then `drain`.
//!
//! One task reads from Kafka and decides; deliveries run as tasks, at most
//! one per alert id and partition at a time (the rest wait in order behind
//! it). A semaphore of `max_pending` permits bounds the events in
//! processing; when it is exhausted the loop applies backpressure
//! (`source::Backpressure`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::relay::commit::committer;
use crate::relay::config::RelayConfig;
use crate::relay::deliver::run_chain;
use crate::relay::drain::drain;
use crate::relay::route;
use crate::relay::route::jq_budget;
use crate::relay::shared::Shared;
use crate::relay::shutdown::{Abort, Shutdown, StopClock};
use crate::relay::source::{Backpressure, Origin};
use crate::relay::systemd::Heartbeat;
use crate::topic_partition::TopicPartition;

/// How long a full processing window waits for a free slot before the
/// message's partition is paused (the target is slow or down).
const PAUSE_AFTER: Duration = Duration::from_secs(2);

/// Runs until shutdown is requested or a fatal error, then drains and
/// commits. Returns the fatal error, if any.
pub(crate) async fn run(
    shared: Arc<Shared>,
    cfg: &RelayConfig,
    mut shutdown: Shutdown,
    abort: Abort,
    heartbeat: Heartbeat,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(cfg.max_pending));
    // The bytes of the messages in processing, in bytes: `max_pending`
    // events of 1 MiB each would be a GiB.
    let bytes = Arc::new(Semaphore::new(cfg.max_pending_bytes));
    shared.totals().set_window(cfg.max_pending);
    let resume_threshold = (cfg.max_pending / 2).max(1);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backpressure = Backpressure::default();
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Messages taken into processing so far, for the committer to tell
    // whether the relay settled since its last commit.
    let taken = Arc::new(AtomicU64::new(0));
    let committer =
        committer::spawn_periodic(Arc::downgrade(shared.consumer()), cfg.commit_interval, {
            let (permits, max_pending, taken) = (permits.clone(), cfg.max_pending, taken.clone());
            move || {
                // Counted first: every message counted holds its permit until
                // it is handled, so all permits back means all counted handled.
                let n = taken.load(Ordering::Acquire);
                (permits.available_permits() == max_pending).then_some(n)
            }
        });
    let consumer = shared.consumer().clone();

    let stopped_by: Result<()> = loop {
        heartbeat.beat();
        tokio::select! {
            biased;
            _ = shutdown.requested() => break Ok(()),
            Some(res) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = res && e.is_panic() {
                    tracing::error!("a delivery task panicked: {e}; its event will be read again after restart");
                }
            }
            _ = tick.tick() => {
                if let Some(f) = consumer.context().fatal_error() {
                    break Err(anyhow!("Kafka refused this client: {f}; check the credentials and ACLs in [kafka]"));
                }
                if let Some(why) = shared.storm().and_then(|s| s.fatal_error()) {
                    break Err(anyhow!("{why}"));
                }
                if let Some(why) = jq_budget::must_restart() {
                    break Err(anyhow!("{why}"));
                }
                shared.totals().jq_abandoned(jq_budget::abandoned());
                if backpressure.is_active() {
                    backpressure.prune(&*consumer, |tp| shared.partitions().epoch_of(tp));
                }
                if backpressure.is_active()
                    && permits.available_permits() >= resume_threshold
                    && bytes.available_permits() >= cfg.max_pending_bytes / 2
                {
                    backpressure.resume(&*consumer);
                    shared.totals().paused_partitions(backpressure.len());
                }
                shared.totals().in_flight(cfg.max_pending - permits.available_permits());
                shared.totals().pending_bytes(cfg.max_pending_bytes - bytes.available_permits());
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let topic = match topics.get(m.topic()) {
                        Some(t) => t.clone(),
                        None => {
                            let t: Arc<str> = Arc::from(m.topic());
                            topics.insert(m.topic().to_string(), t.clone());
                            t
                        }
                    };
                    let tp = TopicPartition { topic, partition: m.partition() };
                    consumer.context().resets.read(&tp.topic, tp.partition, m.offset());
                    if backpressure.is_active()
                        && backpressure.holds(&*consumer, &tp, || shared.partitions().epoch_of(&tp))
                    {
                        // Fetched before the pause took effect (the rewind
                        // reads it again after resuming), or of a partition
                        // revoked meanwhile.
                        continue;
                    }
                    let origin = Origin::of(&m, tp.topic.clone());
                    drop(m);
                    let weight = weight(&origin, cfg.max_pending_bytes);
                    match try_slot(&permits, &bytes, weight) {
                        Some((permit, held)) => {
                            start(&shared, &mut tasks, &taken, origin, tp, permit, held);
                            // Let the delivery task just started run before
                            // the next message is taken: the events in
                            // flight (and memory) stay what the target needs,
                            // not what the loop could read ahead.
                            tokio::task::yield_now().await;
                        }
                        None => {
                            let epoch = shared.partitions().epoch_of(&tp);
                            // Pausing purges librdkafka's prefetch, and its
                            // fetcher may then sleep up to a second: first
                            // wait a little for a free slot, and pause only
                            // when the target is really slow or down.
                            let freed = tokio::select! {
                                slot = slot(&permits, &bytes, weight) => slot,
                                _ = tokio::time::sleep(PAUSE_AFTER) => None,
                                _ = shutdown.requested() => None,
                            };
                            if let Some((permit, held)) = freed {
                                start(&shared, &mut tasks, &taken, origin, tp, permit, held);
                                continue;
                            }
                            if !backpressure.is_active() {
                                tracing::info!(
                                    max_pending = cfg.max_pending,
                                    max_pending_bytes = cfg.max_pending_bytes,
                                    "backpressure: {} events, {} bytes in processing; pausing partitions until deliveries catch up",
                                    cfg.max_pending - permits.available_permits(),
                                    cfg.max_pending_bytes - bytes.available_permits()
                                );
                            }
                            // A partition revoked meanwhile is not paused:
                            // its next owner (or its next ownership, which
                            // reads from the committed offset) reads the
                            // message.
                            if let Some(epoch) = epoch
                                && shared.partitions().epoch_of(&tp) == Some(epoch)
                            {
                                backpressure.pause(&*consumer, tp, origin.offset, epoch);
                            }
                            shared.totals().paused_partitions(backpressure.len());
                        }
                    }
                }
                Err(e) => {
                    if let Err(fatal) = on_error(&shared, cfg, e) {
                        break Err(fatal);
                    }
                }
            }
        }
    };

    let clock = StopClock::start(cfg.drain_timeout);
    drop(consumer);
    committer.abort();
    let _ = committer.await;
    drain(shared, clock, tasks, abort).await;
    stopped_by
}

/// What a message counts against `max_pending_bytes`: its key, value and
/// headers, at most the whole budget (so one larger message still goes,
/// alone).
fn weight(origin: &Origin, max: usize) -> u32 {
    origin.size.clamp(1, max).min(u32::MAX as usize) as u32
}

/// A processing slot and the message's bytes, if both are free now.
fn try_slot(
    permits: &Arc<Semaphore>,
    bytes: &Arc<Semaphore>,
    weight: u32,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let permit = permits.clone().try_acquire_owned().ok()?;
    let held = bytes.clone().try_acquire_many_owned(weight).ok()?;
    Some((permit, held))
}

/// A processing slot and the message's bytes, when both are free.
async fn slot(
    permits: &Arc<Semaphore>,
    bytes: &Arc<Semaphore>,
    weight: u32,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    let held = bytes.clone().acquire_many_owned(weight).await.ok()?;
    Some((permit, held))
}

/// Takes one message into processing and starts its delivery tasks (one
/// per route it goes to), those that may start now.
fn start(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    taken: &AtomicU64,
    origin: Origin,
    partition: TopicPartition,
    permit: OwnedSemaphorePermit,
    held: OwnedSemaphorePermit,
) {
    taken.fetch_add(1, Ordering::Release);
    for job in route::take(shared, origin, partition, permit, held) {
        tasks.spawn(run_chain(shared.clone(), job));
    }
}

/// A consumer error: end-of-partition and passing errors are logged and
/// counted; a missing committed offset under `offset_reset = "none"` and
/// librdkafka's fatal errors stop the relay.
fn on_error(shared: &Shared, cfg: &RelayConfig, e: KafkaError) -> Result<()> {
    match e {
        KafkaError::PartitionEOF(_) => Ok(()),
        KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset) => Err(anyhow!(
            "group '{}' has no committed offset for a partition of {} and offset_reset is 'none'; start once with --offset-reset earliest or latest, or set offsets with `kbridge groups reset-offsets {} --topic … --execute`",
            cfg.group,
            cfg.topics.join(", "),
            cfg.group
        )),
        e => {
            shared.totals().consumer_error();
            if let Some((code, reason)) = shared.consumer().client().fatal_error() {
                return Err(anyhow!("fatal Kafka error {code:?}: {reason}"));
            }
            tracing::warn!("Kafka consumer error: {e}");
            Ok(())
        }
    }
}
