//! Storm control — between route and deliver, for the routes that ask for
//! it (`[route.storm]`): repeated alerts (`dedupe`), flapping recoveries
//! (`hold_resolved`) and stale alerts (`max_age`) are absorbed — counted,
//! logged with their reason, never silently dropped — and the memory that
//! takes lives in Kafka, so that a crash, a restart or a rebalance keeps it.
//!
//! An event of a storm route goes through Kafka twice, as in Kafka
//! Streams:
//!
//! 1. **Re-keyed** (`forward`): from the relay's topic into the route's
//!    repartition topic, keyed by alert id, so that every event of an
//!    alert — whatever partition it came from — lands on one partition,
//!    owned by one instance of the group. The source offset is handled
//!    once the brokers have the copy.
//! 2. **Decided** (`gate`): read back from the repartition topic (the same
//!    group consumes it), the event meets its alert's memory (`memory`:
//!    a pure decision) in the partition's `store`: delivered, skipped, or
//!    held. What changed is written to the compacted state topic
//!    (`changelog`) *before* the offset is handled: an offset is committed
//!    only when what it fed is delivered or durable.
//!
//! Partition N of the state topic holds the memory of partition N of every
//! repartition topic. When a repartition partition is assigned here, its
//! memory is read back first (`restore`), before its first event; a held
//! recovery is sent by whoever owns its partition when the hold ends
//! (`release`). The topics are created at start (`topics`).
//!
//! What a crash can cost: an event delivered whose memory was not yet
//! written is delivered once more by the next owner (as any event whose
//! offset was not committed); a held recovery sent but not yet recorded
//! likewise. A clean stop or revoke costs nothing.

mod changelog;
mod digest;
mod forward;
mod gate;
mod group;
mod memory;
mod release;
pub(crate) mod replay;
mod restore;
pub(crate) mod silences;
mod store;
mod topics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use rdkafka::TopicPartitionList;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::mpsc;

use crate::client::{KafkaContext, KafkaOpts};
use crate::relay::commit::Ownership;
use crate::relay::config::{RelayConfig, RouteConfig};
use crate::relay::deliver::Interrupted;
use crate::relay::live_route::LiveRoute;
use crate::relay::route::jq::Jq;
use crate::relay::telemetry::Totals;
use crate::topic_partition::TopicPartition;

pub(crate) use digest::fold;
pub(crate) use forward::forward;
pub(crate) use gate::{Tag, through};
pub(crate) use memory::Policy;
pub(crate) use release::spawn_releases;
pub(crate) use silences::Silence;

/// A state record's value (`kbridge silence` writes silences).
pub(crate) fn changelog_value<T: serde::Serialize>(value: &T) -> Vec<u8> {
    changelog::value(value)
}
pub(crate) use topics::{check_partitions, ensure as ensure_topics};

/// How long a revoke waits for the storm records still queued.
pub(crate) const REVOKE_FLUSH: Duration = Duration::from_secs(5);

/// The default `state`: Guance's `df_status`, the preset's recoveries
/// (`RECOVERY_STATUSES`) as `resolved`.
fn default_state() -> String {
    let recovery: Vec<String> = crate::relay::route::preset::RECOVERY_STATUSES
        .iter()
        .map(|s| format!(". == \"{s}\""))
        .collect();
    format!(
        r#"(.df_status // "firing") | if {} then "resolved" else . end"#,
        recovery.join(" or ")
    )
}

/// A digest route's grouping: its `group_by` program and its times.
pub(crate) struct Grouping {
    by: Jq,
    pub timing: group::Timing,
}

/// A route's storm stage, compiled.
pub(crate) struct StormRoute {
    /// Where the route's events are re-keyed by alert id.
    pub repartition: Arc<str>,
    pub policy: Policy,
    state: Jq,
    /// `group_by`: the route sends digests of groups.
    pub grouping: Option<Grouping>,
    /// Absorbed events go to the dead-letter topic too.
    dead_letter_absorbed: bool,
    max_state_bytes: usize,
    /// The route's memory in this instance, in bytes (every store's).
    bytes: Arc<AtomicUsize>,
    /// `max_state_bytes` was reached (said once per time it is reached).
    full: AtomicBool,
}

