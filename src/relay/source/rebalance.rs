//! What happens when the group moves partitions. With the
//! `cooperative-sticky` assignor a join or a leave revokes and assigns only
//! the partitions that change owner; the others keep flowing.
//!
//! A revoke ends the revoked partitions' ownerships (no new attempt, no
//! retry wait), lets requests on the wire finish for up to the longest
//! `webhook.timeout` of the routes and a second more (so a request is only
//! ever dropped after its own timeout: none of the old owner's requests is
//! still waiting for its answer when the next owner sends its first),
//! drops the rest, and commits what was handled, with what was handled
//! beyond the commit point as its metadata — all before the callback
//! returns, since the group gives the partitions to their next owner only
//! after that. An assign reads that record (`commit::handover`) and starts
//! a fresh ownership that skips what it names.
//!
//! These callbacks run inside librdkafka's poll, on the consume loop's turn,
//! that is on a tokio worker. The revoke's waits run
//! [`off_the_runtime`]: the worker's other tasks (the revoked partitions'
//! deliveries among them, perhaps in its LIFO slot) move to another thread,
//! so they can finish while the callback waits, even on a runtime with one
//! worker.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};

use super::consumer::RelayContext;
use crate::relay::blocking::off_the_runtime;
use crate::relay::commit::committer::{COMMIT_WAIT, CommitsInTurn, commit_now};
use crate::relay::commit::handover;
use crate::topic_partition::TopicPartition;

/// The revoke's wait beyond the longest webhook timeout: the attempt's
/// own timer fires first, and its task needs a moment to report.
pub(crate) const REVOKE_MARGIN: Duration = Duration::from_secs(1);

impl<J: Send + 'static> ConsumerContext for RelayContext<J> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            off_the_runtime(|| {
                self.on_assignment.starting(tpl, &|asked| {
                    consumer.committed_offsets(asked, handover::FETCH_WAIT)
                })
            });
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = TopicPartition::all_of(tpl);
            if tps.is_empty() {
                return;
            }
            tracing::info!(partitions = ?names(&tps), "partitions revoked; committing what was handled");
            off_the_runtime(|| self.revoke(&tps));
            off_the_runtime(|| self.on_assignment.revoked(&tps));
            let owned = self.partitions.owned();
            self.totals.assigned(!owned.is_empty());
            self.on_assignment.owned(&owned);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let tps = TopicPartition::all_of(tpl);
                if tps.is_empty() {
                    // A cooperative rebalance that moves nothing here.
                    tracing::debug!("rebalance: no new partitions");
                    return;
                }
                tracing::info!(partitions = ?names(&tps), "partitions assigned");
                let consumer = self.consumer();
                if self.offset_reset == crate::relay::config::OffsetReset::Latest
                    && let Some(consumer) = consumer.clone()
                {
                    super::offset_reset::check_uncommitted(consumer, tps.clone());
                }
                // What their previous owners handled beyond their commit
                // points, read before their first message comes.
                let handed_over = match &consumer {
                    Some(c) => off_the_runtime(|| handover::read(c.as_ref(), &tps)),
                    None => Default::default(),
                };
                // What they remember (the storm stage's memory), read
                // before their first event too.
                off_the_runtime(|| self.on_assignment.restore(&tps));
                self.partitions.assign(tps.clone(), handed_over);
                self.on_assignment.taken(self.partitions.ownerships(&tps));
                self.totals.assigned(true);
                self.on_assignment.owned(&self.partitions.owned());
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!("rebalance failed: {e}"),
        }
    }
}

impl<J: Send + 'static> RelayContext<J> {
    /// Ends the partitions' ownerships and commits their handled prefix.
    fn revoke(&self, tps: &[TopicPartition]) {
        let points = self.partitions.revoke(tps, self.revoke_wait);
        if points.is_empty() {
            return;
        }
        match self.consumer() {
            Some(consumer) => {
                commit_now(&consumer, &points, Instant::now() + COMMIT_WAIT);
            }
            None => tracing::warn!("the consumer is closing; revoked partitions not committed"),
        }
    }
}

fn names(tps: &[TopicPartition]) -> Vec<String> {
    tps.iter().map(ToString::to_string).collect()
}
