//! Deliver, the third stage of an event's trip: one job to the webhook —
//! or to the dead-letter topic — and on to the commit.
//!
//! [`run_chain`] is the delivery task: it handles a job, marks its offset
//! handled (`Shared::finish`, which moves the commit point), and goes on with
//! the next job of the same alert, if one waited. One POST is `http`, what
//! its answer means is `answer` (and the route's `answer_rules`), the waits
//! between attempts are `retry` at the route's `pace`, and an event that can
//! never be delivered becomes a `dead_letter`. A route's client, pace and
//! readiness are its [`Target`].
//!
//! What it offers: [`run_chain`]; [`Target`] (built once per route) and the
//! route's [`answer_rules`]; [`DeadLetters`]; and, for the metrics, what an
//! attempt came to ([`Attempt`], [`Reach`], [`Verdict`], [`Trouble`],
//! [`Rejection`]).

mod answer;
mod answer_rules;
mod dead_letter;
mod fault_injection;
mod http;
mod pace;
mod poison;
mod retry;
mod target;
mod throttling;

use std::sync::Arc;

use retry::Delivery;

pub(crate) use answer::{Rejection, Trouble, Verdict};
pub(crate) use dead_letter::DeadLetters;
use dead_letter::Letter;
pub(crate) use http::{Attempt, Reach};
pub(crate) use target::{Target, TargetSettings, answer_rules};

use crate::relay::job::{Job, Work};
use crate::relay::report::Outcome;
use crate::relay::route::RouteDecision;
use crate::relay::shared::Shared;
use crate::relay::stage::Stage;
use crate::relay::telemetry::RejectReason;

/// A delivery stopped before its job was handled: its partition's
/// ownership ended (a revoke, the drain's abort). Not handled, so not
/// committed; the partition's next owner (or the restart) sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted;

/// Whether a job was handled (delivered, skipped, dead-lettered or
/// dropped), or interrupted.
type Handled = Result<(), Interrupted>;

/// Whether a job was handled, and if so whether every body of it was
/// delivered (the storm stage remembers what was).
type Sent = Result<bool, Interrupted>;

/// Handles a job, then the jobs queued behind it for the same key.
pub(crate) async fn run_chain(shared: Arc<Shared>, mut job: Job) {
    // Taken before anything looks at the ownership: a revoke from now on
    // waits for this task (see `commit::ownership`).
    let _running = job.ownership.run();
    loop {
        if contained(&shared, &job).await == Err(Interrupted) {
            return;
        }
        let next = shared.finish(
            &job.partition,
            job.ownership.epoch,
            job.origin.offset,
            job.route.id,
            job.order.as_ref(),
        );
        match next {
            // The next job of the key takes over this chain's processing
            // slot; its waiting slot goes back with the finished job.
            Some(mut n) => {
                std::mem::swap(&mut n.permit, &mut job.permit);
                job = n;
            }
            None => return,
        }
    }
}

/// [`handle`], with a panic contained: a panic anywhere below (a
/// dependency's, on a record or an answer nobody foresaw) would end this
/// task with the event's offset pending and its alert id's queue busy for
/// good — the partition's commit point and every later event of that alert
/// stuck until a restart. Instead, the event is dead-lettered with the
/// panic's message, or, without a dead-letter topic, parked: handled again
/// every `retry.max_backoff` (a panic may depend on the target's answer)
/// while the other alerts flow.
async fn contained(shared: &Shared, job: &Job) -> Sent {
    use futures_util::FutureExt;
    let mut parked: Option<retry::Parked<'_>> = None;
    loop {
        let panic = match std::panic::AssertUnwindSafe(handle(shared, job))
            .catch_unwind()
            .await
        {
            Ok(handled) => return handled,
            Err(panic) => panic_message(&*panic),
        };
        let route = job.route.name();
        let reason = format!(
            "kbridge failed handling this event (a defect; please report it with this message): panicked: {panic}"
        );
        tracing::error!(event = %job.origin.coordinates(), %route, "{reason}");
        shared.totals().panicked(route);
        if job.route.dead_letter_topic.is_some() {
            return dead_letter(shared, job, Stage::Deliver, &reason)
                .await
                .map(|()| false);
        }
        if parked.is_none() {
            let key = job.origin.coordinates();
            parked = Some(retry::Parked::new(&job.route.target, &key, &reason));
        }
        tokio::select! {
            biased;
            _ = job.ownership.ending() => return Err(Interrupted),
            _ = tokio::time::sleep(job.route.retry.max_backoff) => {}
        }
    }
}

/// What a panic said: its message, when it was text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// A held recovery whose hold ended (`storm::release`): mapped and
/// delivered — or dead-lettered — as if it had just been read; whether it
/// was delivered.
pub(crate) async fn release(shared: &Shared, job: &Job) -> Sent {
    contained(shared, job).await
}

