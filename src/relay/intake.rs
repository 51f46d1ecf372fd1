//! Taking one message into processing: its offset is accepted (`commit`),
//! the preset decides (`preset`), and the event is either finished at once
//! (skipped, or invalid without a dead-letter topic) or becomes a job for
//! `deliver`, queued behind its alert's earlier events.

use tokio::sync::OwnedSemaphorePermit;

use crate::relay::commit::partitions::Refused;
use crate::relay::job::{Job, Work};
use crate::relay::origin::Origin;
use crate::relay::preset::{Decision, decide};
use crate::relay::report::Outcome;
use crate::relay::shared::Shared;
use crate::topic_partition::TopicPartition;

/// Decides what to do with one message; returns a job to start now.
pub(crate) fn take(
    shared: &Shared,
    origin: Origin,
    partition: TopicPartition,
    permit: OwnedSemaphorePermit,
) -> Option<Job> {
    shared.totals().consumed();
    let offset = origin.offset;
    let ownership = match shared.partitions().accept(&partition, offset) {
        Ok(o) => o,
        Err(Refused::SeenAgain) => {
            tracing::warn!(
                topic = %partition.topic, partition = partition.partition, offset,
                "offset seen again within this assignment; not handled twice"
            );
            return None;
        }
        Err(Refused::NotOwned) => {
            tracing::debug!(
                topic = %partition.topic, partition = partition.partition, offset,
                "partition revoked; its next owner reads this event"
            );
            return None;
        }
    };
    let epoch = ownership.epoch;
    let decision = decide(
        shared.preset(),
        origin.payload.as_deref(),
        shared.max_message_bytes(),
    );
    let work = match decision {
        Decision::Skip(reason) => {
            shared.totals().skipped();
            tracing::debug!(event = %origin.coordinates(), "skipped: {reason}");
            shared.finish(&partition, epoch, offset, None);
            shared.report(&origin, || Outcome::Skipped { reason });
            return None;
        }
        Decision::Reject { stage, reason } => {
            shared.totals().invalid(stage);
            tracing::warn!(
                topic = %partition.topic, partition = partition.partition, offset,
                stage = stage.as_str(),
                "invalid event: {reason}"
            );
            if shared.dead_letters().is_none() {
                shared.finish(&partition, epoch, offset, None);
                shared.report(&origin, || Outcome::Dropped { stage, reason });
                return None;
            }
            Work::DeadLetter { stage, reason }
        }
        Decision::Deliver {
            alert_id,
            body,
            warning,
        } => {
            if let Some(w) = warning {
                tracing::warn!(event = %origin.coordinates(), alert_id, "{w}");
            }
            let job = Job {
                partition: partition.clone(),
                ownership,
                origin,
                work: Work::Deliver {
                    alert_id: alert_id.clone(),
                    body,
                },
                permit,
            };
            return shared
                .partitions()
                .submit(&partition, epoch, alert_id, job, |queued| {
                    // Waiting, not processing: give the processing slot
                    // back to the other alerts when a waiting slot is free.
                    if let Ok(waiting) = shared.waiting_slots().clone().try_acquire_owned() {
                        queued.permit = waiting;
                    }
                });
        }
    };
    Some(Job {
        partition,
        ownership,
        origin,
        work,
        permit,
    })
}