impl StormRoute {
    /// The route's storm stage, if it has one.
    pub(crate) fn compile(cfg: &RelayConfig, rc: &RouteConfig) -> Result<Option<Arc<Self>>> {
        if !rc.storm.is_active() {
            return Ok(None);
        }
        let code = rc.storm.state.clone().unwrap_or_else(default_state);
        let state = Jq::compile(&code)
            .map_err(|e| anyhow!("route '{}': [route.storm] state: {e}", rc.name))?;
        Ok(Some(Arc::new(Self {
            repartition: Arc::from(cfg.repartition_topic(&rc.name)),
            policy: Policy {
                dedupe: rc.storm.dedupe,
                hold_resolved: rc.storm.hold_resolved,
                max_age: rc.storm.max_age,
            },
            state,
            grouping: match &rc.storm.group_by {
                None => None,
                Some(code) => {
                    let (group_wait, group_interval, repeat_interval) = rc.storm.timing();
                    Some(Grouping {
                        by: Jq::compile(code).map_err(|e| {
                            anyhow!("route '{}': [route.storm] group_by: {e}", rc.name)
                        })?,
                        timing: group::Timing {
                            group_wait,
                            group_interval,
                            repeat_interval,
                        },
                    })
                }
            },
            max_state_bytes: rc.storm.max_state_bytes(),
            dead_letter_absorbed: rc.storm.dead_letter_absorbed,
            bytes: Arc::default(),
            full: AtomicBool::new(false),
        })))
    }

    /// The alert's state: the `state` program's first output (`null` or
    /// none: `firing`).
    pub(crate) fn state_of(&self, v: &jaq_json::Val) -> Result<String, String> {
        self.state
            .key(v)
            .map(|s| s.unwrap_or_else(|| "firing".into()))
            .map_err(|e| format!("[route.storm] state: {e}"))
    }

    /// A digest route's group of an event: `group_by`'s first output
    /// (`null` or none: the one group `""`); `None` on other routes.
    pub(crate) fn group_of(&self, v: &jaq_json::Val) -> Option<Result<String, String>> {
        let g = self.grouping.as_ref()?;
        Some(
            g.by.key(v)
                .map(Option::unwrap_or_default)
                .map_err(|e| format!("[route.storm] group_by: {e}")),
        )
    }

    /// Whether the route's memory is at `max_state_bytes`; says so (log,
    /// metric) the first time.
    fn is_full(&self, route: &Arc<str>, totals: &Totals, what: &'static str) -> bool {
        let full = self.bytes.load(Ordering::Relaxed) >= self.max_state_bytes;
        if full {
            totals.storm_state_full(route, what);
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    %route,
                    max_state_bytes = self.max_state_bytes,
                    "the route's storm memory is full: {what} (raise [route.storm] max_state_bytes, or shorten dedupe / hold_resolved); nothing is dropped"
                );
            }
        } else {
            self.full.store(false, Ordering::Relaxed);
        }
        full
    }
}

/// An event a storm route absorbed: counted, skipped with its reason, and
/// with `dead_letter_absorbed` (and a dead-letter topic) dead-lettered
/// with `kbridge.stage` saying why.
pub(crate) async fn absorbed(
    shared: &crate::relay::shared::Shared,
    job: &crate::relay::job::Job,
    why: &memory::Absorbed,
    policy: &Policy,
) -> Result<(), Interrupted> {
    let route = job.route.name();
    shared.totals().storm_absorbed(route, why.label());
    let reason = why.reason(policy);
    let audit = job
        .route
        .storm
        .as_ref()
        .is_some_and(|s| s.dead_letter_absorbed)
        && job.route.dead_letter_topic.is_some();
    if audit {
        tracing::debug!(event = %job.origin.coordinates(), %route, "absorbed: {reason}");
        return crate::relay::deliver::dead_letter(
            shared,
            job,
            crate::relay::stage::Stage::Absorbed(why.label()),
            &reason,
        )
        .await;
    }
    shared.absorbed(
        &job.origin,
        route,
        Some(job.alert_id()),
        match why.label() {
            "dedupe" => "deduped",
            _ => "absorbed",
        },
        reason,
    );
    Ok(())
}

/// A partition's memory: its alerts', or its groups' on a digest route.
#[derive(Clone)]
pub(crate) enum Stores {
    Alerts(Arc<store::Store<memory::Memory>>),
    Groups(Arc<store::Store<group::Group>>),
}

impl Stores {
    fn next_due(&self) -> Option<i64> {
        match self {
            Stores::Alerts(s) => s.next_due(),
            Stores::Groups(s) => s.next_due(),
        }
    }