/// Maps (a jq route), delivers or dead-letters one event on one route —
/// through its storm stage, on a storm route's repartition topic — or
/// forwards it there; whether it was delivered.
async fn handle(shared: &Shared, job: &Job) -> Sent {
    fault_injection::panic_if_asked(job);
    let not_delivered = |handled: Handled| handled.map(|()| false);
    match &job.work {
        Work::DeadLetter { stage, reason } => {
            not_delivered(dead_letter(shared, job, *stage, reason).await)
        }
        Work::Forward => {
            let key = job.order.as_ref().map(|o| o.key.as_str());
            // Boxed, as every storm future here: the delivery task of a
            // route without a storm stage stays the size it was.
            not_delivered(Box::pin(crate::relay::storm::forward(shared, job, key)).await)
        }
        Work::Fold { event } => match (job.route.route.grouped(event), &job.storm) {
            (RouteDecision::Deliver { .. }, Some(tag)) => {
                Box::pin(crate::relay::storm::fold(shared, job, tag)).await
            }
            (RouteDecision::Skip(reason), _) => {
                shared.skip(
                    &job.origin,
                    Some(job.route.name()),
                    Some(job.alert_id()),
                    reason,
                );
                Ok(false)
            }
            (RouteDecision::Invalid { stage, reason }, _) => {
                shared.invalid(&job.origin, job.route.name(), stage, &reason);
                not_delivered(dead_letter(shared, job, stage, &reason).await)
            }
            (RouteDecision::Deliver { .. }, None) => Err(Interrupted),
        },
        Work::Deliver { bodies } => gated(shared, job, bodies).await,
        Work::Map { event, key_failure } => {
            let route = job.route.name();
            match job.route.route.later(event, key_failure.as_deref()) {
                RouteDecision::Deliver { bodies, .. } => gated(shared, job, &bodies).await,
                RouteDecision::Skip(reason) => {
                    shared.skip(&job.origin, Some(route), Some(job.alert_id()), reason);
                    Ok(false)
                }
                // Dead-lettered, or without a dead-letter topic dropped
                // (`dead_letter` says so).
                RouteDecision::Invalid { stage, reason } => {
                    shared.invalid(&job.origin, route, stage, &reason);
                    not_delivered(dead_letter(shared, job, stage, &reason).await)
                }
            }
        }
    }
}

/// The bodies through the storm stage, when the job is on a storm route's
/// repartition topic; else straight to the target.
async fn gated(shared: &Shared, job: &Job, bodies: &[bytes::Bytes]) -> Sent {
    match &job.storm {
        Some(tag) => Box::pin(crate::relay::storm::through(shared, job, bodies, tag)).await,
        None => send(shared, job, bodies).await,
    }
}

/// Sends the event's bodies on its route, in turn. An output the target
/// refuses does not keep the others from being sent, and the event is
/// dead-lettered once for all that failed.
pub(crate) async fn send(shared: &Shared, job: &Job, bodies: &[bytes::Bytes]) -> Sent {
    let coordinates = job.origin.coordinates();
    let target = &job.route.target;
    let route = &target.name;
    let key = job.key();
    let outputs = bodies.len();
    let mut failures: Vec<String> = Vec::new();
    let mut answer = Answered::default();
    for (i, body) in bodies.iter().enumerate() {
        let idempotency_key = target.idempotency_key(&coordinates, i, outputs);
        let delivery = retry::deliver(
            target,
            &job.route.retry,
            body.clone(),
            &idempotency_key,
            &job.ownership,
            job.route.dead_letter_topic.is_some(),
        )
        .await;
        let failure = match delivery {
            Delivery::Delivered { attempts, status } => {
                answer.took(attempts, status);
                shared.totals().delivered(route, job.origin.timestamp_ms);
                tracing::debug!(event = %idempotency_key, %route, key, attempts, "delivered");
                continue;
            }
            Delivery::Rejected {
                kind,
                status,
                reason,
            } => {
                answer.took(1, status);
                shared
                    .totals()
                    .rejected(route, RejectReason::Answer(kind), status);
                if kind == Rejection::NoCmdbMatch {
                    tracing::warn!(event = %idempotency_key, %route, key, "no CMDB instance matches this alert's dimensions: {reason}");
                } else {
                    tracing::error!(event = %idempotency_key, %route, key, "the webhook rejected the alert: {reason}");
                }
                reason
            }
            Delivery::GaveUp {
                attempts,
                status,
                reason,
            } => {
                answer.took(attempts, status);
                shared
                    .totals()
                    .rejected(route, RejectReason::RetriesExhausted, None);
                tracing::error!(event = %idempotency_key, %route, key, attempts, "giving up after {attempts} attempts: {reason}");
                format!("gave up after {attempts} attempts: {reason}")
            }
            Delivery::Poison {
                attempts,
                status,
                evidence,
                reason,
            } => {
                answer.took(attempts, status);
                shared.totals().rejected(route, RejectReason::Poison, None);
                tracing::error!(event = %idempotency_key, %route, key, attempts, "poison alert: {evidence}; dead-lettering it (retry.poison_after): {reason}");
                format!("poison alert: {evidence}: {reason}")
            }
            Delivery::Interrupted => return Err(Interrupted),
        };
        failures.push(if outputs > 1 {
            format!("output {} of {outputs}: {failure}", i + 1)
        } else {
            failure
        });
    }
    if failures.is_empty() {
        shared.report(&job.origin, Some(route), Some(key), |shown| {
            // Key and bodies only for the demo, which shows them (the
            // audit takes the key as it is).
            Outcome::Delivered {
                key: if shown {
                    key.to_string()
                } else {
                    String::new()
                },
                bodies: if shown { bodies.to_vec() } else { Vec::new() },
                attempts: answer.attempts,
                status: answer.status,
            }
        });
        return Ok(true);
    }
    dead_letter_answered(shared, job, Stage::Deliver, &failures.join("; "), answer)
        .await
        .map(|()| false)
}

