//! Stage 0, Kafka in: the group consumer and what happens on rebalance.
//!
//! Offsets follow rust-rdkafka's at-least-once recipe:
//! `enable.auto.offset.store` is off, and we store a partition's offset only
//! when every event before it was delivered, dead-lettered or skipped. The
//! stored offsets are committed by `commits` (one commit at a time), not by
//! librdkafka's auto-commit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use backon::{BlockingRetryable, ExponentialBuilder};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::commits::{self, CommitGate};
use super::config::RelayConfig;
use super::partitions::{Partitions, Tp};
use crate::client::{KafkaContext, LastError, log_librdkafka};

/// How long a revoke waits for the revoked partitions' deliveries.
const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// How long a revoke or the shutdown may spend committing: waiting for an
/// earlier commit to finish, then trying again after passing errors. With
/// the 20 s drain timeout and 2 s for aborted deliveries it keeps a stop
/// under systemd's 30 s.
pub(crate) const COMMIT_WAIT: Duration = Duration::from_secs(5);

pub(crate) type RelayConsumer<J> = StreamConsumer<RelayContext<J>>;

pub(crate) struct RelayContext<J> {
    base: KafkaContext,
    pub partitions: Arc<Partitions<J>>,
    pub totals: Arc<super::telemetry::Totals>,
    /// An error that must stop the service (authentication, fatal).
    pub fatal: Mutex<Option<String>>,
    /// Serializes offset commits (see `commits`).
    pub commits: CommitGate,
}

impl<J: Send> ClientContext for RelayContext<J> {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        // The service shows librdkafka's warnings: an operator needs them.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            _ => log_librdkafka(level, fac, msg),
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.totals.partition_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error.clone(), reason);
        let code = error.rdkafka_error_code();
        let fatal = matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::Fatal)
        ) || matches!(
            code,
            Some(
                RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
            )
        );
        if fatal {
            if let Ok(mut f) = self.fatal.lock() {
                f.get_or_insert_with(|| format!("{error}: {reason}"));
            }
        } else {
            tracing::warn!(target: "librdkafka", "{reason}");
        }
    }
}

impl<J: Send> LastError for RelayContext<J> {
    fn last_error(&self) -> Option<String> {
        self.base.last_error()
    }
}

impl<J: Send> ConsumerContext for RelayContext<J> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = tps_of(tpl);
            tracing::info!(partitions = ?names(&tps), "partitions revoked; committing what was handled");
            self.partitions.revoke(&tps, REVOKE_WAIT, |points| {
                commit_in_turn(consumer, points);
            });
            self.totals.assigned(!self.partitions.owned().is_empty());
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let tps = tps_of(tpl);
                tracing::info!(partitions = ?names(&tps), "partitions assigned");
                self.partitions.assign(tps);
                self.totals.assigned(!self.partitions.owned().is_empty());
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!("rebalance failed: {e}"),
        }
    }
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

fn names(tps: &[Tp]) -> Vec<String> {
    tps.iter().map(|(t, p)| format!("{t}/{p}")).collect()
}

/// Stores and synchronously commits the given commit points, after any
/// commit still in flight (see `commits`). Returns whether they were
/// committed; a failure is logged, and its events are read again after a
/// restart or by the partitions' next owner.
pub(crate) fn commit_in_turn<J: Send>(
    consumer: &impl Consumer<RelayContext<J>>,
    points: &[(Tp, i64)],
) -> bool {
    if points.is_empty() {
        return true;
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in points {
        if tpl.add_partition_offset(t, *p, Offset::Offset(*o)).is_err() {
            continue;
        }
    }
    // Stored too, so that a periodic commit never sends an older offset.
    if let Err(e) = consumer.store_offsets(&tpl) {
        tracing::debug!("cannot store the commit points: {e}");
    }
    let gate = &consumer.context().commits;
    // A commit that failed on a passing condition (request timeout,
    // coordinator moving) is tried again within COMMIT_WAIT: the alternative
    // is sending every event since the last commit again.
    let attempt = || consumer.commit(&tpl, CommitMode::Sync);
    let deadline = std::time::Instant::now() + COMMIT_WAIT;
    let committed = gate.exclusive(COMMIT_WAIT, || {
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_total_delay(Some(
                        deadline.saturating_duration_since(std::time::Instant::now()),
                    ))
                    .without_max_times()
                    .with_jitter(),
            )
            .sleep(std::thread::sleep)
            .when(commits::worth_retrying)
            .notify(|e, after| {
                tracing::debug!("offset commit failed: {e}; trying again in {after:?}")
            })
            .call()
    });
    match committed {
        Some(Ok(())) => {
            tracing::debug!(offsets = ?shown(points), "committed");
            true
        }
        Some(Err(e)) if commits::nothing_to_commit(&e) => true,
        Some(Err(e)) => {
            tracing::warn!(offsets = ?shown(points), "offset commit failed: {e}; these events will be read again");
            false
        }
        None => {
            tracing::warn!(
                offsets = ?shown(points),
                "not committed: an earlier offset commit is still waiting for the group coordinator after {COMMIT_WAIT:?}; these events will be read again"
            );
            false
        }
    }
}