    fn due(&self, now: i64) -> Vec<String> {
        match self {
            Stores::Alerts(s) => s.due(now),
            Stores::Groups(s) => s.due(now),
        }
    }

    async fn changed(&self) {
        match self {
            Stores::Alerts(s) => s.changed.notified().await,
            Stores::Groups(s) => s.changed.notified().await,
        }
    }
}

/// A repartition partition taken here, for its release task.
pub(crate) struct Taken {
    pub route: Arc<LiveRoute>,
    pub partition: TopicPartition,
    pub store: Stores,
    pub ownership: Ownership,
}

/// The storm stage as the relay runs it: its producer (repartition and
/// state records), the stores of the partitions owned, and what the
/// rebalance callbacks do for it.
pub(crate) struct Storm {
    state_topic: Arc<str>,
    producer: FutureProducer<KafkaContext>,
    kafka: KafkaOpts,
    restore_timeout: Duration,
    /// The storm routes, by repartition topic.
    routes: HashMap<Arc<str>, Arc<LiveRoute>>,
    stores: Mutex<HashMap<TopicPartition, Stores>>,
    fatal: Mutex<Option<String>>,
    taken: mpsc::UnboundedSender<Taken>,
    totals: Arc<Totals>,
    /// Every silence, followed in the state topic (`silences::watch`).
    silences: Arc<silences::Silences>,
    /// Ends the silence reader's thread.
    stop: Arc<AtomicBool>,
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Storm {
    /// The storm stage of a configuration with storm routes (none
    /// without), and the channel its release tasks are started from.
    pub(crate) fn new(
        cfg: &RelayConfig,
        routes: &[Arc<LiveRoute>],
        totals: Arc<Totals>,
    ) -> Result<Option<(Arc<Self>, mpsc::UnboundedReceiver<Taken>)>> {
        let storm_routes: HashMap<Arc<str>, Arc<LiveRoute>> = routes
            .iter()
            .filter_map(|r| Some((r.storm.as_ref()?.repartition.clone(), r.clone())))
            .collect();
        if !cfg.has_storm() {
            return Ok(None);
        }
        let kafka = cfg.kafka_opts();
        let producer = kafka
            .client()
            .set_default("client.id", "kbridge-storm")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set_default("linger.ms", "2")
            // Java's partitioner: another tool's producer keyed by alert id
            // lands on the same partition.
            .set("partitioner", "murmur2_random")
            .set_default("message.max.bytes", "100000000")
            .set_default("message.timeout.ms", "30000")
            .build(KafkaContext::default(), "the storm stage's producer")?;
        let (taken, rx) = mpsc::unbounded_channel();
        Ok(Some((
            Arc::new(Self {
                state_topic: Arc::from(cfg.storm_state_topic()),
                producer,
                kafka,
                restore_timeout: cfg.storm.restore_timeout(),
                routes: storm_routes,
                stores: Mutex::default(),
                fatal: Mutex::default(),
                taken,
                totals,
                silences: Arc::default(),
                stop: Arc::default(),
            }),
            rx,
        )))
    }

    /// Reads every silence, then follows them (blocking until the first
    /// read is done, within `restore_timeout`).
    pub(crate) fn watch_silences(&self) -> Result<()> {
        silences::watch(
            &self.kafka,
            &self.state_topic,
            self.silences.clone(),
            self.stop.clone(),
            self.restore_timeout,
        )
    }

    /// The silence in force on `route` that matches the event, if any: the
    /// reason it is skipped.
    pub(crate) fn silenced(
        &self,
        route: &str,
        event: &crate::relay::route::Event,
    ) -> Option<String> {
        if !self.silences.any() {
            return None;
        }
        self.silences.matching(route, event.json().ok()?)
    }

    /// An error that must stop the relay (a memory that cannot be read
    /// back, a producer that failed for good).
    pub(crate) fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    fn set_fatal(&self, why: String) {
        tracing::error!("{why}");
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(why);
        }
    }

    fn store(&self, tp: &TopicPartition) -> Option<Stores> {
        self.stores
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .cloned()
    }

    fn alerts(&self, tp: &TopicPartition) -> Option<Arc<store::Store<memory::Memory>>> {
        match self.store(tp)? {
            Stores::Alerts(s) => Some(s),
            Stores::Groups(_) => None,
        }
    }

    fn groups(&self, tp: &TopicPartition) -> Option<Arc<store::Store<group::Group>>> {
        match self.store(tp)? {
            Stores::Groups(s) => Some(s),
            Stores::Alerts(_) => None,
        }
    }

