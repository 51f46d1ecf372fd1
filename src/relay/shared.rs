//! Everything the relay's tasks share: built once by `service`, read by the
//! consume loop, the intake and every delivery task.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::sync::{Semaphore, mpsc};

use crate::relay::audit::Audit;
use crate::relay::commit::{OrderKey, Ownership, Partitions};
use crate::relay::config::RelayConfig;
use crate::relay::deliver::DeadLetters;
use crate::relay::fleet_share::FleetShare;
use crate::relay::job::Job;
use crate::relay::live_route::LiveRoute;
use crate::relay::report::{Outcome, Report};
use crate::relay::shutdown::Abort;
use crate::relay::source::{self, Origin, RelayConsumer};
use crate::relay::source::{CommittedOffsets, OnAssignment};
use crate::relay::stage::Stage;
use crate::relay::storm::{Storm, Taken};
use crate::relay::telemetry::Totals;
use crate::topic_partition::TopicPartition;
use rdkafka::TopicPartitionList;

pub(crate) struct Shared {
    consumer: Arc<RelayConsumer<Job>>,
    partitions: Arc<Partitions<Job>>,
    /// The routes, in configuration order: each what it does with an
    /// event and where its requests go.
    routes: Vec<Arc<LiveRoute>>,
    dead_letters: Option<DeadLetters>,
    totals: Arc<Totals>,
    reports: Option<mpsc::UnboundedSender<Report>>,
    max_message_bytes: usize,
    /// Slots for events waiting behind their alert's earlier events.
    waiting_slots: Arc<Semaphore>,
    /// Each route's share of its rate limit, from the assignment.
    fleet_share: Arc<FleetShare>,
    /// The storm stage, with storm routes.
    storm: Option<Arc<Storm>>,
    /// The journey of every alert, with `[audit] topic`.
    audit: Option<Arc<Audit>>,
    /// Where its release tasks start from (taken once, by `service`).
    storm_taken: Mutex<Option<mpsc::UnboundedReceiver<Taken>>>,
}

/// What the rebalance callbacks tell: each route's share of its rate
/// limit, and the storm stage.
struct Assignment {
    fleet_share: Arc<FleetShare>,
    storm: Option<Arc<Storm>>,
    audit: Option<Arc<Audit>>,
}

impl OnAssignment for Assignment {
    fn owned(&self, owned: &[TopicPartition]) {
        self.fleet_share.owned(owned);
    }

    fn starting(&self, tpl: &TopicPartitionList, committed: &CommittedOffsets<'_>) {
        if let Some(s) = &self.storm {
            s.start_offsets(tpl, committed);
        }
    }

    fn restore(&self, tps: &[TopicPartition]) {
        if let Some(s) = &self.storm {
            s.restore(tps);
        }
    }

    fn taken(&self, owned: Vec<(TopicPartition, Ownership)>) {
        if let Some(s) = &self.storm {
            s.taken(owned);
        }
    }

    fn revoked(&self, tps: &[TopicPartition]) {
        if let Some(s) = &self.storm {
            s.revoked(tps);
        }
    }

    fn durable(&self, deadline: std::time::Instant) -> bool {
        self.audit.as_ref().is_none_or(|a| a.durable(deadline))
    }
}

/// Events that may wait behind their alert's earlier events without a
/// processing slot, per `max_pending`.
const WAITING_PER_PENDING: usize = 4;

impl Shared {
    /// Builds the relay's parts from its configuration: the routes and
    /// their webhook clients, the group consumer and the dead-letter
    /// producer.
    pub(crate) fn new(
        cfg: &RelayConfig,
        totals: Arc<Totals>,
        reports: Option<mpsc::UnboundedSender<Report>>,
        abort: &Abort,
    ) -> Result<Self> {
        let routes = LiveRoute::build_all(cfg, &totals)?;
        let fleet_share = Arc::new(FleetShare::new(routes.clone(), cfg.subscribed_topics()));
        let (storm, storm_taken) = match Storm::new(cfg, &routes, totals.clone())? {
            Some((storm, taken)) => (Some(storm), Some(taken)),
            None => (None, None),
        };
        let kafka = cfg.kafka_opts();
        let audit = Audit::new(cfg, totals.clone())?.map(Arc::new);
        let partitions: Arc<Partitions<Job>> = Arc::new(Partitions::new(
            abort.token(),
            routes.iter().map(|r| r.name().to_string()).collect(),
        ));
        let consumer = source::create_consumer(
            &kafka,
            source::Membership {
                group: &cfg.group,
                instance_id: cfg.group_instance_id.as_deref(),
            },
            cfg.offset_reset,
            partitions.clone(),
            totals.clone(),
            cfg.route_configs()
                .iter()
                .map(|r| r.webhook.timeout)
                .max()
                .unwrap_or_default()
                + source::REVOKE_MARGIN,
            Arc::new(Assignment {
                fleet_share: fleet_share.clone(),
                storm: storm.clone(),
                audit: audit.clone(),
            }),
        )?;
        // One producer for every route's dead-letter topic.
        let dead_letters = if routes.iter().any(|r| r.dead_letter_topic.is_some()) {
            Some(DeadLetters::new(&kafka, totals.clone())?)
        } else {
            None
        };
        Ok(Self {
            consumer,
            partitions,
            routes,
            dead_letters,
            totals,
            reports,
            max_message_bytes: cfg.max_message_bytes,
            waiting_slots: Arc::new(Semaphore::new(
                cfg.max_pending.saturating_mul(WAITING_PER_PENDING),
            )),
            fleet_share,
            storm,
            audit,
            storm_taken: Mutex::new(storm_taken),
        })
    }

