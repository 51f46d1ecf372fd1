//! What happened to one event on one route, for an optional observer: `kbridge demo`
//! prints these. The service has none, and builds no report.

use bytes::Bytes;

use crate::relay::stage::Stage;

#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `topic-partition-offset`.
    pub coordinates: String,
    /// The route; `None` when no route takes the event's topic.
    pub route: Option<std::sync::Arc<str>>,
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
    },
    Skipped {
        reason: String,
    },
    DeadLettered {
        stage: Stage,
        reason: String,
    },
    /// Invalid or rejected with no dead-letter topic configured: logged and
    /// committed.
    Dropped {
        stage: Stage,
        reason: String,
    },
}
