//! Backpressure: when `max_pending` events are in processing, the partition
//! of the next message is paused and rewound to that message, so nothing
//! fetched meanwhile is lost; when half the window is free again, every
//! paused partition resumes — but never one whose rewind failed, which
//! would skip what was fetched before the pause. The consume loop keeps
//! polling while paused, so the group membership stays alive while the
//! target is down.
//!
//! A pause belongs to one ownership of its partition: once the partition
//! is revoked (and perhaps assigned again), the pause is forgotten —
//! skipping the new ownership's messages as "fetched before the pause"
//! would lose them.

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
    /// The ownership it was paused under.
    epoch: u64,
}

impl Backpressure {
    /// Whether a message of `partition` comes from before its pause (and
    /// is read again after the rewind). `epoch` is the partition's current
    /// ownership: a pause of an earlier one is forgotten.
    pub(crate) fn holds<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        partition: &TopicPartition,
        epoch: impl FnOnce() -> Option<u64>,
    ) -> bool {
        let Some(r) = self.paused.get(partition) else {
            return false;
        };
        let current = epoch();
        if current == Some(r.epoch) {
            return true;
        }
        self.forget(consumer, partition, current.is_some());
        current.is_none()
    }

    /// Forgets the pauses of ownerships that ended; `epoch_of` gives a
    /// partition's current ownership.
    pub(crate) fn prune<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        epoch_of: impl Fn(&TopicPartition) -> Option<u64>,
    ) {
        let stale: Vec<(TopicPartition, bool)> = self
            .paused
            .iter()
            .filter_map(|(p, r)| {
                let current = epoch_of(p);
                (current != Some(r.epoch)).then(|| (p.clone(), current.is_some()))
            })
            .collect();
        for (p, owned) in stale {
            self.forget(consumer, &p, owned);
        }
    }

    /// Drops a pause of an ended ownership; a partition owned again is
    /// resumed, in case librdkafka kept it paused.
    fn forget<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        partition: &TopicPartition,
        owned_again: bool,
    ) {
        self.paused.remove(partition);
        if owned_again && let Err(e) = consumer.resume(&TopicPartition::list([partition])) {
            tracing::debug!("resume {partition}: {e}");
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        !self.paused.is_empty()
    }

    /// How many partitions are paused.
    pub(crate) fn len(&self) -> usize {
        self.paused.len()
    }

    /// Pauses one partition, owned under `epoch`, and rewinds it to
    /// `offset`, the first event not taken.
    pub(crate) fn pause<C: ConsumerContext>(
        &mut self,
        consumer: &impl Consumer<C>,
        partition: TopicPartition,
        offset: i64,
        epoch: u64,
    ) {
        if let Err(e) = consumer.pause(&TopicPartition::list([&partition])) {
            tracing::warn!("cannot pause {partition}: {e}");
        }
        let done = rewind(consumer, &partition, offset);
        self.paused.insert(
            partition,
            Rewind {
                offset,
                done,
                epoch,
            },
        );
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

#[cfg(test)]
mod tests {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::BaseConsumer;

    use super::*;

    /// A consumer that never connects: pause, seek and resume of
    /// partitions it does not own fail, which `Backpressure` logs.
    fn consumer() -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "backpressure-test")
            .set("log_level", "0")
            .create()
            .expect("consumer")
    }

    #[test]
    fn a_pause_belongs_to_one_ownership() {
        let c = consumer();
        let tp = TopicPartition::new("t", 0);
        let mut b = Backpressure::default();
        b.pause(&c, tp.clone(), 5, 1);
        assert!(b.holds(&c, &tp, || Some(1)), "fetched before the pause");
        // Revoked and assigned again: the new ownership's messages are
        // taken, and the old pause is gone.
        assert!(!b.holds(&c, &tp, || Some(2)));
        assert!(!b.is_active());
        // Revoked: its messages are the next owner's.
        b.pause(&c, tp.clone(), 5, 2);
        assert!(b.holds(&c, &tp, || None));
        assert!(!b.is_active());
        b.pause(&c, tp.clone(), 5, 3);
        b.prune(&c, |_| Some(3));
        assert!(b.is_active(), "still the same ownership");
        b.prune(&c, |_| None);
        assert!(!b.is_active());
    }

    /// librdkafka refuses the seek here (the partition is not assigned to
    /// this consumer), as it may when a fetch is in the way: the partition
    /// must not resume, or the events between the last one taken and what
    /// was fetched before the pause would be skipped.
    #[test]
    fn a_partition_that_could_not_be_rewound_stays_paused() {
        let c = consumer();
        let tp = TopicPartition::new("t", 0);
        let mut b = Backpressure::default();
        b.pause(&c, tp.clone(), 5, 1);
        b.resume(&c);
        b.resume(&c);
        assert!(b.is_active(), "resumed without its rewind");
        assert_eq!(b.len(), 1);
        assert!(
            b.holds(&c, &tp, || Some(1)),
            "what it fetches is read again"
        );
    }
}
