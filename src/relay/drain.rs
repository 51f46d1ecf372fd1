//! The stop path: stop fetching, let in-flight deliveries finish within the
//! drain timeout (then abort the rest), flush the dead letters, commit what
//! was handled, leave the group. Every step gets what is left of one
//! [`StopClock`], so the whole stop fits in systemd's 30 s whatever the
//! brokers do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use tokio::task::JoinSet;

use crate::relay::blocking::off_the_runtime;
use crate::relay::commit::committer::{COMMIT_WAIT, commit_now};
use crate::relay::commit::shown;
use crate::relay::shared::Shared;
use crate::relay::shutdown::{Abort, StopClock};
use crate::relay::systemd;

/// How long a storm partition's clock may finish what is on the wire at
/// the end of a stop, at most.
const STORM_WAIT: Duration = Duration::from_secs(5);
/// How long aborted deliveries get to notice the abort.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// How long queued dead letters get to be acknowledged, at most.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(3);
/// Kept after the final commit, for leaving the group.
const LEAVE_RESERVE: Duration = Duration::from_secs(2);
/// How long leaving the group may take at most: the LeaveGroup request
/// needs one round trip to the coordinator.
const LEAVE_WAIT: Duration = Duration::from_secs(3);

pub(crate) async fn drain(
    shared: Arc<Shared>,
    clock: StopClock,
    mut tasks: JoinSet<()>,
    abort: Abort,
) {
    systemd::stopping();
    let consumer = shared.consumer();
    if let Ok(assignment) = consumer.assignment() {
        let _ = consumer.pause(&assignment);
    }
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, "waiting for in-flight deliveries");
    }
    let drained = tokio::time::timeout_at(clock.drained_by().into(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        abort.fire();
        let _ = tokio::time::timeout(ABORT_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        // Wait for the aborted tasks to drop their handles on the relay, so
        // that the consumer is closed (and leaves the group) when `serve`
        // returns, not never.
        while tasks.join_next().await.is_some() {}
        tracing::warn!(
            unfinished = shared.partitions().pending(),
            "drain timeout reached; unfinished events stay uncommitted and will be read again"
        );
    }
    if let Some(d) = shared.dead_letters() {
        let flush_by = clock.before_end(LEAVE_RESERVE + Duration::from_secs(2));
        let wait = DEAD_LETTER_FLUSH.min(flush_by.saturating_duration_since(Instant::now()));
        let flushed = off_the_runtime(|| d.flush(wait));
        if let Err(e) = flushed {
            tracing::warn!("dead letters not flushed: {e}");
        }
    }
    // Forget all partitions (so the revoke that unsubscribing triggers has
    // nothing to do) and commit their handled prefix, after any periodic
    // commit still in flight.
    let owned = shared.partitions().owned();
    // A storm partition's clock may have a digest or a held recovery on
    // the wire: let it finish and be recorded (a revoke does the same),
    // within what the stop has left before its commit.
    let wait = if shared.storm().is_some() {
        clock
            .before_end(LEAVE_RESERVE + COMMIT_WAIT)
            .saturating_duration_since(Instant::now())
            .min(STORM_WAIT)
    } else {
        Duration::ZERO
    };
    let points = off_the_runtime(|| shared.partitions().revoke(&owned, wait));
    if let Some(storm) = shared.storm() {
        let within = clock
            .before_end(LEAVE_RESERVE + COMMIT_WAIT)
            .saturating_duration_since(Instant::now())
            .min(crate::relay::storm::REVOKE_FLUSH);
        off_the_runtime(|| storm.flush(within));
    }
    let commit_by = clock
        .before_end(LEAVE_RESERVE)
        .min(Instant::now() + COMMIT_WAIT);
    let committed = off_the_runtime(|| commit_now(consumer, &points, commit_by));
    if committed && !points.is_empty() {
        tracing::info!(committed = ?shown(&points), "offsets committed; leaving the group");
    }
    consumer.unsubscribe();
    leave(shared, clock).await;
}

/// Drops the relay's clients: the consumer's close sends the LeaveGroup, so
/// the group moves this instance's partitions at once instead of after
/// `session.timeout.ms`. On a blocking thread, since closing waits for the
/// brokers, and only until the end of the stop.
async fn leave(shared: Arc<Shared>, clock: StopClock) {
    let closing = tokio::task::spawn_blocking(move || drop(shared));
    let leave_by = clock.end().min(Instant::now() + LEAVE_WAIT);
    if tokio::time::timeout_at(leave_by.into(), closing)
        .await
        .is_err()
    {
        tracing::warn!(
            "leaving the group did not finish in time; the group moves this instance's partitions after session.timeout.ms"
        );
    }
}