/// Commit points as `topic/partition@offset`, for logs.
pub(crate) fn shown(points: &[(Tp, i64)]) -> Vec<String> {
    points
        .iter()
        .map(|((t, p), o)| format!("{t}/{p}@{o}"))
        .collect()
}

/// Stores one partition's commit point for the next periodic commit.
pub(crate) fn store<C: ConsumerContext>(consumer: &impl Consumer<C>, tp: &Tp, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(&tp.0, tp.1, Offset::Offset(offset))
        .is_ok()
        && let Err(e) = consumer.store_offsets(&tpl)
    {
        // The partition was revoked meanwhile; its new owner reads on.
        tracing::debug!("cannot store offset {}/{}@{offset}: {e}", tp.0, tp.1);
    }
}

/// Builds the group consumer from the relay's config.
pub(crate) fn create<J: Send + 'static>(
    cfg: &RelayConfig,
    partitions: Arc<Partitions<J>>,
    totals: Arc<super::telemetry::Totals>,
) -> Result<RelayConsumer<J>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("client.id", "kbridge")
        // Commits are ours (see `commits`); librdkafka only keeps the
        // stored offsets.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", cfg.offset_reset.as_librdkafka())
        // Bound the prefetch queue: librdkafka's default (64 MB) would let a
        // backlog fill memory regardless of max_pending.
        .set("queued.max.messages.kbytes", "8192")
        .set("queued.min.messages", "10000")
        // When that queue is full librdkafka stops fetching for this long
        // (1 s by default), which idles the relay as soon as it drains the
        // queue faster than that; keep the fetcher fed.
        .set("fetch.queue.backoff.ms", "20")
        .set("fetch.message.max.bytes", "1048576")
        // Per-partition lag and committed offsets for the metrics.
        .set("statistics.interval.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Debug);
    for (k, v) in &cfg.kafka {
        c.set(k, v);
    }
    c.create_with_context(RelayContext {
        base: KafkaContext::default(),
        partitions,
        totals,
        fatal: Mutex::new(None),
        commits: CommitGate::default(),
    })
    .map_err(|e| anyhow!("cannot create the Kafka consumer: {e}; check the [kafka] settings"))
}

/// Waits (bounded) until every topic exists, so a typo fails the start with
/// a clear message instead of an idle service.
pub(crate) fn wait_for_topics<C: ClientContext + LastError>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topics: &[String],
    wait: Duration,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let missing: Vec<&String> = match client.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(md) => topics
                .iter()
                .filter(|t| {
                    !md.topics().iter().any(|m| {
                        m.name() == t.as_str() && m.error().is_none() && !m.partitions().is_empty()
                    })
                })
                .collect(),
            Err(e) if Instant::now() >= deadline => {
                let cause = client
                    .context()
                    .last_error()
                    .unwrap_or_else(|| e.to_string());
                bail!(
                    "no Kafka broker answered at {brokers} within {wait:?} ({cause}); check `brokers` and the [kafka] security settings"
                );
            }
            Err(_) => topics.iter().collect(),
        };
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names = missing
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            let (what, verb) = if missing.len() == 1 {
                ("topic", "does")
            } else {
                ("topics", "do")
            };
            bail!(
                "{what} {names} {verb} not exist (waited {wait:?}); create it with `kbridge topics create` or fix `topics`"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
