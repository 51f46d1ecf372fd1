//! One partition of one topic: the unit Kafka orders, assigns and commits.

use std::fmt;
use std::sync::Arc;

use rdkafka::{Offset, TopicPartitionList};

/// A topic-partition. The topic name is shared (`Arc<str>`) because the
/// relay keeps one per event in processing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

/// As JSON, `["topic", 0]`: the pair the consumer protocol and
/// `groups describe --json` speak of.
impl serde::Serialize for TopicPartition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.topic, self.partition).serialize(s)
    }
}

impl TopicPartition {
    pub(crate) fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// Every element of a librdkafka partition list.
    pub(crate) fn all_of(tpl: &TopicPartitionList) -> Vec<Self> {
        tpl.elements()
            .iter()
            .map(|e| Self::new(e.topic(), e.partition()))
            .collect()
    }

    /// A librdkafka partition list of these partitions at these offsets.
    pub(crate) fn list_at<'a>(
        at: impl IntoIterator<Item = (&'a TopicPartition, Offset)>,
    ) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in at {
            // Fails only for an invalid offset value, which callers never pass.
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, offset);
        }
        tpl
    }

    /// A librdkafka partition list of these partitions, offsets unset.
    pub(crate) fn list<'a>(
        tps: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        tpl
    }
}

/// `topic/partition`, as kbridge's logs and messages write it.
impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_as_topic_slash_partition() {
        assert_eq!(TopicPartition::new("event", 3).to_string(), "event/3");
    }
}
