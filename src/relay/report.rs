//! What happened to one event on one route, for whoever listens: `kbridge
//! demo` prints these, and the audit (`relay::audit`) writes each to its
//! topic. Without either, no report is built.

use std::sync::Arc;

use bytes::Bytes;

use crate::relay::deliver::Answered;
use crate::relay::stage::Stage;

#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `topic-partition-offset`.
    pub coordinates: String,
    /// The route; `None` when no route takes the event's topic.
    pub route: Option<Arc<str>>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Every request of the route delivered.
    Delivered {
        /// The ordering key (the alert id for the preset); may be empty.
        key: String,
        bodies: Vec<Bytes>,
        /// Attempts over all its requests.
        attempts: u32,
        /// The last answer's HTTP status.
        status: Option<u16>,
    },
    Skipped {
        reason: String,
    },
    /// Kept from the target by the storm stage: `what` is `deduped`,
    /// `grouped` (into a digest), `held` (a recovery, for
    /// `hold_resolved`), `silenced`, or `absorbed` (a flap, `max_age`).
    Absorbed {
        what: &'static str,
        reason: String,
    },
    DeadLettered {
        stage: Stage,
        reason: String,
        answer: Answered,
        /// Where the dead letter is: topic, partition, offset.
        at: Option<(Arc<str>, i32, i64)>,
    },
    /// Invalid or rejected with no dead-letter topic configured: logged and
    /// committed.
    Dropped {
        stage: Stage,
        reason: String,
        answer: Answered,
    },
}