    /// Of the partitions being assigned, the repartition ones without a
    /// committed offset start at the beginning (whatever `offset_reset`
    /// says: every record there is an alert already taken from its
    /// source). Blocking; for the assign callback, before the assignment.
    pub(crate) fn start_offsets(
        &self,
        tpl: &TopicPartitionList,
        committed: &crate::relay::source::CommittedOffsets<'_>,
    ) {
        let mine: Vec<TopicPartition> = TopicPartition::all_of(tpl)
            .into_iter()
            .filter(|tp| self.routes.contains_key(&*tp.topic))
            .collect();
        if mine.is_empty() {
            return;
        }
        let mut tries = 0;
        let committed = loop {
            match committed(TopicPartition::list(&mine)) {
                Ok(c) => break Some(c),
                Err(e) if tries >= 2 => {
                    // From the start rather than from `offset_reset`: an
                    // event there was taken from its source already, so
                    // skipping it would lose it; reading it again costs
                    // what the storm stage absorbs as repeats.
                    self.set_fatal(format!("cannot read the committed offsets of the repartition partitions assigned: {e}; they start from the beginning, and kbridge stops (systemd restarts it)"));
                    break None;
                }
                Err(_) => tries += 1,
            }
        };
        for tp in &mine {
            let has = committed.as_ref().is_some_and(|c| {
                c.find_partition(&tp.topic, tp.partition)
                    .is_some_and(|e| matches!(e.offset(), rdkafka::Offset::Offset(o) if o >= 0))
            });
            if !has {
                let Ok(topic) = std::ffi::CString::new(tp.topic.as_bytes()) else {
                    continue;
                };
                // SAFETY: `tpl` is the live list librdkafka hands the
                // rebalance callback, which may set its offsets before it
                // is assigned; the topic is a NUL-terminated copy.
                unsafe {
                    rdkafka::bindings::rd_kafka_topic_partition_list_set_offset(
                        tpl.ptr(),
                        topic.as_ptr(),
                        tp.partition,
                        rdkafka::bindings::RD_KAFKA_OFFSET_BEGINNING as i64,
                    );
                }
            }
        }
    }

    /// Reads back the memory of the repartition partitions being
    /// assigned. Blocking, within `[storm] restore_timeout`; a failure
    /// stops the relay (its partitions' events wait, uncommitted).
    pub(crate) fn restore(&self, tps: &[TopicPartition]) {
        let mine: Vec<&TopicPartition> = tps
            .iter()
            .filter(|tp| self.routes.contains_key(&*tp.topic))
            .collect();
        if mine.is_empty() {
            return;
        }
        let mut partitions: Vec<i32> = mine.iter().map(|tp| tp.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let names: Vec<&str> = self.routes.values().map(|r| &**r.name()).collect();
        let started = std::time::Instant::now();
        let mut restored = match restore::read(
            &self.kafka,
            &self.state_topic,
            &partitions,
            &names,
            self.restore_timeout,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.set_fatal(format!(
                    "cannot read the storm memory back from {}: {e:#}; kbridge stops so that no alert is decided without it (systemd restarts it; check the topic and kbridge's Read ACL on it)",
                    self.state_topic
                ));
                return;
            }
        };
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let mut alerts = 0;
        for tp in mine {
            let Some(route) = self.routes.get(&*tp.topic) else {
                continue;
            };
            let Some(storm) = route.storm.as_ref() else {
                continue;
            };
            let memories = restored
                .remove(&(route.name().to_string(), tp.partition))
                .unwrap_or_default();
            // What expired stays until the partition's first sweep, which
            // writes its tombstone (dropped here, its record would stay in
            // the state topic for good).
            let store = if storm.grouping.is_some() {
                alerts += memories
                    .groups
                    .values()
                    .map(|g| g.members.len())
                    .sum::<usize>();
                Stores::Groups(Arc::new(store::Store::new(
                    memories.groups,
                    storm.bytes.clone(),
                )))
            } else {
                alerts += memories.alerts.len();
                Stores::Alerts(Arc::new(store::Store::new(
                    memories.alerts,
                    storm.bytes.clone(),
                )))
            };
            stores.insert(tp.clone(), store);
        }
        tracing::info!(
            alerts,
            took = ?started.elapsed(),
            "storm memory read back from {} partitions {partitions:?}",
            self.state_topic
        );
    }

