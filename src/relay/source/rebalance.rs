//! What happens when the group moves partitions: a revoke waits (bounded)
//! for the revoked partitions' deliveries and commits what was handled; an
//! assign starts a fresh ownership.
//!
//! These callbacks run inside librdkafka's poll, on the consume loop's turn.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

use super::consumer::RelayContext;
use crate::relay::commit::committer::commit_now;
use crate::topic_partition::TopicPartition;

/// How long a revoke waits for the revoked partitions' deliveries.
const REVOKE_WAIT: Duration = Duration::from_secs(10);

impl<J: Send> ConsumerContext for RelayContext<J> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = TopicPartition::all_of(tpl);
            tracing::info!(partitions = ?names(&tps), "partitions revoked; committing what was handled");
            self.partitions.revoke(&tps, REVOKE_WAIT, |points| {
                commit_now(consumer, points);
            });
            self.totals.assigned(!self.partitions.owned().is_empty());
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let tps = TopicPartition::all_of(tpl);
                tracing::info!(partitions = ?names(&tps), "partitions assigned");
                self.partitions.assign(tps);
                self.totals.assigned(!self.partitions.owned().is_empty());
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!("rebalance failed: {e}"),
        }
    }
}

fn names(tps: &[TopicPartition]) -> Vec<String> {
    tps.iter().map(ToString::to_string).collect()
}
