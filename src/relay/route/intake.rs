//! Taking one message into processing: every route that takes its topic
//! looks at it ([`Route::intake`](super::Route::intake)), its offset is
//! accepted as that many pieces of work (`commit`), and on each route the
//! event is either
//! finished at once (skipped, or invalid without a dead-letter topic) or
//! becomes a job for `deliver`, queued behind its key's earlier events on
//! that route. This runs in the consume loop, one message after another:
//! a jq route only computes its key here, and maps in its job.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::{Event, Intake, RouteDecision};
use crate::relay::commit::{OrderKey, Refused};
use crate::relay::job::{Job, Work};
use crate::relay::live_route::LiveRoute;
use crate::relay::report::Outcome;
use crate::relay::shared::Shared;
use crate::relay::source::Origin;
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
    // accepted as the number of jobs it makes.
    let origin = Arc::new(origin);
    // Shared with the jobs of the routes that map later.
    let event = Arc::new(Event::of_message(
        origin.clone(),
        shared.max_message_bytes(),
    ));
    let decisions: Vec<(&Arc<LiveRoute>, Intake)> = shared
        .routes()
        .iter()
        .filter(|r| r.route.takes(&partition.topic))
        .map(|r| (r, r.route.intake(&event)))
        .collect();
    let parts = decisions
        .iter()
        .filter(|(r, d)| match d {
            Intake::Later(_) | Intake::Decided(RouteDecision::Deliver { .. }) => true,
            Intake::Decided(RouteDecision::Invalid { .. }) => r.dead_letter_topic.is_some(),
            Intake::Decided(RouteDecision::Skip(_)) => false,
        })
        .count();
    let ownership = match shared
        .partitions()
        .accept(&partition, offset, parts.max(1) as u32)
    {
        Ok(o) => o,
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
            format!("no route takes topic {}", partition.topic),
        );
    }
    let mut jobs = Vec::with_capacity(parts);
    for (route, intake) in decisions {
        let name = route.name();
        let (work, order) = match intake {
            // A jq route: ordered now, mapped in its job.
            Intake::Later(key) => {
                let (order, key_failure) = key.split();
                let work = Work::Map {
                    event: event.clone(),
                    key_failure,
                };
                (work, order.map(|k| OrderKey::new(route.id, k)))
            }
            Intake::Decided(RouteDecision::Skip(reason)) => {
                shared.skip(&origin, Some(name), reason);
                continue;
            }
            Intake::Decided(RouteDecision::Invalid { stage, reason }) => {
                shared.invalid(&origin, name, stage, &reason);
                if route.dead_letter_topic.is_none() {
                    shared.report(&origin, Some(name), || Outcome::Dropped { stage, reason });
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
    if parts == 0 {
        shared.finish(&partition, epoch, offset, None);
    }
    jobs
}
