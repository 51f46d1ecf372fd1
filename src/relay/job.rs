//! One piece of work in processing: one event on one route, from intake
//! until it is handled. An event that fans out to several routes is several
//! jobs; its offset is handled when every one is (`commit::offsets`).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use crate::relay::commit::{OrderKey, Ownership};
use crate::relay::live_route::LiveRoute;
use crate::relay::route::Event;
use crate::relay::source::Origin;
use crate::relay::stage::Stage;
use crate::relay::storm::Tag;
use crate::topic_partition::TopicPartition;

/// One event on one route. Holding a permit is what bounds memory: the
/// event's processing slot (`max_pending`, shared by its jobs) while it
/// runs, and, when it is not the first to wait behind its key's earlier
/// events, a waiting slot if one is free, so that an alert stuck in retries
/// does not keep every other alert waiting.
pub(crate) struct Job {
    pub partition: TopicPartition,
    /// The ownership of the partition this event was taken under: its
    /// delivery stops when that ownership ends (see `commit::ownership`).
    pub ownership: Ownership,
    /// The original message, shared by the event's jobs.
    pub origin: Arc<Origin>,
    /// Its route: what it does with the event, and where it goes.
    pub route: Arc<LiveRoute>,
    /// The ordering key: jobs with one key on one route run in offset
    /// order; `None` runs at once (dead letters, routes without a key).
    pub order: Option<OrderKey>,
    pub work: Work,
    pub permit: Arc<OwnedSemaphorePermit>,
    /// On a storm route's repartition topic: what the storm stage needs
    /// to decide it (`storm::through`); `None` elsewhere.
    pub storm: Option<Tag>,
    /// The message's bytes out of `max_pending_bytes`, shared by its jobs:
    /// released when the last of them is handled, however long it waited
    /// behind its alert's earlier events. Held, never read.
    #[allow(dead_code)]
    pub bytes: Arc<OwnedSemaphorePermit>,
}

/// What is left to do for the event on this route.
pub(crate) enum Work {
    /// POST each body (a jq map may give several), in order.
    Deliver {
        bodies: Vec<Bytes>,
    },
    /// Run the route's jq filter and map first (`Route::later`), here
    /// rather than in the consume loop; `key_failure`: why the route's
    /// `key` program failed at intake (the event is invalid at map unless
    /// the filter skips it). Its key, if any, is `order`'s.
    Map {
        event: Arc<Event>,
        key_failure: Option<String>,
    },
    DeadLetter {
        stage: Stage,
        reason: String,
    },
    /// Copy the event into its storm route's repartition topic, keyed by
    /// its group or alert id (`order`'s key).
    Forward,
    /// Take the event into its group (`order`'s key) on a digest route,
    /// if the route's filter takes it: its digest is sent on the group's
    /// schedule (`storm::digest`).
    Fold {
        event: Arc<Event>,
    },
}

impl Job {
    /// The ordering key's text, for logs.
    pub(crate) fn key(&self) -> &str {
        self.order.as_ref().map_or("", |o| o.key.as_str())
    }

    /// The alert's id, for the audit: the ordering key, but on a digest
    /// route's repartition topic (ordered by group) the alert's own.
    pub(crate) fn alert_id(&self) -> &str {
        self.storm
            .as_ref()
            .and_then(|t| t.alert.as_deref())
            .unwrap_or_else(|| self.key())
    }
}