/// What the target's answers to an event came to: its attempts over all
/// its requests, and the last answer's HTTP status (for its dead letter
/// and its audit record).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answered {
    pub attempts: u32,
    pub status: Option<u16>,
}

impl Answered {
    fn took(&mut self, attempts: u32, status: Option<u16>) {
        self.attempts += attempts;
        if status.is_some() {
            self.status = status;
        }
    }
}

/// One body of a re-driven dead letter (`kbridge dlq redrive` to a
/// route's webhook), sent as the relay sends it: the route's rate limit,
/// answer rules and retries, and the Idempotency-Key of the original
/// event. What was delivered, or why not — a failure that may pass is
/// retried up to `retry.max_attempts`, then reported: the record stays in
/// the dead-letter topic either way.
pub(crate) async fn redrive(
    route: &crate::relay::live_route::LiveRoute,
    body: bytes::Bytes,
    idempotency_key: &str,
    stop: &crate::relay::commit::Ownership,
) -> Result<Answered, String> {
    let target = &route.target;
    match retry::deliver(target, &route.retry, body, idempotency_key, stop, true).await {
        Delivery::Delivered { attempts, status } => Ok(Answered { attempts, status }),
        Delivery::Rejected { status, reason, .. } => Err(match status {
            Some(s) => format!("rejected (HTTP {s}): {reason}"),
            None => format!("rejected: {reason}"),
        }),
        Delivery::GaveUp {
            attempts, reason, ..
        } => Err(format!("gave up after {attempts} attempts: {reason}")),
        Delivery::Poison {
            evidence, reason, ..
        } => Err(format!("poison alert: {evidence}: {reason}")),
        Delivery::Interrupted => Err("interrupted".into()),
    }
}

/// Writes the event's dead letter for this route (or, without a
/// dead-letter topic, logs and drops it); interrupted if the ownership
/// ended before the dead letter was acknowledged.
pub(crate) async fn dead_letter(shared: &Shared, job: &Job, stage: Stage, reason: &str) -> Handled {
    dead_letter_answered(shared, job, stage, reason, Answered::default()).await
}

/// [`dead_letter`], with what the target answered (its status and the
/// attempts, in the dead letter's headers).
async fn dead_letter_answered(
    shared: &Shared,
    job: &Job,
    stage: Stage,
    reason: &str,
    answer: Answered,
) -> Handled {
    let reason = reason.to_string();
    let route = job.route.name();
    let (Some(topic), Some(dead_letters)) = (&job.route.dead_letter_topic, shared.dead_letters())
    else {
        tracing::warn!(event = %job.origin.coordinates(), %route, stage = stage.as_str(), "no dead-letter topic configured; event dropped: {reason}");
        shared.report(&job.origin, Some(route), Some(job.alert_id()), |_| {
            Outcome::Dropped {
                stage,
                reason,
                answer,
            }
        });
        return Ok(());
    };
    let sent = dead_letters
        .send(
            Letter {
                topic,
                route,
                stage,
                reason: &reason,
                answer,
            },
            &job.origin,
            &job.route.retry,
            &job.ownership,
        )
        .await;
    let (partition, offset) = sent?;
    shared.totals().dead_lettered(route, stage);
    shared.report(&job.origin, Some(route), Some(job.alert_id()), |_| {
        Outcome::DeadLettered {
            stage,
            reason,
            answer,
            at: Some((topic.clone(), partition, offset)),
        }
    });
    Ok(())
}