    /// The storm stage, if a route has one.
    pub(crate) fn storm(&self) -> Option<&Storm> {
        self.storm.as_deref()
    }

    /// The storm stage's release tasks: started once the relay runs.
    pub(crate) fn start_storm_releases(self: &Arc<Self>) {
        let taken = self
            .storm_taken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(taken) = taken {
            crate::relay::storm::spawn_releases(Arc::downgrade(self), taken);
        }
    }

    pub(crate) fn fleet_share(&self) -> &FleetShare {
        &self.fleet_share
    }

    pub(crate) fn waiting_slots(&self) -> &Arc<Semaphore> {
        &self.waiting_slots
    }

    pub(crate) fn consumer(&self) -> &Arc<RelayConsumer<Job>> {
        &self.consumer
    }

    pub(crate) fn partitions(&self) -> &Partitions<Job> {
        &self.partitions
    }

    pub(crate) fn routes(&self) -> &[Arc<LiveRoute>] {
        &self.routes
    }

    pub(crate) fn dead_letters(&self) -> Option<&DeadLetters> {
        self.dead_letters.as_ref()
    }

    pub(crate) fn totals(&self) -> &Totals {
        &self.totals
    }

    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Tells an outcome to the audit and the observer, if there are any;
    /// `outcome` is only built then (this runs once per event and route),
    /// told whether the observer will show it (the audit needs no bodies).
    /// `key`: the route's key for the event (the alert id), if it has one.
    pub(crate) fn report(
        &self,
        origin: &Origin,
        route: Option<&Arc<str>>,
        key: Option<&str>,
        outcome: impl FnOnce(bool) -> Outcome,
    ) {
        if self.audit.is_none() && self.reports.is_none() {
            return;
        }
        let outcome = outcome(self.reports.is_some());
        if let Some(audit) = &self.audit {
            audit.record(origin, route.map(|r| &**r), key, &outcome);
        }
        if let Some(tx) = &self.reports {
            let _ = tx.send(Report {
                coordinates: origin.coordinates(),
                route: route.cloned(),
                outcome,
            });
        }
    }

    /// Held by the intake across an offset's accept and its reports (see
    /// `audit::Hold`); nothing without an audit.
    pub(crate) fn audit_hold(&self) -> Option<crate::relay::audit::Hold<'_>> {
        self.audit.as_deref().map(Audit::hold)
    }

    /// An event skipped on a route (or, `route` `None`, by every route):
    /// counted, logged at debug, reported.
    pub(crate) fn skip(
        &self,
        origin: &Origin,
        route: Option<&Arc<str>>,
        key: Option<&str>,
        reason: String,
    ) {
        self.totals.skipped(route);
        tracing::debug!(event = %origin.coordinates(), route = route.map_or("-", |r| &**r), "skipped: {reason}");
        self.report(origin, route, key, |_| Outcome::Skipped { reason });
    }

    /// An event the storm stage kept from the target (`what`: `deduped`,
    /// `grouped`, `held`, `silenced`, `absorbed`): counted as skipped,
    /// logged at debug, reported.
    pub(crate) fn absorbed(
        &self,
        origin: &Origin,
        route: &Arc<str>,
        key: Option<&str>,
        what: &'static str,
        reason: String,
    ) {
        self.totals.skipped(Some(route));
        tracing::debug!(event = %origin.coordinates(), route = %route, "{what}: {reason}");
        self.report(origin, Some(route), key, |_| Outcome::Absorbed {
            what,
            reason,
        });
    }

    /// An event a route cannot map: counted and logged with the reason;
    /// the caller dead-letters or drops it.
    pub(crate) fn invalid(&self, origin: &Origin, route: &Arc<str>, stage: Stage, reason: &str) {
        self.totals.invalid(route, stage);
        tracing::warn!(
            event = %origin.coordinates(), route = %route, stage = stage.as_str(),
            "invalid event: {reason}"
        );
    }

    /// Marks route `route`'s part of an offset handled, and returns the
    /// next job of the same key, if one waits.
    pub(crate) fn finish(
        &self,
        partition: &TopicPartition,
        epoch: u64,
        offset: i64,
        route: usize,
        order: Option<&OrderKey>,
    ) -> Option<Job> {
        self.partitions
            .finish(partition, epoch, offset, route, order)
    }
}
