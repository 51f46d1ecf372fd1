//! The relay's group consumer and its context: what librdkafka tells it
//! (errors, statistics) and what the rebalance callback needs (the owned
//! partitions, the commit gate).
//!
//! Offsets are kbridge's, not librdkafka's: auto-commit and the offset
//! store are off, and `commit::committer` commits each partition's handled
//! prefix — every event before it delivered, dead-lettered or skipped —
//! with what was handled beyond it as the commit's metadata, one commit at
//! a time, as explicit partition lists (committing librdkafka's stored
//! offsets cannot carry metadata: librdkafka#4570).

use std::sync::{Arc, Mutex, OnceLock, Weak};

use anyhow::Result;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{KafkaContext, KafkaOpts, LastError, LibrdkafkaLogs};
use crate::relay::commit::committer::{CommitGate, CommitsInTurn};
use crate::relay::commit::{Ownership, Partitions};
use crate::relay::config::OffsetReset;
use crate::relay::telemetry::Totals;
use crate::topic_partition::TopicPartition;
use rdkafka::TopicPartitionList;

/// The consumer, generic over the job type its partitions' queues hold.
pub(crate) type RelayConsumer<J> = StreamConsumer<RelayContext<J>>;

pub(crate) struct RelayContext<J: Send + 'static> {
    base: KafkaContext,
    pub(super) partitions: Arc<Partitions<J>>,
    pub(super) totals: Arc<Totals>,
    /// An error that must stop the service (authentication, fatal).
    fatal: Mutex<Option<String>>,
    commits: CommitGate,
    /// The consumer itself, set once it is built: a revoke commits on a
    /// helper thread, which needs its own handle.
    consumer: OnceLock<Weak<RelayConsumer<J>>>,
    /// How long a revoke lets requests on the wire finish (see
    /// `rebalance`).
    pub(super) revoke_wait: std::time::Duration,
    /// Told the partitions owned after every assignment and revoke.
    pub(super) on_assignment: Arc<dyn OnAssignment>,
    /// `offset_reset`, and the resets librdkafka did (see `offset_reset`).
    pub(super) offset_reset: OffsetReset,
    pub(crate) resets: super::offset_reset::Resets,
}

/// What wants to know which partitions this instance owns (each route's
/// share of its rate limit, the storm stage's memory), told by the
/// rebalance callbacks in this order: `starting` and `restore` before an
/// assignment is taken, `taken` and `owned` after; `revoked` and `owned`
/// after a revoke was committed.
/// Reads the group's committed offsets of a list of partitions.
pub(crate) type CommittedOffsets<'a> =
    dyn Fn(TopicPartitionList) -> rdkafka::error::KafkaResult<TopicPartitionList> + 'a;

pub(crate) trait OnAssignment: Send + Sync {
    fn owned(&self, owned: &[TopicPartition]);
    /// May set where partitions being assigned start, given a way to read
    /// their committed offsets (blocking).
    fn starting(&self, _tpl: &TopicPartitionList, _committed: &CommittedOffsets<'_>) {}
    /// Reads what the partitions need before their first event (blocking).
    fn restore(&self, _tps: &[TopicPartition]) {}
    /// The partitions just taken, with their ownerships.
    fn taken(&self, _owned: Vec<(TopicPartition, Ownership)>) {}
    fn revoked(&self, _tps: &[TopicPartition]) {}
    /// Asked before every offset commit, after its offsets were taken:
    /// whether what their events fed is durable (the audit records),
    /// waiting (blocking) at most until `deadline`. No: not committed now.
    fn durable(&self, _deadline: std::time::Instant) -> bool {
        true
    }
}

impl<J: Send + 'static> RelayContext<J> {
    /// The error that must stop the service, if librdkafka reported one.
    pub(crate) fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }
}

