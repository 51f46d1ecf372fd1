//! Backpressure: when `max_pending` events are in processing, the partition
//! of the next message is paused and rewound to that message, so nothing
//! fetched meanwhile is lost; when half the window is free again, every
//! paused partition resumes. The consume loop keeps polling while paused,
//! so the group membership stays alive while the target is down.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::consumer::{Consumer, ConsumerContext};

use crate::topic_partition::TopicPartition;

/// Partitions paused for backpressure, each rewound to the first event it
/// could not take.
#[derive(Default)]
pub(crate) struct Backpressure {
    paused: HashMap<TopicPartition, i64>,
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
        if let Err(e) = consumer.seek(
            &partition.topic,
            partition.partition,
            Offset::Offset(offset),
            Duration::from_secs(5),
        ) {
            tracing::warn!("cannot rewind {partition} to {offset}: {e}");
        }
        self.paused.insert(partition, offset);
    }

    /// Resumes every paused partition.
    pub(crate) fn resume_all<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>) {
        if let Err(e) = consumer.resume(&TopicPartition::list(self.paused.keys())) {
            tracing::debug!("resume: {e}");
        }
        tracing::info!("backpressure released: consumption resumed");
        self.paused.clear();
    }
}
