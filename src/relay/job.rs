//! One event in processing, from intake until it is handled.

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::relay::commit::ownership::Ownership;
use crate::relay::origin::Origin;
use crate::relay::stage::Stage;
use crate::topic_partition::TopicPartition;

/// One event in processing. Holding a permit is what bounds memory: a
/// processing slot (`max_pending`) while it runs, and, when it is not the
/// first to wait behind its alert's earlier events, a waiting slot if one is
/// free, so that an alert stuck in retries does not keep every other alert
/// waiting.
pub(crate) struct Job {
    pub partition: TopicPartition,
    /// The ownership of the partition this event was taken under: its
    /// delivery stops when that ownership ends (see `commit::ownership`).
    pub ownership: Ownership,
    pub origin: Origin,
    pub work: Work,
    pub permit: OwnedSemaphorePermit,
}

/// What is left to do for the event.
pub(crate) enum Work {
    Deliver { alert_id: String, body: Bytes },
    DeadLetter { stage: Stage, reason: String },
}

impl Job {
    /// The per-alert ordering key: events with one alert id are delivered
    /// in offset order; dead letters have none.
    pub(crate) fn alert_id(&self) -> Option<&String> {
        match &self.work {
            Work::Deliver { alert_id, .. } => Some(alert_id),
            Work::DeadLetter { .. } => None,
        }
    }
}
