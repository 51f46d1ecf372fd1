//! Backpressure: when `max_pending` events are in processing, the partition
//! of the next message is paused and rewound to that message, so nothing
//! fetched meanwhile is lost; when half the window is free again, every
//! paused partition resumes — but never one whose rewind failed, which
//! would skip what was fetched before the pause. The consume loop keeps polling while paused,
//! so the group membership stays alive while the target is down.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, ConsumerContext};

use crate::topic_partition::TopicPartition;

/// Partitions paused for backpressure, each with the first event it could
/// not take, and whether the rewind to it succeeded.
#[derive(Default)]
pub(crate) struct Backpressure {
    paused: HashMap<TopicPartition, Rewind>,
}

struct Rewind {
    offset: i64,
    done: bool,
}

impl Backpressure {
    pub(crate) fn is_paused(&self, partition: &TopicPartition) -> bool {
        self.paused.contains_key(partition)
    }

    pub(crate) fn is_active(&self) -> bool {
        !self.paused.is_empty()
    }

    /// How many partitions are paused.
    pub(crate) fn len(&self) -> usize {
        self.paused.len()
    }

    /// Pauses one partition and rewinds it to `offset`, the first event not
    /// taken.
    pub(crate) fn pause<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        partition: TopicPartition,
        offset: i64,
    ) {
        if let Err(e) = consumer.pause(&TopicPartition::list([&partition])) {
            tracing::warn!("cannot pause {partition}: {e}");
        }
        let done = rewind(consumer, &partition, offset);
        self.paused.insert(partition, Rewind { offset, done });
    }

    /// Resumes every paused partition whose rewind succeeded (trying a
    /// failed one again first). A partition that could not be rewound stays
    /// paused: resuming it would skip the events fetched before the pause.
    pub(crate) fn resume<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) {
        for (partition, r) in self.paused.iter_mut().filter(|(_, r)| !r.done) {
            r.done = rewind(consumer, partition, r.offset);
        }
        let ready: Vec<TopicPartition> = self
            .paused
            .iter()
            .filter(|(_, r)| r.done)
            .map(|(p, _)| p.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        if let Err(e) = consumer.resume(&TopicPartition::list(&ready)) {
            tracing::debug!("resume: {e}");
        }
        for p in &ready {
            self.paused.remove(p);
        }
        if self.paused.is_empty() {
            tracing::info!("backpressure released: consumption resumed");
        }
    }
}

/// Seeks a paused partition back to `offset`; false (and a warning) when
/// librdkafka refuses.
fn rewind<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    partition: &TopicPartition,
    offset: i64,
) -> bool {
    match consumer.seek(
        &partition.topic,
        partition.partition,
        Offset::Offset(offset),
        Duration::from_secs(5),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "cannot rewind {partition} to {offset}: {e}; it stays paused until the rewind succeeds"
            );
            false
        }
    }
}
