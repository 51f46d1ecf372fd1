//! Each route's share of its group-wide rate limit: the partitions of the
//! route's topics this instance owns, of all of them (`deliver::pace`
//! says why that is enough coordination). Told of every assignment and
//! revoke by the consumer (`source::rebalance`), and of the topics'
//! partition counts once at start (the metadata the start waits for).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::relay::live_route::LiveRoute;
use crate::relay::source::OnAssignment;
use crate::topic_partition::TopicPartition;

pub(crate) struct FleetShare {
    routes: Vec<Arc<LiveRoute>>,
    /// Every topic the relay consumes (a route without `topics` takes all;
    /// a storm route's repartition topic among them).
    topics: Vec<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Partitions per topic, from the start's metadata; raised when an
    /// assignment names a partition beyond it (partitions were added).
    counts: BTreeMap<String, usize>,
    owned: BTreeSet<TopicPartition>,
}

impl FleetShare {
    pub(crate) fn new(routes: Vec<Arc<LiveRoute>>, topics: Vec<String>) -> Self {
        Self {
            routes,
            topics,
            state: Mutex::default(),
        }
    }

    /// The topics' partition counts, once they are known.
    pub(crate) fn partition_counts(&self, counts: BTreeMap<String, usize>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.counts = counts;
        self.reshare(&mut state);
    }

    fn reshare(&self, state: &mut State) {
        for tp in &state.owned {
            let count = state.counts.entry(tp.topic.to_string()).or_default();
            *count = (*count).max(tp.partition.max(0) as usize + 1);
        }
        for route in &self.routes {
            let takes = |topic: &str| route.sends_from(topic);
            let total: usize = self
                .topics
                .iter()
                .filter(|t| takes(t))
                .map(|t| state.counts.get(t).copied().unwrap_or(0))
                .sum();
            let owned = state.owned.iter().filter(|tp| takes(&tp.topic)).count();
            // Before the counts are known, the whole limit (nothing is
            // consumed before then anyway).
            let (owned, total) = if total == 0 { (1, 1) } else { (owned, total) };
            if let Some(share) = route.target.pace.set_share(owned as u32, total as u32) {
                if let Some(limit) = route.target.pace.limit()
                    && owned > 0
                    && (limit.requests as usize * owned) < total
                {
                    tracing::warn!(
                        route = %route.name(),
                        "rate_limit {} per {:?} is smaller than this instance's share of the partitions ({owned} of {total}) can honour: it sends 1 per period, and the group may pass the limit; give the route fewer partitions' worth of instances or a larger limit",
                        limit.requests,
                        limit.per
                    );
                }
                tracing::info!(
                    route = %route.name(),
                    partitions = format!("{owned} of {total}"),
                    "rate limit share: {share} requests per period of the route's rate_limit"
                );
            }
        }
    }
}

impl OnAssignment for FleetShare {
    fn owned(&self, owned: &[TopicPartition]) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.owned = owned.iter().cloned().collect();
        self.reshare(&mut state);
    }
}