    /// The partitions just taken, with their ownerships: their release
    /// tasks start.
    pub(crate) fn taken(&self, owned: Vec<(TopicPartition, Ownership)>) {
        for (tp, ownership) in owned {
            let (Some(route), Some(store)) = (self.routes.get(&*tp.topic), self.store(&tp)) else {
                continue;
            };
            let _ = self.taken.send(Taken {
                route: route.clone(),
                partition: tp,
                store,
                ownership,
            });
        }
    }

    /// The partitions revoked (and committed): their memory is the next
    /// owner's now.
    pub(crate) fn revoked(&self, tps: &[TopicPartition]) {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        let mine = tps.iter().filter(|tp| stores.remove(*tp).is_some()).count();
        drop(stores);
        if mine > 0 {
            self.flush(REVOKE_FLUSH);
        }
    }

    /// Waits (bounded) for the records still queued: a write given up when
    /// an ownership was revoked must land before the next owner reads the
    /// memory back, which it does only after the revoke (or the stop)
    /// ends. Blocking.
    pub(crate) fn flush(&self, within: Duration) {
        if let Err(e) = self.producer.flush(within) {
            tracing::warn!(
                "storm records still queued after {within:?} at a hand-over ({e}); the next owner may read a memory they change later"
            );
        }
    }

    /// Sends one record and waits until the brokers have it, retrying
    /// until then or until `ownership` ends (`Interrupted`: the event is
    /// not handled, and its next owner reads it again).
    async fn send_acked<'a>(
        &self,
        what: &str,
        record: impl Fn() -> FutureRecord<'a, [u8], [u8]>,
        ownership: &Ownership,
    ) -> Result<(), Interrupted> {
        let mut wait = Duration::from_millis(100);
        let mut failing = false;
        let result = loop {
            // Not `is_ending`: a revoke ends the ownership first and then
            // waits for what runs — a delivery on the wire and its record
            // among them, so that the next owner does not send it again.
            if ownership.is_revoked() {
                break Err(Interrupted);
            }
            let sent = tokio::select! {
                sent = self.producer.send(record(), Timeout::Never) => sent,
                _ = ownership.revoked() => break Err(Interrupted),
            };
            let e = match sent {
                Ok(_) => break Ok(()),
                Err((e, _)) => e,
            };
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                self.set_fatal(format!(
                    "the storm stage's producer failed for good ({code:?}: {reason}); kbridge stops (systemd restarts it)"
                ));
            }
            if !failing {
                failing = true;
                self.totals.storm_failing(1);
            }
            let too_large = matches!(
                e,
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge
                        | rdkafka::types::RDKafkaErrorCode::InvalidRecord
                )
            );
            if too_large {
                tracing::error!(
                    retry_in = ?wait,
                    "cannot write {what}: {e}; the storm topic refuses a record this large: raise its max.message.bytes (kbridge creates them with twice max_message_bytes and 1 MiB more); its partition waits until it succeeds"
                );
            } else {
                tracing::error!(
                    retry_in = ?wait,
                    "cannot write {what}: {e}; its partition waits until it succeeds (check the storm topics exist and kbridge may write them)"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ownership.ending() => break Err(Interrupted),
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        };
        if failing {
            self.totals.storm_failing(-1);
        }
        result
    }

    /// Writes one state record (`None`: a tombstone, which forgets it).
    async fn record(
        &self,
        partition: i32,
        key: changelog::Key,
        value: Option<Vec<u8>>,
        ownership: &Ownership,
    ) -> Result<(), Interrupted> {
        let key = key.encode();
        self.send_acked(
            "the storm memory",
            || {
                let r = FutureRecord::to(&self.state_topic)
                    .partition(partition)
                    .key(key.as_slice());
                match &value {
                    Some(v) => r.payload(v.as_slice()),
                    None => r,
                }
            },
            ownership,
        )
        .await
    }

    /// Records an alert's memory (`None`: forgets it).
    async fn record_alert(
        &self,
        route: &str,
        partition: i32,
        alert: &str,
        memory: Option<&memory::Memory>,
        ownership: &Ownership,
    ) -> Result<(), Interrupted> {
        let key = changelog::Key::Alert {
            route: route.to_string(),
            alert: alert.to_string(),
        };
        self.record(partition, key, memory.map(changelog::value), ownership)
            .await
    }
}

/// The wall clock in epoch milliseconds: memories outlive the process.
pub(crate) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
