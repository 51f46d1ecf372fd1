//! Taking one message into processing: every route that takes its topic
//! looks at it ([`Route::intake`](super::Route::intake)), its offset is
//! accepted with the routes that have work for it (`commit`), and on each
//! route the event is either skipped as handled by the partition's previous
//! owner, or
//! finished at once (skipped, or invalid without a dead-letter topic) or
//! becomes a job for `deliver`, queued behind its key's earlier events on
//! that route. This runs in the consume loop, one message after another:
//! a jq route only computes its key here, and maps in its job.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::{Event, Intake, RouteDecision};
use crate::relay::commit::{OrderKey, Refused, RouteSet, route_bit};
use crate::relay::job::{Job, Work};
use crate::relay::live_route::{Leg, LiveRoute};
use crate::relay::report::Outcome;
use crate::relay::shared::Shared;
use crate::relay::source::Origin;
use crate::relay::stage::Stage;
use crate::relay::storm::Tag;
use crate::topic_partition::TopicPartition;

/// Decides what to do with one message; returns the jobs to start now.
pub(crate) fn take(
    shared: &Shared,
    origin: Origin,
    partition: TopicPartition,
    permit: OwnedSemaphorePermit,
    bytes: OwnedSemaphorePermit,
) -> Vec<Job> {
    shared.totals().consumed();
    let offset = origin.offset;
    // Pure and local: decided before the offset is accepted, so that it is
    // accepted with the routes that have a job for it.
    let origin = Arc::new(origin);
    // Shared with the jobs of the routes that map later.
    let event = Arc::new(Event::of_message(
        origin.clone(),
        shared.max_message_bytes(),
    ));
    let decisions: Vec<(&Arc<LiveRoute>, Leg, Intake, Facts, bool)> = shared
        .routes()
        .iter()
        .filter_map(|r| {
            let leg = r.leg(&partition.topic)?;
            let (intake, facts) = match leg {
                Leg::Direct => (r.route.intake(&event), Facts::default()),
                Leg::Forward | Leg::Storm => storm_intake(r, leg, &event),
            };
            // A silence is honoured where the route decides (not where a
            // storm route only re-keys).
            let mut silenced = false;
            let intake = match (leg, intake, shared.storm()) {
                (
                    Leg::Direct | Leg::Storm,
                    intake @ (Intake::Later(_) | Intake::Decided(RouteDecision::Deliver { .. })),
                    Some(storm),
                ) => match storm.silenced(r.name(), &event) {
                    Some(reason) => {
                        shared.totals().storm_absorbed(r.name(), "silence");
                        silenced = true;
                        Intake::Decided(RouteDecision::Skip(reason))
                    }
                    None => intake,
                },
                (_, intake, _) => intake,
            };
            Some((r, leg, intake, facts, silenced))
        })
        .collect();
    // The routes that took it, and those with a job to do (a route that
    // skips it, or finds it invalid without a dead-letter topic, is done
    // with it now).
    let (mut took, mut with_work): (RouteSet, RouteSet) = (0, 0);
    for (r, _, d, _, _) in &decisions {
        let bit = route_bit(r.id);
        took |= bit;
        let has_work = match d {
            Intake::Later(_) | Intake::Decided(RouteDecision::Deliver { .. }) => true,
            Intake::Decided(RouteDecision::Invalid { .. }) => r.dead_letter_topic.is_some(),
            Intake::Decided(RouteDecision::Skip(_)) => false,
        };
        if has_work {
            with_work |= bit;
        }
    }
    // The outcomes of the routes done with it now are reported after the
    // accept, which may make the offset committable at once: the audit's
    // hold keeps a commit from passing their records meanwhile.
    let _audit = shared.audit_hold();
    let (ownership, before) = match shared
        .partitions()
        .accept(&partition, offset, took, with_work)
    {
        Ok(accepted) => accepted,
        Err(Refused::SeenAgain) => {
            tracing::warn!(
                topic = %partition.topic, partition = partition.partition, offset,
                "offset seen again within this assignment; not handled twice"
            );
            return Vec::new();
        }
        Err(Refused::NotOwned) => {
            tracing::debug!(
                topic = %partition.topic, partition = partition.partition, offset,
                "partition revoked; its next owner reads this event"
            );
            return Vec::new();
        }
    };
    let epoch = ownership.epoch;
    let permit = Arc::new(permit);
    let bytes = Arc::new(bytes);
    if decisions.is_empty() {
        shared.skip(
            &origin,
            None,
            None,
            format!("no route takes topic {}", partition.topic),
        );
    }
    let mut jobs = Vec::with_capacity((with_work & !before).count_ones() as usize);
    for (route, leg, intake, facts, silenced) in decisions {
        let name = route.name();
        if before & route_bit(route.id) != 0 {
            // Its commit point stopped before it, but the previous owner
            // handled it on this route (its commit's metadata said so).
            shared.totals().handled_before(name);
            tracing::debug!(event = %origin.coordinates(), route = %name, "handled by the partition's previous owner; not sent again");
            shared.report(&origin, Some(name), None, |_| Outcome::Skipped {
                reason: "handled by the partition's previous owner".into(),
            });
            continue;
        }
        let Facts { state, group } = facts;
        let mut tag = state.map(|state| Tag {
            state,
            redriven: origin.redriven,
            alert: None,
        });
        let (work, order) = match intake {
            // A storm route's source: re-keyed by group (a digest route)
            // or alert id, in order.
            Intake::Later(key) if leg == Leg::Forward => {
                let (order, _) = key.split();
                let order = group.or(order);
                (Work::Forward, order.map(|k| OrderKey::new(route.id, k)))
            }
            Intake::Decided(RouteDecision::Deliver { key, .. }) if leg == Leg::Forward => {
                let order = group.or(key);
                (Work::Forward, order.map(|k| OrderKey::new(route.id, k)))
            }
            // A digest route's repartition topic: into its group, in order.
            Intake::Later(key) if group.is_some() => {
                let (alert, _) = key.split();
                if let Some(t) = tag.as_mut() {
                    t.alert = alert;
                }
                let work = Work::Fold {
                    event: event.clone(),
                };
                (work, group.map(|g| OrderKey::new(route.id, g)))
            }
            // A jq route: ordered now, mapped in its job.
            Intake::Later(key) => {
                let (order, key_failure) = key.split();
                let work = Work::Map {
                    event: event.clone(),
                    key_failure,
                };
                (work, order.map(|k| OrderKey::new(route.id, k)))
            }
            Intake::Decided(RouteDecision::Skip(reason)) if silenced => {
                shared.absorbed(&origin, name, None, "silenced", reason);
                continue;
            }
            Intake::Decided(RouteDecision::Skip(reason)) => {
                shared.skip(&origin, Some(name), None, reason);
                continue;
            }
            Intake::Decided(RouteDecision::Invalid { stage, reason }) => {
                shared.invalid(&origin, name, stage, &reason);
                if route.dead_letter_topic.is_none() {
                    shared.report(&origin, Some(name), None, |_| Outcome::Dropped {
                        stage,
                        reason,
                        answer: Default::default(),
                    });
                    continue;
                }
                (Work::DeadLetter { stage, reason }, None)
            }
            Intake::Decided(RouteDecision::Deliver {
                key,
                bodies,
                warning,
            }) => {
                if let Some(w) = warning {
                    tracing::warn!(event = %origin.coordinates(), route = %name, key = key.as_deref().unwrap_or(""), "{w}");
                }
                (
                    Work::Deliver { bodies },
                    key.map(|k| OrderKey::new(route.id, k)),
                )
            }
        };
        let job = Job {
            partition: partition.clone(),
            ownership: ownership.clone(),
            origin: origin.clone(),
            route: route.clone(),
            order: order.clone(),
            work,
            permit: permit.clone(),
            bytes: bytes.clone(),
            storm: tag,
        };
        let Some(order) = order else {
            jobs.push(job);
            continue;
        };
        let started = shared
            .partitions()
            .submit(&partition, epoch, order, job, |queued| {
                // Waiting, not processing: give the event's processing
                // slot back when a waiting slot is free.
                if let Ok(waiting) = shared.waiting_slots().clone().try_acquire_owned() {
                    queued.permit = Arc::new(waiting);
                }
            });
        jobs.extend(started);
    }
    jobs
}

