//! Stage 4, deliver: one job's trip to the webhook — or to the dead-letter
//! topic — and on to the commit.
//!
//! [`run_chain`] is the delivery task: it handles a job, marks its offset
//! handled (`Shared::finish`, which moves the commit point), and goes on with
//! the next job of the same alert, if one waited. One POST is `webhook`, what
//! its answer means is `answer`, the waits between attempts are `retry`,
//! and an event that can never be delivered becomes a `dead_letter`.

pub(crate) mod answer;
pub(crate) mod answer_rules;
pub(crate) mod dead_letter;
pub(crate) mod retry;
pub(crate) mod status_policy;
pub(crate) mod webhook;

use std::sync::Arc;

use answer::Rejection;
use retry::Delivery;

use crate::relay::job::{Job, Work};
use crate::relay::report::Outcome;
use crate::relay::shared::Shared;
use crate::relay::stage::Stage;
use crate::relay::telemetry::RejectReason;

/// Handles a job, then the jobs queued behind it for the same alert.
pub(crate) async fn run_chain(shared: Arc<Shared>, mut job: Job) {
    // Taken before anything looks at the ownership: a revoke from now on
    // waits for this task (see `commit::ownership`).
    let _running = job.ownership.run();
    loop {
        if !handle(&shared, &job).await {
            // Interrupted by a revoke or the drain's abort: not handled, so
            // not committed; the partition's next owner (or the restart)
            // sends it.
            return;
        }
        let next = shared.finish(
            &job.partition,
            job.ownership.epoch,
            job.origin.offset,
            job.alert_id(),
        );
        match next {
            // The next job of the alert takes over this chain's processing
            // slot; its waiting slot goes back with the finished job.
            Some(mut n) => {
                std::mem::swap(&mut n.permit, &mut job.permit);
                job = n;
            }
            None => return,
        }
    }
}

/// Delivers or dead-letters one event; false if interrupted.
async fn handle(shared: &Shared, job: &Job) -> bool {
    let (alert_id, body) = match &job.work {
        Work::DeadLetter { stage, reason } => {
            return dead_letter(shared, job, *stage, reason).await;
        }
        Work::Deliver { alert_id, body } => (alert_id, body),
    };
    let key = job.origin.coordinates();
    let delivery = retry::deliver(
        shared.webhook(),
        shared.retry(),
        body.clone(),
        &key,
        shared.totals(),
        &job.ownership,
    )
    .await;
    match delivery {
        Delivery::Delivered { attempts } => {
            shared.totals().delivered(job.origin.timestamp_ms);
            tracing::debug!(event = %key, alert_id, attempts, "delivered");
            shared.report(&job.origin, || Outcome::Delivered {
                alert_id: alert_id.clone(),
                body: body.clone(),
                attempts,
            });
            true
        }
        Delivery::Rejected {
            kind,
            status,
            reason,
        } => {
            shared.totals().rejected(RejectReason::Answer(kind), status);
            if kind == Rejection::NoCmdbMatch {
                tracing::warn!(event = %key, alert_id, "no CMDB instance matches this alert's dimensions: {reason}");
            } else {
                tracing::error!(event = %key, alert_id, "the webhook rejected the alert: {reason}");
            }
            dead_letter(shared, job, Stage::Deliver, &reason).await
        }
        Delivery::GaveUp { attempts, reason } => {
            shared
                .totals()
                .rejected(RejectReason::RetriesExhausted, None);
            tracing::error!(event = %key, alert_id, attempts, "giving up after {attempts} attempts: {reason}");
            let reason = format!("gave up after {attempts} attempts: {reason}");
            dead_letter(shared, job, Stage::Deliver, &reason).await
        }
        Delivery::Poison {
            attempts,
            failing,
            reason,
        } => {
            shared.totals().rejected(RejectReason::Poison, None);
            tracing::error!(event = %key, alert_id, attempts, "poison alert: it failed {attempts} times over {failing:.0?} while other alerts were delivered; dead-lettering it (retry.poison_after): {reason}");
            let reason = format!(
                "poison alert: failed {attempts} times over {failing:.0?} while other alerts were delivered: {reason}"
            );
            dead_letter(shared, job, Stage::Deliver, &reason).await
        }
        Delivery::Interrupted => false,
    }
}

/// Writes the event's dead letter (or, without a dead-letter topic, logs
/// and drops it); false if interrupted before it was acknowledged.
async fn dead_letter(shared: &Shared, job: &Job, stage: Stage, reason: &str) -> bool {
    let reason = reason.to_string();
    let Some(dead_letters) = shared.dead_letters() else {
        tracing::warn!(event = %job.origin.coordinates(), stage = stage.as_str(), "no dead-letter topic configured; event dropped: {reason}");
        shared.report(&job.origin, || Outcome::Dropped { stage, reason });
        return true;
    };
    let sent = dead_letters
        .send(&job.origin, stage, &reason, shared.retry(), &job.ownership)
        .await;
    if sent {
        shared.totals().dead_lettered(stage);
        shared.report(&job.origin, || Outcome::DeadLettered { stage, reason });
    }
    sent
}
