//! What happened to one event, for an optional observer: `kbridge demo`
//! prints these. The service has none, and builds no report.

use bytes::Bytes;

use crate::relay::stage::Stage;

#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `topic-partition-offset`.
    pub coordinates: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Delivered {
        alert_id: String,
        body: Bytes,
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