/// What the storm stage needs of an event, found at intake.
#[derive(Default)]
struct Facts {
    /// The alert's state (on the repartition topic).
    state: Option<String>,
    /// Its group, on a digest route.
    group: Option<String>,
}

/// A storm route's intake: the route's own, with what the storm stage
/// needs — its group (re-keyed by it), and on the repartition topic the
/// alert's state — or why the event is invalid.
fn storm_intake(route: &LiveRoute, leg: Leg, event: &Event) -> (Intake, Facts) {
    let intake = route.route.intake(event);
    let Some(storm) = &route.storm else {
        return (intake, Facts::default());
    };
    if !matches!(
        intake,
        Intake::Later(_) | Intake::Decided(RouteDecision::Deliver { .. })
    ) {
        return (intake, Facts::default());
    }
    let facts = event
        .json()
        .map_err(|invalid| match invalid {
            RouteDecision::Invalid { reason, .. } => reason,
            _ => "not JSON".into(),
        })
        .and_then(|v| {
            Ok(Facts {
                state: match leg {
                    Leg::Storm => Some(storm.state_of(v)?),
                    _ => None,
                },
                group: storm.group_of(v).transpose()?,
            })
        });
    match facts {
        Ok(facts) => (intake, facts),
        Err(reason) => (
            Intake::Decided(RouteDecision::Invalid {
                stage: Stage::Map,
                reason,
            }),
            Facts::default(),
        ),
    }
}