impl<J: Send + 'static> CommitsInTurn for RelayContext<J> {
    fn commit_gate(&self) -> &CommitGate {
        &self.commits
    }

    fn consumer(&self) -> Option<Arc<RelayConsumer<J>>> {
        self.consumer.get().and_then(Weak::upgrade)
    }

    fn durable(&self, deadline: std::time::Instant) -> bool {
        self.on_assignment.durable(deadline)
    }

    fn to_commit(&self) -> Vec<crate::relay::commit::CommitPoint> {
        self.partitions.to_commit()
    }

    fn committed(&self, points: &[crate::relay::commit::CommitPoint]) {
        self.partitions.committed(points);
    }
}

impl<J: Send + 'static> ClientContext for RelayContext<J> {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        self.base.log(level, fac, msg);
        self.resets.on_log(fac, msg);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.totals.partition_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error.clone(), reason);
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::SaslAuthenticationFailed
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

impl<J: Send + 'static> LastError for RelayContext<J> {
    fn last_error(&self) -> Option<String> {
        self.base.last_error()
    }
}

/// How long the group waits for a silent member (a crashed instance)
/// before moving its partitions: librdkafka's default (45 s) held a crashed
/// instance's alerts that long. Heartbeats every second, so the survivors
/// hear of the rebalance at once (with Vector's 3 s, an alert of a crashed
/// instance waited 12.6 s; with 1 s, 10.5–11.1 s).
const SESSION_TIMEOUT_MS: &str = "10000";
const HEARTBEAT_INTERVAL_MS: &str = "1000";

/// Which group the consumer joins, and as whom.
pub(crate) struct Membership<'a> {
    pub group: &'a str,
    /// Static membership: an instance restarted within the session timeout
    /// gets its partitions back without a rebalance.
    pub instance_id: Option<&'a str>,
}

/// Builds the group consumer.
pub(crate) fn create<J: Send + 'static>(
    kafka: &KafkaOpts,
    membership: Membership<'_>,
    offset_reset: OffsetReset,
    partitions: Arc<Partitions<J>>,
    totals: Arc<Totals>,
    revoke_wait: std::time::Duration,
    on_assignment: Arc<dyn OnAssignment>,
) -> Result<Arc<RelayConsumer<J>>> {
    let mut client = kafka.client();
    if let Some(id) = membership.instance_id {
        client = client.set("group.instance.id", id);
    }
    let consumer: RelayConsumer<J> = client
        .set_default("group.id", membership.group)
        // A join or a leave moves only the partitions that change owner;
        // the others keep flowing (the eager assignors stop every member).
        // An older kbridge in the same group uses the eager ones: see the
        // README for the upgrade.
        .set_default("partition.assignment.strategy", "cooperative-sticky")
        .set_default("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set_default("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
        // Commits are ours (see `commit`).
        .set_default("enable.auto.commit", "false")
        .set_default("enable.auto.offset.store", "false")
        .set_default("auto.offset.reset", offset_reset.as_librdkafka())
        // Bound the prefetch queue: librdkafka's default (64 MB) would let a
        // backlog fill memory regardless of max_pending.
        .set_default("queued.max.messages.kbytes", "8192")
        .set_default("queued.min.messages", "10000")
        // When that queue is full librdkafka stops fetching for this long
        // (1 s by default), which idles the relay as soon as it drains the
        // queue faster than that; keep the fetcher fed.
        .set_default("fetch.queue.backoff.ms", "20")
        .set_default("fetch.message.max.bytes", "1048576")
        // Per-partition lag and committed offsets for the metrics.
        .set_default("statistics.interval.ms", "5000")
        .build(
            RelayContext {
                base: KafkaContext::new(LibrdkafkaLogs::Service),
                partitions,
                totals,
                fatal: Mutex::new(None),
                commits: CommitGate::default(),
                consumer: OnceLock::new(),
                revoke_wait,
                on_assignment,
                offset_reset,
                resets: Default::default(),
            },
            "the Kafka consumer",
        )?;
    let consumer = Arc::new(consumer);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    Ok(consumer)
}
