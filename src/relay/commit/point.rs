//! A commit point: the offset of a partition that may be committed — the
//! next one to read, everything before it handled.

use std::fmt;

use rdkafka::{Offset, TopicPartitionList};

use crate::topic_partition::TopicPartition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitPoint {
    pub partition: TopicPartition,
    pub offset: i64,
    /// What was handled beyond it (`handed_over`), or empty.
    pub metadata: String,
    /// The ownership it was taken under (0: none named).
    pub epoch: u64,
}

impl CommitPoint {
    pub(crate) fn new(partition: TopicPartition, offset: i64) -> Self {
        Self {
            partition,
            offset,
            metadata: String::new(),
            epoch: 0,
        }
    }

    pub(crate) fn with_metadata(mut self, metadata: String) -> Self {
        self.metadata = metadata;
        self
    }

    /// The points as a librdkafka partition list for a commit, with their
    /// metadata unless `bare` (for brokers that keep less than kbridge
    /// writes).
    pub(crate) fn list(points: &[CommitPoint], bare: bool) -> TopicPartitionList {
        let tpl = TopicPartition::list_at(
            points
                .iter()
                .map(|p| (&p.partition, Offset::Offset(p.offset))),
        );
        if !bare {
            for p in points.iter().filter(|p| !p.metadata.is_empty()) {
                if let Some(mut e) = tpl.find_partition(&p.partition.topic, p.partition.partition) {
                    e.set_metadata(&p.metadata);
                }
            }
        }
        tpl
    }
}

/// `topic/partition@offset`, as the logs write it.
impl fmt::Display for CommitPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// Points for a log field: `[event/0@12, event/1@7]`.
pub(crate) fn shown(points: &[CommitPoint]) -> Vec<String> {
    points.iter().map(ToString::to_string).collect()
}
