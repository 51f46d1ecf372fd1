//! A commit point: the offset of a partition that may be committed — the
//! next one to read, everything before it handled.

use std::fmt;

use rdkafka::{Offset, TopicPartitionList};

use crate::topic_partition::TopicPartition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitPoint {
    pub partition: TopicPartition,
    pub offset: i64,
}

impl CommitPoint {
    pub(crate) fn new(partition: TopicPartition, offset: i64) -> Self {
        Self { partition, offset }
    }

    /// The points as a librdkafka partition list, for a store or a commit.
    pub(crate) fn list(points: &[CommitPoint]) -> TopicPartitionList {
        TopicPartition::list_at(
            points
                .iter()
                .map(|p| (&p.partition, Offset::Offset(p.offset))),
        )
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
